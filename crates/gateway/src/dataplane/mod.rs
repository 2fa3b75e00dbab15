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

use axum::Router;
use axum::routing::{get, post};

use crate::http::AppState;

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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/billing/status", get(status::billing_status))
}
