//! Subscriptions, payment methods and charges in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tollgate_api::money::format_amount;
use tollgate_api::{
    Charge, ChargeStatus, PaymentMethod, PaymentMethodStatus, Subscription, SubscriptionStatus,
};

use super::{SqliteStore, audit, backend, is_foreign_key_violation, page, parse_ts, ts};
use crate::changes::Change;
use crate::ids;
use crate::lifecycle::State;
use crate::payments::CardToken;
use crate::store::{
    AuditContext, NewCharge, StoreError, StoreResult, SubscriptionFilter, SubscriptionStore,
};

fn opt_ts(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| parse_ts(&s))
        .transpose()
}

const SUB_COLUMNS: &str = "id, consumer_id, plan_id, status, status_reason, period_start, period_end, auto_renew, \
     past_due_since, created_at, updated_at, version, seq";

fn sub_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Subscription, i64)> {
    let status: String = r.get(3)?;
    Ok((
        Subscription {
            id: r.get(0)?,
            consumer_id: r.get(1)?,
            plan_id: r.get(2)?,
            status: SubscriptionStatus::parse(&status).unwrap_or(SubscriptionStatus::Suspended),
            status_reason: r.get(4)?,
            current_period_start: opt_ts(r, 5)?,
            current_period_end: opt_ts(r, 6)?,
            auto_renew: r.get(7)?,
            past_due_since: opt_ts(r, 8)?,
            grace_until: None,
            created_at: parse_ts(&r.get::<_, String>(9)?)?,
            updated_at: parse_ts(&r.get::<_, String>(10)?)?,
            version: r.get(11)?,
        },
        r.get(12)?,
    ))
}

fn load_sub(conn: &Connection, id: &str) -> StoreResult<Subscription> {
    conn.query_row(
        &format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?1"),
        [id],
        sub_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(s, _)| s)
    .ok_or(StoreError::NotFound)
}

const PM_COLUMNS: &str = "id, consumer_id, processor, brand, last4, exp_month, exp_year, failed, is_default, \
     last_failure_code, last_decline_code, created_at, token";

fn pm_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(PaymentMethod, CardToken)> {
    let (exp_month, exp_year): (u32, i32) = (r.get(5)?, r.get(6)?);
    let failed: bool = r.get(7)?;
    let status = if crate::payments::expired(exp_month, exp_year, Utc::now()) {
        PaymentMethodStatus::Expired
    } else if failed {
        PaymentMethodStatus::Failed
    } else {
        PaymentMethodStatus::Active
    };
    let method = PaymentMethod {
        id: r.get(0)?,
        consumer_id: r.get(1)?,
        processor: r.get(2)?,
        brand: r.get(3)?,
        last4: r.get(4)?,
        exp_month,
        exp_year,
        status,
        is_default: r.get(8)?,
        last_failure_code: r.get(9)?,
        last_decline_code: r.get(10)?,
        created_at: parse_ts(&r.get::<_, String>(11)?)?,
    };
    let token = CardToken {
        token: r.get(12)?,
        brand: method.brand.clone(),
        last4: method.last4.clone(),
        exp_month,
        exp_year,
    };
    Ok((method, token))
}

fn load_pm(conn: &Connection, id: &str) -> StoreResult<PaymentMethod> {
    conn.query_row(
        &format!("SELECT {PM_COLUMNS} FROM payment_methods WHERE id = ?1 AND removed_at IS NULL"),
        [id],
        pm_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(m, _)| m)
    .ok_or(StoreError::NotFound)
}

const CHARGE_COLUMNS: &str = "id, consumer_id, payment_method_id, subscription_id, amount_micros, currency, status, \
     failure_code, decline_code, failure_message, processor_charge_id, created_at, seq";

fn charge_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Charge, i64)> {
    let status: String = r.get(6)?;
    Ok((
        Charge {
            id: r.get(0)?,
            consumer_id: r.get(1)?,
            payment_method_id: r.get(2)?,
            subscription_id: r.get(3)?,
            amount: format_amount(r.get(4)?, 2),
            currency: r.get(5)?,
            status: if status == "succeeded" {
                ChargeStatus::Succeeded
            } else {
                ChargeStatus::Failed
            },
            failure_code: r.get(7)?,
            decline_code: r.get(8)?,
            failure_message: r.get(9)?,
            processor_charge_id: r.get(10)?,
            created_at: parse_ts(&r.get::<_, String>(11)?)?,
        },
        r.get(12)?,
    ))
}

fn fk_not_found(e: rusqlite::Error) -> StoreError {
    if is_foreign_key_violation(&e) {
        StoreError::NotFound
    } else {
        backend(e)
    }
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn create_subscription(
        &self,
        consumer_id: &str,
        plan_id: &str,
        state: State,
        ctx: &AuditContext,
    ) -> StoreResult<Subscription> {
        let (consumer_id, plan_id, ctx) = (consumer_id.to_owned(), plan_id.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("sub");
            let now = ts(Utc::now());
            tx.execute(
                "INSERT INTO subscriptions (id, consumer_id, plan_id, status, status_reason, period_start, period_end, \
                 auto_renew, past_due_since, created_at, updated_at, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1)",
                params![id, consumer_id, plan_id, state.status.as_str(), state.reason, state.period_start.map(ts),
                    state.period_end.map(ts), state.auto_renew, state.past_due_since.map(ts), now],
            )
            .map_err(fk_not_found)?;
            audit(&tx, &ctx, "subscription.create", &id)?;
            let sub = load_sub(&tx, &id)?;
            changes.push(Change::Subscription { subscription_id: id.clone(), consumer_id: consumer_id.clone() });
            tx.commit().map_err(backend)?;
            Ok(sub)
        })
        .await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Subscription> {
        let id = id.to_owned();
        self.read(move |c| load_sub(c, &id)).await
    }

    async fn list_subscriptions(
        &self,
        filter: SubscriptionFilter,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Subscription>, Option<i64>)> {
        self.read(move |c| {
            page(c, &format!(
                    "SELECT {SUB_COLUMNS} FROM subscriptions WHERE seq > ?1 AND (?2 IS NULL OR status = ?2) \
                     AND (?3 IS NULL OR consumer_id = ?3) AND (?4 IS NULL OR plan_id = ?4) ORDER BY seq LIMIT ?5"
                ), params![after, filter.status.map(|s| s.as_str()), filter.consumer_id, filter.plan_id, i64::from(limit) + 1], limit, sub_row)
        })
        .await
    }

    async fn live_subscription_ids(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT id FROM subscriptions WHERE status IN ('active', 'past_due') ORDER BY seq")
                .map_err(backend)?;
            stmt.query_map([], |r| r.get(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }

    async fn save_subscription(
        &self,
        id: &str,
        state: State,
        expected_version: i64,
        action: &str,
        ctx: Option<&AuditContext>,
    ) -> StoreResult<Subscription> {
        let action = action.to_owned();
        let ctx = ctx.cloned().unwrap_or(AuditContext {
            token_id: "gateway".into(),
            request_id: "renewal-job".into(),
        });
        self.versioned_write(id, Some(expected_version), &ctx, load_sub, move |tx, id, _, changes| {
            tx.execute(
                "UPDATE subscriptions SET status = ?2, status_reason = ?3, period_start = ?4, period_end = ?5, \
                 auto_renew = ?6, past_due_since = ?7, updated_at = ?8, version = version + 1 WHERE id = ?1",
                params![id, state.status.as_str(), state.reason, state.period_start.map(ts), state.period_end.map(ts),
                    state.auto_renew, state.past_due_since.map(ts), ts(Utc::now())],
            )
            .map_err(backend)?;
            let sub = load_sub(tx, id)?;
            changes.push(Change::Subscription { subscription_id: id.to_owned(), consumer_id: sub.consumer_id.clone() });
            Ok((sub, action.into()))
        })
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
        let plan_id = plan_id.to_owned();
        self.versioned_write(id, Some(expected_version), ctx, load_sub, move |tx, id, _, changes| {
            tx.execute(
                "UPDATE subscriptions SET plan_id = ?2, status = ?3, status_reason = ?4, period_start = ?5, \
                 period_end = ?6, auto_renew = ?7, past_due_since = ?8, updated_at = ?9, version = version + 1 \
                 WHERE id = ?1",
                params![id, plan_id, state.status.as_str(), state.reason, state.period_start.map(ts),
                    state.period_end.map(ts), state.auto_renew, state.past_due_since.map(ts), ts(Utc::now())],
            )
            .map_err(|e| if is_foreign_key_violation(&e) { StoreError::NotFound } else { backend(e) })?;
            let sub = load_sub(tx, id)?;
            changes.push(Change::Subscription { subscription_id: id.to_owned(), consumer_id: sub.consumer_id.clone() });
            Ok((sub, "subscription.change_plan".into()))
        })
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
        let (consumer_id, processor, ctx) =
            (consumer_id.to_owned(), processor.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let has_default: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE consumer_id = ?1 AND is_default = 1 AND removed_at IS NULL)",
                    [&consumer_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            // The first card is the default; a later one only when asked.
            let default = make_default || !has_default;
            if default {
                tx.execute("UPDATE payment_methods SET is_default = 0 WHERE consumer_id = ?1", [&consumer_id])
                    .map_err(backend)?;
            }
            let id = ids::new_id("pm");
            tx.execute(
                "INSERT INTO payment_methods (id, consumer_id, processor, token, brand, last4, exp_month, exp_year, is_default, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![id, consumer_id, processor, card.token, card.brand, card.last4, card.exp_month, card.exp_year,
                    default, ts(Utc::now())],
            )
            .map_err(fk_not_found)?;
            audit(&tx, &ctx, "payment_method.add", &id)?;
            let method = load_pm(&tx, &id)?;
            changes.push(Change::PaymentMethods { consumer_id: consumer_id.clone() });
            tx.commit().map_err(backend)?;
            Ok(method)
        })
        .await
    }

    async fn payment_methods(&self, consumer_id: &str) -> StoreResult<Vec<PaymentMethod>> {
        let consumer_id = consumer_id.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {PM_COLUMNS} FROM payment_methods WHERE consumer_id = ?1 AND removed_at IS NULL ORDER BY seq"
                ))
                .map_err(backend)?;
            stmt.query_map([consumer_id], |r| pm_row(r).map(|(m, _)| m))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)
        })
        .await
    }

    async fn default_payment_method(
        &self,
        consumer_id: &str,
    ) -> StoreResult<Option<(PaymentMethod, CardToken)>> {
        let consumer_id = consumer_id.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {PM_COLUMNS} FROM payment_methods WHERE consumer_id = ?1 AND is_default = 1 AND removed_at IS NULL"
                ),
                [consumer_id],
                pm_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn set_default_payment_method(
        &self,
        id: &str,
        ctx: &AuditContext,
    ) -> StoreResult<PaymentMethod> {
        let (id, ctx) = (id.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let method = load_pm(&tx, &id)?;
            tx.execute(
                "UPDATE payment_methods SET is_default = 0 WHERE consumer_id = ?1",
                [&method.consumer_id],
            )
            .map_err(backend)?;
            tx.execute(
                "UPDATE payment_methods SET is_default = 1 WHERE id = ?1",
                [&id],
            )
            .map_err(backend)?;
            audit(&tx, &ctx, "payment_method.set_default", &id)?;
            let method = load_pm(&tx, &id)?;
            changes.push(Change::PaymentMethods {
                consumer_id: method.consumer_id.clone(),
            });
            tx.commit().map_err(backend)?;
            Ok(method)
        })
        .await
    }

    async fn remove_payment_method(&self, id: &str, ctx: &AuditContext) -> StoreResult<()> {
        let (id, ctx) = (id.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let method = load_pm(&tx, &id)?;
            // The token is dropped with the card: nothing can charge it again.
            tx.execute(
                "UPDATE payment_methods SET removed_at = ?2, is_default = 0, token = '' WHERE id = ?1",
                params![id, ts(Utc::now())],
            )
            .map_err(backend)?;
            audit(&tx, &ctx, "payment_method.remove", &id)?;
            changes.push(Change::PaymentMethods { consumer_id: method.consumer_id });
            tx.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn record_charge(&self, charge: NewCharge) -> StoreResult<Charge> {
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("chg");
            let failure = charge.failure.as_ref();
            tx.execute(
                "INSERT INTO charges (id, consumer_id, payment_method_id, subscription_id, amount_micros, currency, status, \
                 failure_code, decline_code, failure_message, processor_charge_id, created_at, idempotency_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![id, charge.consumer_id, charge.payment_method_id, charge.subscription_id, charge.amount_micros,
                    charge.currency, if failure.is_some() { "failed" } else { "succeeded" },
                    failure.map(|f| f.code.clone()), failure.and_then(|f| f.decline_code.clone()),
                    failure.map(|f| f.message.clone()), charge.processor_charge_id, ts(Utc::now()),
                    charge.idempotency_key],
            )
            .map_err(|e| {
                if super::is_unique_violation(&e) {
                    StoreError::Conflict(crate::store::CHARGED_ALREADY.into())
                } else {
                    fk_not_found(e)
                }
            })?;
            if let Some(pm) = &charge.payment_method_id {
                tx.execute(
                    "UPDATE payment_methods SET failed = ?2, last_failure_code = ?3, last_decline_code = ?4 WHERE id = ?1",
                    params![pm, failure.is_some(), failure.map(|f| f.code.clone()), failure.and_then(|f| f.decline_code.clone())],
                )
                .map_err(backend)?;
            }
            let (charge, _) = tx
                .query_row(&format!("SELECT {CHARGE_COLUMNS} FROM charges WHERE id = ?1"), [&id], charge_row)
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(charge)
        })
        .await
    }

    async fn succeeded_charge(
        &self,
        subscription_id: &str,
        idempotency_key: &str,
    ) -> StoreResult<Option<Charge>> {
        let (sub, key) = (subscription_id.to_owned(), idempotency_key.to_owned());
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {CHARGE_COLUMNS} FROM charges WHERE subscription_id = ?1 \
                     AND idempotency_key = ?2 AND status = 'succeeded'"
                ),
                params![sub, key],
                charge_row,
            )
            .optional()
            .map(|found| found.map(|(charge, _)| charge))
            .map_err(backend)
        })
        .await
    }

    async fn charges(
        &self,
        consumer_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<Charge>, Option<i64>)> {
        let consumer_id = consumer_id.to_owned();
        self.read(move |c| {
            page(c, &format!(
                    "SELECT {CHARGE_COLUMNS} FROM charges WHERE consumer_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
                ), params![consumer_id, before.unwrap_or(i64::MAX), i64::from(limit) + 1], limit, charge_row)
        })
        .await
    }
}
