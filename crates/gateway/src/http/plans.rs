//! `/admin/v1/plans`: what consumers subscribe to. Writes need `billing`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tollgate_api::{CreatePlan, FieldError, Page, Plan, Problem, RateLimits, UpdatePlan};

use super::auth::{Authorized, Billing, Read};
use super::{ApiJson, AppState, PageParams, created, if_match, versioned};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::store::PlanSpec;
use crate::validate;

const NAME_MAX: usize = 100;
const MODEL_MAX: usize = 200;
const LIMIT_MAX: u32 = 100_000_000;

/// Validates a complete plan; every invalid field is reported.
fn check(body: &CreatePlan) -> Result<PlanSpec, ApiError> {
    let mut errors = Vec::new();
    let name = validate::name("name", &body.name, NAME_MAX, &mut errors);
    let currency = validate::currency("currency", &body.currency, &mut errors);
    let decimals = currency.and_then(|c| c.exponent());
    let price_micros = validate::amount("price", &body.price, true, decimals, &mut errors);
    let included_micros = validate::amount(
        "included_credits",
        &body.included_credits,
        true,
        None,
        &mut errors,
    );
    validate::slugs("apis", &body.apis, &mut errors);
    for (i, model) in body.models.iter().enumerate() {
        validate::name(&format!("models.{i}"), model, MODEL_MAX, &mut errors);
    }
    let RateLimits {
        requests_per_minute,
        tokens_per_minute,
    } = &body.rate_limits;
    for (field, value) in [
        ("rate_limits.requests_per_minute", requests_per_minute),
        ("rate_limits.tokens_per_minute", tokens_per_minute),
    ] {
        if value.is_some_and(|v| v == 0 || v > LIMIT_MAX) {
            errors.push(FieldError::new(
                field,
                format!("must be 1 to {LIMIT_MAX}, or absent for no limit"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(PlanSpec {
        name,
        currency: body.currency.clone(),
        price_micros,
        period: body.period,
        included_micros,
        overage: body.overage,
        approval_required: body.approval_required,
        apis: body.apis.clone(),
        models: body.models.iter().map(|m| m.trim().to_owned()).collect(),
        rate_limits: body.rate_limits.clone(),
    })
}

/// A stored amount as an admin would send it: plans show at least two
/// places (`"1000.00"`), which a currency without minor units (JPY) refuses.
fn unpadded(amount: &str) -> String {
    tollgate_api::money::parse_amount(amount)
        .map(|micros| tollgate_api::money::format_amount(micros, 0))
        .unwrap_or_else(|_| amount.to_owned())
}

/// List plans in creation order.
#[utoipa::path(get, path = "/admin/v1/plans", tag = "plans",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery),
    responses((status = 200, body = Page<Plan>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_plans(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
) -> ApiResult<Json<Page<Plan>>> {
    let (items, next) = state
        .store
        .list_plans(page.after.unwrap_or(0), page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Create a plan.
#[utoipa::path(post, path = "/admin/v1/plans", tag = "plans",
    security(("admin_token" = ["billing"])),
    request_body = CreatePlan,
    responses((status = 201, body = Plan), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_plan(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    ApiJson(body): ApiJson<CreatePlan>,
) -> ApiResult<Response> {
    let plan = state
        .store
        .create_plan(check(&body)?, &admin.audit())
        .await?;
    Ok(created(
        &plan,
        plan.version,
        &format!("/admin/v1/plans/{}", plan.id),
    ))
}

/// One plan, with its `ETag`.
#[utoipa::path(get, path = "/admin/v1/plans/{id}", tag = "plans",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Plan), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_plan(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let plan = state
        .store
        .plan(&id)
        .await
        .map_err(for_resource("plan", &id))?;
    Ok(versioned(StatusCode::OK, &plan, plan.version))
}

/// Change a plan (not its currency). Honours `If-Match`.
#[utoipa::path(patch, path = "/admin/v1/plans/{id}", tag = "plans",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdatePlan,
    responses((status = 200, body = Plan), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_plan(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UpdatePlan>,
) -> ApiResult<Response> {
    let current = state
        .store
        .plan(&id)
        .await
        .map_err(for_resource("plan", &id))?;
    let merged = CreatePlan {
        name: patch.name.unwrap_or(current.name),
        currency: current.currency,
        price: patch.price.unwrap_or_else(|| unpadded(&current.price)),
        period: patch.period.unwrap_or(current.period),
        included_credits: patch
            .included_credits
            .unwrap_or_else(|| unpadded(&current.included_credits)),
        overage: patch.overage.unwrap_or(current.overage),
        approval_required: patch.approval_required.unwrap_or(current.approval_required),
        apis: patch.apis.unwrap_or(current.apis),
        models: patch.models.unwrap_or(current.models),
        rate_limits: patch.rate_limits.unwrap_or(current.rate_limits),
    };
    // The version read above guards against a concurrent edit when no If-Match is sent.
    let expected = if_match(&headers).or(Some(current.version));
    let plan = state
        .store
        .update_plan(&id, check(&merged)?, expected, &admin.audit())
        .await
        .map_err(for_resource("plan", &id))?;
    Ok(versioned(StatusCode::OK, &plan, plan.version))
}

/// Delete a plan nobody subscribes to. Honours `If-Match`.
#[utoipa::path(delete, path = "/admin/v1/plans/{id}", tag = "plans",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
pub async fn delete_plan(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_plan(&id, if_match(&headers), &admin.audit())
        .await
        .map_err(for_resource("plan", &id))?;
    Ok(StatusCode::NO_CONTENT)
}
