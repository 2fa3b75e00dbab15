//! `/admin/v1/providers` and `/admin/v1/provider-keys`: the model providers
//! calls are forwarded to, and each one's key pool. Writes need `write`. Key
//! secrets are sealed before they reach the store and never returned.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tollgate_api::{
    CreateProvider, CreateProviderKey, FieldError, Page, Problem, Provider, ProviderKey,
    ProviderKeyEvent, ProviderKeyStatus, ProviderTest, UpdateProvider, UpdateProviderKey,
};

use super::auth::{Authorized, Read, Write};
use super::{ApiJson, AppState, PageParams, QueryOf, created, if_match, versioned};
use crate::dataplane::pool::{self, Verdict};
use crate::dataplane::routes::{self, Endpoint};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::store::{NewProviderKey, ProviderKeyChange, ProviderSpec};
use crate::validate;

const NAME_MAX: usize = 100;
const MODEL_NAME_MAX: usize = 200;
const MODELS_MAX: usize = 500;
const TIMEOUT_MAX: u32 = 3600;
/// How long a provider test waits for the answer: an admin is waiting
/// (an unreachable address would hold the request until the connection
/// gives up).
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const SECRET_MIN: usize = 8;
const SECRET_MAX: usize = 4096;
const PRIORITY_MAX: u32 = 1_000_000;
const REASON_MAX: usize = 500;
const BASE_URL_MAX: usize = 2000;

/// An http(s) URL as [`tollgate_api::schemas::BASE_URL`] describes it (as
/// sent: no spaces around it), in its parsed form without a trailing slash.
fn base_url(value: &str, errors: &mut Vec<FieldError>) -> String {
    static SHAPE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(tollgate_api::schemas::BASE_URL).expect("the documented pattern compiles")
    });
    match url::Url::parse(value) {
        Ok(url) if value.len() <= BASE_URL_MAX && SHAPE.is_match(value) => {
            url.as_str().trim_end_matches('/').to_owned()
        }
        _ => {
            errors.push(FieldError::new(
                "base_url",
                "must be an http(s) URL with a host, e.g. https://api.openai.com/v1, without user, query or fragment",
            ));
            String::new()
        }
    }
}

/// Model names travel in JSON bodies and headers: printable ASCII without
/// spaces.
fn model_name(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty()
        || value.len() > MODEL_NAME_MAX
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {MODEL_NAME_MAX} printable characters without spaces"),
        ));
    }
}

/// Validates a complete provider; every invalid field is reported.
fn check(body: &CreateProvider) -> Result<ProviderSpec, ApiError> {
    let mut errors = Vec::new();
    let name = validate::name("name", &body.name, NAME_MAX, &mut errors);
    let base_url = base_url(&body.base_url, &mut errors);
    validate::currency("currency", &body.currency, &mut errors);
    if body.models.len() > MODELS_MAX {
        errors.push(FieldError::new(
            "models",
            format!("at most {MODELS_MAX} models"),
        ));
    }
    for (i, model) in body.models.iter().enumerate() {
        model_name(&format!("models.{i}.name"), &model.name, &mut errors);
        for (field, price) in [
            ("input_price", &model.input_price),
            ("output_price", &model.output_price),
        ] {
            validate::amount(
                &format!("models.{i}.{field}"),
                price,
                true,
                None,
                &mut errors,
            );
        }
        if body.models[..i].iter().any(|m| m.name == model.name) {
            errors.push(FieldError::new(
                format!("models.{i}.name"),
                "is listed twice",
            ));
        }
        if let Some(fallback) = &model.fallback {
            model_name(&format!("models.{i}.fallback"), fallback, &mut errors);
            if *fallback == model.name {
                errors.push(FieldError::new(
                    format!("models.{i}.fallback"),
                    "must be another model",
                ));
            }
        }
    }
    if !(1..=TIMEOUT_MAX).contains(&body.timeout_secs) {
        errors.push(FieldError::new(
            "timeout_secs",
            format!("must be 1 to {TIMEOUT_MAX}"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ProviderSpec {
        name,
        kind: body.kind,
        base_url,
        currency: body.currency.clone(),
        models: body.models.clone(),
        timeout_secs: body.timeout_secs,
        enabled: body.enabled,
    })
}

/// List providers in creation order.
#[utoipa::path(get, path = "/admin/v1/providers", tag = "providers",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery),
    responses((status = 200, body = Page<Provider>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_providers(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
) -> ApiResult<Json<Page<Provider>>> {
    let (items, next) = state
        .store
        .list_providers(page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Add a provider. Its model names must not be another provider's.
#[utoipa::path(post, path = "/admin/v1/providers", tag = "providers",
    security(("admin_token" = ["write"])),
    request_body = CreateProvider,
    responses((status = 201, body = Provider), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_provider(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    ApiJson(body): ApiJson<CreateProvider>,
) -> ApiResult<Response> {
    let provider = state
        .store
        .create_provider(check(&body)?, &admin.audit())
        .await?;
    Ok(created(
        &provider,
        provider.version,
        &format!("/admin/v1/providers/{}", provider.id),
    ))
}

/// One provider, with its `ETag`.
#[utoipa::path(get, path = "/admin/v1/providers/{id}", tag = "providers",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Provider), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_provider(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let provider = state
        .store
        .provider(&id)
        .await
        .map_err(for_resource("provider", &id))?;
    Ok(versioned(StatusCode::OK, &provider, provider.version))
}

/// Change a provider. Honours `If-Match`.
#[utoipa::path(patch, path = "/admin/v1/providers/{id}", tag = "providers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateProvider,
    responses((status = 200, body = Provider), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_provider(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UpdateProvider>,
) -> ApiResult<Response> {
    let current = state
        .store
        .provider(&id)
        .await
        .map_err(for_resource("provider", &id))?;
    let merged = CreateProvider {
        name: patch.name.unwrap_or(current.name),
        kind: patch.kind.unwrap_or(current.kind),
        base_url: patch.base_url.unwrap_or(current.base_url),
        currency: patch.currency.unwrap_or(current.currency),
        models: patch.models.unwrap_or(current.models),
        timeout_secs: patch.timeout_secs.unwrap_or(current.timeout_secs),
        enabled: patch.enabled.unwrap_or(current.enabled),
    };
    // The version read above guards against a concurrent edit when no If-Match is sent.
    let expected = if_match(&headers).or(Some(current.version));
    let provider = state
        .store
        .update_provider(&id, check(&merged)?, expected, &admin.audit())
        .await
        .map_err(for_resource("provider", &id))?;
    Ok(versioned(StatusCode::OK, &provider, provider.version))
}

/// Delete a provider and its keys. Honours `If-Match`.
#[utoipa::path(delete, path = "/admin/v1/providers/{id}", tag = "providers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_provider(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_provider(&id, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("provider", &id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A provider's keys, masked, in the order they are tried.
#[utoipa::path(get, path = "/admin/v1/providers/{id}/keys", tag = "providers",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<ProviderKey>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_provider_keys(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ProviderKey>>> {
    // Uses still queued by the data plane are counted first.
    state.data.accounts.usage.flush().await;
    let keys = state
        .store
        .provider_keys(&id)
        .await
        .map_err(for_resource("provider", &id))?;
    Ok(Json(keys))
}

/// Add a key to a provider's pool. The secret is stored encrypted and only
/// its last four characters are ever shown.
#[utoipa::path(post, path = "/admin/v1/providers/{id}/keys", tag = "providers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path)),
    request_body = CreateProviderKey,
    responses((status = 201, body = ProviderKey), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_provider_key(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateProviderKey>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let label = validate::name("label", &body.label, NAME_MAX, &mut errors);
    let secret = body.secret.as_str();
    // Sent as a header value to the provider: printable ASCII only, as sent
    // (the console trims a pasted key). The message never repeats the value.
    if !(SECRET_MIN..=SECRET_MAX).contains(&secret.len())
        || !secret.bytes().all(|b| b.is_ascii_graphic())
    {
        errors.push(FieldError::new(
            "secret",
            format!("must be {SECRET_MIN} to {SECRET_MAX} printable characters without spaces"),
        ));
    }
    if body.priority > PRIORITY_MAX {
        errors.push(FieldError::new(
            "priority",
            format!("must be 0 to {PRIORITY_MAX}"),
        ));
    }
    if body.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let last4 = secret[secret.len() - 4..].to_owned();
    let new = NewProviderKey {
        label,
        secret_sealed: state.secrets.seal(secret.as_bytes()),
        last4,
        priority: body.priority,
        expires_at: body.expires_at,
    };
    let key = state
        .store
        .create_provider_key(&id, new, &admin.audit())
        .await
        .map_err(for_resource("provider", &id))?;
    Ok(created(
        &key,
        key.version,
        &format!("/admin/v1/provider-keys/{}", key.id),
    ))
}

/// Relabel, reorder, enable or disable a key. Honours `If-Match`.
#[utoipa::path(patch, path = "/admin/v1/provider-keys/{id}", tag = "providers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateProviderKey,
    responses((status = 200, body = ProviderKey), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update_provider_key(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UpdateProviderKey>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let label = patch
        .label
        .as_deref()
        .map(|l| validate::name("label", l, NAME_MAX, &mut errors));
    if patch.priority.is_some_and(|p| p > PRIORITY_MAX) {
        errors.push(FieldError::new(
            "priority",
            format!("must be 0 to {PRIORITY_MAX}"),
        ));
    }
    if patch
        .status
        .is_some_and(|s| !matches!(s, ProviderKeyStatus::Active | ProviderKeyStatus::Disabled))
    {
        errors.push(FieldError::new(
            "status",
            "an admin may set `active` or `disabled`; the other statuses are the gateway's findings",
        ));
    }
    let reason = patch
        .reason
        .as_deref()
        .map(|r| validate::text("reason", r, REASON_MAX, &mut errors));
    if patch.reason.is_some() && patch.status.is_none() {
        errors.push(FieldError::new("reason", "goes with a `status` change"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let change = ProviderKeyChange {
        label,
        priority: patch.priority,
        status: patch.status.map(|s| {
            let reason = reason.filter(|r| !r.is_empty());
            (
                s,
                reason.unwrap_or_else(|| match s {
                    ProviderKeyStatus::Disabled => "disabled by an admin".into(),
                    _ => "enabled by an admin".into(),
                }),
            )
        }),
    };
    let key = state
        .store
        .update_provider_key(&id, change, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("provider key", &id))?;
    Ok(versioned(StatusCode::OK, &key, key.version))
}

/// Remove a key from its pool. Honours `If-Match`.
#[utoipa::path(delete, path = "/admin/v1/provider-keys/{id}", tag = "providers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_provider_key(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_provider_key(&id, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("provider key", &id))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyEventsQuery {
    /// Only this key's changes.
    pub key_id: Option<String>,
    /// At most this many, newest first (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Status changes of a provider's keys, newest first: who (an admin, or the
/// gateway from a provider's answer), when, from what to what, and why.
#[utoipa::path(get, path = "/admin/v1/providers/{id}/key-events", tag = "providers",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path), KeyEventsQuery),
    responses((status = 200, body = Vec<ProviderKeyEvent>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_key_events(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
    QueryOf(query): QueryOf<KeyEventsQuery>,
) -> ApiResult<Json<Vec<ProviderKeyEvent>>> {
    let limit = query.limit.unwrap_or(tollgate_api::DEFAULT_PAGE_LIMIT);
    if !(1..=tollgate_api::MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "limit",
            format!("must be 1 to {}", tollgate_api::MAX_PAGE_LIMIT),
        )]));
    }
    state
        .store
        .provider(&id)
        .await
        .map_err(for_resource("provider", &id))?;
    let events = state
        .store
        .provider_key_events(&id, query.key_id.as_deref(), limit)
        .await?;
    Ok(Json(events))
}

/// Try a provider: ask for its model list with the first usable key of its
/// pool, and say what the answer means (no answer within 5 s is a failed
/// test). The key's status is not changed.
#[utoipa::path(post, path = "/admin/v1/providers/{id}/test", tag = "providers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path)),
    responses((status = 200, body = ProviderTest), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn test_provider(
    State(state): State<AppState>,
    _: Authorized<Write>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProviderTest>> {
    let provider = state
        .store
        .provider(&id)
        .await
        .map_err(for_resource("provider", &id))?;
    let keys = state
        .store
        .sealed_provider_keys(&id)
        .await
        .map_err(for_resource("provider", &id))?;
    let configured: Vec<String> = provider.models.iter().map(|m| m.name.clone()).collect();
    let failed = |key_id: Option<String>, message: &str| ProviderTest {
        ok: false,
        key_id,
        status: None,
        latency_ms: 0,
        message: message.to_owned(),
        models: Vec::new(),
        missing_models: Vec::new(),
    };
    let now = chrono::Utc::now();
    let Some(sealed) = keys.iter().find(|k| {
        k.key.status == ProviderKeyStatus::Active && k.key.expires_at.is_none_or(|t| t > now)
    }) else {
        return Ok(Json(failed(None, "the pool has no usable key")));
    };
    let key_id = Some(sealed.key.id.clone());
    let Some(auth) = routes::key_header(provider.kind, &state.secrets, sealed) else {
        return Ok(Json(failed(
            key_id,
            "the key cannot be decrypted with this gateway's encryption key",
        )));
    };
    let target = routes::target_of(&provider, Endpoint::Models)
        .map_err(|e| ApiError::Internal(e.context("the provider's URL")))?;
    let started = std::time::Instant::now();
    let answer =
        tokio::time::timeout(TEST_TIMEOUT, state.data.client.get(&target, Some(&auth))).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let answer = match answer {
        Ok(Ok(answer)) => answer,
        Err(_) => {
            return Ok(Json(ProviderTest {
                latency_ms,
                ..failed(
                    key_id,
                    &format!(
                        "the provider did not answer within {} s",
                        TEST_TIMEOUT.as_secs()
                    ),
                )
            }));
        }
        Ok(Err(e)) => {
            return Ok(Json(ProviderTest {
                latency_ms,
                ..failed(key_id, &e.to_string())
            }));
        }
    };
    let message = match pool::classify(answer.status, &answer.body) {
        Verdict::Served => "the provider answered with the key".to_owned(),
        Verdict::Bench(_, reason) => reason.to_owned(),
        Verdict::RateLimited => {
            "the provider rate-limits the key (429); it works otherwise".to_owned()
        }
        Verdict::ProviderFailed | Verdict::Refused => {
            format!("the provider answered {}", answer.status)
        }
    };
    let models: Vec<String> = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|list| {
            list["data"].as_array().map(|data| {
                data.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default();
    let missing_models = if models.is_empty() {
        Vec::new()
    } else {
        configured
            .into_iter()
            .filter(|m| !models.contains(m))
            .collect()
    };
    Ok(Json(ProviderTest {
        ok: answer.status.is_success(),
        key_id,
        status: Some(answer.status.as_u16()),
        latency_ms,
        message,
        models,
        missing_models,
    }))
}
