//! Plans, wallets, the append-only ledger, period usage and payment settings
//! in PostgreSQL. A wallet's row is locked by each ledger write until it
//! commits, so writes from several nodes line up and every entry's
//! `balance_after` is the balance it left.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tollgate_api::{LedgerEntry, Plan, Wallet};

use super::{
    Column, PgStore, audit, backend, is_foreign_key_violation, is_unique_violation, json, leases,
    now, page,
};
use crate::changes::Change;
use crate::ids;
use crate::store::log_block::{self, BLOCK_MAX, Entry, entry_of};
use crate::store::rules::{allowance_grant, allowance_returned};
use crate::store::spelling::{
    kind_str, money, overage_str, parse_kind, parse_overage, parse_period, period_str,
};
use crate::store::{
    AllowanceGrant, AuditContext, BillingStore, CallRecord, Grant, LeaseAsk, NewLedgerEntry,
    PlanSpec, Pot, Settlement, StoreError, StoreResult, StoredPaymentSettings, UsageBatch,
};

const PLAN_COLUMNS: &str = "id, name, currency, price_micros, period, included_micros, overage, \
     approval_required, apis, models, rate_limits, created_at, updated_at, version, seq";

fn plan_row(r: &Row) -> StoreResult<Plan> {
    let period: &str = r.col("period")?;
    let overage: &str = r.col("overage")?;
    Ok(Plan {
        id: r.col("id")?,
        name: r.col("name")?,
        currency: r.col("currency")?,
        price: money(r.col("price_micros")?),
        period: parse_period(period),
        included_credits: money(r.col("included_micros")?),
        overage: parse_overage(overage),
        approval_required: r.col("approval_required")?,
        apis: serde_json::from_str(r.col("apis")?).unwrap_or_default(),
        models: serde_json::from_str(r.col("models")?).unwrap_or_default(),
        rate_limits: serde_json::from_str(r.col("rate_limits")?).unwrap_or_default(),
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        version: r.col("version")?,
    })
}

async fn load_plan(client: &impl GenericClient, id: &str, lock: bool) -> StoreResult<Plan> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1{lock}"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(plan_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

fn plan_write_error(e: tokio_postgres::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a plan named `{name}` already exists"))
    } else {
        backend(e)
    }
}

const LEDGER_COLUMNS: &str = "id, consumer_id, currency, kind, amount_micros, balance_after_micros, \
     reason, idempotency_key, actor, created_at, seq";

fn ledger_row(r: &Row) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        id: r.col("id")?,
        consumer_id: r.col("consumer_id")?,
        currency: r.col("currency")?,
        kind: parse_kind(r.col("kind")?),
        amount: money(r.col("amount_micros")?),
        balance_after: money(r.col("balance_after_micros")?),
        reason: r.col("reason")?,
        idempotency_key: r.col("idempotency_key")?,
        actor: r.col("actor")?,
        created_at: r.col("created_at")?,
    })
}

fn wallet_row(r: &Row) -> StoreResult<Wallet> {
    let balance: i64 = r.col("balance_micros")?;
    let reserved: i64 = r.col("reserved_micros")?;
    Ok(Wallet {
        consumer_id: r.col("consumer_id")?,
        currency: r.col("currency")?,
        balance: money(balance),
        reserved: money(reserved),
        available: money(balance - reserved),
        entries: r.col("entries")?,
        updated_at: r.col("updated_at")?,
    })
}

/// Appends a ledger entry and moves the wallet's balance, inside `tx`; the
/// wallet's row stays locked until `tx` ends.
async fn append_ledger_tx(
    tx: &Transaction<'_>,
    e: &NewLedgerEntry,
    ctx: Option<&AuditContext>,
) -> StoreResult<(LedgerEntry, bool)> {
    tx.execute(
        "INSERT INTO wallets (consumer_id, currency, balance_micros) VALUES ($1, $2, 0) \
         ON CONFLICT (consumer_id, currency) DO NOTHING",
        &[&e.consumer_id, &e.currency],
    )
    .await
    .map_err(|err| {
        if is_foreign_key_violation(&err) {
            StoreError::NotFound
        } else {
            backend(err)
        }
    })?;
    // The lock first, then the replay check: a replay racing its original
    // on another node sees it once the original has committed.
    let wallet = tx
        .query_one(
            "SELECT balance_micros, reserved_micros FROM wallets WHERE consumer_id = $1 AND currency = $2 FOR UPDATE",
            &[&e.consumer_id, &e.currency],
        )
        .await
        .map_err(backend)?;
    let (balance, reserved): (i64, i64) = (
        wallet.col("balance_micros")?,
        wallet.col("reserved_micros")?,
    );
    let existing = tx
        .query_opt(
            &format!(
                "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE consumer_id = $1 AND currency = $2 \
                 AND idempotency_key = $3"
            ),
            &[&e.consumer_id, &e.currency, &e.idempotency_key],
        )
        .await
        .map_err(backend)?;
    if let Some(row) = existing {
        let entry = ledger_row(&row)?;
        if entry.kind != e.kind || entry.amount != money(e.amount_micros) {
            return Err(StoreError::IdempotencyMismatch);
        }
        return Ok((entry, true));
    }
    let after = crate::store::rules::balance_after(e, balance, reserved)?;
    let id = ids::new_id("led");
    let now = now();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO ledger_entries (id, consumer_id, currency, kind, amount_micros, \
                 balance_after_micros, reason, idempotency_key, actor, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {LEDGER_COLUMNS}"
            ),
            &[
                &id,
                &e.consumer_id,
                &e.currency,
                &kind_str(e.kind),
                &e.amount_micros,
                &after,
                &e.reason,
                &e.idempotency_key,
                &e.actor,
                &now,
            ],
        )
        .await
        .map_err(backend)?;
    tx.execute(
        "UPDATE wallets SET balance_micros = $3, entries = entries + 1, updated_at = $4 \
         WHERE consumer_id = $1 AND currency = $2",
        &[&e.consumer_id, &e.currency, &after, &now],
    )
    .await
    .map_err(backend)?;
    if let Some(ctx) = ctx {
        audit(tx, ctx, &format!("wallet.{}", kind_str(e.kind)), &id).await?;
    }
    Ok((ledger_row(&row)?, false))
}

/// Appends `calls` in order, in blocks of consecutive seqs handed out by
/// `log_state` (whose row stays locked until `tx` commits: seqs follow
/// commit order across nodes).
pub(super) async fn append_calls(tx: &Transaction<'_>, calls: &[CallRecord]) -> StoreResult<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(calls.len()).map_err(|e| StoreError::Backend(e.into()))?;
    let last: i64 = tx
        .query_one(
            "UPDATE log_state SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq",
            &[&count],
        )
        .await
        .map_err(backend)?
        .col("last_seq")?;
    let mut seq = last - count;
    let mut data = Vec::with_capacity(calls.len().min(BLOCK_MAX as usize) * 512);
    let insert = tx
        .prepare_cached(
            "INSERT INTO call_log_blocks (first_seq, last_seq, records, min_end_us, max_end_us, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await
        .map_err(backend)?;
    for chunk in calls.chunks(BLOCK_MAX as usize) {
        let mut ends = (i64::MAX, i64::MIN);
        let entries: Vec<Entry<'_>> = chunk
            .iter()
            .map(|c| {
                seq += 1;
                let end = c.at_us + c.latency_us;
                ends = (ends.0.min(end), ends.1.max(end));
                entry_of(seq, c)
            })
            .collect();
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            continue;
        };
        log_block::encode(&entries, &mut data).map_err(|e| StoreError::Backend(e.into()))?;
        let records = i32::try_from(entries.len()).map_err(|e| StoreError::Backend(e.into()))?;
        tx.execute(
            &insert,
            &[
                &first.seq,
                &last.seq,
                &records,
                &ends.0,
                &ends.1,
                &&data[..],
            ],
        )
        .await
        .map_err(backend)?;
    }
    Ok(())
}

#[async_trait]
impl BillingStore for PgStore {
    async fn create_plan(&self, spec: PlanSpec, ctx: &AuditContext) -> StoreResult<Plan> {
        self.write_changes(async |tx, _| {
            let id = ids::new_id("plan");
            tx.execute(
                "INSERT INTO plans (id, name, currency, price_micros, period, included_micros, overage, \
                 approval_required, apis, models, rate_limits, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)",
                &[
                    &id,
                    &spec.name,
                    &spec.currency,
                    &spec.price_micros,
                    &period_str(spec.period),
                    &spec.included_micros,
                    &overage_str(spec.overage),
                    &spec.approval_required,
                    &json(&spec.apis)?,
                    &json(&spec.models)?,
                    &json(&spec.rate_limits)?,
                    &now(),
                ],
            )
            .await
            .map_err(|e| plan_write_error(e, &spec.name))?;
            audit(tx, ctx, "plan.create", &id).await?;
            load_plan(tx, &id, false).await
        })
        .await
    }

    async fn plan(&self, id: &str) -> StoreResult<Plan> {
        load_plan(&self.client().await?, id, false).await
    }

    async fn list_plans(&self, after: i64, limit: u32) -> StoreResult<(Vec<Plan>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {PLAN_COLUMNS} FROM plans WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, plan_row)
    }

    async fn update_plan(
        &self,
        id: &str,
        spec: PlanSpec,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Plan> {
        let load = async |tx: &Transaction<'_>, id: &str| load_plan(tx, id, true).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            async |tx, id, _, changes| {
                tx.execute(
                "UPDATE plans SET name = $2, price_micros = $3, period = $4, included_micros = $5, \
                 overage = $6, approval_required = $7, apis = $8, models = $9, rate_limits = $10, \
                 updated_at = $11, version = version + 1 WHERE id = $1",
                &[
                    &id,
                    &spec.name,
                    &spec.price_micros,
                    &period_str(spec.period),
                    &spec.included_micros,
                    &overage_str(spec.overage),
                    &spec.approval_required,
                    &json(&spec.apis)?,
                    &json(&spec.models)?,
                    &json(&spec.rate_limits)?,
                    &now(),
                ],
            )
            .await
            .map_err(|e| plan_write_error(e, &spec.name))?;
                changes.push(Change::Plan {
                    plan_id: id.to_owned(),
                });
                Ok((load_plan(tx, id, false).await?, "plan.update".into()))
            },
        )
        .await
    }

    async fn delete_plan(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        let load = async |tx: &Transaction<'_>, id: &str| load_plan(tx, id, true).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            async |tx, id, _, changes| {
                tx.execute("DELETE FROM plans WHERE id = $1", &[&id])
                    .await
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
        let rows = self
            .client()
            .await?
            .query(
                "SELECT consumer_id, currency, balance_micros, reserved_micros, entries, updated_at \
                 FROM wallets WHERE consumer_id = $1 ORDER BY currency",
                &[&consumer_id],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(wallet_row).collect()
    }

    async fn append_ledger(
        &self,
        e: NewLedgerEntry,
        ctx: Option<&AuditContext>,
    ) -> StoreResult<(LedgerEntry, bool)> {
        self.write_changes(async |tx, changes| {
            let result = append_ledger_tx(tx, &e, ctx).await?;
            changes.push(Change::Wallet {
                consumer_id: e.consumer_id.clone(),
                currency: e.currency.clone(),
            });
            Ok(result)
        })
        .await
    }

    async fn period_usage(&self, subscription_id: &str, period_start: &str) -> StoreResult<i64> {
        let periods = vec![(subscription_id.to_owned(), period_start.to_owned())];
        Ok(self
            .period_usages(periods)
            .await?
            .first()
            .copied()
            .unwrap_or(0))
    }

    async fn period_usages(&self, periods: Vec<(String, String)>) -> StoreResult<Vec<i64>> {
        let (subs, starts): (Vec<String>, Vec<String>) = periods.into_iter().unzip();
        // One read for all: the pairs in their order, 0 where nothing was used.
        let rows = self
            .client()
            .await?
            .query(
                "SELECT coalesce(u.used_micros, 0) AS used FROM unnest($1::text[], $2::text[]) \
                 WITH ORDINALITY AS p(sub, start, n) LEFT JOIN subscription_usage u \
                 ON u.subscription_id = p.sub AND u.period_start = p.start ORDER BY p.n",
                &[&subs, &starts],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|r| r.col("used")).collect()
    }

    async fn settle_calls(&self, batch: UsageBatch) -> StoreResult<()> {
        let node = self.node.clone();
        self.write_changes(async |tx, changes| {
            for step in batch.settlements() {
                match step {
                    Settlement::Period(p) => {
                        tx.execute(
                            "INSERT INTO subscription_usage (subscription_id, period_start, used_micros, calls) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (subscription_id, period_start) \
                             DO UPDATE SET used_micros = subscription_usage.used_micros + excluded.used_micros, \
                             calls = subscription_usage.calls + excluded.calls",
                            &[&p.subscription_id, &p.period_start, &p.credits_micros, &p.calls],
                        )
                        .await
                        .map_err(backend)?;
                        leases::take(tx, &p.pot(), &node, p.leased_micros).await?;
                    }
                    Settlement::Usage(entry) => {
                        if let Some(entry) = leases::wallet_usage(tx, entry, &node).await? {
                            append_ledger_tx(tx, &entry, None).await?;
                        }
                    }
                    Settlement::Return(pot, amount) => {
                        if leases::take(tx, pot, &node, amount).await? > 0 {
                            changes.push(pot.freed());
                        }
                    }
                }
            }
            for k in &batch.key_uses {
                // A key deleted meanwhile matches no row: its use is dropped.
                tx.execute(
                    "UPDATE provider_keys SET requests = requests + $2, failures = failures + $3, \
                     tokens = tokens + $4, last_used_at = greatest(last_used_at, $5) WHERE id = $1",
                    &[&k.key_id, &k.requests, &k.failures, &k.tokens, &k.at],
                )
                .await
                .map_err(backend)?;
            }
            append_calls(tx, &batch.calls).await
        })
        .await
    }

    async fn lease(&self, pot: &Pot, ask: LeaseAsk) -> StoreResult<Grant> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let grant = leases::lease(&tx, pot, &self.node, ask).await?;
        tx.commit().await.map_err(backend)?;
        Ok(grant)
    }

    async fn reclaim_leases(&self, heartbeat_before: DateTime<Utc>) -> StoreResult<u64> {
        let me = self.node.clone();
        self.write_changes(async |tx, changes| {
            leases::reclaim(tx, &me, heartbeat_before, changes).await
        })
        .await
    }

    async fn take_allowance(
        &self,
        key: &str,
        per_minute: u32,
        need: u32,
    ) -> StoreResult<AllowanceGrant> {
        let mut client = self.client().await?;
        leases::with_allowance(&mut client, key, |full_at, now| {
            allowance_grant(full_at, now, per_minute, need)
        })
        .await
    }

    async fn return_allowance(&self, key: &str, per_minute: u32, units: i64) -> StoreResult<()> {
        let mut client = self.client().await?;
        leases::with_allowance(&mut client, key, |full_at, now| {
            (allowance_returned(full_at, now, per_minute, units), ())
        })
        .await
    }

    async fn payment_settings(&self) -> StoreResult<Option<StoredPaymentSettings>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT processor, credentials_sealed, credentials_last4, accepted_currencies, \
                 grace_days, updated_at, version, publishable_key, webhook_secret_sealed, api_base_url \
                 FROM payment_settings WHERE id = 1",
                &[],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(StoredPaymentSettings {
                processor: r.col("processor")?,
                credentials_sealed: r.col("credentials_sealed")?,
                credentials_last4: r.col("credentials_last4")?,
                publishable_key: r.col("publishable_key")?,
                webhook_secret_sealed: r.col("webhook_secret_sealed")?,
                api_base_url: r.col("api_base_url")?,
                accepted_currencies: serde_json::from_str(r.col("accepted_currencies")?)
                    .unwrap_or_default(),
                grace_days: u32::try_from(r.col::<i32>("grace_days")?)
                    .map_err(|e| StoreError::Backend(e.into()))?,
                updated_at: r.col("updated_at")?,
                version: r.col("version")?,
            })
        })
        .transpose()
    }

    async fn save_payment_settings(
        &self,
        settings: StoredPaymentSettings,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<StoredPaymentSettings> {
        let load = async |tx: &Transaction<'_>, _: &str| {
            super::singleton_version(tx, "payment_settings").await
        };
        self.versioned_write("payment_settings", expected_version, ctx, load, async |tx, _, current, changes| {
            let now = now();
            let grace = i32::try_from(settings.grace_days).map_err(|e| StoreError::Backend(e.into()))?;
            tx.execute(
                "INSERT INTO payment_settings (id, processor, credentials_sealed, credentials_last4, \
                 accepted_currencies, grace_days, updated_at, version, publishable_key, webhook_secret_sealed, \
                 api_base_url) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO UPDATE SET processor = excluded.processor, \
                 credentials_sealed = excluded.credentials_sealed, credentials_last4 = excluded.credentials_last4, \
                 accepted_currencies = excluded.accepted_currencies, grace_days = excluded.grace_days, \
                 updated_at = excluded.updated_at, version = excluded.version, \
                 publishable_key = excluded.publishable_key, webhook_secret_sealed = excluded.webhook_secret_sealed, \
                 api_base_url = excluded.api_base_url",
                &[
                    &settings.processor,
                    &settings.credentials_sealed,
                    &settings.credentials_last4,
                    &json(&settings.accepted_currencies)?,
                    &grace,
                    &now,
                    &(current + 1),
                    &settings.publishable_key,
                    &settings.webhook_secret_sealed,
                    &settings.api_base_url,
                ],
            )
            .await
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
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {LEDGER_COLUMNS} FROM ledger_entries WHERE consumer_id = $1 AND currency = $2 \
                     AND seq < $3 ORDER BY seq DESC LIMIT $4"
                ),
                &[&consumer_id, &currency, &before.unwrap_or(i64::MAX), &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, ledger_row)
    }
}
