//! `Idempotency-Key` on POST: the first answer is stored per admin token and
//! key; a replay with the same request gets the same answer, a different
//! request with the same key gets 422, a concurrent one 409.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::auth::{Verified, bearer, verify};
use super::{AppState, RequestId, finish_problem};
use crate::error::{ApiError, RedactedReplay};
use crate::store::{IdempotencyBegin, StoredResponse};

const HEADER: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::ETAG, header::LOCATION];

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    // Keys are scoped per admin token; a request without one goes on to be
    // refused 401 (before its key is judged).
    let verified = match bearer(req.headers()) {
        Some(token) => verify(state.store.as_ref(), token).await.ok(),
        None => None,
    };
    let Some(record) = verified else {
        return next.run(req).await;
    };
    let scope = record.id.clone();
    let key = match raw_key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return ApiError::validation(HEADER, "must be 1 to 255 visible ASCII characters")
                .into_response();
        }
    };
    // The handler's `Admin` takes the token as verified here.
    let mut req = req;
    req.extensions_mut().insert(Verified(record));
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let max = state.instance.max_body_bytes;
    let Ok(bytes) = to_bytes(body, max).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.to_string());
    hasher.update([0]);
    hasher.update(&bytes);
    let fingerprint = hasher.finalize().to_vec();

    match state
        .store
        .idempotency_begin(&scope, &key, &fingerprint)
        .await
    {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::InProgress) => return ApiError::IdempotencyInProgress.into_response(),
        Ok(IdempotencyBegin::Mismatch) => return ApiError::IdempotencyMismatch.into_response(),
        Ok(IdempotencyBegin::Replay(stored)) => return replay(stored),
        Ok(IdempotencyBegin::Started) => {}
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let response = finish_problem(response, &request_id, &state.instance.public_url);
    let status = response.status();
    let keep = !status.is_server_error()
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        );
    if !keep {
        if let Err(e) = state.store.idempotency_abandon(&scope, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let redacted = parts.extensions.remove::<RedactedReplay>();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return ApiError::Internal(anyhow::anyhow!("response body unreadable")).into_response();
    };
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let stored = StoredResponse {
        status: status.as_u16(),
        headers,
        // An answer with a secret in it is kept without the secret.
        body: redacted.map_or_else(|| body.to_vec(), |r| r.0),
    };
    if let Err(e) = state.store.idempotency_complete(&scope, &key, stored).await {
        tracing::warn!(error = %e, "could not store an idempotent answer");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(&value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
