//! Wallets and their ledger: `/admin/v1/consumers/{id}/wallets/…`.
//! Every ledger write needs the `billing` scope and an `Idempotency-Key`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tollgate_api::{CreateLedgerEntry, FieldError, LedgerEntry, LedgerKind, Page, Problem, Wallet};

use super::auth::{Authorized, Billing, Read};
use super::{ApiJson, AppState, PageParams};
use crate::error::{ApiError, ApiResult, for_resource};
use crate::store::NewLedgerEntry;
use crate::validate;
use tollgate_api::money::{format_amount, parse_amount};

const REASON_MAX: usize = 500;

/// A consumer's wallets, one per currency.
#[utoipa::path(get, path = "/admin/v1/consumers/{id}/wallets", tag = "wallets",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<Wallet>), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn list_wallets(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Wallet>>> {
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    // Settled calls reach the disk in batches: wait for them, then add what
    // calls in flight hold.
    state.data.accounts.usage.flush().await;
    let reserved = state.data.accounts.reserved(&id).await;
    let wallets = state.store.wallets(&id).await?.into_iter().map(|mut w| {
        let held = reserved.get(&w.currency).copied().unwrap_or(0);
        let balance = parse_amount(&w.balance).unwrap_or(0);
        w.reserved = format_amount(held, 2);
        w.available = format_amount(balance - held, 2);
        w
    });
    Ok(Json(wallets.collect()))
}

/// The ledger of one wallet, newest first.
#[utoipa::path(get, path = "/admin/v1/consumers/{id}/wallets/{currency}/entries", tag = "wallets",
    security(("admin_token" = ["read"])),
    params(("id" = String, Path), ("currency" = String, Path), tollgate_api::PageQuery),
    responses((status = 200, body = Page<LedgerEntry>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_entries(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Path((id, currency)): Path<(String, String)>,
    page: PageParams,
) -> ApiResult<Json<Page<LedgerEntry>>> {
    let mut errors = Vec::new();
    validate::currency("currency", &currency, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    state.data.accounts.usage.flush().await;
    let (items, next) = state
        .store
        .list_ledger(&id, &currency, page.after, page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// Append an entry: top-up, refund, grant or adjustment. A replay with the
/// same `Idempotency-Key` returns the first entry and moves no money.
#[utoipa::path(post, path = "/admin/v1/consumers/{id}/wallets/{currency}/entries", tag = "wallets",
    security(("admin_token" = ["billing"])),
    params(("id" = String, Path), ("currency" = String, Path),
        ("Idempotency-Key" = String, Header, description = "Required: makes the write safe to retry")),
    request_body = CreateLedgerEntry,
    responses((status = 201, body = LedgerEntry), (status = 200, body = LedgerEntry, description = "A replay"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_entry(
    State(state): State<AppState>,
    admin: Authorized<Billing>,
    Path((id, currency)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateLedgerEntry>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if key.is_empty() {
        errors.push(FieldError::new(
            "Idempotency-Key",
            "is required for every ledger write",
        ));
    }
    let decimals =
        validate::currency("currency", &currency, &mut errors).and_then(|c| c.exponent());
    let amount = validate::amount("amount", &body.amount, false, decimals, &mut errors);
    let reason = validate::text("reason", &body.reason, REASON_MAX, &mut errors);
    match body.kind {
        LedgerKind::Usage => errors.push(FieldError::new(
            "kind",
            "usage is recorded by the gateway, not written by hand",
        )),
        LedgerKind::Adjustment if amount == 0 => {
            errors.push(FieldError::new("amount", "must not be zero"))
        }
        LedgerKind::TopUp | LedgerKind::Refund | LedgerKind::Grant if amount <= 0 => {
            errors.push(FieldError::new("amount", "must be greater than zero"));
        }
        _ => {}
    }
    if matches!(body.kind, LedgerKind::Adjustment | LedgerKind::Refund) && reason.is_empty() {
        errors.push(FieldError::new(
            "reason",
            "is required for adjustments and refunds",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    state
        .store
        .consumer(&id)
        .await
        .map_err(for_resource("consumer", &id))?;
    let entry = NewLedgerEntry {
        consumer_id: id,
        currency,
        kind: body.kind,
        amount_micros: amount,
        reason,
        idempotency_key: key,
        actor: admin.identity.id.clone(),
    };
    // Through the data plane's accounts, so cached balances follow the ledger.
    let (entry, replayed) = state.data.accounts.append(entry, &admin.audit()).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(entry)).into_response())
}
