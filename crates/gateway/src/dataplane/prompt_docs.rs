//! `GET /apis/openapi.json`: an OpenAPI 3.1 document of the prompt APIs
//! served now (published and deprecated), generated from their current
//! definitions: each variable's type, length, default and description, the
//! input and output in the admins' words, and the answers a caller can get.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tollgate_api::{PromptApi, PromptApiStatus};

use super::DataPlane;
use super::refusal::Refusal;

/// What a caller sends: the API's variables, optional messages, `stream`.
fn input_schema(api: &PromptApi) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for variable in &api.current.variables {
        let mut schema = json!({"type": "string", "maxLength": variable.max_length});
        if !variable.description.is_empty() {
            schema["description"] = variable.description.clone().into();
        }
        if let Some(default) = &variable.default {
            schema["default"] = default.clone().into();
        }
        if variable.required {
            required.push(variable.name.clone());
        }
        properties.insert(variable.name.clone(), schema);
    }
    // What the gateway checks (`prompt_call.rs`): unknown members refused,
    // `messages` and `stream` may be null, `variables` may be left out when
    // none is required.
    let mut body = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "variables": {"type": "object", "additionalProperties": false,
                          "properties": properties, "required": required},
            "messages": {"type": ["array", "null"], "description": "A conversation to continue; the API's prompt is then its system message.",
                         "items": {"type": "object", "required": ["role", "content"], "additionalProperties": false,
                                   "properties": {"role": {"type": "string", "enum": ["user", "assistant"]},
                                                  "content": {"type": "string"}}}},
            "stream": {"type": ["boolean", "null"], "description": "Answer with server-sent events (chat completion chunks)."}
        }
    });
    if !required.is_empty() {
        body["required"] = json!(["variables"]);
    }
    if !api.current.input_description.is_empty() {
        body["description"] = api.current.input_description.clone().into();
    }
    body
}

fn operation(api: &PromptApi) -> Value {
    let problem = |description: &str| {
        json!({"description": description,
               "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    };
    let output = if api.current.output_description.is_empty() {
        "A chat completion; the answer is `choices[0].message.content`.".to_owned()
    } else {
        format!(
            "{} (a chat completion; the answer is `choices[0].message.content`).",
            api.current.output_description
        )
    };
    json!({
        "operationId": api.slug,
        "summary": api.name,
        "description": api.description,
        "deprecated": api.status == PromptApiStatus::Deprecated,
        "requestBody": {"required": true, "content": {"application/json": {"schema": input_schema(api)}}},
        "responses": {
            "200": {"description": output, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                "text/event-stream": {"schema": {"$ref": "#/components/schemas/ChunkEvent"}}}},
            "400": problem("The body is not JSON, or not a call of this shape."),
            "401": problem("No key, or not a key of this gateway."),
            "402": problem("Payment required: the consumer's subscription or funds do not cover the call."),
            "403": problem("The consumer's plans do not cover this API."),
            "404": problem("The API is not served (any more)."),
            "408": problem("The body did not arrive in time."),
            "410": problem("The API was retired."),
            "413": problem("The body is larger than the gateway takes."),
            "422": problem("Variables missing or invalid; `errors` names each one."),
            "429": problem("Rate limited; retry after `Retry-After` seconds."),
            "502": problem("The provider failed; nothing was charged."),
            "503": problem("No provider key is usable, or the gateway's billing is misconfigured."),
            "504": problem("The provider did not answer in time; nothing was charged.")
        }
    })
}

pub async fn openapi(plane: &Arc<DataPlane>) -> Result<Response, Refusal> {
    let mut apis = Vec::new();
    let mut after = 0;
    loop {
        let (page, next) = plane
            .store
            .list_prompt_apis(after, tollgate_api::MAX_PAGE_LIMIT)
            .await
            .map_err(|e| super::unreadable("APIs", &e))?;
        apis.extend(page);
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    let mut paths = Map::new();
    for api in apis.iter().filter(|a| {
        matches!(
            a.status,
            PromptApiStatus::Published | PromptApiStatus::Deprecated
        )
    }) {
        paths.insert(
            format!("/apis/{}", api.slug),
            json!({"post": operation(api)}),
        );
    }
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": format!("{} prompt APIs", plane.instance.name), "version": "1"},
        "servers": [{"url": plane.instance.public_url}],
        "security": [{"consumer_key": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"consumer_key": {"type": "http", "scheme": "bearer",
                                                 "description": "A consumer API key (`tg_…`); `x-api-key` works too."}},
            "schemas": {
                "Problem": {"type": "object", "description": "RFC 9457 problem details with an OpenAI-style `error` object.",
                            "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                                           "detail": {"type": "string"}, "reason": {"type": "string"}, "request_id": {"type": "string"}}},
                "ChunkEvent": {"type": "object", "required": ["data"],
                               "description": "One server-sent event: `data` is a chat.completion.chunk as JSON, the last one `[DONE]`.",
                               "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}}},
                "ChatCompletion": {"type": "object", "properties": {
                    "id": {"type": "string"}, "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object", "properties": {
                        "message": {"type": "object", "properties": {"role": {"type": "string"}, "content": {"type": "string"}}},
                        "finish_reason": {"type": "string"}}}},
                    "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"},
                              "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}}}}
            }
        }
    });
    Ok(Json(doc).into_response())
}
