//! Per-consumer, per-plan rate limits, counted in calls or in tokens, held
//! across every node that shares the store. Each limit is a bucket in the
//! database (GCRA: a steady rate with a burst of one minute's allowance; see
//! [`allowance_grant`](crate::store::rules::allowance_grant)). A node takes
//! units from it a part at a time — at most a quarter of what is left, only
//! what the call at hand needs near the end — and admits calls from what it
//! holds without asking again. No node admits a call the bucket did not give
//! it a unit for, so the plan's figure holds however many nodes serve it.
//! A bucket found empty is refused from memory until the units asked for are
//! due back; units a node holds but does not use go back after a second
//! idle, and all of them at shutdown.
//!
//! A call's tokens are taken at an estimate before it is sent and corrected
//! once its usage is known: what it did not use stays with the node for the
//! next calls, and what it used beyond the estimate is owed and taken from
//! the next units the node gets.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::cells::{self, Cells};
use crate::store::{Store, StoreError};

/// Units a node holds and has not used for this long go back.
const IDLE: Duration = Duration::from_secs(1);
/// How often idle units are looked for.
const SWEEP: Duration = Duration::from_millis(500);

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    /// Units left: what this node holds and what the bucket had when last asked.
    pub remaining: u32,
    /// Seconds until a call is allowed again (when refused) or the bucket is full.
    pub retry_after: u64,
}

/// What this node holds of one bucket.
#[derive(Debug)]
struct Held {
    /// Taken from the bucket and not used yet; negative when calls used more
    /// tokens than they took (owed to the bucket).
    units: i64,
    per_minute: u32,
    /// What the bucket had left when last asked.
    remaining: u32,
    /// The bucket could not give `need` units: calls needing as many are
    /// refused from memory until `until`.
    dry: Option<Dry>,
    used_at: Instant,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            units: 0,
            per_minute: 1,
            remaining: 0,
            dry: None,
            used_at: Instant::now(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Dry {
    until: Instant,
    need: u32,
}

pub struct RateLimiter {
    store: Arc<dyn Store>,
    cells: Arc<Cells<Held>>,
}

impl RateLimiter {
    /// Needs a tokio runtime: it starts the task that gives idle units back.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let cells: Arc<Cells<Held>> = Arc::default();
        tokio::spawn(sweep(Arc::downgrade(&cells), store.clone()));
        RateLimiter { store, cells }
    }

    fn cell(&self, key: &str) -> cells::Cell<Held> {
        self.cells.get(key)
    }

    /// Admits one call for `key` under `per_minute` calls.
    pub async fn check(&self, key: &str, per_minute: u32) -> Result<Decision, StoreError> {
        self.take(key, per_minute, 1).await
    }

    /// Admits `units` (at most a minute's allowance) for `key` under
    /// `per_minute` units, or says how long until it would.
    pub async fn take(
        &self,
        key: &str,
        per_minute: u32,
        units: u32,
    ) -> Result<Decision, StoreError> {
        let per_minute = per_minute.max(1);
        let need = units.clamp(1, per_minute);
        let cell = self.cell(key);
        let mut held = cell.lock().await;
        let now = Instant::now();
        held.used_at = now;
        held.per_minute = per_minute;
        if held.units < i64::from(need) {
            if let Some(dry) = held.dry.filter(|d| now < d.until && need >= d.need) {
                return Ok(refused(per_minute, dry.until - now));
            }
            let short = u32::try_from(i64::from(need) - held.units)
                .unwrap_or(u32::MAX)
                .min(per_minute);
            let grant = self.store.take_allowance(key, per_minute, short).await?;
            held.remaining = grant.remaining;
            if grant.granted == 0 {
                let wait = Duration::from_micros(grant.wait_micros.max(1).unsigned_abs());
                held.dry = Some(Dry {
                    until: now + wait,
                    need,
                });
                return Ok(refused(per_minute, wait));
            }
            held.dry = None;
            held.units += i64::from(grant.granted);
            // A call larger than what the node owes and the bucket gave (a
            // minute's allowance, with a debt) is admitted on a full bucket.
            held.units = held.units.max(i64::from(need));
        }
        held.units -= i64::from(need);
        let remaining = u32::try_from(held.units.max(0))
            .unwrap_or(u32::MAX)
            .saturating_add(held.remaining)
            .min(per_minute);
        let refill = Duration::from_secs(60) * (per_minute - remaining) / per_minute;
        Ok(Decision {
            allowed: true,
            limit: per_minute,
            remaining,
            retry_after: refill.as_secs(),
        })
    }

    /// Corrects what `key` was charged by `units` (more when positive, back
    /// when negative), once a call's actual use is known.
    async fn adjust(&self, key: &str, per_minute: u32, units: i64) {
        let cell = self.cell(key);
        let mut held = cell.lock().await;
        // The cell may be new: the node forgot the bucket while the call ran
        // (it gave its units back after a second idle), and what goes back
        // to the bucket is counted at this rate.
        held.per_minute = per_minute.max(1);
        held.units -= units;
    }

    /// Gives every unit held back (at shutdown, after the calls in flight).
    pub async fn give_back_all(&self) {
        give_back(&self.cells, &*self.store, None).await;
    }
}

fn refused(per_minute: u32, wait: Duration) -> Decision {
    Decision {
        allowed: false,
        limit: per_minute,
        remaining: 0,
        retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// Tokens taken from a plan's per-minute allowance for one call, corrected
/// when the call's usage is known (or given back when it fails).
#[derive(Debug)]
pub struct TokenCharge {
    key: String,
    per_minute: u32,
    charged: u32,
}

impl RateLimiter {
    /// Takes a call's estimated tokens from `key`'s allowance.
    pub async fn take_tokens(
        &self,
        key: String,
        per_minute: u32,
        estimate: u64,
    ) -> Result<(Decision, Option<TokenCharge>), StoreError> {
        let charged = u32::try_from(estimate)
            .unwrap_or(u32::MAX)
            .clamp(1, per_minute.max(1));
        let decision = self.take(&key, per_minute, charged).await?;
        let charge = decision.allowed.then_some(TokenCharge {
            key,
            per_minute,
            charged,
        });
        Ok((decision, charge))
    }
}

impl TokenCharge {
    /// The call used `tokens`: charges the difference from the estimate.
    pub async fn settle(&self, limiter: &RateLimiter, tokens: u64) {
        let used = i64::try_from(tokens).unwrap_or(i64::MAX / 2);
        limiter
            .adjust(&self.key, self.per_minute, used - i64::from(self.charged))
            .await;
    }

    /// The call failed and used nothing.
    pub async fn refund(&self, limiter: &RateLimiter) {
        limiter
            .adjust(&self.key, self.per_minute, -i64::from(self.charged))
            .await;
    }
}

/// Gives back the units of buckets not used since `before` (all when
/// `None`) and forgets them; a bucket busy right now is kept. Units the
/// database could not take back are kept for the next sweep.
async fn give_back(cells: &Cells<Held>, store: &dyn Store, before: Option<Instant>) {
    let mut done = Vec::new();
    for (key, cell) in cells.all() {
        let Ok(mut held) = cell.try_lock() else {
            continue;
        };
        if before.is_some_and(|t| held.used_at > t) {
            continue;
        }
        if held.units != 0 {
            match store
                .return_allowance(&key, held.per_minute, held.units)
                .await
            {
                Ok(()) => held.units = 0,
                Err(e) => {
                    tracing::warn!(error = %e, "rate-limit units could not be given back");
                    continue;
                }
            }
        }
        done.push(key);
    }
    cells.forget(done, |held| held.units == 0);
}

/// Every [`SWEEP`]: gives back units idle for [`IDLE`]. Ends with the limiter.
async fn sweep(cells: Weak<Cells<Held>>, store: Arc<dyn Store>) {
    let mut ticks = cells::Ticks::new(SWEEP, cells);
    while let Some(cells) = ticks.next().await {
        if let Some(before) = Instant::now().checked_sub(IDLE) {
            give_back(&cells, &*store, Some(before)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ChangeFeed;
    use crate::store::sqlite::SqliteStore;

    /// A call's token correction that arrives after the node gave its units
    /// back and forgot the bucket (a call longer than a second) is counted
    /// at the plan's rate, not at one unit a minute.
    #[tokio::test]
    async fn a_correction_after_the_bucket_was_given_back_counts_at_the_plans_rate() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap());
        let limiter = RateLimiter::new(store.clone());
        let (decision, charge) = limiter.take_tokens("k".into(), 600, 100).await.unwrap();
        assert!(decision.allowed);
        // The node gives back what it held beyond the call, and forgets it.
        limiter.give_back_all().await;
        // The call used 300 tokens, not 100: 200 more are owed.
        charge.unwrap().settle(&limiter, 300).await;
        limiter.give_back_all().await;
        // 300 of 600 are used (a few more came back meanwhile).
        let left = store.take_allowance("k", 600, 1).await.unwrap();
        let available = left.granted + left.remaining;
        assert!((300..=310).contains(&available), "{left:?}");
    }
}
