//! The data plane: the OpenAI-compatible API consumers call with their keys.
//! Each call is authenticated ([`auth`]), matched to a paying subscription
//! ([`decision`]), rate limited ([`ratelimit`]), reserved for ([`accounts`]),
//! forwarded to the upstream, and settled at its actual cost. Refusals are
//! [`refusal::Refusal`]s.

pub mod accounts;
pub mod auth;
mod chat;
pub mod decision;
pub mod hot;
pub mod ratelimit;
pub mod refusal;
mod status;
pub mod usage;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use tollgate_api::REQUEST_ID_HEADER;

use crate::http::AppState;
use refusal::Refusal;

/// Where calls are forwarded.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Base URL ending in `/v1`, e.g. `http://127.0.0.1:9000/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; from the environment only.
    pub api_key: Option<String>,
}

/// What a call costs, in micro-units of the plan's currency.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pricing {
    pub per_request: i64,
    pub per_1k_tokens: i64,
}

impl Pricing {
    pub fn cost(&self, tokens: u64) -> i64 {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX / 2);
        self.per_request + tokens.saturating_mul(self.per_1k_tokens) / 1000
    }
}

pub struct DataPlane {
    pub upstream: Option<Upstream>,
    pub pricing: Pricing,
    pub http: reqwest::Client,
    pub accounts: accounts::Accounts,
    pub limiter: ratelimit::RateLimiter,
}

/// The data plane's own router. The server sends every `/v1/` request here
/// directly, past the management API's middleware (idempotency, audit-cache
/// invalidation), which the data plane has no use for and which would cost
/// on its hottest path. Each handler opens a [`Call`] for its request id and
/// log line.
pub fn router(state: AppState) -> Router {
    let max_body = state.instance.max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/billing/status", get(status::billing_status))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// One data-plane request: its id, when it began, and the line logged when
/// it is answered.
pub struct Call {
    pub request_id: String,
    started: Instant,
}

impl Call {
    pub fn start() -> Self {
        Call {
            request_id: crate::ids::new_id("req"),
            started: Instant::now(),
        }
    }

    /// Renders a refusal, or passes an answer on, with the request id header.
    pub fn finish(
        self,
        state: &AppState,
        path: &'static str,
        answer: Result<Response, Refusal>,
    ) -> Response {
        let mut response = match answer {
            Ok(response) => response,
            Err(refusal) => refusal.render(&self.request_id, &state.instance.public_url),
        };
        let status = response.status().as_u16();
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        tracing::info!(
            request_id = self.request_id,
            path,
            status,
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "call"
        );
        response
    }
}

async fn not_found(State(state): State<AppState>) -> Response {
    Call::start().finish(
        &state,
        "unknown",
        Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "This gateway offers POST /v1/chat/completions and GET /v1/billing/status.",
        )),
    )
}

async fn method_not_allowed(State(state): State<AppState>) -> Response {
    Call::start().finish(
        &state,
        "unknown",
        Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "This path does not take this method.",
        )),
    )
}
