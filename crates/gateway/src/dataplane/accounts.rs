//! Reservations: credit is held before a call is forwarded and settled after,
//! under one lock per consumer, so concurrent calls never spend more than
//! there is. Every ledger write of a consumer (calls and admin top-ups) goes
//! through here, so the cached balances stay equal to the store's.

// A fast hash: these maps are read on every call (seeded per process).
use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tollgate_api::money::{Amount, parse_amount};
use tollgate_api::{LedgerEntry, OveragePolicy};

use super::hot::Coverage;
use super::refusal::Refusal;
use super::usage::{SettledCall, UsageWriter};
use crate::store::{AuditContext, NewLedgerEntry, Store, StoreResult};

#[derive(Debug, Default)]
struct Wallet {
    balance: i64,
    reserved: i64,
}

/// A subscription's included credits in its current period (keyed by the
/// period's start); a call of an older period no longer counts here.
#[derive(Debug, Default)]
struct Credits {
    period: String,
    used: i64,
    reserved: i64,
}

#[derive(Debug, Default)]
struct Cell {
    wallets: HashMap<String, Wallet>,
    /// Per subscription id.
    credits: HashMap<String, Credits>,
}

impl Cell {
    /// The credits of `sub` if `period` is still its current one.
    fn credits_in(&mut self, sub: &str, period: &str) -> Option<&mut Credits> {
        self.credits.get_mut(sub).filter(|c| c.period == period)
    }
}

/// Credit held for one call.
#[derive(Debug, Clone)]
pub struct Reservation {
    consumer_id: String,
    currency: String,
    subscription_id: String,
    period: String,
    included: i64,
    overage: OveragePolicy,
    credits: i64,
    wallet: i64,
}

/// What a call could not be paid from.
enum ShortOf {
    IncludedCredits,
    Wallet,
}

fn insufficient_funds(cover: &Coverage, balance: i64, required: i64, short_of: ShortOf) -> Refusal {
    let (balance, required) = (Amount::new(balance, 2), Amount::new(required, 2));
    let currency = cover.plan.currency.as_str();
    // Built by hand rather than with `format!`: refusals are the hottest answer.
    let mut message = String::with_capacity(112);
    if let ShortOf::Wallet = short_of {
        for part in [
            "The wallet holds ",
            balance.as_str(),
            " ",
            currency,
            " available; this call needs ",
            required.as_str(),
            ".",
        ] {
            message.push_str(part);
        }
    } else {
        for part in [
            "The plan's included credits for this period are used up (",
            balance.as_str(),
            " ",
            currency,
            " left, ",
            required.as_str(),
            " needed).",
        ] {
            message.push_str(part);
        }
    }
    Refusal::new(
        StatusCode::PAYMENT_REQUIRED,
        "insufficient-funds",
        "Insufficient funds",
        message,
    )
    .amount_field("balance", balance)
    .amount_field("required", required)
    .raw_field("currency", &cover.currency_json)
    .covering(cover)
}

pub struct Accounts {
    store: Arc<dyn Store>,
    pub usage: UsageWriter,
    cells: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cell>>>>,
}

impl Accounts {
    /// Needs a tokio runtime: it starts the usage writer.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let usage = UsageWriter::start(store.clone());
        Accounts {
            store,
            usage,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The amount held for calls in flight, per currency, for a consumer.
    pub async fn reserved(&self, consumer_id: &str) -> HashMap<String, i64> {
        let cell = self.cell(consumer_id);
        let cell = cell.lock().await;
        cell.wallets
            .iter()
            .map(|(c, w)| (c.clone(), w.reserved))
            .collect()
    }

    fn cell(&self, consumer_id: &str) -> Arc<tokio::sync::Mutex<Cell>> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = cells.get(consumer_id) {
            return cell.clone();
        }
        cells.entry(consumer_id.to_owned()).or_default().clone()
    }

    async fn wallet<'a>(
        &self,
        cell: &'a mut Cell,
        consumer_id: &str,
        currency: &str,
    ) -> StoreResult<&'a mut Wallet> {
        if !cell.wallets.contains_key(currency) {
            let stored = self.store.wallets(consumer_id).await?;
            let balance = stored
                .iter()
                .find(|w| w.currency == currency)
                .and_then(|w| parse_amount(&w.balance).ok())
                .unwrap_or(0);
            cell.wallets.insert(
                currency.to_owned(),
                Wallet {
                    balance,
                    reserved: 0,
                },
            );
        }
        Ok(cell.wallets.get_mut(currency).expect("inserted above"))
    }

    async fn credits<'a>(
        &self,
        cell: &'a mut Cell,
        sub: &str,
        period: &str,
    ) -> StoreResult<&'a mut Credits> {
        if cell.credits_in(sub, period).is_none() {
            let used = self.store.period_usage(sub, period).await?;
            cell.credits.insert(
                sub.to_owned(),
                Credits {
                    period: period.to_owned(),
                    used,
                    reserved: 0,
                },
            );
        }
        Ok(cell
            .credits_in(sub, period)
            .expect("inserted above for this period"))
    }

    /// Holds `estimate` for a call: from the period's included credits first,
    /// then from the wallet when the plan charges overage to it.
    pub async fn reserve(&self, cover: &Coverage, estimate: i64) -> Result<Reservation, Refusal> {
        let (sub, plan) = (&cover.sub, &cover.plan);
        let cell = self.cell(&sub.consumer_id);
        let mut cell = cell.lock().await;
        let unavailable = |_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "billing-unavailable",
                "Billing unavailable",
                "The gateway cannot read balances right now.",
            )
        };
        let included = cover.included;
        let period = &cover.period;
        let credits = self
            .credits(&mut cell, &sub.id, period)
            .await
            .map_err(unavailable)?;
        let credits_left = (included - credits.used - credits.reserved).max(0);
        let from_credits = estimate.min(credits_left);
        let rest = estimate - from_credits;
        if rest > 0 {
            if plan.overage == OveragePolicy::Block {
                return Err(insufficient_funds(
                    cover,
                    credits_left,
                    estimate,
                    ShortOf::IncludedCredits,
                ));
            }
            let wallet = self
                .wallet(&mut cell, &sub.consumer_id, &plan.currency)
                .await
                .map_err(unavailable)?;
            let available = wallet.balance - wallet.reserved;
            if available < rest {
                return Err(insufficient_funds(
                    cover,
                    available.max(0),
                    rest,
                    ShortOf::Wallet,
                ));
            }
            wallet.reserved += rest;
        }
        let credits = self
            .credits(&mut cell, &sub.id, period)
            .await
            .map_err(unavailable)?;
        credits.reserved += from_credits;
        Ok(Reservation {
            consumer_id: sub.consumer_id.clone(),
            currency: plan.currency.clone(),
            subscription_id: sub.id.clone(),
            period: period.clone(),
            included,
            overage: plan.overage,
            credits: from_credits,
            wallet: rest,
        })
    }

    fn release_in(cell: &mut Cell, r: &Reservation) {
        if let Some(c) = cell.credits_in(&r.subscription_id, &r.period) {
            c.reserved -= r.credits;
        }
        if let Some(w) = cell.wallets.get_mut(&r.currency) {
            w.reserved -= r.wallet;
        }
    }

    /// A call that failed: nothing is charged, the hold is lifted.
    pub async fn release(&self, r: &Reservation) {
        let cell = self.cell(&r.consumer_id);
        Self::release_in(&mut *cell.lock().await, r);
    }

    /// A consumer's standing as the data plane holds it, calls settled but
    /// not yet stored included (nothing is flushed): the credits used in each
    /// `(subscription id, period)` of `periods`, and `(balance, reserved)` of
    /// each of `stored` wallets. What is not held yet comes from `stored` and
    /// from the store's usage, read in one go.
    pub async fn standing(
        &self,
        consumer_id: &str,
        periods: &[(String, String)],
        stored: &[tollgate_api::Wallet],
    ) -> StoreResult<(Vec<i64>, Vec<(i64, i64)>)> {
        let cell = self.cell(consumer_id);
        let mut cell = cell.lock().await;
        let missing: Vec<(String, String)> = periods
            .iter()
            .filter(|(sub, period)| cell.credits_in(sub, period).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            let used = self.store.period_usages(missing.clone()).await?;
            for ((sub, period), used) in missing.into_iter().zip(used) {
                cell.credits.insert(
                    sub,
                    Credits {
                        period,
                        used,
                        reserved: 0,
                    },
                );
            }
        }
        let credits = periods
            .iter()
            .map(|(sub, period)| cell.credits_in(sub, period).map_or(0, |c| c.used))
            .collect();
        let wallets = stored
            .iter()
            .map(|w| match cell.wallets.get(&w.currency) {
                Some(held) => (held.balance, held.reserved),
                None => (parse_amount(&w.balance).unwrap_or(0), 0),
            })
            .collect();
        Ok((credits, wallets))
    }

    /// Charges `actual` for a finished call (credits first) and lifts the hold.
    /// The balances move at once; the disk follows through the usage writer.
    pub async fn settle(&self, r: &Reservation, actual: i64, request_id: &str) {
        let cell = self.cell(&r.consumer_id);
        let mut cell = cell.lock().await;
        Self::release_in(&mut cell, r);
        let used = cell
            .credits_in(&r.subscription_id, &r.period)
            .map_or(0, |c| c.used);
        let credits_left = (r.included - used).max(0);
        let (from_credits, from_wallet) = match r.overage {
            // A blocking plan never touches the wallet: the last call may overrun its credits.
            OveragePolicy::Block => (actual, 0),
            OveragePolicy::ChargeWallet => {
                (actual.min(credits_left), actual - actual.min(credits_left))
            }
        };
        self.usage.record(SettledCall {
            consumer_id: r.consumer_id.clone(),
            currency: r.currency.clone(),
            subscription_id: r.subscription_id.clone(),
            period_start: r.period.clone(),
            credits: from_credits,
            wallet: from_wallet,
            request_id: request_id.to_owned(),
        });
        if let Some(c) = cell.credits_in(&r.subscription_id, &r.period) {
            c.used += from_credits;
        }
        if let Some(w) = cell.wallets.get_mut(&r.currency) {
            w.balance -= from_wallet;
        }
    }

    /// An admin's ledger write, kept in step with the cached balance.
    pub async fn append(
        &self,
        entry: NewLedgerEntry,
        audit: &AuditContext,
    ) -> StoreResult<(LedgerEntry, bool)> {
        let cell = self.cell(&entry.consumer_id);
        let mut cell = cell.lock().await;
        // Usage still on its way to the disk must land first: the entry's
        // balance_after (and the overdraft check) are computed from the disk.
        self.usage.flush().await;
        let amount = entry.amount_micros;
        let (written, replayed) = self.store.append_ledger(entry, Some(audit)).await?;
        if !replayed && let Some(w) = cell.wallets.get_mut(&written.currency) {
            w.balance += amount;
        }
        Ok((written, replayed))
    }
}
