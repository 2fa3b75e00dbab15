//! `POST /v1/chat/completions`: the minimal forwarding path to one
//! OpenAI-compatible upstream, billed per request and per token.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;

use super::refusal::Refusal;
use super::{auth, decision};
use crate::http::{AppState, RequestId};

const API: &str = "chat";
/// Completion tokens assumed when the request sets no `max_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 256;

fn bad_request(message: &str) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "Bad request",
        message,
    )
}

/// Tokens a request may use: its text at ~4 characters a token, plus its
/// completion allowance.
fn estimate_tokens(body: &Value, raw_len: usize) -> u64 {
    let max = body["max_tokens"]
        .as_u64()
        .or_else(|| body["max_completion_tokens"].as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    (raw_len as u64).div_ceil(4) + max
}

pub async fn chat_completions(
    State(state): State<AppState>,
    request_id: axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let public_url = state.instance.public_url.clone();
    match handle(&state, &request_id.0.0, &headers, body).await {
        Ok(response) => response,
        Err(refusal) => refusal.render(&request_id.0.0, &public_url),
    }
}

async fn handle(
    state: &AppState,
    request_id: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let now = Utc::now();
    let data = &state.data;
    let caller = auth::authenticate(&state.billing, headers, now).await?;
    let (sub, plan) = decision::subscription_for(&state.billing, &caller, API, now).await?;
    if let Some(fault) = state.billing.fault_for(&plan) {
        state.billing.record_incident(&fault);
        return Err(decision::billing_unavailable());
    }

    let mut rate_headers = Vec::new();
    if let Some(rpm) = plan.rate_limits.requests_per_minute {
        let d = data.limiter.check(
            &format!("{}:{}", sub.consumer_id, plan.id),
            rpm,
            Instant::now(),
        );
        rate_headers = vec![
            (
                HeaderName::from_static("ratelimit-limit"),
                d.limit.to_string(),
            ),
            (
                HeaderName::from_static("ratelimit-remaining"),
                d.remaining.to_string(),
            ),
            (
                HeaderName::from_static("ratelimit-reset"),
                d.retry_after.to_string(),
            ),
        ];
        if !d.allowed {
            let mut refusal = Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Rate limited",
                format!(
                    "The plan {} allows {rpm} calls a minute; retry in {} s.",
                    plan.name, d.retry_after
                ),
            )
            .field("retry_after", d.retry_after)
            .field("limit", rpm)
            .header(header::RETRY_AFTER, d.retry_after.to_string());
            for (name, value) in rate_headers {
                refusal = refusal.header(name, value);
            }
            return Err(refusal);
        }
    }

    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| bad_request(&format!("The body is not valid JSON: {e}")))?;
    if !parsed["model"].is_string() || !parsed["messages"].is_array() {
        return Err(bad_request(
            "A chat completion needs `model` (a string) and `messages` (an array).",
        ));
    }
    if parsed["stream"].as_bool() == Some(true) {
        return Err(bad_request(
            "Streaming is not offered by this gateway yet; send `stream: false`.",
        ));
    }
    let Some(upstream) = &data.upstream else {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream-not-configured",
            "No upstream",
            "This gateway has no model provider configured.",
        ));
    };

    let estimate = data.pricing.cost(estimate_tokens(&parsed, body.len()));
    let reservation = data.accounts.reserve(&sub, &plan, estimate).await?;

    let mut request = data
        .http
        .post(format!("{}/chat/completions", upstream.base_url))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(key) = &upstream.api_key {
        request = request.bearer_auth(key);
    }
    let sent = request.send().await;
    let (status, upstream_body) = match sent {
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(b) => (status, b),
                Err(e) => {
                    data.accounts.release(&reservation).await;
                    return Err(upstream_error(
                        &format!("the upstream's answer broke off: {e}"),
                        None,
                    ));
                }
            }
        }
        Err(e) => {
            data.accounts.release(&reservation).await;
            tracing::warn!(error = %e, "upstream unreachable");
            return Err(upstream_error("the upstream could not be reached", None));
        }
    };
    if !status.is_success() {
        data.accounts.release(&reservation).await;
        return Err(upstream_error(
            &format!("the upstream answered {status}"),
            Some(status.as_u16()),
        ));
    }
    let answer: Value = serde_json::from_slice(&upstream_body).unwrap_or(Value::Null);
    let usage = &answer["usage"];
    let tokens = usage["total_tokens"]
        .as_u64()
        .or_else(|| Some(usage["prompt_tokens"].as_u64()? + usage["completion_tokens"].as_u64()?))
        .unwrap_or(0);
    let cost = data.pricing.cost(tokens);
    data.accounts.settle(&reservation, cost, request_id).await;

    let mut response = (StatusCode::OK, upstream_body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let cost_text = tollgate_api::money::format_amount(cost, 2);
    for (name, value) in [
        (
            HeaderName::from_static("x-request-id"),
            request_id.to_owned(),
        ),
        (
            HeaderName::from_static("x-tollgate-cost"),
            format!("{cost_text} {}", plan.currency),
        ),
        (
            HeaderName::from_static("x-tollgate-subscription"),
            sub.id.clone(),
        ),
    ]
    .into_iter()
    .chain(rate_headers)
    {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(response)
}

fn upstream_error(message: &str, upstream_status: Option<u16>) -> Refusal {
    let refusal = Refusal::new(
        StatusCode::BAD_GATEWAY,
        "upstream-error",
        "Upstream error",
        format!("The model provider failed: {message}; nothing was charged."),
    );
    match upstream_status {
        Some(s) => refusal.field("upstream_status", s),
        None => refusal,
    }
}
