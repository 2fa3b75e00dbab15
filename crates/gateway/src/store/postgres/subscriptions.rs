//! Subscriptions, payment methods and charges in PostgreSQL.

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tollgate_api::money::format_amount;
use tollgate_api::{
    Charge, ChargeStatus, PaymentMethod, PaymentMethodStatus, Subscription, SubscriptionStatus,
};

use super::{Column, PgStore, audit, backend, is_foreign_key_violation, now, page};
use crate::changes::Change;
use crate::ids;
use crate::lifecycle::State;
use crate::payments::CardToken;
use crate::store::{
    AuditContext, NewCharge, StoreError, StoreResult, SubscriptionFilter, SubscriptionStore,
};

const SUB_COLUMNS: &str = "id, consumer_id, plan_id, status, status_reason, period_start, period_end, \
     auto_renew, past_due_since, created_at, updated_at, version, seq";

fn sub_row(r: &Row) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: r.col("id")?,
        consumer_id: r.col("consumer_id")?,
        plan_id: r.col("plan_id")?,
        status: SubscriptionStatus::parse(r.col("status")?)
            .unwrap_or(SubscriptionStatus::Suspended),
        status_reason: r.col("status_reason")?,
        current_period_start: r.col("period_start")?,
        current_period_end: r.col("period_end")?,
        auto_renew: r.col("auto_renew")?,
        past_due_since: r.col("past_due_since")?,
        grace_until: None,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        version: r.col("version")?,
    })
}

async fn load_sub(client: &impl GenericClient, id: &str, lock: bool) -> StoreResult<Subscription> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = $1{lock}"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(sub_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

const PM_COLUMNS: &str = "id, consumer_id, processor, brand, last4, exp_month, exp_year, failed, \
     is_default, last_failure_code, last_decline_code, created_at, token";

fn pm_row(r: &Row) -> StoreResult<(PaymentMethod, CardToken)> {
    let exp_month =
        u32::try_from(r.col::<i32>("exp_month")?).map_err(|e| StoreError::Backend(e.into()))?;
    let exp_year: i32 = r.col("exp_year")?;
    let failed: bool = r.col("failed")?;
    let status = if crate::payments::expired(exp_month, exp_year, Utc::now()) {
        PaymentMethodStatus::Expired
    } else if failed {
        PaymentMethodStatus::Failed
    } else {
        PaymentMethodStatus::Active
    };
    let method = PaymentMethod {
        id: r.col("id")?,
        consumer_id: r.col("consumer_id")?,
        processor: r.col("processor")?,
        brand: r.col("brand")?,
        last4: r.col("last4")?,
        exp_month,
        exp_year,
        status,
        is_default: r.col("is_default")?,
        last_failure_code: r.col("last_failure_code")?,
        last_decline_code: r.col("last_decline_code")?,
        created_at: r.col("created_at")?,
    };
    let token = CardToken {
        token: r.col("token")?,
        brand: method.brand.clone(),
        last4: method.last4.clone(),
        exp_month,
        exp_year,
    };
    Ok((method, token))
}

async fn load_pm(tx: &Transaction<'_>, id: &str) -> StoreResult<PaymentMethod> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT {PM_COLUMNS} FROM payment_methods WHERE id = $1 AND removed_at IS NULL FOR UPDATE"
            ),
            &[&id],
        )
        .await
        .map_err(backend)?;
    Ok(row
        .as_ref()
        .map(pm_row)
        .transpose()?
        .ok_or(StoreError::NotFound)?
        .0)
}

/// A consumer's cards are changed one writer at a time (one default at most).
async fn lock_consumer(tx: &Transaction<'_>, consumer_id: &str) -> StoreResult<()> {
    let found = tx
        .query_opt(
            "SELECT 1 FROM consumers WHERE id = $1 FOR UPDATE",
            &[&consumer_id],
        )
        .await
        .map_err(backend)?;
    found.map(|_| ()).ok_or(StoreError::NotFound)
}

const CHARGE_COLUMNS: &str = "id, consumer_id, payment_method_id, subscription_id, amount_micros, \
     currency, status, failure_code, decline_code, failure_message, processor_charge_id, created_at, seq";

fn charge_row(r: &Row) -> StoreResult<Charge> {
    let status: &str = r.col("status")?;
    Ok(Charge {
        id: r.col("id")?,
        consumer_id: r.col("consumer_id")?,
        payment_method_id: r.col("payment_method_id")?,
        subscription_id: r.col("subscription_id")?,
        amount: format_amount(r.col("amount_micros")?, 2),
        currency: r.col("currency")?,
        status: if status == "succeeded" {
            ChargeStatus::Succeeded
        } else {
            ChargeStatus::Failed
        },
        failure_code: r.col("failure_code")?,
        decline_code: r.col("decline_code")?,
        failure_message: r.col("failure_message")?,
        processor_charge_id: r.col("processor_charge_id")?,
        created_at: r.col("created_at")?,
    })
}

fn fk_not_found(e: tokio_postgres::Error) -> StoreError {
    if is_foreign_key_violation(&e) {
        StoreError::NotFound
    } else {
        backend(e)
    }
}

fn sub_change(sub: &Subscription) -> Change {
    Change::Subscription {
        subscription_id: sub.id.clone(),
        consumer_id: sub.consumer_id.clone(),
    }
}

#[async_trait]
impl SubscriptionStore for PgStore {
    async fn create_subscription(
        &self,
        consumer_id: &str,
        plan_id: &str,
        state: State,
        ctx: &AuditContext,
    ) -> StoreResult<Subscription> {
        self.write_changes(async |tx, changes| {
            let id = ids::new_id("sub");
            tx.execute(
                "INSERT INTO subscriptions (id, consumer_id, plan_id, status, status_reason, period_start, \
                 period_end, auto_renew, past_due_since, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1)",
                &[
                    &id,
                    &consumer_id,
                    &plan_id,
                    &state.status.as_str(),
                    &state.reason,
                    &state.period_start,
                    &state.period_end,
                    &state.auto_renew,
                    &state.past_due_since,
                    &now(),
                ],
            )
            .await
            .map_err(fk_not_found)?;
            audit(tx, ctx, "subscription.create", &id).await?;
            let sub = load_sub(tx, &id, false).await?;
            changes.push(sub_change(&sub));
            Ok(sub)
        })
        .await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Subscription> {
        load_sub(&self.client().await?, id, false).await
    }

    async fn list_subscriptions(
        &self,
        filter: SubscriptionFilter,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Subscription>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {SUB_COLUMNS} FROM subscriptions WHERE seq > $1 \
                     AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR consumer_id = $3) \
                     AND ($4::text IS NULL OR plan_id = $4) ORDER BY seq LIMIT $5"
                ),
                &[
                    &after,
                    &filter.status.map(|s| s.as_str()),
                    &filter.consumer_id,
                    &filter.plan_id,
                    &(i64::from(limit) + 1),
                ],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, sub_row)
    }

    async fn live_subscription_ids(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id FROM subscriptions WHERE status IN ('active', 'past_due') ORDER BY seq",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|r| r.col("id")).collect()
    }

    async fn save_subscription(
        &self,
        id: &str,
        state: State,
        expected_version: i64,
        action: &str,
        ctx: Option<&AuditContext>,
    ) -> StoreResult<Subscription> {
        let renewal_job = AuditContext {
            token_id: "gateway".into(),
            request_id: "renewal-job".into(),
        };
        let ctx = ctx.unwrap_or(&renewal_job);
        let load = async |tx: &Transaction<'_>, id: &str| load_sub(tx, id, true).await;
        self.versioned_write(
            id,
            Some(expected_version),
            ctx,
            load,
            async |tx, id, _, changes| {
                tx.execute(
                    "UPDATE subscriptions SET status = $2, status_reason = $3, period_start = $4, \
                 period_end = $5, auto_renew = $6, past_due_since = $7, updated_at = $8, \
                 version = version + 1 WHERE id = $1",
                    &[
                        &id,
                        &state.status.as_str(),
                        &state.reason,
                        &state.period_start,
                        &state.period_end,
                        &state.auto_renew,
                        &state.past_due_since,
                        &now(),
                    ],
                )
                .await
                .map_err(backend)?;
                let sub = load_sub(tx, id, false).await?;
                changes.push(sub_change(&sub));
                Ok((sub, action.to_owned().into()))
            },
        )
        .await
    }

    async fn change_subscription_plan(
        &self,
        id: &str,
        plan_id: &str,
        state: State,
        expected_version: i64,
        ctx: &AuditContext,
    ) -> StoreResult<Subscription> {
        let load = async |tx: &Transaction<'_>, id: &str| load_sub(tx, id, true).await;
        self.versioned_write(
            id,
            Some(expected_version),
            ctx,
            load,
            async |tx, id, _, changes| {
                tx.execute(
                    "UPDATE subscriptions SET plan_id = $2, status = $3, status_reason = $4, \
                 period_start = $5, period_end = $6, auto_renew = $7, past_due_since = $8, \
                 updated_at = $9, version = version + 1 WHERE id = $1",
                    &[
                        &id,
                        &plan_id,
                        &state.status.as_str(),
                        &state.reason,
                        &state.period_start,
                        &state.period_end,
                        &state.auto_renew,
                        &state.past_due_since,
                        &now(),
                    ],
                )
                .await
                .map_err(fk_not_found)?;
                let sub = load_sub(tx, id, false).await?;
                changes.push(sub_change(&sub));
                Ok((sub, "subscription.change_plan".into()))
            },
        )
        .await
    }

    async fn add_payment_method(
        &self,
        consumer_id: &str,
        processor: &str,
        card: CardToken,
        make_default: bool,
        ctx: &AuditContext,
    ) -> StoreResult<PaymentMethod> {
        self.write_changes(async |tx, changes| {
            lock_consumer(tx, consumer_id).await?;
            let has_default: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE consumer_id = $1 \
                     AND is_default AND removed_at IS NULL) AS any",
                    &[&consumer_id],
                )
                .await
                .map_err(backend)?
                .col("any")?;
            // The first card is the default; a later one only when asked.
            let default = make_default || !has_default;
            if default {
                tx.execute(
                    "UPDATE payment_methods SET is_default = false WHERE consumer_id = $1",
                    &[&consumer_id],
                )
                .await
                .map_err(backend)?;
            }
            let id = ids::new_id("pm");
            let exp_month = i32::try_from(card.exp_month).map_err(|e| StoreError::Backend(e.into()))?;
            tx.execute(
                "INSERT INTO payment_methods (id, consumer_id, processor, token, brand, last4, exp_month, \
                 exp_year, is_default, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &id,
                    &consumer_id,
                    &processor,
                    &card.token,
                    &card.brand,
                    &card.last4,
                    &exp_month,
                    &card.exp_year,
                    &default,
                    &now(),
                ],
            )
            .await
            .map_err(fk_not_found)?;
            audit(tx, ctx, "payment_method.add", &id).await?;
            changes.push(Change::PaymentMethods { consumer_id: consumer_id.to_owned() });
            load_pm(tx, &id).await
        })
        .await
    }

    async fn payment_methods(&self, consumer_id: &str) -> StoreResult<Vec<PaymentMethod>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {PM_COLUMNS} FROM payment_methods WHERE consumer_id = $1 \
                     AND removed_at IS NULL ORDER BY seq"
                ),
                &[&consumer_id],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|r| pm_row(r).map(|(m, _)| m)).collect()
    }

    async fn default_payment_method(
        &self,
        consumer_id: &str,
    ) -> StoreResult<Option<(PaymentMethod, CardToken)>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {PM_COLUMNS} FROM payment_methods WHERE consumer_id = $1 \
                     AND is_default AND removed_at IS NULL"
                ),
                &[&consumer_id],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(pm_row).transpose()
    }

    async fn set_default_payment_method(
        &self,
        id: &str,
        ctx: &AuditContext,
    ) -> StoreResult<PaymentMethod> {
        self.write_changes(async |tx, changes| {
            let method = load_pm(tx, id).await?;
            lock_consumer(tx, &method.consumer_id).await?;
            // Two statements: a unique index allows one default at every step.
            tx.execute(
                "UPDATE payment_methods SET is_default = false WHERE consumer_id = $1 AND is_default",
                &[&method.consumer_id],
            )
            .await
            .map_err(backend)?;
            tx.execute("UPDATE payment_methods SET is_default = true WHERE id = $1", &[&id])
                .await
                .map_err(backend)?;
            audit(tx, ctx, "payment_method.set_default", id).await?;
            changes.push(Change::PaymentMethods {
                consumer_id: method.consumer_id.clone(),
            });
            load_pm(tx, id).await
        })
        .await
    }

    async fn remove_payment_method(&self, id: &str, ctx: &AuditContext) -> StoreResult<()> {
        self.write_changes(async |tx, changes| {
            let method = load_pm(tx, id).await?;
            // The token is dropped with the card: nothing can charge it again.
            tx.execute(
                "UPDATE payment_methods SET removed_at = $2, is_default = false, token = '' WHERE id = $1",
                &[&id, &now()],
            )
            .await
            .map_err(backend)?;
            audit(tx, ctx, "payment_method.remove", id).await?;
            changes.push(Change::PaymentMethods { consumer_id: method.consumer_id });
            Ok(())
        })
        .await
    }

    async fn record_charge(&self, charge: NewCharge) -> StoreResult<Charge> {
        self.write_changes(async |tx, _| {
            let id = ids::new_id("chg");
            let failure = charge.failure.as_ref();
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO charges (id, consumer_id, payment_method_id, subscription_id, \
                         amount_micros, currency, status, failure_code, decline_code, failure_message, \
                         processor_charge_id, created_at, idempotency_key) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {CHARGE_COLUMNS}"
                    ),
                    &[
                        &id,
                        &charge.consumer_id,
                        &charge.payment_method_id,
                        &charge.subscription_id,
                        &charge.amount_micros,
                        &charge.currency,
                        &if failure.is_some() { "failed" } else { "succeeded" },
                        &failure.map(|f| f.code.clone()),
                        &failure.and_then(|f| f.decline_code.clone()),
                        &failure.map(|f| f.message.clone()),
                        &charge.processor_charge_id,
                        &now(),
                        &charge.idempotency_key,
                    ],
                )
                .await
                .map_err(|e| {
                    if super::is_unique_violation(&e) {
                        StoreError::Conflict(crate::store::CHARGED_ALREADY.into())
                    } else {
                        fk_not_found(e)
                    }
                })?;
            if let Some(pm) = &charge.payment_method_id {
                tx.execute(
                    "UPDATE payment_methods SET failed = $2, last_failure_code = $3, \
                     last_decline_code = $4 WHERE id = $1",
                    &[
                        pm,
                        &failure.is_some(),
                        &failure.map(|f| f.code.clone()),
                        &failure.and_then(|f| f.decline_code.clone()),
                    ],
                )
                .await
                .map_err(backend)?;
            }
            charge_row(&row)
        })
        .await
    }

    async fn succeeded_charge(
        &self,
        subscription_id: &str,
        idempotency_key: &str,
    ) -> StoreResult<Option<Charge>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {CHARGE_COLUMNS} FROM charges WHERE subscription_id = $1 \
                     AND idempotency_key = $2 AND status = 'succeeded'"
                ),
                &[&subscription_id, &idempotency_key],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(charge_row).transpose()
    }

    async fn charges(
        &self,
        consumer_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<Charge>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {CHARGE_COLUMNS} FROM charges WHERE consumer_id = $1 AND seq < $2 \
                     ORDER BY seq DESC LIMIT $3"
                ),
                &[
                    &consumer_id,
                    &before.unwrap_or(i64::MAX),
                    &(i64::from(limit) + 1),
                ],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, charge_row)
    }
}
