//! Leases in PostgreSQL: what each node sets aside from wallets and included
//! credits. The pot's row is locked (`FOR UPDATE`) before its leases move,
//! so nodes leasing and settling at once line up on it; the wallets table's
//! check keeps what is set aside within the balance.

use deadpool_postgres::Transaction;

use super::{Column, backend, is_foreign_key_violation};
use crate::changes::Change;
use crate::store::rules::{lease_grant, usage_cover};
use crate::store::{Grant, LeaseAsk, NewLedgerEntry, Pot, StoreError, StoreResult};

/// What `node` holds of `pot`.
async fn held(tx: &Transaction<'_>, pot: &Pot, node: &str) -> StoreResult<i64> {
    let (kind, holder, part) = pot.key();
    let row = tx
        .query_opt(
            "SELECT amount_micros FROM leases WHERE kind = $1 AND holder = $2 AND part = $3 AND node_id = $4",
            &[&kind, &holder, &part, &node],
        )
        .await
        .map_err(backend)?;
    row.map_or(Ok(0), |r| r.col("amount_micros"))
}

/// Locks the pot's row: `(balance or included-less-used, reserved)`.
async fn lock(tx: &Transaction<'_>, pot: &Pot) -> StoreResult<Option<(i64, i64)>> {
    let (_, holder, part) = pot.key();
    let sql = match pot {
        Pot::Wallet { .. } => {
            "SELECT balance_micros AS amount, reserved_micros FROM wallets \
             WHERE consumer_id = $1 AND currency = $2 FOR UPDATE"
        }
        Pot::Credits { .. } => {
            "SELECT used_micros AS amount, reserved_micros FROM subscription_usage \
             WHERE subscription_id = $1 AND period_start = $2 FOR UPDATE"
        }
    };
    let row = tx
        .query_opt(sql, &[&holder, &part])
        .await
        .map_err(backend)?;
    row.map(|r| Ok((r.col("amount")?, r.col("reserved_micros")?)))
        .transpose()
}

async fn move_reserved(tx: &Transaction<'_>, pot: &Pot, delta: i64) -> StoreResult<()> {
    let sql = match pot {
        Pot::Wallet { .. } => {
            "UPDATE wallets SET reserved_micros = reserved_micros + $3 WHERE consumer_id = $1 AND currency = $2"
        }
        Pot::Credits { .. } => {
            "UPDATE subscription_usage SET reserved_micros = reserved_micros + $3 \
             WHERE subscription_id = $1 AND period_start = $2"
        }
    };
    let (_, holder, part) = pot.key();
    tx.execute(sql, &[&holder, &part, &delta])
        .await
        .map_err(backend)?;
    Ok(())
}

/// Takes up to `amount` from `node`'s lease on `pot` (whose row the caller
/// has locked, or which this locks): what it took.
pub(super) async fn take(
    tx: &Transaction<'_>,
    pot: &Pot,
    node: &str,
    amount: i64,
) -> StoreResult<i64> {
    if amount <= 0 {
        return Ok(0);
    }
    lock(tx, pot).await?;
    let held = held(tx, pot, node).await?;
    let taken = amount.min(held);
    if taken == 0 {
        return Ok(0);
    }
    let (kind, holder, part) = pot.key();
    if taken == held {
        tx.execute(
            "DELETE FROM leases WHERE kind = $1 AND holder = $2 AND part = $3 AND node_id = $4",
            &[&kind, &holder, &part, &node],
        )
        .await
    } else {
        tx.execute(
            "UPDATE leases SET amount_micros = amount_micros - $5 \
             WHERE kind = $1 AND holder = $2 AND part = $3 AND node_id = $4",
            &[&kind, &holder, &part, &node, &taken],
        )
        .await
    }
    .map_err(backend)?;
    move_reserved(tx, pot, -taken).await?;
    Ok(taken)
}

/// Sets aside what `ask` gets of `pot` for `node`.
pub(super) async fn lease(
    tx: &Transaction<'_>,
    pot: &Pot,
    node: &str,
    ask: LeaseAsk,
) -> StoreResult<Grant> {
    if let Pot::Credits {
        subscription_id,
        period_start,
    } = pot
    {
        tx.execute(
            "INSERT INTO subscription_usage (subscription_id, period_start, used_micros, calls) \
             VALUES ($1, $2, 0, 0) ON CONFLICT (subscription_id, period_start) DO NOTHING",
            &[subscription_id, period_start],
        )
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound
            } else {
                backend(e)
            }
        })?;
    }
    let available = match (pot, lock(tx, pot).await?) {
        (_, None) => 0,
        (Pot::Wallet { .. }, Some((balance, reserved))) => balance - reserved,
        (Pot::Credits { .. }, Some((used, reserved))) => ask.included - used - reserved,
    }
    .max(0);
    let granted = lease_grant(available, ask);
    if granted > 0 {
        let (kind, holder, part) = pot.key();
        tx.execute(
            "INSERT INTO leases (kind, holder, part, node_id, amount_micros) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (kind, holder, part, node_id) \
             DO UPDATE SET amount_micros = leases.amount_micros + excluded.amount_micros",
            &[&kind, &holder, &part, &node, &granted],
        )
        .await
        .map_err(backend)?;
        move_reserved(tx, pot, granted).await?;
    }
    Ok(Grant {
        granted,
        available: available - granted,
    })
}

/// A node's usage entry for a wallet as it can be paid (see the SQLite
/// store's `wallet_usage`): the wallet's row is locked first.
pub(super) async fn wallet_usage(
    tx: &Transaction<'_>,
    entry: &NewLedgerEntry,
    node: &str,
) -> StoreResult<Option<NewLedgerEntry>> {
    let pot = Pot::Wallet {
        consumer_id: entry.consumer_id.clone(),
        currency: entry.currency.clone(),
    };
    let (balance, reserved) = lock(tx, &pot).await?.unwrap_or((0, 0));
    let replay = tx
        .query_opt(
            "SELECT 1 FROM ledger_entries WHERE consumer_id = $1 AND currency = $2 AND idempotency_key = $3",
            &[&entry.consumer_id, &entry.currency, &entry.idempotency_key],
        )
        .await
        .map_err(backend)?
        .is_some();
    if replay {
        return Ok(Some(entry.clone()));
    }
    let spent = -entry.amount_micros;
    let (covered, extra) = usage_cover(spent, held(tx, &pot, node).await?, balance, reserved);
    take(tx, &pot, node, covered).await?;
    Ok(crate::store::rules::collected(entry, covered + extra))
}

/// Gives back the leases of every node but `me` whose heartbeat is older
/// than `heartbeat_before`, publishing each pot freed: how many leases.
pub(super) async fn reclaim(
    tx: &Transaction<'_>,
    me: &str,
    heartbeat_before: chrono::DateTime<chrono::Utc>,
    changes: &mut Vec<Change>,
) -> StoreResult<u64> {
    let rows = tx
        .query(
            "SELECT kind, holder, part, node_id, amount_micros FROM leases WHERE node_id <> $1 \
             AND node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $2)",
            &[&me, &heartbeat_before],
        )
        .await
        .map_err(backend)?;
    let mut stale = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.col("kind")?;
        if let Some(pot) = Pot::from_key(&kind, r.col("holder")?, r.col("part")?) {
            let node: String = r.col("node_id")?;
            stale.push((pot, node, r.col::<i64>("amount_micros")?));
        }
    }
    // In the order every node locks pots in.
    stale.sort();
    for (pot, node, amount) in &stale {
        take(tx, pot, node, *amount).await?;
        changes.push(pot.freed());
    }
    Ok(stale.len() as u64)
}

/// Runs `f` on the rate-limit bucket `key` (its `full_at`, 0 when new, and
/// the database's time now, µs) and stores the `full_at` it answers, the row
/// locked in between: nodes taking from one bucket line up on it.
pub(super) async fn with_allowance<T>(
    client: &mut deadpool_postgres::Object,
    key: &str,
    f: impl FnOnce(i64, i64) -> (i64, T),
) -> StoreResult<T> {
    let tx = client.transaction().await.map_err(backend)?;
    let row = tx
        .query_one(
            "INSERT INTO rate_allowances (key, full_at_us) VALUES ($1, 0) \
             ON CONFLICT (key) DO UPDATE SET full_at_us = rate_allowances.full_at_us \
             RETURNING full_at_us, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us",
            &[&key],
        )
        .await
        .map_err(backend)?;
    let full_at: i64 = row.col("full_at_us")?;
    let (after, out) = f(full_at, row.col("now_us")?);
    if after != full_at {
        tx.execute(
            "UPDATE rate_allowances SET full_at_us = $2 WHERE key = $1",
            &[&key, &after],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(out)
}
