//! `/admin/v1/teams`: the first resource, and the model for every later one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tollgate_api::{CreateTeam, Page, Problem, Team, UpdateTeam};

use super::auth::{Authorized, Read, Write};
use super::{ApiJson, AppState, PageParams, created, if_match, versioned};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::store::{NewTeam, StoreError, TeamPatch};
use crate::validate;

const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 1000;

fn team_error(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    for_resource("team", id)
}

/// List teams in creation order.
#[utoipa::path(get, path = "/admin/v1/teams", tag = "teams",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery),
    responses((status = 200, body = Page<Team>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_teams(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
) -> ApiResult<Json<Page<Team>>> {
    let (items, next) = state
        .store
        .list_teams(page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Create a team. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/admin/v1/teams", tag = "teams",
    security(("admin_token" = ["write"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays return the first answer")),
    request_body = CreateTeam,
    responses((status = 201, body = Team, headers(("ETag" = String), ("Location" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_team(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let name = validate::name("name", &body.name, NAME_MAX, &mut errors);
    let description = validate::text(
        "description",
        &body.description,
        DESCRIPTION_MAX,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let team = state
        .store
        .create_team(NewTeam { name, description }, &admin.audit())
        .await?;
    Ok(created(
        &team,
        team.version,
        &format!("/admin/v1/teams/{}", team.id),
    ))
}

/// One team, with its `ETag`.
#[utoipa::path(get, path = "/admin/v1/teams/{id}", tag = "teams",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Team, headers(("ETag" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_team(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let team = state.store.team(&id).await.map_err(team_error(&id))?;
    Ok(versioned(StatusCode::OK, &team, team.version))
}

/// Change a team's name or description. Send `If-Match` with the `ETag` you
/// read: a stale one is refused with 412.
#[utoipa::path(patch, path = "/admin/v1/teams/{id}", tag = "teams",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateTeam,
    responses((status = 200, body = Team, headers(("ETag" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update_team(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateTeam>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let patch = TeamPatch {
        name: body
            .name
            .map(|n| validate::name("name", &n, NAME_MAX, &mut errors)),
        description: body
            .description
            .map(|d| validate::text("description", &d, DESCRIPTION_MAX, &mut errors)),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let team = state
        .store
        .update_team(&id, patch, if_match(&headers), &admin.audit())
        .await
        .map_err(team_error(&id))?;
    Ok(versioned(StatusCode::OK, &team, team.version))
}

/// Delete a team. `If-Match` is honoured as for updates.
#[utoipa::path(delete, path = "/admin/v1/teams/{id}", tag = "teams",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_team(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_team(&id, if_match(&headers), &admin.audit())
        .await
        .map_err(team_error(&id))?;
    Ok(StatusCode::NO_CONTENT)
}
