//! `GET /v1/billing/status`: a consumer's own view of what it may spend.
//! Read from the cached subscriptions with their plans, the stored wallets,
//! credits used and default card, and what this node's calls spent that is
//! not stored yet (other nodes' calls count once their window is stored):
//! no flush of the usage writer, so no key can defeat its group commit by
//! asking.

use std::sync::Arc;

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tollgate_api::money::{format_amount, parse_amount};
use tollgate_api::{
    BillingStatus, CardStanding, KeyStanding, PlanSummary, SubscriptionStanding, WalletStanding,
};

use super::DataPlane;
use super::auth;
use super::refusal::Refusal;
use crate::billing::state_of;

pub async fn billing_status(
    plane: &Arc<DataPlane>,
    call: &mut super::Call,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let caller = auth::authenticate(plane, headers, Utc::now()).await?;
    call.caller(&caller);
    let key = caller.key();
    let consumer = key.consumer_id.as_str();
    let unavailable = |e: crate::store::StoreError| super::unreadable("billing", &e);
    let (covers, wallets, method) = tokio::join!(
        plane.hot.subscriptions(plane.store.as_ref(), consumer),
        plane.store.wallets(consumer),
        plane.store.default_payment_method(consumer),
    );
    let (covers, wallets, method) = (
        covers.map_err(unavailable)?,
        wallets.map_err(unavailable)?,
        method.map_err(unavailable)?,
    );
    let periods: Vec<(String, String)> = covers
        .iter()
        .map(|c| (c.sub.id.clone(), c.period.clone()))
        .collect();
    let usage = &plane.accounts.usage;
    let stored = plane
        .store
        .period_usages(periods.clone())
        .await
        .map_err(unavailable)?;
    let credits = stored
        .into_iter()
        .zip(&periods)
        .map(|(used, (sub, period))| used + usage.unsettled_credits(sub, period));
    let credits: Vec<i64> = credits.collect();
    let held = plane.accounts.reserved(consumer).await;
    let balances = wallets.iter().map(|w| {
        let balance = parse_amount(&w.balance).unwrap_or(0);
        let unsettled = usage.unsettled_wallet(consumer, &w.currency);
        let reserved = held.get(&w.currency).copied().unwrap_or(0);
        (balance - unsettled, reserved)
    });
    let balances: Vec<(i64, i64)> = balances.collect();
    let grace_days = plane.billing.grace_days();
    let subscriptions = covers
        .iter()
        .zip(credits)
        .map(|(c, used)| SubscriptionStanding {
            id: c.sub.id.clone(),
            status: c.sub.status,
            plan: PlanSummary {
                id: c.plan.id.clone(),
                name: c.plan.name.clone(),
                apis: c.plan.apis.clone(),
            },
            current_period_end: c.sub.current_period_end,
            grace_until: crate::lifecycle::grace_until(&state_of(&c.sub), grace_days),
            credits_included: c.plan.included_credits.clone(),
            credits_used: format_amount(used, 2),
            currency: c.plan.currency.clone(),
        })
        .collect();
    let wallets = wallets
        .into_iter()
        .zip(balances)
        .map(|(w, (balance, reserved))| WalletStanding {
            currency: w.currency,
            balance: format_amount(balance, 2),
            reserved: format_amount(reserved, 2),
            available: format_amount(balance - reserved, 2),
        })
        .collect();
    let payment_method = method.map(|(m, _)| CardStanding {
        brand: m.brand,
        last4: m.last4,
        expiry: format!("{:02}/{}", m.exp_month, m.exp_year),
        status: m.status,
        decline_code: m.last_decline_code,
    });
    Ok(Json(BillingStatus {
        consumer_id: consumer.to_owned(),
        key: KeyStanding {
            id: key.id.clone(),
            prefix: key.display_prefix.clone(),
            status: caller.status,
            expires_at: key.expires_at,
        },
        subscriptions,
        wallets,
        payment_method,
    })
    .into_response())
}
