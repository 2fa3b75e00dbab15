//! Who is calling: the consumer key from `Authorization: Bearer` or
//! `x-api-key`, verified against its stored hash in constant time.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use tollgate_api::{ConsumerKey, ConsumerKeyStatus, ConsumerStatus};

use super::DataPlane;
use super::hot::HotKey;
use super::refusal::Refusal;
use crate::consumer_keys::{key_status, lookup_of};
use crate::tokens::token_digest;

const TOUCH_INTERVAL_SECS: i64 = 60;

/// Built once: parsing a header name from text on every call costs.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The key sent as `Authorization: Bearer <key>` or `x-api-key: <key>`.
/// Read as bytes (checked once as UTF-8) since it runs on every call.
fn presented(headers: &HeaderMap) -> Option<&str> {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.as_bytes();
            let (scheme, token) = value.split_at_checked(7)?;
            if !scheme.eq_ignore_ascii_case(b"bearer ") {
                return None;
            }
            token
        }
        None => headers.get(X_API_KEY)?.as_bytes(),
    };
    std::str::from_utf8(token.trim_ascii()).ok()
}

fn invalid(message: &str) -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "invalid-api-key",
        "Invalid API key",
        message,
    )
}

/// A consumer key that was presented and matched, with its status now.
pub struct Caller {
    pub credential: Arc<HotKey>,
    pub status: ConsumerKeyStatus,
}

impl Caller {
    pub fn key(&self) -> &ConsumerKey {
        &self.credential.credential.key
    }
}

pub async fn authenticate(
    plane: &DataPlane,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Caller, Refusal> {
    let store = plane.store.as_ref();
    let key = presented(headers).ok_or_else(|| {
        invalid("No API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`.")
    })?;
    let lookup =
        lookup_of(key).ok_or_else(|| invalid("The API key is not a key of this gateway."))?;
    let credential = plane
        .hot
        .key(store, lookup)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "billing-unavailable",
                "Billing unavailable",
                "The gateway cannot check keys right now.",
            )
        })?
        .ok_or_else(|| invalid("The API key is not a key of this gateway."))?;
    let stored = &credential.credential;
    let matches: bool = stored.secret_hash.ct_eq(&token_digest(key)).into();
    if !matches {
        return Err(invalid("The API key is not a key of this gateway."));
    }
    let k = &stored.key;
    let status = key_status(k, now);
    match status {
        ConsumerKeyStatus::Revoked => {
            let at = k.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "api-key-revoked",
                "API key revoked",
                format!("The API key {} was revoked.", k.display_prefix),
            )
            .field("revoked_at", at)
            .field("key_prefix", k.display_prefix.clone()));
        }
        ConsumerKeyStatus::Expired => {
            let expires_at = [k.expires_at, k.grace_until].into_iter().flatten().min();
            let mut refusal = Refusal::new(
                StatusCode::UNAUTHORIZED,
                "api-key-expired",
                "API key expired",
                format!("The API key {} has expired.", k.display_prefix),
            )
            .field("key_prefix", k.display_prefix.clone());
            if let Some(t) = expires_at {
                refusal = refusal.field("expires_at", t.to_rfc3339());
            }
            if let Some(next) = &k.replaced_by {
                refusal = refusal.field("replaced_by", next.clone());
            }
            return Err(refusal);
        }
        ConsumerKeyStatus::Active | ConsumerKeyStatus::Rotating => {}
    }
    if stored.consumer_status == ConsumerStatus::Suspended {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "consumer-suspended",
            "Consumer suspended",
            "This consumer is suspended; every call is refused.",
        )
        .field("consumer_id", k.consumer_id.clone()));
    }
    if credential.claim_touch(now, TOUCH_INTERVAL_SECS)
        && let Err(e) = store.touch_consumer_key(&k.id, now).await
    {
        tracing::warn!(error = %e, "could not record a key's last use");
    }
    Ok(Caller { credential, status })
}
