//! Consumer API keys: issue (shown once), find by prefix, rotate with a grace
//! period, revoke. Writes need the `keys` scope.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use tollgate_api::{
    ConsumerKey, CreateConsumerKey, FieldError, IssuedConsumerKey, Page, Problem, RotateConsumerKey,
};

use super::auth::{Authorized, Keys, Read};
use super::{ApiJson, AppState, PageParams, QueryOf};
use crate::consumer_keys::{self, MintedKey};
use crate::error::{ApiError, ApiResult, RedactedReplay, for_resource};
use crate::store::NewConsumerKey;
use crate::validate;

const NAME_MAX: usize = 100;
const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3600;

/// The 201 answer carrying a new secret: never cached, and replayed without it.
fn issued(key: ConsumerKey, minted: MintedKey) -> Response {
    let redacted = serde_json::to_vec(&IssuedConsumerKey {
        key: key.clone(),
        secret: None,
    })
    .unwrap_or_default();
    let mut response = (
        StatusCode::CREATED,
        Json(IssuedConsumerKey {
            key,
            secret: Some(minted.secret),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(RedactedReplay(redacted));
    response
}

fn new_key(
    consumer_id: String,
    name: String,
    body: &CreateConsumerKey,
    minted: &MintedKey,
) -> NewConsumerKey {
    NewConsumerKey {
        consumer_id,
        name,
        lookup: minted.lookup.clone(),
        secret_hash: minted.secret_hash.clone(),
        display_prefix: minted.display_prefix.clone(),
        allowed_apis: body.allowed_apis.clone(),
        expires_at: body.expires_at,
    }
}

/// Keys of a consumer, newest last.
#[utoipa::path(get, path = "/admin/v1/consumers/{id}/keys", tag = "keys",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path), tollgate_api::PageQuery),
    responses((status = 200, body = Page<ConsumerKey>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_consumer_keys(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
    page: PageParams,
) -> ApiResult<Json<Page<ConsumerKey>>> {
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    let (items, next) = state
        .store
        .list_consumer_keys(Some(id), None, page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Issue a key. The secret is in this answer only; store it now.
#[utoipa::path(post, path = "/admin/v1/consumers/{id}/keys", tag = "keys",
    security(("admin_token" = ["keys"])),
    params(("id" = String, Path)),
    request_body = CreateConsumerKey,
    responses((status = 201, body = IssuedConsumerKey), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_consumer_key(
    State(state): State<AppState>,
    admin: Authorized<Keys>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateConsumerKey>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let name = validate::name("name", &body.name, NAME_MAX, &mut errors);
    validate::slugs("allowed_apis", &body.allowed_apis, &mut errors);
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let minted = consumer_keys::mint();
    let key = state
        .store
        .create_consumer_key(new_key(id.clone(), name, &body, &minted), &admin.audit())
        .await
        .map_err(for_resource("consumer", &id))?;
    Ok(issued(key, minted))
}

/// Find keys by the start of their display prefix (`?prefix=tg_ab12`), across consumers.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    security(("admin_token" = ["read"])),
    params(("prefix" = String, Query, description = "tg_ followed by up to 8 characters", pattern = "^tg_[a-z0-9]{0,8}$"), tollgate_api::PageQuery),
    responses((status = 200, body = Page<ConsumerKey>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn find_keys(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
    QueryOf(query): QueryOf<HashMap<String, String>>,
) -> ApiResult<Json<Page<ConsumerKey>>> {
    let prefix = query.get("prefix").cloned().unwrap_or_default();
    if !consumer_keys::is_prefix_query(&prefix) {
        return Err(ApiError::validation(
            "prefix",
            "must be tg_ followed by up to 8 characters of a-z and 0-9",
        ));
    }
    let (items, next) = state
        .store
        .list_consumer_keys(None, Some(prefix), page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// One key (never its secret).
#[utoipa::path(get, path = "/admin/v1/keys/{id}", tag = "keys",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConsumerKey), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_key(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsumerKey>> {
    Ok(Json(
        state
            .store
            .consumer_key(&id)
            .await
            .map_err(for_resource("key", &id))?,
    ))
}

/// Issue a successor; the old key keeps working for `grace_seconds`.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/rotate", tag = "keys",
    security(("admin_token" = ["keys"])),
    params(("id" = String, Path)),
    request_body = RotateConsumerKey,
    responses((status = 201, body = IssuedConsumerKey), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    admin: Authorized<Keys>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RotateConsumerKey>,
) -> ApiResult<Response> {
    if body.grace_seconds > MAX_GRACE_SECONDS {
        return Err(ApiError::validation(
            "grace_seconds",
            format!("must be 0 to {MAX_GRACE_SECONDS} (7 days)"),
        ));
    }
    let old = state
        .store
        .consumer_key(&id)
        .await
        .map_err(for_resource("key", &id))?;
    let minted = consumer_keys::mint();
    let template = CreateConsumerKey {
        name: old.name.clone(),
        allowed_apis: old.allowed_apis.clone(),
        expires_at: old.expires_at,
    };
    let grace_until = Utc::now() + Duration::seconds(i64::from(body.grace_seconds));
    let key = state
        .store
        .rotate_consumer_key(
            &id,
            new_key(old.consumer_id, old.name, &template, &minted),
            grace_until,
            &admin.audit(),
        )
        .await
        .map_err(for_resource("key", &id))?;
    Ok(issued(key, minted))
}

/// Revoke a key at once. Revoking a revoked key changes nothing.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/revoke", tag = "keys",
    security(("admin_token" = ["keys"])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConsumerKey), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    admin: Authorized<Keys>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsumerKey>> {
    Ok(Json(
        state
            .store
            .revoke_consumer_key(&id, &admin.audit())
            .await
            .map_err(for_resource("key", &id))?,
    ))
}
