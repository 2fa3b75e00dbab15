//! `/admin/v1/consumers`: customer applications, each in a team.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tollgate_api::{Consumer, CreateConsumer, Page, Problem, UpdateConsumer};

use super::auth::{Authorized, Read, Write};
use super::{ApiJson, AppState, PageParams, QueryOf, created, if_match, versioned};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::store::{ConsumerPatch, NewConsumer, StoreError};
use crate::validate;

const NAME_MAX: usize = 100;
const CONTACT_MAX: usize = 200;

/// `?team_id=` of the consumer list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsumerFilter {
    /// Only consumers of this team.
    #[param(pattern = "^(team_[0-9A-Za-z]{26})?$")]
    pub team_id: Option<String>,
}

/// List consumers in creation order, optionally of one team.
#[utoipa::path(get, path = "/admin/v1/consumers", tag = "consumers",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery, ConsumerFilter),
    responses((status = 200, body = Page<Consumer>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_consumers(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
    QueryOf(filter): QueryOf<ConsumerFilter>,
) -> ApiResult<Json<Page<Consumer>>> {
    let team_id = filter.team_id.filter(|t| !t.is_empty());
    if let Some(team) = &team_id {
        let mut errors = Vec::new();
        validate::id("team_id", team, "team", &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
    }
    let (items, next) = state
        .store
        .list_consumers(team_id, page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Create a consumer in a team. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/admin/v1/consumers", tag = "consumers",
    security(("admin_token" = ["write"])),
    request_body = CreateConsumer,
    responses((status = 201, body = Consumer, headers(("ETag" = String), ("Location" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_consumer(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    ApiJson(body): ApiJson<CreateConsumer>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    validate::id("team_id", &body.team_id, "team", &mut errors);
    let name = validate::name("name", &body.name, NAME_MAX, &mut errors);
    let contact = validate::text("contact", &body.contact, CONTACT_MAX, &mut errors);
    validate::metadata("metadata", &body.metadata, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // A well-formed id that names nothing: 404, as for an id in the path.
    if let Err(StoreError::NotFound) = state.store.team(&body.team_id).await {
        return Err(ApiError::NotFound(format!(
            "the team `{}` (team_id)",
            body.team_id
        )));
    }
    let new = NewConsumer {
        team_id: body.team_id,
        name,
        contact,
        metadata: body.metadata,
    };
    let consumer = state.store.create_consumer(new, &admin.audit()).await?;
    Ok(created(
        &consumer,
        consumer.version,
        &format!("/admin/v1/consumers/{}", consumer.id),
    ))
}

/// One consumer, with its `ETag`.
#[utoipa::path(get, path = "/admin/v1/consumers/{id}", tag = "consumers",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Consumer, headers(("ETag" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_consumer(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let consumer = state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    Ok(versioned(StatusCode::OK, &consumer, consumer.version))
}

/// Change a consumer; `status: suspended` refuses all its calls. Honours `If-Match`.
#[utoipa::path(patch, path = "/admin/v1/consumers/{id}", tag = "consumers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateConsumer,
    responses((status = 200, body = Consumer, headers(("ETag" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update_consumer(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateConsumer>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let patch = ConsumerPatch {
        name: body
            .name
            .map(|n| validate::name("name", &n, NAME_MAX, &mut errors)),
        contact: body
            .contact
            .map(|c| validate::text("contact", &c, CONTACT_MAX, &mut errors)),
        metadata: body
            .metadata
            .inspect(|m| validate::metadata("metadata", m, &mut errors)),
        status: body.status,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let consumer = state
        .store
        .update_consumer(&id, patch, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("consumer", &id))?;
    Ok(versioned(StatusCode::OK, &consumer, consumer.version))
}

/// Delete a consumer and its keys. Honours `If-Match`.
#[utoipa::path(delete, path = "/admin/v1/consumers/{id}", tag = "consumers",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_consumer(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_consumer(&id, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("consumer", &id))?;
    Ok(StatusCode::NO_CONTENT)
}
