//! The data plane's answers when it refuses a call: `application/problem+json`
//! (RFC 9457) with an absolute `type` under the public URL, an OpenAI-style
//! `error` object so OpenAI SDKs show the message, and the fields a client
//! needs to act (`balance`, `required`, `payment_method`, …).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{BufMut, BytesMut};
use serde_json::Value;
use serde_json::value::RawValue;
use tollgate_api::PROBLEM_CONTENT_TYPE;
use tollgate_api::money::Amount;

use super::hot::Coverage;

/// A field's value: built for this refusal, or JSON written once and shared
/// (what every refusal of a subscription repeats, such as its plan).
#[derive(Debug, Clone)]
pub enum Field {
    Value(Value),
    Raw(Arc<RawValue>),
    /// An amount of money, written as a decimal string.
    Amount(Amount),
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub message: String,
    /// The fields a client needs to act, after the standard ones, in order.
    pub fields: Vec<(&'static str, Field)>,
    pub headers: Vec<(HeaderName, String)>,
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        400 | 404 | 413 | 422 => "invalid_request_error",
        _ => "api_error",
    }
}

impl Refusal {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Refusal {
            status,
            slug,
            title,
            message: message.into(),
            fields: Vec::with_capacity(8),
            headers: Vec::new(),
        }
    }

    /// Adds a field to the body.
    pub fn field(self, name: &'static str, value: impl Into<Value>) -> Self {
        self.set(name, Field::Value(value.into()))
    }

    /// Adds a field whose JSON was written beforehand.
    pub fn raw_field(self, name: &'static str, json: &Arc<RawValue>) -> Self {
        self.set(name, Field::Raw(json.clone()))
    }

    /// Adds an amount of money as a decimal string.
    pub fn amount_field(self, name: &'static str, amount: Amount) -> Self {
        self.set(name, Field::Amount(amount))
    }

    /// Names the subscription and plan the refusal is about.
    pub fn covering(self, cover: &Coverage) -> Self {
        self.raw_field("subscription_id", &cover.subscription_id_json)
            .raw_field("plan", &cover.plan_ref)
    }

    /// Each name is given once (refusals are built in one place each);
    /// checked in debug builds rather than searched on every call.
    fn set(mut self, name: &'static str, value: Field) -> Self {
        debug_assert!(
            self.fields.iter().all(|(n, _)| *n != name),
            "field {name} given twice"
        );
        self.fields.push((name, value));
        self
    }

    pub fn header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `application/problem+json` answer, with an OpenAI-style `error`
    /// object inside so that OpenAI SDKs show the message. The request id
    /// header is the caller's to set ([`super::Call::finish`]).
    pub fn render(self, request_id: &str, public_url: &str) -> Response {
        self.render_keeping_message(request_id, public_url).0
    }

    /// [`Refusal::render`], handing the message back (for the call log)
    /// instead of copying it.
    pub fn render_keeping_message(self, request_id: &str, public_url: &str) -> (Response, String) {
        let mut body =
            BytesMut::with_capacity(384 + 2 * self.message.len() + 64 * self.fields.len());
        self.write_body(&mut body, request_id, public_url);
        // Frozen rather than converted from a Vec: no copy to shrink it.
        let mut response = Response::new(Body::from(body.freeze()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        (response, self.message)
    }

    /// Writes the problem body straight to bytes: this is the data plane's
    /// hottest answer, so no JSON tree is built, the message is escaped once
    /// for both places it appears, and the catalogue's own words (slugs,
    /// titles, field names) are written as they are.
    fn write_body(&self, out: &mut BytesMut, request_id: &str, public_url: &str) {
        out.extend_from_slice(b"{\"type\":\"");
        // A validated URL: percent-encoded, nothing to escape.
        write_plain(out, public_url);
        out.extend_from_slice(b"/problems/");
        write_plain(out, self.slug);
        out.extend_from_slice(b"\",\"title\":\"");
        write_plain(out, self.title);
        out.extend_from_slice(b"\",\"status\":");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b",\"detail\":\"");
        let message = escaped(&self.message);
        out.extend_from_slice(message.as_bytes());
        out.extend_from_slice(b"\",\"request_id\":\"");
        // Request ids are the gateway's own (`req_` and a lowercase ULID).
        write_plain(out, request_id);
        out.extend_from_slice(b"\",\"reason\":\"");
        write_plain(out, self.slug);
        out.extend_from_slice(b"\",\"error\":{\"message\":\"");
        out.extend_from_slice(message.as_bytes());
        out.extend_from_slice(b"\",\"type\":\"");
        write_plain(out, openai_type(self.status));
        out.extend_from_slice(b"\",\"code\":\"");
        // `invalid-api-key` → `invalid_api_key`, the OpenAI spelling of codes.
        let mut code = [0u8; 64];
        let code = &mut code[..self.slug.len().min(64)];
        for (to, from) in code.iter_mut().zip(self.slug.bytes()) {
            *to = if from == b'-' { b'_' } else { from };
        }
        out.extend_from_slice(code);
        out.extend_from_slice(b"\"}");
        for (name, value) in &self.fields {
            out.extend_from_slice(b",\"");
            write_plain(out, name);
            out.extend_from_slice(b"\":");
            match value {
                Field::Value(Value::String(text)) => {
                    out.put_u8(b'"');
                    write_escaped(out, text);
                    out.put_u8(b'"');
                }
                Field::Value(value) => {
                    // Writing a `Value` to memory cannot fail.
                    let _ = serde_json::to_writer((&mut *out).writer(), value);
                }
                Field::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
                Field::Amount(amount) => {
                    out.put_u8(b'"');
                    out.extend_from_slice(amount.as_bytes());
                    out.put_u8(b'"');
                }
            }
        }
        out.put_u8(b'}');
    }
}

/// Whether a string can go inside JSON quotes as it is. Written to scan
/// without branches so that it vectorizes.
fn needs_no_escape(s: &str) -> bool {
    !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// The catalogue's own words, which never need escaping.
fn write_plain(out: &mut BytesMut, s: &str) {
    debug_assert!(needs_no_escape(s), "{s:?} needs escaping");
    out.extend_from_slice(s.as_bytes());
}

/// A string's JSON content (without the quotes).
fn write_escaped(out: &mut BytesMut, s: &str) {
    out.extend_from_slice(escaped(s).as_bytes());
}

/// A string's JSON content (without the quotes), copied only if it needs
/// escaping.
fn escaped(s: &str) -> Cow<'_, str> {
    if needs_no_escape(s) {
        return Cow::Borrowed(s);
    }
    let quoted = serde_json::to_string(s).unwrap_or_default();
    Cow::Owned(quoted[1..quoted.len() - 1].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_json_with_every_field_and_escapes_what_it_must() {
        let plan: Arc<RawValue> = serde_json::value::to_raw_value(
            &serde_json::json!({"id": "pln_1", "name": "Pro \"Max\""}),
        )
        .unwrap()
        .into();
        let refusal = Refusal::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient-funds",
            "Insufficient funds",
            "Needs \"1.00\" USD\nnow \\ \u{1}é",
        )
        .amount_field("required", Amount::new(1_000_000, 2))
        .field("limit", 60)
        .amount_field("balance", Amount::new(250_000, 2))
        .raw_field("plan", &plan);
        let mut out = BytesMut::new();
        refusal.write_body(&mut out, "req_1", "https://gw.example/base");
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "https://gw.example/base/problems/insufficient-funds",
                "title": "Insufficient funds",
                "status": 402,
                "detail": "Needs \"1.00\" USD\nnow \\ \u{1}é",
                "request_id": "req_1",
                "reason": "insufficient-funds",
                "error": {
                    "message": "Needs \"1.00\" USD\nnow \\ \u{1}é",
                    "type": "billing_error",
                    "code": "insufficient_funds",
                },
                "required": "1.00",
                "balance": "0.25",
                "limit": 60,
                "plan": {"id": "pln_1", "name": "Pro \"Max\""},
            })
        );
    }

    #[test]
    fn catalogue_words_need_no_escaping() {
        for (slug, title, _) in crate::problem_types::all() {
            assert!(needs_no_escape(slug) && needs_no_escape(title), "{slug}");
        }
        assert!(!needs_no_escape("a\"b") && !needs_no_escape("a\\b") && !needs_no_escape("a\tb"));
    }
}
