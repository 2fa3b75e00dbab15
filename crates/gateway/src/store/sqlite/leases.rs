//! Leases in SQLite: what a node sets aside from wallets and included
//! credits, kept within each pot by the database (see migration 0016).

use rusqlite::{Connection, OptionalExtension, params};

use super::{backend, is_foreign_key_violation};
use crate::changes::Change;
use crate::store::rules::{lease_grant, usage_cover};
use crate::store::{Grant, LeaseAsk, NewLedgerEntry, Pot, StoreError, StoreResult};

/// What `node` holds of `pot`.
fn held(tx: &Connection, pot: &Pot, node: &str) -> StoreResult<i64> {
    let (kind, holder, part) = pot.key();
    tx.prepare_cached(
        "SELECT amount_micros FROM leases WHERE kind = ?1 AND holder = ?2 AND part = ?3 AND node_id = ?4",
    )
    .and_then(|mut s| {
        s.query_row(params![kind, holder, part, node], |r| r.get(0))
            .optional()
    })
    .map(Option::unwrap_or_default)
    .map_err(backend)
}

/// Moves the pot's reserved sum by `delta` (the trigger on `wallets` refuses
/// a wallet reserving more than its balance).
fn move_reserved(tx: &Connection, pot: &Pot, delta: i64) -> StoreResult<()> {
    let sql = match pot {
        Pot::Wallet { .. } => {
            "UPDATE wallets SET reserved_micros = reserved_micros + ?3 WHERE consumer_id = ?1 AND currency = ?2"
        }
        Pot::Credits { .. } => {
            "UPDATE subscription_usage SET reserved_micros = reserved_micros + ?3 \
             WHERE subscription_id = ?1 AND period_start = ?2"
        }
    };
    let (_, holder, part) = pot.key();
    tx.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![holder, part, delta]))
        .map_err(backend)?;
    Ok(())
}

/// Takes up to `amount` from `node`'s lease on `pot`: what it took.
pub(super) fn take(tx: &Connection, pot: &Pot, node: &str, amount: i64) -> StoreResult<i64> {
    if amount <= 0 {
        return Ok(0);
    }
    let held = held(tx, pot, node)?;
    let taken = amount.min(held);
    if taken == 0 {
        return Ok(0);
    }
    let (kind, holder, part) = pot.key();
    if taken == held {
        tx.prepare_cached(
            "DELETE FROM leases WHERE kind = ?1 AND holder = ?2 AND part = ?3 AND node_id = ?4",
        )
        .and_then(|mut s| s.execute(params![kind, holder, part, node]))
    } else {
        tx.prepare_cached(
            "UPDATE leases SET amount_micros = amount_micros - ?5 \
             WHERE kind = ?1 AND holder = ?2 AND part = ?3 AND node_id = ?4",
        )
        .and_then(|mut s| s.execute(params![kind, holder, part, node, taken]))
    }
    .map_err(backend)?;
    move_reserved(tx, pot, -taken)?;
    Ok(taken)
}

/// Sets aside what `ask` gets of `pot` for `node`.
pub(super) fn lease(tx: &Connection, pot: &Pot, node: &str, ask: LeaseAsk) -> StoreResult<Grant> {
    let available: i64 = match pot {
        Pot::Wallet {
            consumer_id,
            currency,
        } => tx
            .prepare_cached(
                "SELECT balance_micros - reserved_micros FROM wallets WHERE consumer_id = ?1 AND currency = ?2",
            )
            .and_then(|mut s| s.query_row(params![consumer_id, currency], |r| r.get(0)).optional())
            .map_err(backend)?
            .unwrap_or(0),
        Pot::Credits {
            subscription_id,
            period_start,
        } => {
            tx.prepare_cached(
                "INSERT INTO subscription_usage (subscription_id, period_start, used_micros, calls) \
                 VALUES (?1, ?2, 0, 0) ON CONFLICT (subscription_id, period_start) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![subscription_id, period_start]))
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::NotFound
                } else {
                    backend(e)
                }
            })?;
            let (used, reserved): (i64, i64) = tx
                .prepare_cached(
                    "SELECT used_micros, reserved_micros FROM subscription_usage \
                     WHERE subscription_id = ?1 AND period_start = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![subscription_id, period_start], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                })
                .map_err(backend)?;
            ask.included - used - reserved
        }
    };
    let available = available.max(0);
    let granted = lease_grant(available, ask);
    if granted > 0 {
        let (kind, holder, part) = pot.key();
        tx.prepare_cached(
            "INSERT INTO leases (kind, holder, part, node_id, amount_micros) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (kind, holder, part, node_id) DO UPDATE SET amount_micros = amount_micros + ?5",
        )
        .and_then(|mut s| s.execute(params![kind, holder, part, node, granted]))
        .map_err(backend)?;
        move_reserved(tx, pot, granted)?;
    }
    Ok(Grant {
        granted,
        available: available - granted,
    })
}

/// A node's usage entry for a wallet as it can be paid: from its lease,
/// then from what no node holds (see [`usage_cover`]); `None` when nothing
/// can be collected. A replayed entry is returned as it is (the ledger
/// answers it as a replay, and the lease was taken the first time).
pub(super) fn wallet_usage(
    tx: &Connection,
    entry: &NewLedgerEntry,
    node: &str,
) -> StoreResult<Option<NewLedgerEntry>> {
    let replay: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM ledger_entries WHERE consumer_id = ?1 AND currency = ?2 \
             AND idempotency_key = ?3)",
        )
        .and_then(|mut s| {
            s.query_row(
                params![entry.consumer_id, entry.currency, entry.idempotency_key],
                |r| r.get(0),
            )
        })
        .map_err(backend)?;
    if replay {
        return Ok(Some(entry.clone()));
    }
    let pot = Pot::Wallet {
        consumer_id: entry.consumer_id.clone(),
        currency: entry.currency.clone(),
    };
    let spent = -entry.amount_micros;
    let (balance, reserved): (i64, i64) = tx
        .prepare_cached(
            "SELECT balance_micros, reserved_micros FROM wallets WHERE consumer_id = ?1 AND currency = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![entry.consumer_id, entry.currency], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(backend)?
        .unwrap_or((0, 0));
    let (covered, extra) = usage_cover(spent, held(tx, &pot, node)?, balance, reserved);
    take(tx, &pot, node, covered)?;
    Ok(crate::store::rules::collected(entry, covered + extra))
}

/// Gives back the leases of every node but `me` whose heartbeat is older
/// than `heartbeat_before`, publishing each pot freed: how many leases.
pub(super) fn reclaim(
    tx: &Connection,
    me: &str,
    heartbeat_before: &str,
    changes: &mut Vec<Change>,
) -> StoreResult<u64> {
    let stale: Vec<(String, String, String, String, i64)> = tx
        .prepare(
            "SELECT kind, holder, part, node_id, amount_micros FROM leases WHERE node_id <> ?1 \
             AND node_id NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= ?2)",
        )
        .and_then(|mut s| {
            s.query_map(params![me, heartbeat_before], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .map_err(backend)?;
    let count = stale.len() as u64;
    for (kind, holder, part, node, amount) in stale {
        let Some(pot) = Pot::from_key(&kind, holder, part) else {
            continue;
        };
        take(tx, &pot, &node, amount)?;
        changes.push(pot.freed());
    }
    Ok(count)
}

/// Runs `f` on the rate-limit bucket `key` (its `full_at`, 0 when new, and
/// the time now, µs) and stores the `full_at` it answers, in one write.
pub(super) fn with_allowance<T>(
    c: &mut Connection,
    key: &str,
    f: impl FnOnce(i64, i64) -> (i64, T),
) -> StoreResult<T> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let full_at: i64 = tx
        .prepare_cached("SELECT full_at_us FROM rate_allowances WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(backend)?
        .unwrap_or(0);
    let (after, out) = f(full_at, chrono::Utc::now().timestamp_micros());
    if after != full_at {
        tx.prepare_cached(
            "INSERT INTO rate_allowances (key, full_at_us) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET full_at_us = excluded.full_at_us",
        )
        .and_then(|mut s| s.execute(params![key, after]))
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok(out)
}
