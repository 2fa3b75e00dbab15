//! `GET /v1/billing/status`: a consumer's own view of what it may spend.

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::auth;
use super::refusal::Refusal;
use crate::billing::service::state_of;
use crate::http::AppState;
use crate::store::SubscriptionFilter;

pub async fn billing_status(
    state: &AppState,
    call: &mut super::Call,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let caller = auth::authenticate(&state.billing, headers, Utc::now()).await?;
    call.caller(&caller);
    let consumer = caller.key().consumer_id.clone();
    state.data.accounts.usage.flush().await;
    let filter = SubscriptionFilter {
        consumer_id: Some(consumer.clone()),
        ..Default::default()
    };
    let mut subscriptions = Vec::new();
    if let Ok((subs, _)) = state.store.list_subscriptions(filter, 0, 200).await {
        for sub in subs {
            let Ok(plan) = state.store.plan(&sub.plan_id).await else {
                continue;
            };
            let period = super::hot::period_key(&sub);
            let used = state
                .store
                .period_usage(&sub.id, &period)
                .await
                .unwrap_or(0);
            let grace =
                crate::billing::lifecycle::grace_until(&state_of(&sub), state.billing.grace_days());
            subscriptions.push(json!({
                "id": sub.id, "status": sub.status, "plan": {"id": plan.id, "name": plan.name, "apis": plan.apis},
                "current_period_end": sub.current_period_end, "grace_until": grace,
                "credits_included": plan.included_credits, "credits_used": tollgate_api::money::format_amount(used, 2),
                "currency": plan.currency,
            }));
        }
    }
    let wallets = state.store.wallets(&consumer).await.unwrap_or_default();
    let method = state.store.default_payment_method(&consumer).await.ok().flatten().map(|(m, _)| {
        json!({"brand": m.brand, "last4": m.last4, "expiry": format!("{:02}/{}", m.exp_month, m.exp_year),
               "status": m.status, "decline_code": m.last_decline_code})
    });
    Ok(Json(json!({
        "consumer_id": consumer,
        "key": {"id": caller.key().id, "prefix": caller.key().display_prefix, "status": caller.status, "expires_at": caller.key().expires_at},
        "subscriptions": subscriptions,
        "wallets": wallets,
        "payment_method": method,
    }))
    .into_response())
}
