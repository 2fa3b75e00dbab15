//! `POST /apis/{slug}`: a published prompt API called with its variables.
//! The rendered prompt becomes a chat completion request (the system
//! message when the caller sends messages, the user message otherwise) with
//! the API's model and parameters, and is answered like any chat call —
//! covered by a plan that lists the API's slug, priced by the serving model.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::Response;
use chrono::Utc;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_api::{PromptApi, PromptApiStatus, PromptDefinition};

use super::DataPlane;
use super::refusal::Refusal;
use super::{Call, chat};
use crate::store::StoreError;

const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
const SUNSET: HeaderName = HeaderName::from_static("sunset");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PromptCall {
    #[serde(default)]
    pub variables: Map<String, Value>,
    #[serde(default)]
    pub messages: Option<Vec<PromptMessage>>,
    #[serde(default)]
    pub stream: Option<bool>,
}

/// A message of the conversation a call continues: the caller's and the
/// model's turns (the API's prompt is the system message).
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PromptMessage {
    role: PromptRole,
    content: String,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum PromptRole {
    User,
    Assistant,
}

fn bad_request(message: String) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "Bad request",
        message,
    )
}

async fn served_api(plane: &Arc<DataPlane>, slug: &str) -> Result<Arc<PromptApi>, Refusal> {
    let not_found = || {
        Refusal::new(
            StatusCode::NOT_FOUND,
            "api-not-found",
            "API not found",
            format!("No published API is called `{slug}`."),
        )
    };
    let api = match plane.hot.prompt_api(plane.store.as_ref(), slug).await {
        Ok(api) => api,
        Err(StoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(super::unreadable("APIs", &e)),
    };
    let retired = || {
        Refusal::new(
            StatusCode::GONE,
            "api-retired",
            "API retired",
            format!("The API `{slug}` was retired and is no longer served."),
        )
    };
    let past_sunset = api.sunset_at.is_some_and(|at| at <= Utc::now());
    match api.status {
        PromptApiStatus::Draft => Err(not_found()),
        // A deprecated API is retired at its sunset, whether or not an
        // admin has retired it yet.
        PromptApiStatus::Retired => Err(retired()),
        PromptApiStatus::Deprecated if past_sunset => Err(retired()),
        PromptApiStatus::Published | PromptApiStatus::Deprecated => Ok(api),
    }
}

/// The chat completion request for a call of `definition`.
pub(super) fn chat_request(
    definition: &PromptDefinition,
    call: PromptCall,
) -> Result<Bytes, Refusal> {
    let prompt =
        tollgate_api::prompt_template::render(definition, &call.variables).map_err(|errors| {
            let named: Vec<_> = errors
                .iter()
                .map(|e| json!({"field": e.field, "message": e.message}))
                .collect();
            Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-variables",
                "Invalid variables",
                format!(
                    "Some variables are missing or invalid: {}.",
                    errors
                        .iter()
                        .map(|e| format!("`{}` {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .field("errors", Value::Array(named))
        })?;
    let messages = match call.messages {
        Some(given) if !given.is_empty() => {
            std::iter::once(json!({"role": "system", "content": prompt}))
                .chain(given.iter().map(|m| json!(m)))
                .collect()
        }
        _ => vec![json!({"role": "user", "content": prompt})],
    };
    let mut request = Map::new();
    request.insert(
        "model".into(),
        definition
            .models
            .first()
            .cloned()
            .unwrap_or_default()
            .into(),
    );
    request.insert("messages".into(), Value::Array(messages));
    let p = &definition.parameters;
    if let Some(t) = p.temperature {
        request.insert("temperature".into(), t.into());
    }
    if let Some(t) = p.top_p {
        request.insert("top_p".into(), t.into());
    }
    if let Some(m) = p.max_tokens {
        request.insert("max_tokens".into(), m.into());
    }
    if call.stream == Some(true) {
        request.insert("stream".into(), true.into());
    }
    serde_json::to_vec(&request)
        .map(Bytes::from)
        .map_err(|e| bad_request(e.to_string()))
}

/// `Deprecation` (RFC 9745) and `Sunset` (RFC 8594) on a deprecated API's answers.
fn deprecation_headers(api: &PromptApi, headers: &mut HeaderMap) {
    if api.status != PromptApiStatus::Deprecated {
        return;
    }
    let since = api.deprecated_at.unwrap_or_else(Utc::now).timestamp();
    if let Ok(v) = HeaderValue::from_str(&format!("@{since}")) {
        headers.insert(DEPRECATION, v);
    }
    if let Some(sunset) = api.sunset_at
        && let Ok(v) =
            HeaderValue::from_str(&sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        headers.insert(SUNSET, v);
    }
}

pub async fn call_prompt_api(
    plane: &Arc<DataPlane>,
    call: &mut Call,
    slug: &str,
    req: Request<Incoming>,
) -> Result<Response, Refusal> {
    let (parts, body) = req.into_parts();
    // As for chat: a key that is not valid is refused before the body.
    let caller = super::auth::authenticate(plane, &parts.headers, call.at).await?;
    call.caller(&caller);
    let body = super::read_body(body, &plane.instance).await?;
    call.capture_request(&body);
    let api = served_api(plane, slug).await?;
    let shape = || {
        bad_request(
            "A prompt API call is `{\"variables\": {…}, \"messages\"?: [{\"role\": \"user\" or \"assistant\", \"content\": \"…\"}], \"stream\"?: bool}`."
                .into(),
        )
    };
    // An object: serde would read a call from an array as well.
    if !super::starts_object(&body) {
        return Err(shape());
    }
    let parsed: PromptCall = serde_json::from_slice(&body).map_err(|_| shape())?;
    let request = chat_request(&api.current, parsed)?;
    let chain = api.current.models.get(1..).unwrap_or_default();
    let answer = chat::handle(plane, call, caller, request, &api.slug, chain).await;
    match answer {
        Ok(mut response) => {
            deprecation_headers(&api, response.headers_mut());
            Ok(response)
        }
        Err(refusal) => Err(refusal),
    }
}
