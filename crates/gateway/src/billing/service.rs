//! Charging and renewals: the lifecycle applied to stored subscriptions, with
//! the payment processor. Used by the renewal job and by admin actions.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tollgate_api::money::parse_amount;
use tollgate_api::{Plan, Subscription, SubscriptionStatus};

use super::lifecycle::{self, Due, State, Terms};
use crate::error::{ApiError, for_resource};
use crate::payments::{CardError, PaymentProcessor};
use crate::store::{AuditContext, NewCharge, Store};

pub struct Billing {
    pub store: Arc<dyn Store>,
    pub processor: Arc<dyn PaymentProcessor>,
    /// Days a past-due subscription keeps its status before it expires.
    pub grace_days: u32,
}

pub fn terms(plan: &Plan) -> Terms {
    Terms {
        period: plan.period,
        price_micros: parse_amount(&plan.price).unwrap_or(0),
    }
}

pub fn state_of(sub: &Subscription) -> State {
    State {
        status: sub.status,
        period_start: sub.current_period_start,
        period_end: sub.current_period_end,
        auto_renew: sub.auto_renew,
        past_due_since: sub.past_due_since,
        reason: sub.status_reason.clone(),
    }
}

/// How a charge attempt ended, for the lifecycle.
pub enum ChargeOutcome {
    Paid,
    Failed(String),
}

impl Billing {
    /// The subscription as answered by the API: with its grace deadline.
    pub fn present(&self, mut sub: Subscription) -> Subscription {
        sub.grace_until = if sub.status == SubscriptionStatus::PastDue {
            lifecycle::grace_until(&state_of(&sub), self.grace_days)
        } else {
            None
        };
        sub
    }

    /// Charges the consumer's default card and records the attempt.
    pub async fn charge(
        &self,
        sub: &Subscription,
        plan: &Plan,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<ChargeOutcome, ApiError> {
        let amount = terms(plan).price_micros;
        let method = self.store.default_payment_method(&sub.consumer_id).await?;
        let (method_id, result) = match method {
            None => (
                None,
                Err(CardError::new(
                    "no_payment_method",
                    "The consumer has no payment method on file.",
                )),
            ),
            Some((method, token)) => {
                let result = self
                    .processor
                    .charge(&token, amount, &plan.currency, idempotency_key, now)
                    .await;
                (Some(method.id), result)
            }
        };
        let (failure, processor_charge_id) = match result {
            Ok(receipt) => (None, Some(receipt.charge_id)),
            Err(e) => (Some(e), None),
        };
        let outcome = match &failure {
            None => ChargeOutcome::Paid,
            Some(e) => ChargeOutcome::Failed(match &e.decline_code {
                Some(d) => format!("renewal charge failed: {} ({d})", e.code),
                None => format!("renewal charge failed: {}", e.code),
            }),
        };
        self.store
            .record_charge(NewCharge {
                consumer_id: sub.consumer_id.clone(),
                payment_method_id: method_id,
                subscription_id: Some(sub.id.clone()),
                amount_micros: amount,
                currency: plan.currency.clone(),
                failure,
                processor_charge_id,
            })
            .await?;
        Ok(outcome)
    }

    /// Charges and applies the result to the lifecycle.
    async fn charge_and_apply(
        &self,
        sub: &Subscription,
        plan: &Plan,
        key: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditContext>,
    ) -> Result<Subscription, ApiError> {
        let state = state_of(sub);
        let (next, action) = match self.charge(sub, plan, key, now).await? {
            ChargeOutcome::Paid => (
                lifecycle::charged(&state, terms(plan), now),
                "subscription.renew",
            ),
            ChargeOutcome::Failed(reason) => (
                lifecycle::charge_failed(&state, &reason, now),
                "subscription.renewal_failed",
            ),
        };
        Ok(self
            .store
            .save_subscription(&sub.id, next, sub.version, action, audit)
            .await?)
    }

    /// The first charge of a new, active, priced subscription.
    pub async fn first_charge(
        &self,
        sub: Subscription,
        plan: &Plan,
        now: DateTime<Utc>,
        audit: &AuditContext,
    ) -> Result<Subscription, ApiError> {
        if sub.status != SubscriptionStatus::Active || terms(plan).price_micros == 0 {
            return Ok(sub);
        }
        let key = format!("first:{}", sub.id);
        match self.charge(&sub, plan, &key, now).await? {
            ChargeOutcome::Paid => Ok(sub),
            ChargeOutcome::Failed(reason) => {
                let next = lifecycle::charge_failed(&state_of(&sub), &reason, now);
                Ok(self
                    .store
                    .save_subscription(
                        &sub.id,
                        next,
                        sub.version,
                        "subscription.renewal_failed",
                        Some(audit),
                    )
                    .await?)
            }
        }
    }

    /// Whatever is due for one subscription at `now` (the renewal job).
    pub async fn process_due(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Subscription>, ApiError> {
        let sub = self.store.subscription(id).await?;
        let plan = self.store.plan(&sub.plan_id).await?;
        match lifecycle::due(&state_of(&sub), terms(&plan), self.grace_days, now) {
            Due::Nothing => Ok(None),
            Due::Transition(next) => {
                let action = if next.status == SubscriptionStatus::Expired {
                    "subscription.expire"
                } else {
                    "subscription.renew"
                };
                Ok(Some(
                    self.store
                        .save_subscription(id, next, sub.version, action, None)
                        .await?,
                ))
            }
            Due::Charge => {
                let key = format!(
                    "renewal:{id}:{}",
                    sub.current_period_end.map(|t| t.timestamp()).unwrap_or(0)
                );
                Ok(Some(
                    self.charge_and_apply(&sub, &plan, &key, now, None).await?,
                ))
            }
        }
    }

    /// An admin's "renew now": retries a past-due charge, renews a due or
    /// expired subscription. Refused when nothing is owed.
    pub async fn renew_now(
        &self,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditContext,
    ) -> Result<Subscription, ApiError> {
        let sub = self
            .store
            .subscription(id)
            .await
            .map_err(for_resource("subscription", id))?;
        let plan = self.store.plan(&sub.plan_id).await?;
        let due_now = matches!(
            lifecycle::due(&state_of(&sub), terms(&plan), self.grace_days, now),
            Due::Charge
        );
        match sub.status {
            SubscriptionStatus::PastDue | SubscriptionStatus::Expired => {}
            SubscriptionStatus::Active if due_now => {}
            SubscriptionStatus::Active => {
                let until = sub
                    .current_period_end
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "ever".into());
                return Err(ApiError::Conflict(format!(
                    "nothing is due: the current period runs until {until}"
                )));
            }
            other => {
                return Err(ApiError::Conflict(format!(
                    "a subscription that is {} cannot be renewed",
                    other.as_str()
                )));
            }
        }
        if terms(&plan).price_micros == 0 {
            let next = lifecycle::charged(&state_of(&sub), terms(&plan), now);
            return Ok(self
                .store
                .save_subscription(id, next, sub.version, "subscription.renew", Some(audit))
                .await?);
        }
        let key = format!("manual:{id}:{}", sub.version);
        let state_before = sub.status;
        let renewed = self
            .charge_and_apply(&sub, &plan, &key, now, Some(audit))
            .await?;
        if state_before == SubscriptionStatus::Expired
            && renewed.status != SubscriptionStatus::Active
        {
            // An expired subscription stays expired when its charge fails.
            let back = State {
                status: SubscriptionStatus::Expired,
                ..state_of(&renewed)
            };
            return Ok(self
                .store
                .save_subscription(
                    id,
                    back,
                    renewed.version,
                    "subscription.renewal_failed",
                    Some(audit),
                )
                .await?);
        }
        Ok(renewed)
    }

    /// Processes every live subscription; returns how many changed.
    pub async fn run_due(&self, now: DateTime<Utc>) -> usize {
        let ids = match self.store.live_subscription_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "renewal job could not list subscriptions");
                return 0;
            }
        };
        let mut changed = 0;
        for id in ids {
            match self.process_due(&id, now).await {
                Ok(Some(_)) => changed += 1,
                Ok(None) => {}
                // Another writer moved it first; the next run sees the new state.
                Err(ApiError::PreconditionFailed { .. }) => {}
                Err(e) => tracing::error!(subscription = %id, error = %e, "renewal failed to run"),
            }
        }
        changed
    }
}
