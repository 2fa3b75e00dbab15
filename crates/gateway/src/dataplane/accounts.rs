//! Reservations from leases: a node spends from what the database has set
//! aside for it (a lease on a wallet, or on a subscription period's included
//! credits), so calls on any number of nodes never spend more than there is.
//! A call holds its estimated cost from the node's leases before it is
//! forwarded, under one lock per consumer, and settles its actual cost after;
//! the usage writer takes what was spent from the leases and the pots in the
//! database. When a lease runs short the node asks for more (near the end of
//! a balance, only what the call at hand needs); a pot that has nothing left
//! is remembered as dry, and its calls are refused from memory until a
//! change to it arrives (a top-up, a lease another node gave back). Leases
//! not used for a while are given back, and all of them at shutdown; a node
//! that cannot reach the database stops spending them, since the jobs'
//! leader gives a silent node's leases back after a while.

// A fast hash: these maps are read on every call (seeded per process).
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tollgate_api::money::Amount;
use tollgate_api::{LedgerEntry, OveragePolicy};

use super::cells::{self, Cells, lock};
use super::hot::Coverage;
use super::refusal::Refusal;
use super::usage::{SettledCall, UsageWriter};
use crate::changes::{Change, ChangeListener};
use crate::metrics::Metrics;
use crate::store::{AuditContext, LeaseAsk, NewLedgerEntry, Pot, Store, StoreResult};

/// A lease asks for this many calls like the one at hand (the database
/// grants at most a quarter of what is left)…
const LEASE_CALLS: i64 = 50;
/// …twice as many as the last when that one lasted less than
/// [`LEASE_LASTED`], up to this many: a busy consumer asks the database a
/// few times a second, not every 50 calls (its calls wait for the answer).
const MAX_LEASE_CALLS: i64 = 10_000;
const LEASE_LASTED: Duration = Duration::from_secs(1);
/// A lease not used for this long is given back.
const IDLE: Duration = Duration::from_secs(2);
/// How often idle leases are looked for.
const SWEEP: Duration = Duration::from_millis(500);
/// Leases are spent only this long after the node's last heartbeat: the
/// leader gives back the leases of a node silent for twice as long
/// (see the server's heartbeats).
pub const LEASES_TRUSTED_FOR: Duration = Duration::from_secs(10);

/// What this node holds of one pot.
#[derive(Debug)]
struct Held {
    /// Set aside for this node by the database, less what its calls spent.
    leased: i64,
    /// Held by calls in flight (part of `leased`).
    reserved: i64,
    /// The pot had nothing more to lease when last asked: refused from
    /// memory while the change epoch is the same.
    dry: Option<Dry>,
    used_at: Instant,
    /// Calls the next lease asks for, and when the last was granted.
    lease_calls: i64,
    leased_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Dry {
    /// What no node held when the pot was found dry.
    available: i64,
    epoch: u64,
}

impl Held {
    fn new() -> Self {
        Held {
            leased: 0,
            reserved: 0,
            dry: None,
            used_at: Instant::now(),
            lease_calls: LEASE_CALLS,
            leased_at: None,
        }
    }

    fn free(&self) -> i64 {
        self.leased - self.reserved
    }
}

#[derive(Debug, Default)]
struct Cell {
    /// Per currency.
    wallets: HashMap<String, Held>,
    /// Per subscription id, then period start. Looked up by `&str` on every
    /// call: a key is allocated only when a pot is first held.
    credits: HashMap<String, HashMap<String, Held>>,
}

impl Cell {
    fn credits_mut(&mut self, sub: &str, period: &str) -> Option<&mut Held> {
        self.credits.get_mut(sub)?.get_mut(period)
    }

    fn credits_entry(&mut self, sub: &str, period: &str) -> &mut Held {
        if self.credits_mut(sub, period).is_none() {
            self.credits
                .entry(sub.to_owned())
                .or_default()
                .insert(period.to_owned(), Held::new());
        }
        self.credits_mut(sub, period).expect("inserted above")
    }

    /// `(pot, amount)` for each lease idle since `before` (all when `None`);
    /// their free part is taken off the books. Entries with nothing left
    /// are dropped.
    fn give_back(&mut self, consumer_id: &str, before: Option<Instant>) -> Vec<(Pot, i64)> {
        let due = |h: &Held| before.is_none_or(|t| h.used_at <= t);
        let mut out = Vec::new();
        for (currency, held) in &mut self.wallets {
            if held.free() > 0 && due(held) {
                out.push((
                    Pot::Wallet {
                        consumer_id: consumer_id.to_owned(),
                        currency: currency.clone(),
                    },
                    held.free(),
                ));
                held.leased = held.reserved;
            }
        }
        for (sub, periods) in &mut self.credits {
            for (period, held) in periods {
                if held.free() > 0 && due(held) {
                    out.push((
                        Pot::Credits {
                            subscription_id: sub.clone(),
                            period_start: period.clone(),
                        },
                        held.free(),
                    ));
                    held.leased = held.reserved;
                }
            }
        }
        let idle = |h: &Held| h.leased == 0 && h.reserved == 0 && due(h);
        self.wallets.retain(|_, h| !idle(h));
        self.credits.retain(|_, periods| {
            periods.retain(|_, h| !idle(h));
            !periods.is_empty()
        });
        out
    }

    fn is_empty(&self) -> bool {
        self.wallets.is_empty() && self.credits.is_empty()
    }
}

/// Credit held for one call.
#[derive(Debug, Clone)]
pub struct Reservation {
    consumer_id: String,
    currency: String,
    subscription_id: String,
    period: String,
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

fn unavailable() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-unavailable",
        "Billing unavailable",
        "The gateway cannot read balances right now.",
    )
}

/// Moves on with every change that may free money or credits: dry marks
/// taken before it no longer hold.
#[derive(Default)]
pub struct Freed {
    epoch: AtomicU64,
}

impl ChangeListener for Freed {
    fn changed(&self, change: &Change) {
        match change {
            Change::Wallet { .. }
            | Change::Credits { .. }
            | Change::Subscription { .. }
            | Change::Plan { .. }
            | Change::Everything => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
            }
            Change::Key { .. }
            | Change::Consumer { .. }
            | Change::PaymentMethods { .. }
            | Change::PaymentSettings
            | Change::Provider { .. }
            | Change::PromptApi { .. }
            | Change::LogSettings { .. } => {}
        }
    }
}

impl Freed {
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

pub struct Accounts {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    pub usage: UsageWriter,
    cells: Arc<Cells<Cell>>,
    freed: Arc<Freed>,
    /// Until when leases may be spent (see [`LEASES_TRUSTED_FOR`]).
    trusted_until: Arc<Mutex<Instant>>,
}

impl Accounts {
    /// Needs a tokio runtime: it starts the usage writer and the task that
    /// gives idle leases back.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let usage = UsageWriter::start(store.clone(), metrics.clone());
        let cells: Arc<Cells<Cell>> = Arc::default();
        let trusted_until = Arc::new(Mutex::new(Instant::now() + LEASES_TRUSTED_FOR));
        tokio::spawn(sweep(
            Arc::downgrade(&cells),
            usage.clone(),
            trusted_until.clone(),
        ));
        Accounts {
            store,
            metrics,
            usage,
            cells,
            freed: Arc::default(),
            trusted_until,
        }
    }

    /// What hears the changes that free money or credits.
    pub fn listener(&self) -> Arc<Freed> {
        self.freed.clone()
    }

    /// The node's heartbeat reached the database: its leases are its own for
    /// a while longer.
    pub fn heartbeat_succeeded(&self) {
        *lock(&self.trusted_until) = Instant::now() + LEASES_TRUSTED_FOR;
    }

    fn trusted(&self) -> bool {
        Instant::now() < *lock(&self.trusted_until)
    }

    /// The amount held for calls in flight on this node, per currency, for
    /// a consumer.
    pub async fn reserved(&self, consumer_id: &str) -> HashMap<String, i64> {
        let cell = self.cell(consumer_id);
        let cell = cell.lock().await;
        cell.wallets
            .iter()
            .map(|(c, w)| (c.clone(), w.reserved))
            .collect()
    }

    fn cell(&self, consumer_id: &str) -> cells::Cell<Cell> {
        self.cells.get(consumer_id)
    }

    /// Makes `held` hold at least `need` free, leasing more of `pot` when it
    /// does not (`per_call` times the calls a lease asks for, or what there
    /// is when `partial`); a dry pot is not asked again. Returns what no node held when the pot was last
    /// asked (for a refusal). `pot` is built only when the database is asked.
    async fn lease_more(
        &self,
        held: &mut Held,
        pot: impl FnOnce() -> Pot,
        need: i64,
        per_call: i64,
        partial: bool,
        included: i64,
    ) -> Result<i64, Refusal> {
        held.used_at = Instant::now();
        if held.free() >= need {
            return Ok(0);
        }
        let epoch = self.freed.epoch();
        if let Some(dry) = held.dry.filter(|d| d.epoch == epoch) {
            return Ok(dry.available);
        }
        held.lease_calls = match held.leased_at {
            Some(at) if at.elapsed() < LEASE_LASTED => (held.lease_calls * 2).min(MAX_LEASE_CALLS),
            _ => LEASE_CALLS,
        };
        let ask = LeaseAsk {
            need: need - held.free().max(0),
            want: per_call.saturating_mul(held.lease_calls).max(need),
            partial,
            included,
        };
        let asked = Instant::now();
        let grant = self.store.lease(&pot(), ask).await;
        self.metrics.lease_answered(asked.elapsed());
        let grant = grant.map_err(|e| {
            super::store_failed("leases", &e);
            unavailable()
        })?;
        held.leased += grant.granted;
        held.leased_at = Some(Instant::now());
        held.dry = (held.free() < need).then_some(Dry {
            available: grant.available,
            epoch,
        });
        Ok(grant.available)
    }

    /// Holds `estimate` for a call: from the period's included credits first,
    /// then from the wallet when the plan charges overage to it.
    pub async fn reserve(&self, cover: &Coverage, estimate: i64) -> Result<Reservation, Refusal> {
        let (sub, plan) = (&cover.sub, &cover.plan);
        let charge_wallet = plan.overage == OveragePolicy::ChargeWallet;
        let cell = self.cell(&sub.consumer_id);
        let mut cell = cell.lock().await;
        // Checked under the lock: a call that waited for it does not spend
        // leases the node stopped trusting meanwhile.
        if !self.trusted() {
            return Err(unavailable());
        }
        let cell = &mut *cell;

        // A plan without included credits has none to lease.
        let (from_credits, credits_elsewhere) = if cover.included == 0 {
            (0, 0)
        } else {
            let credits = cell.credits_entry(&sub.id, &cover.period);
            let elsewhere = self
                .lease_more(
                    credits,
                    || Pot::Credits {
                        subscription_id: sub.id.clone(),
                        period_start: cover.period.clone(),
                    },
                    estimate,
                    estimate,
                    // What credits are left pay for part of the call, the
                    // wallet for the rest.
                    charge_wallet,
                    cover.included,
                )
                .await?;
            (estimate.min(credits.free().max(0)), elsewhere)
        };
        let rest = estimate - from_credits;
        if rest > 0 {
            if !charge_wallet {
                return Err(insufficient_funds(
                    cover,
                    from_credits + credits_elsewhere,
                    estimate,
                    ShortOf::IncludedCredits,
                ));
            }
            let wallet = match cell.wallets.get_mut(&plan.currency) {
                Some(wallet) => wallet,
                None => cell
                    .wallets
                    .entry(plan.currency.clone())
                    .or_insert_with(Held::new),
            };
            let elsewhere = self
                .lease_more(
                    wallet,
                    || Pot::Wallet {
                        consumer_id: sub.consumer_id.clone(),
                        currency: plan.currency.clone(),
                    },
                    rest,
                    estimate,
                    false,
                    0,
                )
                .await?;
            if wallet.free() < rest {
                return Err(insufficient_funds(
                    cover,
                    wallet.free().max(0) + elsewhere,
                    rest,
                    ShortOf::Wallet,
                ));
            }
            wallet.reserved += rest;
        }
        if from_credits > 0
            && let Some(credits) = cell.credits_mut(&sub.id, &cover.period)
        {
            credits.reserved += from_credits;
        }
        Ok(Reservation {
            consumer_id: sub.consumer_id.clone(),
            currency: plan.currency.clone(),
            subscription_id: sub.id.clone(),
            period: cover.period.clone(),
            overage: plan.overage,
            credits: from_credits,
            wallet: rest,
        })
    }

    fn release_in(cell: &mut Cell, r: &Reservation) {
        if let Some(c) = cell.credits_mut(&r.subscription_id, &r.period) {
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

    /// Charges `actual` for a finished call and lifts the hold: what it held
    /// of credits and wallet first, then (a call that cost more than its
    /// estimate) what the node's leases have free. A blocking plan's last
    /// call may run past its credits; a wallet is never charged more than
    /// the node holds of it. The database follows through the usage writer.
    pub async fn settle(&self, r: &Reservation, actual: i64, request_id: &str) {
        let cell = self.cell(&r.consumer_id);
        let mut cell = cell.lock().await;
        let cell = &mut *cell;
        Self::release_in(cell, r);
        let charge_wallet = r.overage == OveragePolicy::ChargeWallet;
        let credits = cell
            .credits
            .get_mut(r.subscription_id.as_str())
            .and_then(|periods| periods.get_mut(r.period.as_str()));
        let credits_free = credits.as_ref().map_or(0, |c| c.free().max(0));
        let wallet = cell.wallets.get_mut(&r.currency);
        let wallet_free = wallet.as_ref().map_or(0, |w| w.free().max(0));

        let mut left = actual.max(0);
        let mut from_credits = left.min(r.credits);
        left -= from_credits;
        let mut from_wallet = if charge_wallet { left.min(r.wallet) } else { 0 };
        left -= from_wallet;
        let over_credits = left.min((credits_free - from_credits).max(0));
        from_credits += over_credits;
        left -= over_credits;
        if charge_wallet {
            let over_wallet = left.min((wallet_free - from_wallet).max(0));
            from_wallet += over_wallet;
            left -= over_wallet;
        }
        let leased_credits = from_credits;
        if let Some(c) = credits {
            c.leased -= from_credits;
        }
        if let Some(w) = wallet {
            w.leased -= from_wallet;
        }
        if left > 0 {
            if charge_wallet {
                tracing::warn!(
                    request_id,
                    uncharged = left,
                    "a call cost more than its estimate and what the node held; the rest is not charged"
                );
            } else {
                // A blocking plan's overrun counts as credits used.
                from_credits += left;
            }
        }
        self.usage.record(SettledCall {
            consumer_id: r.consumer_id.clone(),
            currency: r.currency.clone(),
            subscription_id: r.subscription_id.clone(),
            period_start: r.period.clone(),
            credits: from_credits,
            leased_credits,
            wallet: from_wallet,
            request_id: request_id.to_owned(),
        });
    }

    /// An admin's ledger write. Usage still on its way to the disk lands
    /// first, so the ledger lists it before the entry.
    pub async fn append(
        &self,
        entry: NewLedgerEntry,
        audit: &AuditContext,
    ) -> StoreResult<(LedgerEntry, bool)> {
        self.usage.flush().await;
        self.store.append_ledger(entry, Some(audit)).await
    }

    /// Gives every lease back (at shutdown, after the calls in flight) and
    /// waits until the database has them.
    pub async fn give_back_all(&self) {
        for (consumer_id, cell) in self.cells.all() {
            for (pot, amount) in cell.lock().await.give_back(&consumer_id, None) {
                self.usage.give_back(pot, amount);
            }
        }
        self.usage.flush().await;
    }
}

/// Every [`SWEEP`]: gives back leases idle for [`IDLE`] (every lease, when
/// the node's leases are no longer trusted), and forgets consumers with
/// nothing held. Ends with the accounts.
async fn sweep(cells: Weak<Cells<Cell>>, usage: UsageWriter, trusted_until: Arc<Mutex<Instant>>) {
    let mut ticks = cells::Ticks::new(SWEEP, cells);
    while let Some(cells) = ticks.next().await {
        let now = Instant::now();
        // Untrusted leases all go back; else those idle for a while.
        let cutoff = if now < *lock(&trusted_until) {
            now.checked_sub(IDLE)
        } else {
            Some(now)
        };
        let Some(cutoff) = cutoff else {
            continue;
        };
        let mut empty = Vec::new();
        for (consumer_id, cell) in cells.all() {
            // A consumer busy right now is not idle.
            let Ok(mut cell) = cell.try_lock() else {
                continue;
            };
            for (pot, amount) in cell.give_back(&consumer_id, Some(cutoff)) {
                usage.give_back(pot, amount);
            }
            if cell.is_empty() {
                empty.push(consumer_id);
            }
        }
        cells.forget(empty, Cell::is_empty);
    }
}
