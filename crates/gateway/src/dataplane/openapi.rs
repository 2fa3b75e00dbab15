//! The consumer-facing API's OpenAPI document (`GET /v1/openapi.json`, and
//! `tollgated openapi --consumer`, committed as
//! `crates/api/consumer-openapi.json`): what a consumer's key may call, the
//! bodies the gateway reads, and every problem it answers with. The data
//! plane runs on hyper, not on the management API's router, so its
//! operations are declared here for the document only; the contract test
//! (`scripts/test-contract.sh`) holds the server to it.
//!
//! Only the fields the gateway reads are constrained: the rest of a chat
//! completion request goes to the provider as it came.

use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use tollgate_api::Problem;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{OpenApi as _, ToSchema};

/// A chat completion request in OpenAI's format. The gateway reads `model`,
/// `messages`, `stream` and the token allowance; every other field (and each
/// message as it is) goes to the model's provider unchanged.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ChatCompletionRequest {
    /// A model `GET /v1/models` lists.
    model: String,
    /// The conversation, in the provider API's message format.
    messages: Vec<Value>,
    /// Answer with server-sent events (`text/event-stream`) of chat
    /// completion chunks.
    stream: Option<bool>,
    /// The most tokens to generate; the call holds their price until it
    /// ends (256 when neither this nor `max_completion_tokens` is given).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    max_tokens: Option<u64>,
    /// The same, under its newer name.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    max_completion_tokens: Option<u64>,
}

/// A chat completion, as the model's provider answered it, with the
/// gateway's headers (`X-Tollgate-Cost`, `X-Request-Id`, rate limits).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ChatCompletion {
    id: String,
    object: String,
    model: String,
    choices: Vec<Value>,
    usage: Option<Value>,
}

/// One server-sent event of a streamed answer: `data` is a
/// `chat.completion.chunk` as JSON, the last one `[DONE]`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ChunkEvent {
    data: String,
    /// `message` when absent.
    event: Option<String>,
    id: Option<String>,
}

/// A model a key may call.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Model {
    id: String,
    /// `model`.
    object: String,
    created: i64,
    /// The provider that serves it.
    owned_by: String,
}

/// OpenAI's list shape.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ModelList {
    /// `list`.
    object: String,
    data: Vec<Model>,
}

/// One message of a conversation a prompt API continues.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PromptMessage {
    role: PromptRole,
    content: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum PromptRole {
    User,
    Assistant,
}

/// A call of a prompt API. Each API's own variables (names, lengths,
/// defaults) are in `GET /apis/openapi.json`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PromptCall {
    /// The API's variables by name.
    #[serde(default)]
    variables: std::collections::BTreeMap<String, String>,
    /// A conversation to continue; the API's prompt is then its system
    /// message.
    messages: Option<Vec<PromptMessage>>,
    stream: Option<bool>,
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "chat",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, server-sent events ending with `data: [DONE]`.",
            content((ChatCompletion = "application/json"), (ChunkEvent = "text/event-stream"))),
        (status = 400, description = "The body is not JSON, or `model`, `messages`, `stream` or a token allowance has the wrong type.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or one that is not valid, expired or revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Payment required: no funds or credits for the call, a subscription past due or expired, a payment method that failed. The body says which and what would fix it.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key or the consumer's plans do not cover this API or model, or the subscription is suspended or awaits approval.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No provider serves the model.", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the gateway takes.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A rate limit of the plan; retry after `Retry-After` seconds.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider failed; nothing was charged.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No provider key is usable, or the gateway's billing is misconfigured.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The provider did not answer in time; nothing was charged.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("consumer_key" = []), ("consumer_api_key" = [])))]
#[allow(dead_code)]
fn chat_completions() {}

#[utoipa::path(get, path = "/v1/models", tag = "chat",
    responses(
        (status = 200, description = "The models the key may call, sorted by name.", body = ModelList),
        (status = 401, description = "No key, or one that is not valid, expired or revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway cannot read its providers right now.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("consumer_key" = []), ("consumer_api_key" = [])))]
#[allow(dead_code)]
fn models() {}

#[utoipa::path(get, path = "/v1/billing/status", tag = "billing",
    responses(
        (status = 200, description = "The key's standing: its subscriptions with this period's credits, its wallets and its default card.", body = tollgate_api::BillingStatus),
        (status = 401, description = "No key, or one that is not valid, expired or revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway cannot read its billing state right now.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("consumer_key" = []), ("consumer_api_key" = [])))]
#[allow(dead_code)]
fn billing_status() {}

#[utoipa::path(post, path = "/apis/{slug}", tag = "prompt-apis",
    params(("slug" = String, Path, description = "The prompt API's slug.")),
    request_body = PromptCall,
    responses(
        (status = 200, description = "A chat completion; the answer is `choices[0].message.content`. Deprecated APIs add `Deprecation` and `Sunset` headers.",
            content((ChatCompletion = "application/json"), (ChunkEvent = "text/event-stream"))),
        (status = 400, description = "The body is not JSON or not a prompt call.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No key, or one that is not valid, expired or revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Payment required (see the chat API).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key or the consumer's plans do not cover this API.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No published API has this slug.", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time.", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The API was retired.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the gateway takes.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Variables missing or invalid; `errors` names each one.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A rate limit of the plan.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The provider failed; nothing was charged.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No provider key is usable, or the gateway's billing is misconfigured.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "The provider did not answer in time.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("consumer_key" = []), ("consumer_api_key" = [])))]
#[allow(dead_code)]
fn call_prompt_api() {}

#[utoipa::path(get, path = "/apis/openapi.json", tag = "prompt-apis",
    responses(
        (status = 200, description = "An OpenAPI 3.1 document of the prompt APIs served now, each with its own variables.", body = Object),
        (status = 503, description = "The gateway cannot read its APIs right now.", body = Problem, content_type = "application/problem+json"),
    ))]
#[allow(dead_code)]
fn prompt_apis_document() {}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "chat",
    responses((status = 200, description = "This document.", body = Object)))]
#[allow(dead_code)]
fn this_document() {}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tollgate consumer API",
        description = "What a consumer's key may call on a Tollgate AI gateway: OpenAI's chat \
            completions and model list, the key's billing standing, and prompt APIs. Send the key \
            as `Authorization: Bearer tg_…` or `x-api-key`. Every refusal is \
            `application/problem+json` (RFC 9457) with a `reason` to act on and an OpenAI-style \
            `error` object; payment refusals (402) say what is missing and what would fix it."
    ),
    paths(chat_completions, models, billing_status, call_prompt_api, prompt_apis_document, this_document),
    modifiers(&ConsumerAuth, &ProblemSchema)
)]
struct ConsumerDoc;

struct ConsumerAuth;

impl utoipa::Modify for ConsumerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "consumer_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A consumer API key (`tg_…`)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "consumer_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same key, as Anthropic's clients send it.",
            ))),
        );
    }
}

/// The problem body, with `reason` one of the problem types the gateway
/// answers with (each explained at `/problems/{reason}`).
struct ProblemSchema;

impl utoipa::Modify for ProblemSchema {
    fn modify(&self, openapi: &mut OpenApi) {
        let reasons: Vec<&str> = crate::problem_types::all()
            .map(|(slug, _, _)| *slug)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let error = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The same refusal in OpenAI's error shape, which OpenAI SDKs show.",
            ))
            .property("message", string())
            .property("type", string())
            .property("code", string())
            .required("message")
            .required("type")
            .required("code");
        let problem: Schema = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "RFC 9457 problem details. Besides the standard members: `reason`, the problem type's \
                 slug; `request_id`; an OpenAI-style `error`; and the members a client needs to act, by \
                 reason (`balance` and `required` for insufficient funds, `retry_after` for rate limits, \
                 `plan`, `subscription`, `payment_method`, `errors`, …).",
            ))
            .property(
                "type",
                string().description(Some("`<gateway>/problems/<reason>`: a page explaining it.")),
            )
            .property("title", string())
            .property("status", ObjectBuilder::new().schema_type(Type::Integer))
            .property("detail", string())
            .property("request_id", string())
            .property(
                "reason",
                string().enum_values(Some(reasons.iter().map(|r| (*r).to_owned()))),
            )
            .property("error", error)
            .required("type")
            .required("title")
            .required("status")
            .required("detail")
            .required("reason")
            .into();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .schemas
            .insert("Problem".to_owned(), RefOr::T(problem));
    }
}

/// The consumer-facing API's document.
pub fn document() -> OpenApi {
    ConsumerDoc::openapi()
}

/// `GET /v1/openapi.json`: the document, written once.
pub fn served() -> axum::response::Response {
    static JSON: std::sync::LazyLock<bytes::Bytes> = std::sync::LazyLock::new(|| {
        serde_json::to_vec(&document())
            .expect("the document serializes")
            .into()
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        JSON.clone(),
    )
        .into_response()
}
