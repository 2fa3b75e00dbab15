//! The 402 doctor: what a refused call's answer means ([`classify`]), from a
//! pasted response ([`response`]) or a call-log record.

pub mod classify;
pub mod response;

pub use classify::{Cause, Classification, Evidence, Origin, System, classify};
pub use response::{RawResponse, ResponseParseError};

/// Classifies a raw HTTP response (status line, headers, blank line, body)
/// and renders the result as one line of JSON: what `tollgate doctor
/// classify FILE` prints.
pub fn classify_text(text: &str) -> Result<String, ResponseParseError> {
    let response = RawResponse::parse(text)?;
    let found = classify(&response);
    // A struct of strings, numbers and enums always serializes.
    Ok(serde_json::to_string(&found).unwrap_or_default())
}
