//! Which subscription pays for a call, or why none can: the 403 and 402
//! answers of the data plane.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::json;
use tollgate_api::{PaymentMethod, PaymentMethodStatus, SubscriptionStatus};

use super::DataPlane;
use super::auth::Caller;
use super::hot::Coverage;
use super::refusal::Refusal;
use crate::billing::state_of;
use crate::lifecycle;

fn unavailable() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-unavailable",
        "Billing unavailable",
        "The gateway cannot check subscriptions right now.",
    )
}

fn method_fields(method: &PaymentMethod) -> serde_json::Value {
    json!({
        "brand": method.brand,
        "last4": method.last4,
        "expiry": format!("{:02}/{}", method.exp_month, method.exp_year),
        "status": method.status,
        "decline_code": method.last_decline_code.clone().or(method.last_failure_code.clone()),
    })
}

/// 503: the gateway's own payment settings are broken; never the consumer's fault.
pub fn billing_unavailable() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-unavailable",
        "Billing unavailable",
        "The gateway cannot bill this call because of its own payment settings; its admins have been alerted. Retry later.",
    )
    .header(axum::http::header::RETRY_AFTER, "60".into())
}

/// The subscription that covers `api` for this caller, with its plan.
pub async fn subscription_for(
    plane: &DataPlane,
    caller: &Caller,
    api: &str,
    now: DateTime<Utc>,
) -> Result<Arc<Coverage>, Refusal> {
    let key = caller.key();
    if !key.allowed_apis.is_empty() && !key.allowed_apis.iter().any(|a| a == api) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "not-subscribed",
            "Not subscribed",
            format!(
                "The key {} may not call the `{api}` API.",
                key.display_prefix
            ),
        )
        .field("api", api));
    }
    let (store, billing) = (&plane.store, &plane.billing);
    let all = plane
        .hot
        .subscriptions(store.as_ref(), &key.consumer_id)
        .await
        .map_err(|_| unavailable())?;
    let best = all
        .iter()
        .filter(|c| c.plan.apis.iter().any(|a| a == api))
        .min_by_key(|c| c.sub.status.cover_rank());
    let Some(cover) = best else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "not-subscribed",
            "Not subscribed",
            format!("No subscription of this consumer covers the `{api}` API."),
        )
        .field("api", api));
    };
    let (sub, plan) = (&cover.sub, &cover.plan);
    let with_ids = |r: Refusal| r.covering(cover);
    match sub.status {
        SubscriptionStatus::Active => Ok(cover.clone()),
        SubscriptionStatus::PendingApproval => Err(with_ids(Refusal::new(
            StatusCode::FORBIDDEN,
            "subscription-pending-approval",
            "Subscription pending approval",
            format!(
                "The subscription to {} waits for an admin's approval.",
                plan.name
            ),
        ))),
        SubscriptionStatus::Suspended => Err(with_ids(Refusal::new(
            StatusCode::FORBIDDEN,
            "subscription-suspended",
            "Subscription suspended",
            format!(
                "The subscription to {} is suspended: {}.",
                plan.name,
                sub.status_reason
                    .clone()
                    .unwrap_or_else(|| "no reason given".into())
            ),
        ))),
        // A renewal that failed for want of a processor is the gateway's fault.
        SubscriptionStatus::PastDue
            if sub
                .status_reason
                .as_deref()
                .is_some_and(|r| r.contains("processor_not_configured")) =>
        {
            billing
                .record_incident("a subscription is past due because no payment processor is set");
            Err(billing_unavailable())
        }
        SubscriptionStatus::PastDue => {
            let method = store
                .default_payment_method(&sub.consumer_id)
                .await
                .map_err(|_| unavailable())?
                .map(|(m, _)| m);
            let grace = lifecycle::grace_until(&state_of(sub), billing.grace_days());
            let card_invalid = match &method {
                None => true,
                Some(m) => {
                    m.status == PaymentMethodStatus::Expired
                        || m.last_failure_code
                            .as_deref()
                            .is_some_and(|c| tollgate_api::CARD_INVALID_CODES.contains(&c))
                }
            };
            let (slug, title, message) = if card_invalid {
                let what = match &method {
                    None => "there is no card on file".to_owned(),
                    Some(m) => format!(
                        "the {} card ending {} ({:02}/{}) is invalid",
                        m.brand, m.last4, m.exp_month, m.exp_year
                    ),
                };
                (
                    "payment-method-invalid",
                    "Payment method invalid",
                    format!(
                        "The renewal of {} could not be charged: {what}. Add a valid card.",
                        plan.name
                    ),
                )
            } else {
                let decline = method
                    .as_ref()
                    .and_then(|m| m.last_decline_code.clone())
                    .unwrap_or_else(|| "declined".into());
                (
                    "subscription-past-due",
                    "Subscription past due",
                    format!(
                        "The renewal charge for {} failed ({decline}); the subscription is past due.",
                        plan.name
                    ),
                )
            };
            let mut refusal = with_ids(Refusal::new(
                StatusCode::PAYMENT_REQUIRED,
                slug,
                title,
                message,
            ));
            if let Some(m) = &method {
                refusal = refusal.field("payment_method", method_fields(m));
            }
            if let Some(g) = grace {
                refusal = refusal.field("grace_until", g.to_rfc3339());
            }
            Err(refusal)
        }
        SubscriptionStatus::Expired
        | SubscriptionStatus::Canceled
        | SubscriptionStatus::Rejected => {
            if sub.status != SubscriptionStatus::Expired {
                return Err(with_ids(Refusal::new(
                    StatusCode::FORBIDDEN,
                    "not-subscribed",
                    "Not subscribed",
                    format!(
                        "The subscription to {} was {}.",
                        plan.name,
                        sub.status.as_str()
                    ),
                )));
            }
            let ended = sub.current_period_end.unwrap_or(now);
            let mut refusal = with_ids(Refusal::new(
                StatusCode::PAYMENT_REQUIRED,
                "subscription-expired",
                "Subscription expired",
                format!(
                    "The subscription to {} expired on {}.",
                    plan.name,
                    ended.format("%Y-%m-%d")
                ),
            ))
            .field("expires_at", ended.to_rfc3339());
            if let Some(reason) = &sub.status_reason {
                refusal = refusal.field("expiry_reason", reason.clone());
            }
            Err(refusal)
        }
    }
}
