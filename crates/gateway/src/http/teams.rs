//! `/admin/v1/teams`: the first resource, and the model for every later one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_api::{CreateTeam, FieldError, Page, Problem, Scope, Team, UpdateTeam};

use super::{ApiJson, AppState, PageParams, etag, if_match};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::store::{NewTeam, StoreError, TeamPatch};

const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 1000;

fn check_name(name: &str, errors: &mut Vec<FieldError>) -> String {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > NAME_MAX {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    } else if name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    name.to_owned()
}

fn check_description(text: &str, errors: &mut Vec<FieldError>) -> String {
    if text.chars().count() > DESCRIPTION_MAX {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    } else if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        errors.push(FieldError::new(
            "description",
            "must not contain control characters",
        ));
    }
    text.trim().to_owned()
}

/// Store errors, with "not found" naming the team.
fn team_error(id: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("team `{id}`")),
        other => other.into(),
    }
}

fn with_etag(status: StatusCode, team: Team) -> Response {
    let mut response = (status, Json(&team)).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(team.version));
    response
}

/// List teams in creation order.
#[utoipa::path(get, path = "/admin/v1/teams", tag = "teams",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery),
    responses((status = 200, body = Page<Team>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_teams(
    State(state): State<AppState>,
    admin: Admin,
    page: PageParams,
) -> ApiResult<Json<Page<Team>>> {
    admin.require(Scope::Read)?;
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
    admin: Admin,
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<Response> {
    admin.require(Scope::Write)?;
    let mut errors = Vec::new();
    let name = check_name(&body.name, &mut errors);
    let description = check_description(&body.description, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let team = state
        .store
        .create_team(NewTeam { name, description }, &admin.audit())
        .await?;
    let location = format!("/admin/v1/teams/{}", team.id);
    let mut response = with_etag(StatusCode::CREATED, team);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// One team, with its `ETag`.
#[utoipa::path(get, path = "/admin/v1/teams/{id}", tag = "teams",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Team, headers(("ETag" = String))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_team(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin.require(Scope::Read)?;
    let team = state.store.team(&id).await.map_err(team_error(&id))?;
    Ok(with_etag(StatusCode::OK, team))
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
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UpdateTeam>,
) -> ApiResult<Response> {
    admin.require(Scope::Write)?;
    let mut errors = Vec::new();
    let patch = TeamPatch {
        name: body.name.map(|n| check_name(&n, &mut errors)),
        description: body.description.map(|d| check_description(&d, &mut errors)),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let team = state
        .store
        .update_team(&id, patch, if_match(&headers), &admin.audit())
        .await
        .map_err(team_error(&id))?;
    Ok(with_etag(StatusCode::OK, team))
}

/// Delete a team. `If-Match` is honoured as for updates.
#[utoipa::path(delete, path = "/admin/v1/teams/{id}", tag = "teams",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_team(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    admin.require(Scope::Write)?;
    state
        .store
        .delete_team(&id, if_match(&headers), &admin.audit())
        .await
        .map_err(team_error(&id))?;
    Ok(StatusCode::NO_CONTENT)
}
