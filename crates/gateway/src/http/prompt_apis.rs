//! `/admin/v1/prompt-apis`: prompt-encapsulated APIs, their immutable
//! versions and their lifecycle (draft → published → deprecated → retired,
//! with rollback to an earlier version). Writes need `write`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use chrono::Utc;
use tollgate_api::{
    CreatePromptApi, FieldError, Page, Problem, PromptApi, PromptApiAction, PromptApiStatus,
    PromptApiVersion, PromptDefinition, PromptRun,
};

use super::auth::{Authorized, Read, Write};
use super::{ApiJson, AppState, PageParams, RequestId, created, if_match, versioned};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::store::PromptApiChange;
use crate::validate;
use tollgate_api::prompt_template as prompt;

const NAME_MAX: usize = 100;
const SLUG_MAX: usize = 64;
const DESCRIPTION_MAX: usize = 2_000;
/// API names the gateway uses itself.
const RESERVED: [&str; 3] = ["chat", "models", "openapi.json"];

fn check_slug(slug: &str, errors: &mut Vec<FieldError>) {
    let shaped = !slug.is_empty()
        && slug.len() <= SLUG_MAX
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !shaped {
        errors.push(FieldError::new(
            "slug",
            format!("must be 1 to {SLUG_MAX} lowercase letters, digits and inner `-`"),
        ));
    } else if RESERVED.contains(&slug) {
        errors.push(FieldError::new("slug", "is a name the gateway uses itself"));
    }
}

fn checked_definition(definition: &PromptDefinition) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    prompt::check(definition, &mut errors);
    for e in &mut errors {
        e.field = format!("definition.{}", e.field);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// List prompt APIs in creation order.
#[utoipa::path(get, path = "/admin/v1/prompt-apis", tag = "prompt-apis",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery),
    responses((status = 200, body = Page<PromptApi>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_prompt_apis(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
) -> ApiResult<Json<Page<PromptApi>>> {
    let (items, next) = state
        .store
        .list_prompt_apis(page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Create a prompt API as a draft with its first version.
#[utoipa::path(post, path = "/admin/v1/prompt-apis", tag = "prompt-apis",
    security(("admin_token" = ["write"])),
    request_body = CreatePromptApi,
    responses((status = 201, body = PromptApi), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_prompt_api(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    ApiJson(body): ApiJson<CreatePromptApi>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    check_slug(&body.slug, &mut errors);
    let name = validate::name("name", &body.name, NAME_MAX, &mut errors);
    let description = validate::text(
        "description",
        &body.description,
        DESCRIPTION_MAX,
        &mut errors,
    );
    prompt::check(&body.definition, &mut errors);
    if !errors.is_empty() {
        for e in errors
            .iter_mut()
            .filter(|e| !matches!(e.field.as_str(), "slug" | "name" | "description"))
        {
            e.field = format!("definition.{}", e.field);
        }
        return Err(ApiError::Validation(errors));
    }
    let api = state
        .store
        .create_prompt_api(
            &body.slug,
            &name,
            &description,
            body.definition,
            &admin.audit(),
        )
        .await?;
    Ok(created(
        &api,
        api.version,
        &format!("/admin/v1/prompt-apis/{}", api.id),
    ))
}

/// One prompt API with its current definition and `ETag`.
#[utoipa::path(get, path = "/admin/v1/prompt-apis/{id}", tag = "prompt-apis",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = PromptApi), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_prompt_api(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let api = state
        .store
        .prompt_api(&id)
        .await
        .map_err(for_resource("prompt API", &id))?;
    Ok(versioned(StatusCode::OK, &api, api.version))
}

/// Every version of a prompt API, newest first.
#[utoipa::path(get, path = "/admin/v1/prompt-apis/{id}/versions", tag = "prompt-apis",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<PromptApiVersion>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_versions(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PromptApiVersion>>> {
    let versions = state
        .store
        .prompt_api_versions(&id)
        .await
        .map_err(for_resource("prompt API", &id))?;
    Ok(Json(versions))
}

/// Save a new version; it becomes the one served. Honours `If-Match`.
#[utoipa::path(post, path = "/admin/v1/prompt-apis/{id}/versions", tag = "prompt-apis",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = PromptDefinition,
    responses((status = 201, body = PromptApi), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
pub async fn add_version(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(definition): ApiJson<PromptDefinition>,
) -> ApiResult<Response> {
    checked_definition(&definition)?;
    let current = state
        .store
        .prompt_api(&id)
        .await
        .map_err(for_resource("prompt API", &id))?;
    if current.status == PromptApiStatus::Retired {
        return Err(ApiError::Conflict(
            "a retired prompt API takes no new versions".into(),
        ));
    }
    let api = state
        .store
        .add_prompt_api_version(&id, definition, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("prompt API", &id))?;
    Ok(created(
        &api,
        api.version,
        &format!("/admin/v1/prompt-apis/{}", api.id),
    ))
}

/// The lifecycle change an action makes from `api`'s state, or why it
/// cannot.
fn change_for(api: &PromptApi, action: &PromptApiAction) -> Result<PromptApiChange, ApiError> {
    use PromptApiStatus::{Deprecated, Draft, Published, Retired};
    let conflict = |why: &str| Err(ApiError::Conflict(why.to_owned()));
    let keep = PromptApiChange {
        status: api.status,
        current_version: api.current_version,
        deprecated_at: api.deprecated_at,
        sunset_at: api.sunset_at,
        action: "prompt_api.lifecycle",
    };
    match (action, api.status) {
        (_, Retired) => conflict("the prompt API is retired"),
        (PromptApiAction::Publish, Published) => conflict("the prompt API is already published"),
        (PromptApiAction::Publish, Draft | Deprecated) => Ok(PromptApiChange {
            status: Published,
            deprecated_at: None,
            sunset_at: None,
            action: "prompt_api.publish",
            ..keep
        }),
        (PromptApiAction::Deprecate { sunset_at }, Published) => {
            if *sunset_at <= Utc::now() {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "sunset_at",
                    "must be in the future",
                )]));
            }
            Ok(PromptApiChange {
                status: Deprecated,
                deprecated_at: Some(Utc::now()),
                sunset_at: Some(*sunset_at),
                action: "prompt_api.deprecate",
                ..keep
            })
        }
        (PromptApiAction::Deprecate { .. }, _) => {
            conflict("only a published prompt API can be deprecated")
        }
        (PromptApiAction::Retire, _) => Ok(PromptApiChange {
            status: Retired,
            action: "prompt_api.retire",
            ..keep
        }),
        (PromptApiAction::Rollback { version }, _) => {
            if *version == 0 {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "version",
                    "versions are numbered from 1",
                )]));
            }
            if *version > api.latest_version {
                // A version that does not exist, like any other thing a body names.
                return Err(ApiError::NotFound(format!(
                    "version {version} of this prompt API (it has 1 to {})",
                    api.latest_version
                )));
            }
            if *version == api.current_version {
                return conflict("that version is already the one served");
            }
            Ok(PromptApiChange {
                current_version: *version,
                action: "prompt_api.rollback",
                ..keep
            })
        }
    }
}

/// Publish, deprecate (with a sunset date), retire, or roll back to an
/// earlier version. Honours `If-Match`.
#[utoipa::path(post, path = "/admin/v1/prompt-apis/{id}/lifecycle", tag = "prompt-apis",
    security(("admin_token" = ["write"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = PromptApiAction,
    responses((status = 200, body = PromptApi), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
pub async fn change_lifecycle(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(action): ApiJson<PromptApiAction>,
) -> ApiResult<Response> {
    let current = state
        .store
        .prompt_api(&id)
        .await
        .map_err(for_resource("prompt API", &id))?;
    let change = change_for(&current, &action)?;
    let expected = if_match(&headers).or(Some(current.version));
    let api = state
        .store
        .change_prompt_api(&id, change, expected, &admin.audit())
        .await
        .map_err(for_resource("prompt API", &id))?;
    Ok(versioned(StatusCode::OK, &api, api.version))
}

/// Run a definition, saved or not, once with test values: streamed as
/// server-sent events (chat completion chunks, then `event: summary` with a
/// `PromptRunSummary`), through the same providers as a call of the API,
/// charged to no one.
#[utoipa::path(post, path = "/admin/v1/prompt-apis/run", tag = "prompt-apis",
    security(("admin_token" = ["write"])),
    request_body = PromptRun,
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "Chat completion chunks, then `event: summary` carrying a PromptRunSummary"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 502, body = Problem), (status = 503, body = Problem),
        (status = 504, body = Problem)))]
pub async fn run_prompt(
    State(state): State<AppState>,
    _: Authorized<Write>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(run): ApiJson<PromptRun>,
) -> ApiResult<Response> {
    checked_definition(&run.definition)?;
    match crate::dataplane::prompt_run::run(&state.data, run).await {
        Ok(response) => Ok(response),
        Err(refusal) => Ok(refusal.render(&request_id, &state.instance.public_url)),
    }
}
