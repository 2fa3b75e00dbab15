//! **Test fixture**: a simulated OpenAI-compatible model provider. It is not a
//! model and not part of the product; tests and benchmarks use it as the
//! upstream behind a gateway, offline and deterministically.
//!
//! - `POST /v1/chat/completions` answers `"echo: <last user message>"` with
//!   usage: prompt tokens = words of all messages, completion tokens = words
//!   of the reply.
//! - `GET /v1/models` lists `sim-small` and `sim-large`.
//! - The request header `x-sim-fail: <status>` makes it answer that status
//!   with an OpenAI-style error body (e.g. 401, 402, 429, 500), so failure
//!   paths can be scripted per request. So does the model name
//!   `sim-fail-<status>` (e.g. `sim-fail-500`), for callers that reach the
//!   simulator through a gateway, which does not pass client headers on.
//! - The model name `sim-slow-<ms>` (e.g. `sim-slow-1500`) delays the answer
//!   by that many milliseconds (at most 10 s), for timeout paths.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Words, counted as tokens.
fn tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

async fn chat(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let failing_model = body["model"]
        .as_str()
        .and_then(|m| m.strip_prefix("sim-fail-"))
        .map(str::to_owned);
    if let Some(status) = headers
        .get("x-sim-fail")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(failing_model)
        .and_then(|s| s.parse::<u16>().ok())
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let error = json!({"error": {"message": format!("simulated failure {status}"), "type": "sim_error", "code": status.as_u16()}});
        return (status, Json(error)).into_response();
    }
    if let Some(ms) = body["model"]
        .as_str()
        .and_then(|m| m.strip_prefix("sim-slow-"))
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms.min(10_000))).await;
    }
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let prompt_tokens: u64 = messages.iter().map(|m| tokens(&message_text(m))).sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let reply = format!("echo: {last_user}");
    let completion_tokens = tokens(&reply);
    let model = body["model"].as_str().unwrap_or("sim-small");
    Json(json!({
        "id": "chatcmpl-sim",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    }))
    .into_response()
}

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": "sim-small", "object": "model", "owned_by": "tollgate-sim"},
        {"id": "sim-large", "object": "model", "owned_by": "tollgate-sim"}
    ]}))
}

pub fn router() -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
}

/// Serves on `addr` (port 0 picks one) in the background; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router()).await;
    });
    Ok(bound)
}
