//! A raw HTTP response as an admin pastes it or a script hands it over:
//! a status line, headers, a blank line, a body.

use serde_json::Value;

/// The most the doctor reads of a pasted response (a body larger than this is
/// not an error answer anyone pastes).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in the order given; repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as JSON, when it is JSON.
    pub json: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseParseError {
    #[error("the response is empty")]
    Empty,
    #[error("the response is larger than {} KiB", MAX_RESPONSE_BYTES / 1024)]
    TooLarge,
    #[error(
        "the first line must be a status line such as `HTTP/1.1 402 Payment Required`, not `{0}`"
    )]
    StatusLine(String),
    #[error(
        "line {line}: `{text}` is not a header (`Name: value`); end the headers with a blank line"
    )]
    Header { line: usize, text: String },
}

impl RawResponse {
    /// Parses `HTTP/x y reason`, then `Name: value` lines up to the first
    /// blank line, then the body. LF and CRLF line ends are both taken.
    pub fn parse(text: &str) -> Result<RawResponse, ResponseParseError> {
        if text.len() > MAX_RESPONSE_BYTES {
            return Err(ResponseParseError::TooLarge);
        }
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if text.is_empty() {
            return Err(ResponseParseError::Empty);
        }
        let (head, body) = split_head(text);
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let first = lines.next().unwrap_or_default();
        let status = parse_status_line(first)
            .ok_or_else(|| ResponseParseError::StatusLine(shorten(first, 80)))?;
        let mut headers = Vec::new();
        for (n, line) in lines.enumerate() {
            let Some((name, value)) = line.split_once(':') else {
                return Err(ResponseParseError::Header {
                    line: n + 2,
                    text: shorten(line, 80),
                });
            };
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ResponseParseError::Header {
                    line: n + 2,
                    text: shorten(line, 80),
                });
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let body = body.trim().to_owned();
        let json = serde_json::from_str(&body).ok();
        Ok(RawResponse {
            status,
            headers,
            body,
            json,
        })
    }

    /// A response known only by its status and body (a call-log record).
    pub fn from_parts(status: u16, headers: Vec<(String, String)>, body: String) -> RawResponse {
        let json = serde_json::from_str(&body).ok();
        RawResponse {
            status,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            body,
            json,
        }
    }

    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A string at a JSON path (`["error", "code"]`), when the body is JSON.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).and_then(Value::as_str)
    }

    pub fn at(&self, path: &[&str]) -> Option<&Value> {
        let mut value = self.json.as_ref()?;
        for key in path {
            value = value.get(key)?;
        }
        Some(value)
    }
}

/// Head and body split at the first blank line (CRLF or LF).
fn split_head(text: &str) -> (&str, &str) {
    let crlf = text.find("\r\n\r\n").map(|i| (i, 4));
    let lf = text.find("\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => {
            let (i, len) = if a.0 <= b.0 { a } else { b };
            (&text[..i], &text[i + len..])
        }
        (Some((i, len)), None) | (None, Some((i, len))) => (&text[..i], &text[i + len..]),
        (None, None) => (text, ""),
    }
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    (100..=599).contains(&status).then_some(status)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_json_body_with_either_line_end() {
        for text in [
            "HTTP/1.1 402 Payment Required\nContent-Type: application/json\nX-Request-Id: r1\n\n{\"a\":1}\n",
            "HTTP/2 402\r\ncontent-type: application/json\r\nx-request-id: r1\r\n\r\n{\"a\":1}",
        ] {
            let r = RawResponse::parse(text).unwrap();
            assert_eq!(r.status, 402);
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.header("x-request-id"), Some("r1"));
            assert_eq!(r.at(&["a"]), Some(&Value::from(1)));
        }
    }

    #[test]
    fn a_response_without_body_or_headers_is_taken() {
        let r = RawResponse::parse("HTTP/1.1 429 Too Many Requests").unwrap();
        assert_eq!(r.status, 429);
        assert!(r.headers.is_empty());
        assert_eq!(r.body, "");
        assert!(r.json.is_none());
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        assert_eq!(RawResponse::parse(" \n"), Err(ResponseParseError::Empty));
        assert!(matches!(
            RawResponse::parse("{\"error\":\"x\"}"),
            Err(ResponseParseError::StatusLine(_))
        ));
        assert!(matches!(
            RawResponse::parse("HTTP/1.1 4020 Nope\n\n"),
            Err(ResponseParseError::StatusLine(_))
        ));
        assert!(matches!(
            RawResponse::parse("HTTP/1.1 402 Payment Required\nnot a header\n\n{}"),
            Err(ResponseParseError::Header { line: 2, .. })
        ));
        let big = format!("HTTP/1.1 402 X\n\n{}", "a".repeat(MAX_RESPONSE_BYTES));
        assert_eq!(RawResponse::parse(&big), Err(ResponseParseError::TooLarge));
    }
}
