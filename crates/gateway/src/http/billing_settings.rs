//! The gateway's payment settings and the billing check.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use tollgate_api::{
    BillingCheck, FieldError, PaymentSettings, Problem, ProcessorTest, UpdatePaymentSettings,
};

use super::auth::{Authorized, Billing, Read};
use super::{ApiJson, AppState, QueryOf, if_match};
use crate::error::{ApiError, ApiResult};

/// The payment settings; credentials only as "set" and their last 4 characters.
#[utoipa::path(get, path = "/admin/v1/billing/settings", tag = "billing",
    security(("admin_token" = ["read"])),
    responses((status = 200, body = PaymentSettings), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn get_settings(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> ApiResult<Json<PaymentSettings>> {
    Ok(Json(state.billing.settings_view()))
}

/// Change the payment settings; credentials are sealed before they are stored.
/// Honours `If-Match` with the settings' `version`.
#[utoipa::path(put, path = "/admin/v1/billing/settings", tag = "billing",
    security(("admin_token" = ["billing"])),
    params(("If-Match" = Option<String>, Header)),
    request_body = UpdatePaymentSettings,
    responses((status = 200, body = PaymentSettings), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_settings(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UpdatePaymentSettings>,
) -> ApiResult<Json<PaymentSettings>> {
    Ok(Json(
        state
            .billing
            .update_settings(patch, if_match(&headers), &admin.audit())
            .await?,
    ))
}

/// `?processor=` of the connection test.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TestedProcessor {
    /// The processor whose saved credentials to test (default: the one in
    /// force), so that Stripe's keys can be tried before switching to it.
    #[param(pattern = "^(test|stripe|none)?$")]
    pub processor: Option<String>,
}

/// Whether a processor's saved credentials work: for `stripe`, one request
/// to its API with the secret key (answered within 5 s). 200 whatever the
/// finding, which is in the body.
#[utoipa::path(post, path = "/admin/v1/billing/settings/test", tag = "billing",
    security(("admin_token" = ["billing"])),
    params(TestedProcessor),
    responses((status = 200, body = ProcessorTest), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn test_settings(
    State(state): State<AppState>,
    _: Authorized<Billing>,
    QueryOf(query): QueryOf<TestedProcessor>,
) -> ApiResult<Json<ProcessorTest>> {
    let processor = query.processor.filter(|p| !p.is_empty());
    if let Some(p) = &processor
        && !["test", "stripe", "none"].contains(&p.as_str())
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "processor",
            "must be test, stripe or none",
        )]));
    }
    Ok(Json(
        state.billing.test_processor(processor.as_deref()).await,
    ))
}

/// Every misconfiguration of the payment settings and plans, and how many
/// calls were refused with 503 because of them.
#[utoipa::path(post, path = "/admin/v1/billing/check", tag = "billing",
    security(("admin_token" = ["read"])),
    responses((status = 200, body = BillingCheck), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> ApiResult<Json<BillingCheck>> {
    let pricing = state.data.pricing;
    let routes = state.data.route_table().await?;
    // Calls are free only when neither the gateway's fees nor a provider's
    // models cost anything.
    let free = pricing.per_request == 0 && pricing.per_1k_tokens == 0 && routes.is_free();
    let providers: Vec<_> = state
        .store
        .routing_table()
        .await?
        .into_iter()
        .map(|(p, keys)| (p, keys.into_iter().map(|k| k.key).collect()))
        .collect();
    let upstream = state.data.upstream.is_some();
    Ok(Json(state.billing.check(upstream, free, &providers).await?))
}
