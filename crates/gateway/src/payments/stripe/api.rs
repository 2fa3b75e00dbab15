//! A client of Stripe's API, or of a Stripe-compatible server at another base
//! URL (the tests' fixture). Requests are form-encoded and carry the secret
//! key; every POST carries an `Idempotency-Key`, so retrying one is safe:
//! network errors, 5xx, 429 and `Stripe-Should-Retry: true` are tried again
//! with backoff. Stripe's error object (type, code, decline_code, message)
//! comes back as [`StripeError::Api`].

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Attempts per request, the first included, and each one's bound.
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_secs(20);

/// Stripe's error object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// `card_error`, `invalid_request_error`, `api_error`, `idempotency_error`, …
    /// (always there: an error without it is not Stripe's).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// No answer, or 5xx, after every attempt.
    #[error("Stripe could not be reached: {0}")]
    Unreachable(String),
    /// Stripe answered with its error object.
    #[error("Stripe refused the request ({status} {}): {}", .error.kind, .error.message.as_deref().unwrap_or("no message"))]
    Api {
        status: u16,
        error: Box<ApiError>,
        /// The whole answer (card errors carry the payment or setup intent).
        body: Box<Value>,
    },
    /// An answer that is not Stripe's API: a wrong base URL, most likely.
    #[error("the answer is not Stripe's API ({0})")]
    Unexpected(String),
}

impl StripeError {
    /// The secret key was refused (401), or lacks a permission (403, a
    /// restricted key).
    pub fn unauthorized(&self) -> bool {
        matches!(
            self,
            StripeError::Api {
                status: 401 | 403,
                ..
            }
        )
    }
}

#[derive(Clone)]
pub struct StripeApi {
    http: reqwest::Client,
    base: String,
    secret_key: String,
    attempts: u32,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeApi")
            .field("base", &self.base)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl StripeApi {
    /// A client of the API at `base` (`https://api.stripe.com` for Stripe).
    pub fn new(base: &str, secret_key: &str) -> Result<Self, StripeError> {
        Self::with_limits(base, secret_key, TIMEOUT, ATTEMPTS)
    }

    /// Each attempt bounded by `timeout`, at most `attempts` of them (a
    /// test of the connection reports at once rather than retry).
    pub fn with_limits(
        base: &str,
        secret_key: &str,
        timeout: Duration,
        attempts: u32,
    ) -> Result<Self, StripeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| StripeError::Unreachable(e.to_string()))?;
        Ok(StripeApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret_key: secret_key.to_owned(),
            attempts: attempts.max(1),
        })
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, StripeError> {
        self.send(|| self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// `POST path` with `form`, under `idempotency_key`.
    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<Value, StripeError> {
        self.send(|| {
            self.http
                .post(format!("{}{path}", self.base))
                .header("Idempotency-Key", idempotency_key)
                .form(form)
        })
        .await
    }

    async fn send(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, StripeError> {
        let mut pause = FIRST_PAUSE;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            let answer = request()
                .bearer_auth(&self.secret_key)
                .header("Stripe-Version", API_VERSION)
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // The error's text names the URL, never the key.
                    last = e.without_url().to_string();
                    continue;
                }
            };
            let status = answer.status().as_u16();
            // Every answer of Stripe's API names its request: one without is
            // some other server (a wrong base URL), whatever its body says.
            // A 5xx may come from a proxy in front of Stripe: it is retried.
            if status < 500 && !answer.headers().contains_key("request-id") {
                return Err(StripeError::Unexpected(format!(
                    "status {status} without a Request-Id"
                )));
            }
            let retry = answer
                .headers()
                .get("Stripe-Should-Retry")
                .and_then(|v| v.to_str().ok())
                .map(|v| v == "true");
            let body = answer.bytes().await;
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    last = e.without_url().to_string();
                    continue;
                }
            };
            if (200..300).contains(&status) {
                return serde_json::from_slice(&body)
                    .map_err(|e| StripeError::Unexpected(format!("{status}: {e}")));
            }
            let should_retry = retry.unwrap_or(status >= 500 || status == 429);
            if should_retry && attempt < self.attempts {
                last = format!("status {status}");
                continue;
            }
            if status >= 500 {
                return Err(StripeError::Unreachable(format!("status {status}")));
            }
            let value: Value = serde_json::from_slice(&body)
                .map_err(|_| StripeError::Unexpected(format!("status {status}, not JSON")))?;
            let error = value
                .get("error")
                .cloned()
                .and_then(|e| serde_json::from_value::<ApiError>(e).ok())
                .ok_or_else(|| {
                    StripeError::Unexpected(format!("status {status}, no error object"))
                })?;
            return Err(StripeError::Api {
                status,
                error: Box::new(error),
                body: Box::new(value),
            });
        }
        Err(StripeError::Unreachable(last))
    }
}

/// The API version the processor speaks (its objects' shapes).
pub const API_VERSION: &str = "2024-06-20";
