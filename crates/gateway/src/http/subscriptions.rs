//! `/admin/v1/subscriptions`: consumer × plan, the approval queue, and the
//! lifecycle actions. Writes need `billing`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tollgate_api::{
    ChangePlan, CreateSubscription, FieldError, Page, Problem, Subscription, SubscriptionAction,
    SubscriptionStatus, SubscriptionUsage,
};

use super::auth::{Authorized, Billing, Read};
use super::{ApiJson, AppState, PageParams, QueryOf, parse_json};
use crate::billing::{state_of, terms};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::lifecycle;
use crate::store::{StoreError, SubscriptionFilter};
use crate::validate;

const REASON_MAX: usize = 500;

/// Filters of the subscription list; `?status=pending_approval` is the approval queue.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// One of pending_approval, active, past_due, expired, rejected, canceled, suspended.
    #[param(pattern = "^(pending_approval|active|past_due|expired|rejected|canceled|suspended)?$")]
    pub status: Option<String>,
    pub consumer_id: Option<String>,
    pub plan_id: Option<String>,
}

/// List subscriptions across all plans and teams, filtered.
#[utoipa::path(get, path = "/admin/v1/subscriptions", tag = "subscriptions",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery, SubscriptionQuery),
    responses((status = 200, body = Page<Subscription>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
    QueryOf(query): QueryOf<SubscriptionQuery>,
) -> ApiResult<Json<Page<Subscription>>> {
    let mut errors = Vec::new();
    let status = query.status.filter(|s| !s.is_empty()).and_then(|s| {
        let parsed = SubscriptionStatus::parse(&s);
        if parsed.is_none() {
            errors.push(FieldError::new(
                "status",
                format!("`{s}` is not a subscription status"),
            ));
        }
        parsed
    });
    let filter = SubscriptionFilter {
        status,
        consumer_id: query.consumer_id.filter(|c| !c.is_empty()),
        plan_id: query.plan_id.filter(|p| !p.is_empty()),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (items, next) = state
        .store
        .list_subscriptions(filter, page.after.unwrap_or(0), page.limit)
        .await?;
    let items = items
        .into_iter()
        .map(|s| state.billing.present(s))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Subscribe a consumer to a plan: pending approval when the plan requires
/// it, else active at once (a priced plan's first period is charged now).
#[utoipa::path(post, path = "/admin/v1/subscriptions", tag = "subscriptions",
    security(("admin_token" = ["billing"])),
    request_body = CreateSubscription,
    responses((status = 201, body = Subscription), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_subscription(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    ApiJson(body): ApiJson<CreateSubscription>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    validate::id("consumer_id", &body.consumer_id, "con", &mut errors);
    validate::id("plan_id", &body.plan_id, "plan", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // A well-formed id that names nothing: 404, as for an id in the path.
    let missing = |field: &str, what: &str| {
        let id = if field == "plan_id" {
            &body.plan_id
        } else {
            &body.consumer_id
        };
        ApiError::NotFound(format!("the {what} `{id}` ({field})"))
    };
    let plan = state.store.plan(&body.plan_id).await.map_err(|e| match e {
        StoreError::NotFound => missing("plan_id", "plan"),
        other => other.into(),
    })?;
    state
        .store
        .consumer(&body.consumer_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => missing("consumer_id", "consumer"),
            other => other.into(),
        })?;
    let now = Utc::now();
    let initial = lifecycle::start(terms(&plan), plan.approval_required, body.auto_renew, now);
    let audit = admin.audit();
    let sub = state
        .store
        .create_subscription(&body.consumer_id, &plan.id, initial, &audit)
        .await?;
    let sub = state.billing.first_charge(sub, &plan, now, &audit).await?;
    Ok((StatusCode::CREATED, Json(state.billing.present(sub))).into_response())
}

#[utoipa::path(get, path = "/admin/v1/subscriptions/{id}", tag = "subscriptions",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_subscription(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Subscription>> {
    let sub = state
        .store
        .subscription(&id)
        .await
        .map_err(for_resource("subscription", &id))?;
    Ok(Json(state.billing.present(sub)))
}

/// What the current period's included credits paid for so far (usage
/// waiting in the data plane's writer is flushed first).
#[utoipa::path(get, path = "/admin/v1/subscriptions/{id}/usage", tag = "subscriptions",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionUsage), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn subscription_usage(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionUsage>> {
    let sub = state
        .store
        .subscription(&id)
        .await
        .map_err(for_resource("subscription", &id))?;
    let plan = state.store.plan(&sub.plan_id).await?;
    state.data.accounts.usage.flush().await;
    let used = state
        .store
        .period_usage(&sub.id, &crate::dataplane::hot::period_key(&sub))
        .await?;
    let included = tollgate_api::money::parse_amount(&plan.included_credits).unwrap_or(0);
    Ok(Json(SubscriptionUsage {
        subscription_id: sub.id,
        period_start: sub.current_period_start,
        period_end: sub.current_period_end,
        currency: plan.currency,
        credits_included: plan.included_credits,
        credits_used: tollgate_api::money::format_amount(used, 2),
        credits_left: tollgate_api::money::format_amount((included - used).max(0), 2),
    }))
}

/// Approve, reject (with a reason), cancel, suspend, resume, or renew now
/// (retry a failed renewal, renew an expired subscription).
#[utoipa::path(post, path = "/admin/v1/subscriptions/{id}/{action}", tag = "subscriptions",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path), ("action" = String, Path, description = "approve, reject, cancel, suspend, resume or renew")),
    request_body = SubscriptionAction,
    responses((status = 200, body = Subscription), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn act_on_subscription(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Subscription>> {
    // The body is optional: an empty one means no reason.
    let reason = if body.is_empty() {
        String::new()
    } else {
        parse_json::<SubscriptionAction>(&body)?.reason
    };
    let mut errors = Vec::new();
    let reason = validate::text("reason", &reason, REASON_MAX, &mut errors);
    if matches!(action.as_str(), "reject" | "cancel" | "suspend") && reason.is_empty() {
        errors.push(FieldError::new(
            "reason",
            format!("is required to {action}"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = Utc::now();
    let audit = admin.audit();
    if action == "renew" {
        return Ok(Json(
            state
                .billing
                .present(state.billing.renew_now(&id, now, &audit).await?),
        ));
    }
    let sub = state
        .store
        .subscription(&id)
        .await
        .map_err(for_resource("subscription", &id))?;
    let plan = state.store.plan(&sub.plan_id).await?;
    let current = state_of(&sub);
    let next = match action.as_str() {
        "approve" => lifecycle::approve(&current, terms(&plan), now),
        "reject" => lifecycle::reject(&current, &reason),
        "cancel" => lifecycle::cancel(&current, &reason),
        "suspend" => lifecycle::suspend(&current, &reason),
        "resume" => lifecycle::resume(&current),
        other => return Err(ApiError::NotFound(format!("subscription action `{other}`"))),
    }
    .map_err(|e| ApiError::Conflict(e.to_string()))?;
    let saved = state
        .store
        .save_subscription(
            &id,
            next,
            sub.version,
            &format!("subscription.{action}"),
            Some(&audit),
        )
        .await?;
    let saved = if action == "approve" {
        state
            .billing
            .first_charge(saved, &plan, now, &audit)
            .await?
    } else {
        saved
    };
    Ok(Json(state.billing.present(saved)))
}

/// Move a subscription to another plan. A paid period in progress runs to its
/// end and renews on the new plan; a subscription without a running period
/// (its plan had none, or it is past due) starts a new period now, charged to
/// the default card. The admin's change needs no approval; a pending
/// subscription stays pending, for the new plan.
#[utoipa::path(post, path = "/admin/v1/subscriptions/{id}/change-plan", tag = "subscriptions",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path)),
    request_body = ChangePlan,
    responses((status = 200, body = Subscription), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)))]
pub async fn change_plan(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChangePlan>,
) -> ApiResult<Json<Subscription>> {
    let plan_id = body.plan_id.as_str();
    let mut errors = Vec::new();
    validate::id("plan_id", plan_id, "plan", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let sub = state
        .store
        .subscription(&id)
        .await
        .map_err(for_resource("subscription", &id))?;
    if sub.plan_id == plan_id {
        return Err(ApiError::Conflict(
            "the subscription is already on this plan".into(),
        ));
    }
    let plan = match state.store.plan(plan_id).await {
        Ok(plan) => plan,
        Err(StoreError::NotFound) => {
            return Err(ApiError::NotFound(format!(
                "the plan `{plan_id}` (plan_id)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let now = Utc::now();
    let (next, after) = lifecycle::change_plan(&state_of(&sub), terms(&plan), now)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    let audit = admin.audit();
    let saved = state
        .store
        .change_subscription_plan(&id, &plan.id, next, sub.version, &audit)
        .await?;
    let saved = match after {
        lifecycle::AfterChange::Nothing => saved,
        lifecycle::AfterChange::ChargeNewPeriod => {
            let key = format!("change:{}:{}", saved.id, saved.version);
            state
                .billing
                .charge_new_period(saved, &plan, &key, now, &audit)
                .await?
        }
    };
    Ok(Json(state.billing.present(saved)))
}
