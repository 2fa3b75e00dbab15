//! The Anthropic-compatible routes: `POST /v1/messages`, and `GET /v1/models`
//! when called with `anthropic-version`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::echo::{Echo, content_text, tokens};
use crate::script::{Api, Script, invalid_request};
use crate::sse::{self, Ending, word_pieces};
use crate::stats::Stats;

const ID: &str = "msg_sim";

pub(crate) async fn messages(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let refuse = |message: &str| invalid_request(Api::Anthropic, StatusCode::BAD_REQUEST, message);
    if !headers.contains_key("anthropic-version") {
        return refuse("anthropic-version: header is required");
    }
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return invalid_request(Api::Anthropic, rejection.status(), &rejection.body_text());
        }
    };
    let Some(model) = body["model"].as_str() else {
        return refuse("model: Field required");
    };
    let Some(messages) = body["messages"].as_array() else {
        return refuse("messages: Field required");
    };
    if body["max_tokens"].as_u64().is_none_or(|n| n == 0) {
        return refuse("max_tokens: Field required, an integer greater than or equal to 1");
    }
    let script = Script::parse(model);
    if let Some(answer) = script.play(Api::Anthropic, &headers).await {
        return answer;
    }
    let echo = Echo::answer(messages, tokens(&content_text(&body["system"])));
    if body["stream"] == true {
        stream(model, &echo, &script, stats)
    } else {
        complete(model, &echo)
    }
}

fn complete(model: &str, echo: &Echo) -> Response {
    Json(json!({
        "id": ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": echo.reply}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": echo.prompt_tokens, "output_tokens": echo.completion_tokens},
    }))
    .into_response()
}

/// The reply as Anthropic's event sequence, one `content_block_delta` per word.
fn stream(model: &str, echo: &Echo, script: &Script, stats: Arc<Stats>) -> Response {
    let event = |data: Value| {
        let kind = data["type"].as_str().unwrap_or_default().to_owned();
        Event::default().event(kind).data(data.to_string())
    };
    let pieces = word_pieces(&echo.reply);
    let mut events = vec![
        event(json!({"type": "message_start", "message": {
            "id": ID, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": echo.prompt_tokens, "output_tokens": 1},
        }})),
        event(json!({"type": "content_block_start", "index": 0,
                     "content_block": {"type": "text", "text": ""}})),
        event(json!({"type": "ping"})),
    ];
    let preamble = events.len();
    events.extend(pieces.iter().map(|piece| {
        event(json!({"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": piece}}))
    }));
    let ending = match script.cut {
        Some(n) => Ending::CutAfter(preamble + n.min(pieces.len())),
        None => Ending::Complete,
    };
    events.extend([
        event(json!({"type": "content_block_stop", "index": 0})),
        event(json!({"type": "message_delta",
                     "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                     "usage": {"output_tokens": echo.completion_tokens}})),
        event(json!({"type": "message_stop"})),
    ]);
    sse::respond(events, ending, script.pace, stats)
}

pub(crate) fn models() -> Json<Value> {
    let model = |id: &str, display_name: &str| {
        json!({"type": "model", "id": id, "display_name": display_name,
               "created_at": "2024-01-01T00:00:00Z"})
    };
    Json(json!({
        "data": [model("sim-small", "Sim Small"), model("sim-large", "Sim Large")],
        "has_more": false,
        "first_id": "sim-small",
        "last_id": "sim-large",
    }))
}
