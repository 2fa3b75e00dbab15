//! The OpenAI-compatible routes: `POST /v1/chat/completions`, `GET /v1/models`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::echo::Echo;
use crate::script::{Api, Script, invalid_request};
use crate::sse::{self, Ending, word_pieces};
use crate::stats::Stats;

const ID: &str = "chatcmpl-sim";
const CREATED: u64 = 1_700_000_000;

pub(crate) async fn chat(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return invalid_request(Api::OpenAi, rejection.status(), &rejection.body_text());
        }
    };
    let Some(messages) = body["messages"].as_array() else {
        return invalid_request(
            Api::OpenAi,
            StatusCode::BAD_REQUEST,
            "'messages' is a required property",
        );
    };
    let model = body["model"].as_str().unwrap_or("sim-small");
    let script = Script::parse(model);
    if let Some(answer) = script.play(Api::OpenAi, &headers).await {
        return answer;
    }
    let echo = Echo::answer(messages, 0);
    if body["stream"] == true {
        let include_usage = body["stream_options"]["include_usage"] == true;
        stream(model, &echo, include_usage, &script, stats)
    } else {
        complete(model, &echo)
    }
}

fn usage(echo: &Echo) -> Value {
    json!({
        "prompt_tokens": echo.prompt_tokens,
        "completion_tokens": echo.completion_tokens,
        "total_tokens": echo.prompt_tokens + echo.completion_tokens,
    })
}

fn complete(model: &str, echo: &Echo) -> Response {
    Json(json!({
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": echo.reply}, "finish_reason": "stop"}],
        "usage": usage(echo),
    }))
    .into_response()
}

/// The reply as `chat.completion.chunk` events: role, one per word, finish,
/// usage when asked for, then `[DONE]`.
fn stream(
    model: &str,
    echo: &Echo,
    include_usage: bool,
    script: &Script,
    stats: Arc<Stats>,
) -> Response {
    let chunk = |choices: Value, usage: Value| {
        let mut chunk = json!({
            "id": ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": choices,
        });
        // With include_usage OpenAI sends `usage: null` on every other chunk.
        if include_usage {
            chunk["usage"] = usage;
        }
        Event::default().data(chunk.to_string())
    };
    let choice = |delta: Value, finish_reason: Value| {
        chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": finish_reason}]),
            Value::Null,
        )
    };

    let pieces = word_pieces(&echo.reply);
    let mut events = vec![choice(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    events.extend(
        pieces
            .iter()
            .map(|piece| choice(json!({"content": piece}), Value::Null)),
    );
    // Broken off after the role chunk and n content chunks.
    let ending = match script.cut {
        Some(n) => Ending::CutAfter(1 + n.min(pieces.len())),
        None => Ending::Complete,
    };
    events.push(choice(json!({}), json!("stop")));
    if include_usage {
        events.push(chunk(json!([]), usage(echo)));
    }
    events.push(Event::default().data("[DONE]"));
    sse::respond(events, ending, script.pace, stats)
}

pub(crate) fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": "sim-small", "object": "model", "owned_by": "tollgate-sim"},
        {"id": "sim-large", "object": "model", "owned_by": "tollgate-sim"}
    ]}))
}
