//! Sending a call through a provider's key pool: keys are tried in priority
//! order, each answer classified (a refused key is marked invalid, a spent
//! one exhausted, a rate-limited one rests), then the model's fallback is
//! tried when no key of the provider could serve.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::Utc;
use tollgate_api::{ProviderKeyStatus, ProviderKind};

use super::routes::{ModelRoute, RouteTable};
use super::upstream::{Answer, Reply, UpstreamClient, UpstreamError};
use super::usage::UsageWriter;
use super::{DataPlane, anthropic};
use crate::billing::Billing;
use crate::store::{KeyActor, ProviderKeyUse, Store};

/// How long a call waits, at most, for a rate-limited key to be usable again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a key rests after a 429 without `Retry-After`, and at most.
const DEFAULT_REST: Duration = Duration::from_secs(1);
const MAX_REST: Duration = Duration::from_secs(60);
/// Models tried per call: the one asked for and its fallbacks.
const MAX_MODELS: usize = 4;

/// What an upstream's answer says about the key it was sent with.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Served,
    /// The key will not work again until an admin acts.
    Bench(ProviderKeyStatus, &'static str),
    /// Try another key; this one rests.
    RateLimited,
    /// The provider failed: another key of it is not likely to do better.
    ProviderFailed,
    /// The request itself was refused; it is the caller's to fix.
    Refused,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Classifies an answer: 401 → invalid; 402, 429 `insufficient_quota` or a
/// 400 "credit balance is too low" → exhausted; another 429 → rate limited.
pub fn classify(status: StatusCode, body: &[u8]) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Served,
        401 => Verdict::Bench(
            ProviderKeyStatus::Invalid,
            "the provider refused the key (401)",
        ),
        402 => Verdict::Bench(
            ProviderKeyStatus::Exhausted,
            "the provider answered 402 Payment Required",
        ),
        429 if contains(body, b"insufficient_quota") => Verdict::Bench(
            ProviderKeyStatus::Exhausted,
            "the provider says the key's quota is used up (429 insufficient_quota)",
        ),
        400 if contains(body, b"credit balance is too low") => Verdict::Bench(
            ProviderKeyStatus::Exhausted,
            "the provider says the key's credit balance is too low (400)",
        ),
        429 => Verdict::RateLimited,
        500..=599 => Verdict::ProviderFailed,
        _ => Verdict::Refused,
    }
}

/// A call served: the model that served it, and the answer (a stream when
/// one was asked for).
pub struct Served {
    pub route: Arc<ModelRoute>,
    /// The pool key the call was sent with.
    pub key_id: String,
    /// The key as the call log names it.
    pub key_logged_as: String,
    pub reply: Reply,
}

/// Why no key of any model served the call.
#[derive(Debug)]
pub enum Unserved {
    /// Every key of every model tried is unusable (or was just found so).
    NoUsableKey { model: String },
    /// The provider failed or could not be reached; its last answer, if any.
    ProviderFailed {
        status: Option<StatusCode>,
        detail: String,
    },
    /// The upstream refused the request itself (a 4xx other than the above).
    Refused { answer: Answer },
    /// The upstream did not answer within its timeout.
    Timeout(Duration),
    /// The fallback named by a model is served by no provider.
    UnknownFallback(String),
    /// The request cannot be put in the provider's format.
    Untranslatable(String),
}

impl Unserved {
    /// The provider's answer's status, when it answered at all.
    pub fn upstream_status(&self) -> Option<StatusCode> {
        match self {
            Unserved::ProviderFailed { status, .. } => *status,
            Unserved::Refused { answer } => Some(answer.status),
            _ => None,
        }
    }
}

/// The request as `route`'s provider takes it: as it came for the model
/// asked for, with the fallback's name for a fallback, translated for
/// Anthropic.
fn body_for(route: &ModelRoute, asked: &str, body: &Bytes) -> Result<Bytes, Unserved> {
    match route.provider.kind {
        ProviderKind::OpenaiCompatible if route.name == asked => Ok(body.clone()),
        ProviderKind::OpenaiCompatible => {
            let mut request: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(body)
                    .map_err(|e| Unserved::Untranslatable(e.to_string()))?;
            request.insert("model".into(), route.name.clone().into());
            serde_json::to_vec(&request)
                .map(Bytes::from)
                .map_err(|e| Unserved::Untranslatable(e.to_string()))
        }
        ProviderKind::Anthropic => anthropic::request(body, &route.name)
            .map(Bytes::from)
            .map_err(|e| Unserved::Untranslatable(e.0)),
    }
}

/// Sends the call to `first`'s provider, failing over across its keys, then
/// to its fallback models, then to the models of `chain` (a prompt API's
/// fallback chain) in order.
pub async fn send(
    data: &DataPlane,
    table: &RouteTable,
    first: &Arc<ModelRoute>,
    (asked, chain): (&str, &[String]),
    billing: &Arc<Billing>,
    body: Bytes,
    stream: bool,
) -> Result<Served, Unserved> {
    let (client, usage) = (&data.client, &data.accounts.usage);
    let mut route = first.clone();
    let mut tried = Vec::with_capacity(MAX_MODELS);
    loop {
        tried.push(route.name.clone());
        let sent = body_for(&route, asked, &body)?;
        let failure = match through_pool(client, &route, billing, usage, sent, stream).await {
            Ok((key_id, key_logged_as, reply)) => {
                return Ok(Served {
                    route,
                    key_id,
                    key_logged_as,
                    reply,
                });
            }
            Err(failure) => failure,
        };
        let retryable = matches!(
            failure,
            Unserved::NoUsableKey { .. } | Unserved::ProviderFailed { .. }
        );
        let next = route
            .fallback
            .as_ref()
            .filter(|f| !tried.contains(f))
            .or_else(|| chain.iter().find(|m| !tried.contains(m)));
        match next {
            Some(name) if retryable && tried.len() < MAX_MODELS => match table.model(name) {
                Some(next) => route = next.clone(),
                None => return Err(Unserved::UnknownFallback(name.clone())),
            },
            _ => return Err(failure),
        }
    }
}

async fn through_pool(
    client: &UpstreamClient,
    route: &ModelRoute,
    billing: &Arc<Billing>,
    usage: &UsageWriter,
    body: Bytes,
    stream: bool,
) -> Result<(String, String, Reply), Unserved> {
    let provider = &route.provider;
    for round in 0..2 {
        let mut soonest: Option<i64> = None;
        for key in &provider.keys {
            let now = Utc::now();
            match key.usable(now) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(until) => {
                    soonest = Some(soonest.map_or(until, |s| s.min(until)));
                    continue;
                }
            }
            let reply = client
                .send(
                    &provider.target,
                    Some(key.authorization()),
                    body.clone(),
                    stream,
                )
                .await;
            let failed = match &reply {
                Ok(Reply::Stream(_)) => false,
                Ok(Reply::Whole(answer)) => !answer.status.is_success(),
                Err(_) => true,
            };
            usage.record_key_use(ProviderKeyUse {
                key_id: key.id.clone(),
                requests: 1,
                failures: i64::from(failed),
                tokens: 0,
                at: now,
            });
            let reply = reply.map_err(|e| match e {
                UpstreamError::Timeout(t) => Unserved::Timeout(t),
                other => Unserved::ProviderFailed {
                    status: None,
                    detail: other.to_string(),
                },
            })?;
            let answer = match reply {
                Reply::Stream(_) => return Ok((key.id.clone(), key.logged_as.clone(), reply)),
                Reply::Whole(answer) => answer,
            };
            match classify(answer.status, &answer.body) {
                Verdict::Served => {
                    return Ok((key.id.clone(), key.logged_as.clone(), Reply::Whole(answer)));
                }
                Verdict::Bench(status, reason) => {
                    key.bench();
                    record_status(billing, &key.id, status, reason);
                }
                Verdict::RateLimited => {
                    let rest = answer
                        .retry_after
                        .map_or(DEFAULT_REST, Duration::from_secs)
                        .min(MAX_REST);
                    key.rest(now, rest);
                    let until = now.timestamp_millis() + rest.as_millis() as i64;
                    soonest = Some(soonest.map_or(until, |s| s.min(until)));
                }
                Verdict::ProviderFailed => {
                    return Err(Unserved::ProviderFailed {
                        status: Some(answer.status),
                        detail: format!("the provider answered {}", answer.status),
                    });
                }
                Verdict::Refused => return Err(Unserved::Refused { answer }),
            }
        }
        // Every key is spent or resting: wait for the first resting one when
        // that is soon, once.
        let wait = soonest
            .map(|until| until - Utc::now().timestamp_millis())
            .filter(|ms| round == 0 && *ms <= MAX_BACKOFF.as_millis() as i64);
        match wait {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms.max(0) as u64)).await,
            None => break,
        }
    }
    Err(Unserved::NoUsableKey {
        model: route.name.clone(),
    })
}

/// Records the gateway's finding about a key, off the call's path; the
/// change feed then drops the route table, so the next call reads it.
fn record_status(
    billing: &Arc<Billing>,
    key_id: &str,
    status: ProviderKeyStatus,
    reason: &'static str,
) {
    let (billing, key_id) = (billing.clone(), key_id.to_owned());
    tokio::spawn(async move {
        let store: &dyn Store = billing.store.as_ref();
        match store
            .set_provider_key_status(&key_id, status, reason, KeyActor::Gateway)
            .await
        {
            Ok(true) => {
                // The store's change feed drops the route table.
                tracing::warn!(key = %key_id, status = status.as_str(), reason, "a provider key was taken out of its pool");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(key = %key_id, error = %e, "could not record a provider key's status")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_providers_document_them() {
        let cases: [(u16, &str, Verdict); 9] = [
            (200, "{}", Verdict::Served),
            (
                401,
                "{}",
                Verdict::Bench(
                    ProviderKeyStatus::Invalid,
                    "the provider refused the key (401)",
                ),
            ),
            (
                402,
                "{}",
                Verdict::Bench(
                    ProviderKeyStatus::Exhausted,
                    "the provider answered 402 Payment Required",
                ),
            ),
            (
                429,
                r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#,
                Verdict::Bench(
                    ProviderKeyStatus::Exhausted,
                    "the provider says the key's quota is used up (429 insufficient_quota)",
                ),
            ),
            (
                400,
                r#"{"error":{"message":"Your credit balance is too low to access the API."}}"#,
                Verdict::Bench(
                    ProviderKeyStatus::Exhausted,
                    "the provider says the key's credit balance is too low (400)",
                ),
            ),
            (
                429,
                r#"{"error":{"type":"rate_limit_exceeded"}}"#,
                Verdict::RateLimited,
            ),
            (500, "oops", Verdict::ProviderFailed),
            (503, "", Verdict::ProviderFailed),
            (
                400,
                r#"{"error":{"message":"messages is required"}}"#,
                Verdict::Refused,
            ),
        ];
        for (status, body, verdict) in cases {
            assert_eq!(
                classify(StatusCode::from_u16(status).unwrap(), body.as_bytes()),
                verdict,
                "{status} {body}"
            );
        }
    }
}
