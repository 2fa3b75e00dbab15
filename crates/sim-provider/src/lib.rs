//! **Test fixture**: a simulated OpenAI-compatible and Anthropic-compatible
//! model provider. It is not a model and not part of the product; tests and
//! benchmarks use it as the upstream behind a gateway, offline and
//! deterministically. This comment is the fixture's specification.
//!
//! # Answers
//!
//! The "model" echoes: its reply is `"echo: <last user message>"`. Tokens are
//! whitespace-separated words: prompt (input) tokens are the words of all
//! messages (plus Anthropic's `system`), completion (output) tokens the words
//! of the reply.
//!
//! - `POST /v1/chat/completions` (OpenAI) answers a `chat.completion` with
//!   `usage` (`prompt_tokens`, `completion_tokens`, `total_tokens`). The model
//!   defaults to `sim-small` when absent.
//!   - With `"stream": true` it answers `text/event-stream`, each event
//!     `data: <json>\n\n`, all of `object: "chat.completion.chunk"` with the
//!     same `id`, `created` and `model`: first `delta: {"role": "assistant",
//!     "content": ""}`, then one chunk per word of the reply (the word and the
//!     whitespace after it, so the deltas concatenate to the reply exactly),
//!     then an empty `delta` with `finish_reason: "stop"`; with
//!     `"stream_options": {"include_usage": true}` a last chunk with
//!     `choices: []` and the `usage` (and, as OpenAI does, `usage: null` on
//!     every other chunk); finally `data: [DONE]\n\n`.
//! - `POST /v1/messages` (Anthropic) requires the `anthropic-version` header,
//!   `model`, `messages` (`content` a string or `[{"type": "text", "text"}]`)
//!   and `max_tokens` (an integer ≥ 1, not enforced on the reply); `system`
//!   may be a string or text blocks. It answers a `message` with id
//!   `msg_sim`, one text block, `stop_reason: "end_turn"` and `usage`
//!   (`input_tokens`, `output_tokens`).
//!   - With `"stream": true` it answers events `event: <type>\ndata:
//!     <json>\n\n`: `message_start` (empty content, `output_tokens: 1`),
//!     `content_block_start` (index 0, empty text), `ping`, one
//!     `content_block_delta` (`text_delta`) per word as above,
//!     `content_block_stop`, `message_delta` (`stop_reason: "end_turn"`,
//!     `usage.output_tokens`), `message_stop`.
//! - `GET /v1/models` lists `sim-small` and `sim-large`: OpenAI's list shape,
//!   or Anthropic's (`data` of `{"type": "model", "id", "display_name"}`,
//!   `has_more`, `first_id`, `last_id`) when the request has
//!   `anthropic-version`.
//! - Invalid JSON, a missing `messages` (or, for Anthropic, `model`,
//!   `max_tokens` or `anthropic-version`) answer 400 (415 without a JSON
//!   content type) with an `invalid_request_error` in the API's own format:
//!   OpenAI `{"error": {"message", "type", "code"}}`, Anthropic
//!   `{"type": "error", "error": {"type", "message"}}`.
//!
//! # Scripted behaviour
//!
//! A gateway does not pass client headers on, so behaviour is scripted by the
//! model name and by the API key; the `x-sim-fail` header remains for direct
//! callers. Failures share their suffixes:
//!
//! | suffix       | status | OpenAI `type` / `code`                         | Anthropic `type`       |
//! |--------------|--------|------------------------------------------------|------------------------|
//! | `401`        | 401    | `invalid_request_error` / `invalid_api_key`    | `authentication_error` |
//! | `429`        | 429    | `rate_limit_exceeded` / `rate_limit_exceeded`, `Retry-After: 1` | `rate_limit_error`, `Retry-After: 1` |
//! | `429-quota`  | 429    | `insufficient_quota` / `insufficient_quota` ("You exceeded your current quota, …") | `rate_limit_error` |
//! | `400-credit` | 400    | `invalid_request_error` / `null` ("Your credit balance is too low to access the API. …") | `invalid_request_error` ("… the Anthropic API. …") |
//! | any other status, e.g. `500` | that status | `sim_error` / the status as a number | by status: 400 `invalid_request_error`, 402 `billing_error`, 403 `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 504 `timeout_error`, 529 `overloaded_error`, else `api_error` |
//!
//! By model name, on both APIs: `<base>[-pace-<ms>]`, where `<base>` is
//!
//! - `sim-fail-<suffix>` (e.g. `sim-fail-500`, `sim-fail-429-quota`,
//!   `sim-fail-400-credit`): that failure; so does the header
//!   `x-sim-fail: <suffix>`;
//! - `sim-slow-<ms>` (e.g. `sim-slow-1500`): answers that much later (at most
//!   10 s), for timeout paths;
//! - `sim-hang`: never answers; the request is held until the client goes
//!   away (at most 10 minutes, then 504);
//! - `sim-cut-<n>` with `"stream": true`: sends the opening events and n
//!   content chunks, then breaks the body off (no finish chunk, no `[DONE]`,
//!   no `message_stop`); the client sees a body error. Without streaming it
//!   answers normally;
//! - any other name (`sim-small`, `sim-large`, …): answers normally.
//!
//! `-pace-<ms>` (e.g. `sim-small-pace-50`, `sim-cut-3-pace-100`) waits that
//! long between two streamed events (at most 2 s); the default is no wait.
//!
//! By API key — `Authorization: Bearer <key>` on OpenAI routes, `x-api-key`
//! on Anthropic routes (`/v1/messages`, and `/v1/models` with
//! `anthropic-version`) — for every `/v1` request, before anything else:
//!
//! - `sim-key-fail-<suffix>` (e.g. `sim-key-fail-401`, `sim-key-fail-402`,
//!   `sim-key-fail-429`, `sim-key-fail-429-quota`, `sim-key-fail-400-credit`,
//!   `sim-key-fail-500`): every request fails that way;
//! - `sim-key-flaky-<n>`: the first n requests with the key fail with the
//!   `429` rate limit, later ones succeed (for retry-with-backoff tests);
//! - any other key, or none: no effect.
//!
//! # Observation
//!
//! - `GET /sim/stats` answers counters since the start (or last reset):
//!   `{"requests", "streams_started", "streams_completed", "streams_aborted",
//!   "streams_cut", "by_key": {"<key, or \"\" for none>": requests}}`.
//!   `requests` counts every `/v1` request, failed ones included. A stream is
//!   completed when its last event was handed to the connection, cut when
//!   `sim-cut-<n>` broke it off, and aborted when the client dropped the body
//!   before its end — so a test can prove a client disconnect stopped it.
//! - `POST /sim/reset` zeroes the counters, `by_key`, and with it the flaky
//!   keys' counts (204).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

mod anthropic;
mod echo;
mod openai;
mod script;
mod sse;
mod stats;

/// `GET /v1/models`, in the shape of the API asking.
async fn models(headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") {
        anthropic::models().into_response()
    } else {
        openai::models().into_response()
    }
}

pub fn router() -> Router {
    let stats = Arc::new(stats::Stats::default());
    let api = Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/models", get(models))
        .route_layer(axum::middleware::from_fn_with_state(
            stats.clone(),
            script::by_key,
        ));
    Router::new()
        .merge(api)
        .route("/sim/stats", get(stats::show))
        .route("/sim/reset", post(stats::reset))
        .with_state(stats)
}

/// Serves on `listener` until the process ends. Answers are sent without
/// Nagle's delay: a streamed event written while the previous one is not yet
/// acknowledged would otherwise wait for the peer's delayed ACK (~40 ms).
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router()).await
}

/// Serves on `addr` (port 0 picks one) in the background; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener));
    Ok(bound)
}
