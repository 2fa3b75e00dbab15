//! What a request scripts — by header, model name or API key — and the error
//! answers, in OpenAI's or Anthropic's format.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::stats::Stats;

/// Caps, so that a typo in a test cannot hold a test run for hours.
const MAX_SLOW: Duration = Duration::from_secs(10);
const MAX_PACE: Duration = Duration::from_secs(2);
const MAX_HANG: Duration = Duration::from_secs(600);

/// Which provider's wire format a request speaks (and its errors use).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    fn of(request: &Request) -> Api {
        let path = request.uri().path();
        let anthropic_models =
            path == "/v1/models" && request.headers().contains_key("anthropic-version");
        if path == "/v1/messages" || anthropic_models {
            Api::Anthropic
        } else {
            Api::OpenAi
        }
    }

    /// The API key as each provider expects it: `Authorization: Bearer` for
    /// OpenAI, `x-api-key` for Anthropic; "" when absent.
    fn key(self, headers: &HeaderMap) -> &str {
        let value = match self {
            Api::OpenAi => headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                }),
            Api::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        };
        value.unwrap_or_default().trim()
    }
}

/// A scripted failure; the same suffix means the same failure whether it
/// comes from `x-sim-fail`, `sim-fail-<suffix>` or `sim-key-fail-<suffix>`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Failure {
    /// Any other status, with a generic body.
    Status(StatusCode),
    /// `401`: the key is not valid.
    InvalidKey,
    /// `429`: rate limited, with `Retry-After: 1`.
    RateLimit,
    /// `429-quota`: out of quota (retrying does not help).
    Quota,
    /// `400-credit`: the account's credit balance is too low.
    Credit,
}

impl Failure {
    pub(crate) fn parse(suffix: &str) -> Option<Failure> {
        match suffix {
            "429-quota" => Some(Failure::Quota),
            "400-credit" => Some(Failure::Credit),
            _ => Some(match suffix.parse::<u16>().ok()? {
                401 => Failure::InvalidKey,
                429 => Failure::RateLimit,
                code => Failure::Status(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                ),
            }),
        }
    }

    /// From the `x-sim-fail` request header.
    pub(crate) fn from_header(headers: &HeaderMap) -> Option<Failure> {
        Failure::parse(headers.get("x-sim-fail")?.to_str().ok()?)
    }

    fn status(self) -> StatusCode {
        match self {
            Failure::Status(status) => status,
            Failure::InvalidKey => StatusCode::UNAUTHORIZED,
            Failure::RateLimit | Failure::Quota => StatusCode::TOO_MANY_REQUESTS,
            Failure::Credit => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn response(self, api: Api) -> Response {
        let status = self.status();
        let mut response = match api {
            Api::OpenAi => {
                let (message, kind, code) = self.openai_error();
                openai_error(status, &message, kind, code)
            }
            Api::Anthropic => anthropic_error(status, &self.anthropic_message()),
        };
        if self == Failure::RateLimit {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }

    /// Message, `type` and `code` as OpenAI words them.
    fn openai_error(self) -> (String, &'static str, Value) {
        match self {
            // The original fixture's body, kept for the tests that know it.
            Failure::Status(status) => (
                format!("simulated failure {status}"),
                "sim_error",
                json!(status.as_u16()),
            ),
            Failure::InvalidKey => (
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.".into(),
                "invalid_request_error",
                json!("invalid_api_key"),
            ),
            Failure::RateLimit => (
                "Rate limit reached for requests. Please try again in 1s.".into(),
                "rate_limit_exceeded",
                json!("rate_limit_exceeded"),
            ),
            Failure::Quota => (
                "You exceeded your current quota, please check your plan and billing details.".into(),
                "insufficient_quota",
                json!("insufficient_quota"),
            ),
            Failure::Credit => (
                "Your credit balance is too low to access the API. Please go to Plans & Billing to upgrade or purchase credits.".into(),
                "invalid_request_error",
                Value::Null,
            ),
        }
    }

    fn anthropic_message(self) -> String {
        match self {
            Failure::Status(status) => format!("simulated failure {status}"),
            Failure::InvalidKey => "invalid x-api-key".into(),
            Failure::RateLimit => "Number of requests has exceeded your rate limit.".into(),
            Failure::Quota => "You have reached your specified API usage limits.".into(),
            Failure::Credit => "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.".into(),
        }
    }
}

/// The OpenAI error body `{"error": {"message", "type", "code"}}`.
pub(crate) fn openai_error(status: StatusCode, message: &str, kind: &str, code: Value) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": code}});
    (status, Json(body)).into_response()
}

/// The Anthropic error body `{"type": "error", "error": {"type", "message"}}`,
/// its `type` following the status as Anthropic's does.
pub(crate) fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        400 | 415 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, Json(body)).into_response()
}

/// A request the provider refuses to read (bad JSON, missing field).
pub(crate) fn invalid_request(api: Api, status: StatusCode, message: &str) -> Response {
    match api {
        Api::OpenAi => openai_error(status, message, "invalid_request_error", Value::Null),
        Api::Anthropic => anthropic_error(status, message),
    }
}

/// What a model name scripts. Names are `<base>[-pace-<ms>]`, where the base
/// is `sim-fail-<suffix>`, `sim-slow-<ms>`, `sim-hang`, `sim-cut-<n>` or any
/// other name (which answers normally).
#[derive(Default, Debug, PartialEq)]
pub(crate) struct Script {
    pub(crate) fail: Option<Failure>,
    pub(crate) slow: Option<Duration>,
    pub(crate) hang: bool,
    /// Streams only: content chunks sent before the stream is broken off.
    pub(crate) cut: Option<usize>,
    /// Delay between two streamed events.
    pub(crate) pace: Duration,
}

impl Script {
    pub(crate) fn parse(model: &str) -> Script {
        let (base, pace) = match model.split_once("-pace-") {
            Some((base, rest)) => (base, rest.split('-').next().and_then(millis)),
            None => (model, None),
        };
        Script {
            fail: base.strip_prefix("sim-fail-").and_then(Failure::parse),
            slow: base.strip_prefix("sim-slow-").and_then(millis),
            hang: base == "sim-hang",
            cut: base.strip_prefix("sim-cut-").and_then(|n| n.parse().ok()),
            pace: pace.unwrap_or_default().min(MAX_PACE),
        }
    }

    /// Plays the scripted delay or failure; `Some` is the answer to give
    /// instead of the normal one.
    pub(crate) async fn play(&self, api: Api, headers: &HeaderMap) -> Option<Response> {
        if let Some(failure) = Failure::from_header(headers).or(self.fail) {
            return Some(failure.response(api));
        }
        if self.hang {
            // Never answers: the handler is dropped when the client goes away
            // (hyper notices the closed connection); the cap only bounds a
            // client that never does.
            tokio::time::sleep(MAX_HANG).await;
            return Some(Failure::Status(StatusCode::GATEWAY_TIMEOUT).response(api));
        }
        if let Some(slow) = self.slow {
            tokio::time::sleep(slow.min(MAX_SLOW)).await;
        }
        None
    }
}

fn millis(text: &str) -> Option<Duration> {
    text.parse().ok().map(Duration::from_millis)
}

/// What an API key scripts, given how many requests it has made (this one
/// included): `sim-key-fail-<suffix>` always fails, `sim-key-flaky-<n>` is
/// rate limited for its first n requests.
fn key_failure(key: &str, seen: u64) -> Option<Failure> {
    if let Some(suffix) = key.strip_prefix("sim-key-fail-") {
        return Failure::parse(suffix);
    }
    let flaky_for: u64 = key.strip_prefix("sim-key-flaky-")?.parse().ok()?;
    (seen <= flaky_for).then_some(Failure::RateLimit)
}

/// Middleware on the `/v1` routes: counts the request under its key and
/// plays the key's script before any handler runs, as a real provider checks
/// the key before it reads the request.
pub(crate) async fn by_key(
    State(stats): State<Arc<Stats>>,
    request: Request,
    next: Next,
) -> Response {
    let api = Api::of(&request);
    let key = api.key(request.headers());
    let seen = stats.count_request(key);
    if let Some(failure) = key_failure(key, seen) {
        return failure.response(api);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_script_behaviour() {
        assert_eq!(Script::parse("sim-small"), Script::default());
        assert_eq!(
            Script::parse("sim-small-pace-50").pace,
            Duration::from_millis(50)
        );
        assert_eq!(Script::parse("sim-small-pace-99999").pace, MAX_PACE);
        let cut = Script::parse("sim-cut-3-pace-20");
        assert_eq!(cut.cut, Some(3));
        assert_eq!(cut.pace, Duration::from_millis(20));
        assert_eq!(
            Script::parse("sim-slow-1500").slow,
            Some(Duration::from_millis(1500))
        );
        assert!(Script::parse("sim-hang").hang);
        assert_eq!(
            Script::parse("sim-fail-500").fail,
            Some(Failure::Status(StatusCode::INTERNAL_SERVER_ERROR))
        );
        assert_eq!(Script::parse("sim-fail-429").fail, Some(Failure::RateLimit));
        assert_eq!(
            Script::parse("sim-fail-429-quota").fail,
            Some(Failure::Quota)
        );
        assert_eq!(
            Script::parse("sim-fail-400-credit").fail,
            Some(Failure::Credit)
        );
        assert_eq!(Script::parse("sim-fail-abc").fail, None);
    }

    #[test]
    fn keys_script_behaviour() {
        assert_eq!(key_failure("sk-anything", 1), None);
        assert_eq!(key_failure("", 1), None);
        assert_eq!(
            key_failure("sim-key-fail-401", 7),
            Some(Failure::InvalidKey)
        );
        assert_eq!(
            key_failure("sim-key-fail-429-quota", 1),
            Some(Failure::Quota)
        );
        assert_eq!(key_failure("sim-key-flaky-2", 2), Some(Failure::RateLimit));
        assert_eq!(key_failure("sim-key-flaky-2", 3), None);
    }
}
