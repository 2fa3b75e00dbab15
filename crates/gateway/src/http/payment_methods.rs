//! Payment methods and charges. A card number and CVC pass through here to
//! the processor once and are dropped; only the token and what may be shown
//! are kept. Writes need `billing`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tollgate_api::{AddPaymentMethod, Charge, Page, PaymentMethod, Problem};

use super::auth::{Authorized, Billing, Read};
use super::{ApiJson, AppState, PageParams};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::payments::CardDetails;

#[utoipa::path(get, path = "/admin/v1/consumers/{id}/payment-methods", tag = "payment-methods",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<PaymentMethod>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_payment_methods(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PaymentMethod>>> {
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    Ok(Json(state.store.payment_methods(&id).await?))
}

/// Put a card on file: tokenized and verified by the processor. A refused
/// card is a 402 `card-error` with the processor's `code` and `decline_code`.
#[utoipa::path(post, path = "/admin/v1/consumers/{id}/payment-methods", tag = "payment-methods",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path)),
    request_body = AddPaymentMethod,
    responses((status = 201, body = PaymentMethod), (status = 401, body = Problem), (status = 402, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_payment_method(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddPaymentMethod>,
) -> ApiResult<Response> {
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    let now = Utc::now();
    let Some(processor) = state.billing.processor() else {
        return Err(ApiError::Conflict(
            "the gateway has no payment processor: set one in the payment settings".into(),
        ));
    };
    let card = CardDetails {
        number: body.number,
        exp_month: body.exp_month,
        exp_year: body.exp_year,
        cvc: body.cvc,
    };
    let token = processor
        .tokenize(card, now)
        .await
        .map_err(ApiError::Card)?;
    processor
        .verify(&token, now)
        .await
        .map_err(ApiError::Card)?;
    let method = state
        .store
        .add_payment_method(
            &id,
            processor.name(),
            token,
            body.make_default,
            &admin.audit(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(method)).into_response())
}

/// Make a card the one renewals charge.
#[utoipa::path(post, path = "/admin/v1/payment-methods/{id}/default", tag = "payment-methods",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path)),
    responses((status = 200, body = PaymentMethod), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn set_default(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path(id): Path<String>,
) -> ApiResult<Json<PaymentMethod>> {
    Ok(Json(
        state
            .store
            .set_default_payment_method(&id, &admin.audit())
            .await
            .map_err(for_resource("payment method", &id))?,
    ))
}

/// Remove a card; its token is forgotten.
#[utoipa::path(delete, path = "/admin/v1/payment-methods/{id}", tag = "payment-methods",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .store
        .remove_payment_method(&id, &admin.audit())
        .await
        .map_err(for_resource("payment method", &id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every charge attempt for a consumer, newest first.
#[utoipa::path(get, path = "/admin/v1/consumers/{id}/charges", tag = "payment-methods",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path), tollgate_api::PageQuery),
    responses((status = 200, body = Page<Charge>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_charges(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
    page: PageParams,
) -> ApiResult<Json<Page<Charge>>> {
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    let (items, next) = state.store.charges(&id, page.after, page.limit).await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}
