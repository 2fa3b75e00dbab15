//! Plans, wallets and the append-only ledger in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tollgate_api::{LedgerEntry, Plan, Wallet};

use super::leases;
use super::{
    SqliteStore, audit, backend, is_foreign_key_violation, is_unique_violation, page, parse_ts,
    singleton_version, ts,
};
use crate::changes::Change;
use crate::ids;
use crate::store::rules::{allowance_grant, allowance_returned};
use crate::store::spelling::{
    kind_str, money, overage_str, parse_kind, parse_overage, parse_period, period_str,
};
use crate::store::{
    AllowanceGrant, AuditContext, BillingStore, Grant, LeaseAsk, NewLedgerEntry, PlanSpec, Pot,
    Settlement, StoreError, StoreResult, StoredPaymentSettings, SystemStore, UsageBatch,
};

const PLAN_COLUMNS: &str = "id, name, currency, price_micros, period, included_micros, overage, approval_required, \
     apis, models, rate_limits, created_at, updated_at, version, seq";

fn plan_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Plan, i64)> {
    let json = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let period: String = r.get(4)?;
    let overage: String = r.get(6)?;
    Ok((
        Plan {
            id: r.get(0)?,
            name: r.get(1)?,
            currency: r.get(2)?,
            price: money(r.get(3)?),
            period: parse_period(&period),
            included_credits: money(r.get(5)?),
            overage: parse_overage(&overage),
            approval_required: r.get(7)?,
            apis: serde_json::from_str(&json(8)?).unwrap_or_default(),
            models: serde_json::from_str(&json(9)?).unwrap_or_default(),
            rate_limits: serde_json::from_str(&json(10)?).unwrap_or_default(),
            created_at: parse_ts(&r.get::<_, String>(11)?)?,
            updated_at: parse_ts(&r.get::<_, String>(12)?)?,
            version: r.get(13)?,
        },
        r.get(14)?,
    ))
}

const PERIOD_USAGE: &str =
    "SELECT used_micros FROM subscription_usage WHERE subscription_id = ?1 AND period_start = ?2";

fn load_plan(conn: &Connection, id: &str) -> StoreResult<Plan> {
    conn.query_row(
        &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = ?1"),
        [id],
        plan_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(p, _)| p)
    .ok_or(StoreError::NotFound)
}

fn plan_write_error(e: rusqlite::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a plan named `{name}` already exists"))
    } else {
        backend(e)
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.into()))
}

const LEDGER_COLUMNS: &str = "id, consumer_id, currency, kind, amount_micros, balance_after_micros, reason, \
     idempotency_key, actor, created_at, seq";

fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(LedgerEntry, i64)> {
    Ok((
        LedgerEntry {
            id: r.get(0)?,
            consumer_id: r.get(1)?,
            currency: r.get(2)?,
            kind: parse_kind(&r.get::<_, String>(3)?),
            amount: money(r.get(4)?),
            balance_after: money(r.get(5)?),
            reason: r.get(6)?,
            idempotency_key: r.get(7)?,
            actor: r.get(8)?,
            created_at: parse_ts(&r.get::<_, String>(9)?)?,
        },
        r.get(10)?,
    ))
}

fn wallet_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Wallet> {
    let balance: i64 = r.get(2)?;
    let reserved: i64 = r.get(3)?;
    Ok(Wallet {
        consumer_id: r.get(0)?,
        currency: r.get(1)?,
        balance: money(balance),
        reserved: money(reserved),
        available: money(balance - reserved),
        entries: r.get(4)?,
        updated_at: r
            .get::<_, Option<String>>(5)?
            .map(|s| parse_ts(&s))
            .transpose()?,
    })
}

/// Appends a ledger entry and moves the wallet's balance, inside `tx`.
fn append_ledger_tx(
    tx: &Connection,
    e: &NewLedgerEntry,
    ctx: Option<&AuditContext>,
) -> StoreResult<(LedgerEntry, bool)> {
    let existing = tx
        .prepare_cached(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE consumer_id = ?1 AND currency = ?2 \
                 AND idempotency_key = ?3"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![e.consumer_id, e.currency, e.idempotency_key],
                ledger_row,
            )
            .optional()
        })
        .map_err(backend)?;
    if let Some((entry, _)) = existing {
        if entry.kind != e.kind || entry.amount != money(e.amount_micros) {
            return Err(StoreError::IdempotencyMismatch);
        }
        return Ok((entry, true));
    }
    tx.prepare_cached(
        "INSERT INTO wallets (consumer_id, currency, balance_micros) VALUES (?1, ?2, 0) \
         ON CONFLICT (consumer_id, currency) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![e.consumer_id, e.currency]))
    .map_err(|err| {
        if is_foreign_key_violation(&err) {
            StoreError::NotFound
        } else {
            backend(err)
        }
    })?;
    let (balance, reserved): (i64, i64) = tx
        .prepare_cached(
            "SELECT balance_micros, reserved_micros FROM wallets WHERE consumer_id = ?1 AND currency = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![e.consumer_id, e.currency], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .map_err(backend)?;
    let after = crate::store::rules::balance_after(e, balance, reserved)?;
    let id = ids::new_id("led");
    let now = ts(Utc::now());
    tx.prepare_cached(
        "INSERT INTO ledger_entries (id, consumer_id, currency, kind, amount_micros, balance_after_micros, \
         reason, idempotency_key, actor, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| s.execute(params![id, e.consumer_id, e.currency, kind_str(e.kind), e.amount_micros, after, e.reason,
            e.idempotency_key, e.actor, now]))
    .map_err(backend)?;
    tx.prepare_cached(
        "UPDATE wallets SET balance_micros = ?3, entries = entries + 1, updated_at = ?4 \
         WHERE consumer_id = ?1 AND currency = ?2",
    )
    .and_then(|mut s| s.execute(params![e.consumer_id, e.currency, after, now]))
    .map_err(backend)?;
    if let Some(ctx) = ctx {
        audit(tx, ctx, &format!("wallet.{}", kind_str(e.kind)), &id)?;
    }
    let (entry, _) = tx
        .prepare_cached(&format!(
            "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE id = ?1"
        ))
        .and_then(|mut s| s.query_row([&id], ledger_row))
        .map_err(backend)?;
    Ok((entry, false))
}

#[async_trait]
impl BillingStore for SqliteStore {
    async fn create_plan(&self, spec: PlanSpec, ctx: &AuditContext) -> StoreResult<Plan> {
        let ctx = ctx.clone();
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("plan");
            tx.execute(
                &format!(
                    "INSERT INTO plans ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 1)",
                    PLAN_COLUMNS.trim_end_matches(", seq")
                ),
                params![id, spec.name, spec.currency, spec.price_micros, period_str(spec.period), spec.included_micros,
                    overage_str(spec.overage), spec.approval_required, to_json(&spec.apis)?, to_json(&spec.models)?,
                    to_json(&spec.rate_limits)?, ts(Utc::now())],
            )
            .map_err(|e| plan_write_error(e, &spec.name))?;
            audit(&tx, &ctx, "plan.create", &id)?;
            let plan = load_plan(&tx, &id)?;
            tx.commit().map_err(backend)?;
            Ok(plan)
        })
        .await
    }

    async fn plan(&self, id: &str) -> StoreResult<Plan> {
        let id = id.to_owned();
        self.read(move |c| load_plan(c, &id)).await
    }

    async fn list_plans(&self, after: i64, limit: u32) -> StoreResult<(Vec<Plan>, Option<i64>)> {
        self.read(move |c| {
            page(
                c,
                &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after, i64::from(limit) + 1],
                limit,
                plan_row,
            )
        })
        .await
    }

    async fn update_plan(
        &self,
        id: &str,
        spec: PlanSpec,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Plan> {
        self.versioned_write(id, expected_version, ctx, load_plan, move |tx, id, _, changes| {
            tx.execute(
                "UPDATE plans SET name = ?2, price_micros = ?3, period = ?4, included_micros = ?5, overage = ?6, \
                 approval_required = ?7, apis = ?8, models = ?9, rate_limits = ?10, updated_at = ?11, \
                 version = version + 1 WHERE id = ?1",
                params![id, spec.name, spec.price_micros, period_str(spec.period), spec.included_micros,
                    overage_str(spec.overage), spec.approval_required, to_json(&spec.apis)?, to_json(&spec.models)?,
                    to_json(&spec.rate_limits)?, ts(Utc::now())],
            )
            .map_err(|e| plan_write_error(e, &spec.name))?;
            changes.push(Change::Plan { plan_id: id.to_owned() });
            Ok((load_plan(tx, id)?, "plan.update".into()))
        })
        .await
    }

    async fn delete_plan(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load_plan,
            |tx, id, _, changes| {
                tx.execute("DELETE FROM plans WHERE id = ?1", [id])
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            StoreError::Conflict("the plan has subscriptions".into())
                        } else {
                            backend(e)
                        }
                    })?;
                changes.push(Change::Plan {
                    plan_id: id.to_owned(),
                });
                Ok(((), "plan.delete".into()))
            },
        )
        .await
    }

    async fn wallets(&self, consumer_id: &str) -> StoreResult<Vec<Wallet>> {
        let consumer_id = consumer_id.to_owned();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT consumer_id, currency, balance_micros, reserved_micros, entries, updated_at \
                     FROM wallets WHERE consumer_id = ?1 ORDER BY currency",
                )
                .map_err(backend)?;
            stmt.query_map([consumer_id], wallet_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)
        })
        .await
    }

    async fn append_ledger(
        &self,
        e: NewLedgerEntry,
        ctx: Option<&AuditContext>,
    ) -> StoreResult<(LedgerEntry, bool)> {
        let ctx = ctx.cloned();
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let result = append_ledger_tx(&tx, &e, ctx.as_ref())?;
            changes.push(Change::Wallet {
                consumer_id: e.consumer_id.clone(),
                currency: e.currency.clone(),
            });
            tx.commit().map_err(backend)?;
            Ok(result)
        })
        .await
    }

    async fn period_usages(&self, periods: Vec<(String, String)>) -> StoreResult<Vec<i64>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(PERIOD_USAGE).map_err(backend)?;
            periods
                .iter()
                .map(|(sub, period)| {
                    stmt.query_row(params![sub, period], |r| r.get(0))
                        .optional()
                        .map(Option::unwrap_or_default)
                        .map_err(backend)
                })
                .collect()
        })
        .await
    }

    async fn period_usage(&self, subscription_id: &str, period_start: &str) -> StoreResult<i64> {
        let (sub, period) = (subscription_id.to_owned(), period_start.to_owned());
        self.read(move |c| {
            c.query_row(PERIOD_USAGE, params![sub, period], |r| r.get(0))
                .optional()
                .map(Option::unwrap_or_default)
                .map_err(backend)
        })
        .await
    }

    async fn settle_calls(&self, batch: UsageBatch) -> StoreResult<()> {
        let node = self.node_id().to_owned();
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            for step in batch.settlements() {
                match step {
                    Settlement::Period(p) => {
                        tx.prepare_cached(
                            "INSERT INTO subscription_usage (subscription_id, period_start, used_micros, calls) \
                             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (subscription_id, period_start) \
                             DO UPDATE SET used_micros = used_micros + ?3, calls = calls + ?4",
                        )
                        .and_then(|mut s| {
                            s.execute(params![p.subscription_id, p.period_start, p.credits_micros, p.calls])
                        })
                        .map_err(backend)?;
                        leases::take(&tx, &p.pot(), &node, p.leased_micros)?;
                    }
                    Settlement::Usage(entry) => {
                        if let Some(entry) = leases::wallet_usage(&tx, entry, &node)? {
                            append_ledger_tx(&tx, &entry, None)?;
                        }
                    }
                    Settlement::Return(pot, amount) => {
                        if leases::take(&tx, pot, &node, amount)? > 0 {
                            changes.push(pot.freed());
                        }
                    }
                }
            }
            {
                // A key deleted meanwhile matches no row: its use is dropped.
                let mut used = tx
                    .prepare_cached(
                        "UPDATE provider_keys SET requests = requests + ?2, failures = failures + ?3, \
                         tokens = tokens + ?4, last_used_at = max(coalesce(last_used_at, ''), ?5) WHERE id = ?1",
                    )
                    .map_err(backend)?;
                for k in &batch.key_uses {
                    used.execute(params![k.key_id, k.requests, k.failures, k.tokens, ts(k.at)])
                        .map_err(backend)?;
                }
            }
            super::logs::append_calls(&tx, &batch.calls)?;
            tx.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn lease(&self, pot: &Pot, ask: LeaseAsk) -> StoreResult<Grant> {
        let (pot, node) = (pot.clone(), self.node_id().to_owned());
        self.write(move |c| {
            // Writing from the start: the read of what is left must not be
            // overtaken by another process's lease.
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let grant = leases::lease(&tx, &pot, &node, ask)?;
            tx.commit().map_err(backend)?;
            Ok(grant)
        })
        .await
    }

    async fn reclaim_leases(&self, heartbeat_before: DateTime<Utc>) -> StoreResult<u64> {
        let (me, before) = (self.node_id().to_owned(), ts(heartbeat_before));
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let count = leases::reclaim(&tx, &me, &before, changes)?;
            tx.commit().map_err(backend)?;
            Ok(count)
        })
        .await
    }

    async fn take_allowance(
        &self,
        key: &str,
        per_minute: u32,
        need: u32,
    ) -> StoreResult<AllowanceGrant> {
        let key = key.to_owned();
        self.write(move |c| {
            leases::with_allowance(c, &key, |full_at, now| {
                allowance_grant(full_at, now, per_minute, need)
            })
        })
        .await
    }

    async fn return_allowance(&self, key: &str, per_minute: u32, units: i64) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |c| {
            leases::with_allowance(c, &key, |full_at, now| {
                (allowance_returned(full_at, now, per_minute, units), ())
            })
        })
        .await
    }

    async fn payment_settings(&self) -> StoreResult<Option<StoredPaymentSettings>> {
        self.read(|c| {
            c.query_row(
                "SELECT processor, credentials_sealed, credentials_last4, accepted_currencies, grace_days, updated_at, version, \
                 publishable_key, webhook_secret_sealed, api_base_url FROM payment_settings WHERE id = 1",
                [],
                |r| {
                    let currencies: String = r.get(3)?;
                    Ok(StoredPaymentSettings {
                        processor: r.get(0)?,
                        credentials_sealed: r.get(1)?,
                        credentials_last4: r.get(2)?,
                        publishable_key: r.get(7)?,
                        webhook_secret_sealed: r.get(8)?,
                        api_base_url: r.get(9)?,
                        accepted_currencies: serde_json::from_str(&currencies).unwrap_or_default(),
                        grace_days: r.get(4)?,
                        updated_at: r.get::<_, Option<String>>(5)?.map(|s| parse_ts(&s)).transpose()?,
                        version: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn save_payment_settings(
        &self,
        settings: StoredPaymentSettings,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<StoredPaymentSettings> {
        let load = |c: &Connection, _: &str| singleton_version(c, "payment_settings");
        self.versioned_write("payment_settings", expected_version, ctx, load, move |tx, _, current, changes| {
            let now = Utc::now();
            tx.execute(
                "INSERT INTO payment_settings (id, processor, credentials_sealed, credentials_last4, accepted_currencies, \
                 grace_days, updated_at, version, publishable_key, webhook_secret_sealed, api_base_url) \
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (id) DO UPDATE SET processor = excluded.processor, credentials_sealed = excluded.credentials_sealed, \
                 credentials_last4 = excluded.credentials_last4, accepted_currencies = excluded.accepted_currencies, \
                 grace_days = excluded.grace_days, updated_at = excluded.updated_at, version = excluded.version, \
                 publishable_key = excluded.publishable_key, webhook_secret_sealed = excluded.webhook_secret_sealed, \
                 api_base_url = excluded.api_base_url",
                params![settings.processor, settings.credentials_sealed, settings.credentials_last4,
                    to_json(&settings.accepted_currencies)?, settings.grace_days, ts(now), current + 1,
                    settings.publishable_key, settings.webhook_secret_sealed, settings.api_base_url],
            )
            .map_err(backend)?;
            changes.push(Change::PaymentSettings);
            let saved = StoredPaymentSettings { updated_at: Some(now), version: current + 1, ..settings };
            Ok((saved, "billing.settings.update".into()))
        })
        .await
    }

    async fn list_ledger(
        &self,
        consumer_id: &str,
        currency: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<LedgerEntry>, Option<i64>)> {
        let (consumer_id, currency) = (consumer_id.to_owned(), currency.to_owned());
        self.read(move |c| {
            page(c, &format!(
                    "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE consumer_id = ?1 AND currency = ?2 \
                     AND seq < ?3 ORDER BY seq DESC LIMIT ?4"
                ), params![consumer_id, currency, before.unwrap_or(i64::MAX), i64::from(limit) + 1], limit, ledger_row)
        })
        .await
    }
}
