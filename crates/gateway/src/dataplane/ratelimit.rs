//! Per-consumer, per-plan rate limits (GCRA: a steady rate with a burst of
//! one minute's allowance), counted in calls or in tokens. A call's tokens
//! are taken at an estimate before it is sent and corrected once its usage
//! is known.
//!
//! The state is one "theoretical arrival time" per key, in shards with a
//! lock each, so calls of different consumers rarely wait on one another. A
//! key whose time has passed holds nothing a fresh key would not: a shard
//! drops such keys whenever it has doubled since its last sweep, so it
//! holds about the keys used in the last minute.

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use foldhash::HashMap;

/// Shards of the key map (a power of two).
const SHARDS: usize = 64;
/// A shard is not swept below this many keys.
const MIN_SWEEP: usize = 1024;

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until a call is allowed again (when refused) or the window refills.
    pub retry_after: u64,
}

pub struct RateLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
}

struct Shard {
    /// Theoretical arrival time per key.
    tats: HashMap<String, Instant>,
    /// The size at which the shard next drops the keys whose time has passed.
    sweep_at: usize,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        tats: HashMap::default(),
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            hasher: Default::default(),
        }
    }
}

/// The time one unit of a per-minute allowance takes to come back.
fn interval(per_minute: u32) -> Duration {
    Duration::from_secs(60) / per_minute.max(1)
}

impl RateLimiter {
    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let at = self.hasher.hash_one(key) as usize & (SHARDS - 1);
        self.shards[at].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys held, in all shards.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).tats.len())
            .sum()
    }

    #[cfg(test)]
    fn holds(&self, key: &str) -> bool {
        self.shard(key).tats.contains_key(key)
    }

    /// Admits one call for `key` at `now` under `per_minute` calls.
    pub fn check(&self, key: &str, per_minute: u32, now: Instant) -> Decision {
        self.take(key, per_minute, 1, now)
    }

    /// Admits `units` (at most a minute's allowance) for `key` at `now`
    /// under `per_minute` units, or says how long until it would.
    pub fn take(&self, key: &str, per_minute: u32, units: u32, now: Instant) -> Decision {
        let per_minute = per_minute.max(1);
        let interval = interval(per_minute);
        let burst = interval * per_minute;
        let mut shard = self.shard(key);
        let tat = shard.tats.get(key).copied().unwrap_or(now).max(now);
        let next = tat + interval * units.clamp(1, per_minute);
        let allowed_at = next.checked_sub(burst).unwrap_or(now);
        if allowed_at > now {
            let wait = allowed_at - now;
            return Decision {
                allowed: false,
                limit: per_minute,
                remaining: 0,
                retry_after: wait.as_secs_f64().ceil() as u64,
            };
        }
        match shard.tats.get_mut(key) {
            Some(held) => *held = next,
            None => {
                shard.tats.insert(key.to_owned(), next);
                if shard.tats.len() >= shard.sweep_at {
                    shard.tats.retain(|_, tat| *tat > now);
                    shard.sweep_at = (shard.tats.len() * 2).max(MIN_SWEEP);
                }
            }
        }
        let used = (next - now).as_nanos().div_ceil(interval.as_nanos().max(1));
        Decision {
            allowed: true,
            limit: per_minute,
            remaining: per_minute.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX)),
            retry_after: (next - now).as_secs(),
        }
    }

    /// Corrects what `key` was charged by `units` (more when positive, back
    /// when negative), once a call's actual use is known.
    pub fn adjust(&self, key: &str, per_minute: u32, units: i64) {
        let step = interval(per_minute);
        let by = step.saturating_mul(u32::try_from(units.unsigned_abs()).unwrap_or(u32::MAX));
        if let Some(tat) = self.shard(key).tats.get_mut(key) {
            *tat = if units >= 0 {
                *tat + by
            } else {
                tat.checked_sub(by).unwrap_or(*tat)
            };
        }
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
    pub fn take_tokens(
        &self,
        key: String,
        per_minute: u32,
        estimate: u64,
        now: Instant,
    ) -> (Decision, Option<TokenCharge>) {
        let charged = u32::try_from(estimate)
            .unwrap_or(u32::MAX)
            .clamp(1, per_minute.max(1));
        let decision = self.take(&key, per_minute, charged, now);
        let charge = decision.allowed.then_some(TokenCharge {
            key,
            per_minute,
            charged,
        });
        (decision, charge)
    }
}

impl TokenCharge {
    /// The call used `tokens`: charges the difference from the estimate.
    pub fn settle(&self, limiter: &RateLimiter, tokens: u64) {
        let used = i64::try_from(tokens).unwrap_or(i64::MAX / 2);
        limiter.adjust(&self.key, self.per_minute, used - i64::from(self.charged));
    }

    /// The call failed and used nothing.
    pub fn refund(&self, limiter: &RateLimiter) {
        limiter.adjust(&self.key, self.per_minute, -i64::from(self.charged));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_minutes_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let d = limiter.check("k", 3, t0);
            assert!(d.allowed, "call {i}");
            assert_eq!(d.remaining, 2 - i);
        }
        let refused = limiter.check("k", 3, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 20, "one call frees up every 20 s");
        assert!(limiter.check("k", 3, t0 + Duration::from_secs(20)).allowed);
        assert!(
            limiter.check("other", 3, t0).allowed,
            "keys are independent"
        );
    }

    #[test]
    fn tokens_are_taken_at_an_estimate_and_corrected() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        // 600 tokens a minute: one back every 100 ms.
        assert!(limiter.take("t", 600, 400, t0).allowed);
        let refused = limiter.take("t", 600, 300, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 10, "100 tokens come back in 10 s");
        // The call used 100 tokens, not 400: the 300 come back at once.
        limiter.adjust("t", 600, -300);
        let d = limiter.take("t", 600, 300, t0);
        assert!(d.allowed);
        assert_eq!(d.remaining, 200);
        // More than estimated is charged after the fact.
        limiter.adjust("t", 600, 200);
        assert!(!limiter.take("t", 600, 1, t0).allowed);
        // A call larger than a minute's allowance waits for a full bucket.
        assert!(limiter.take("big", 600, 5000, t0).allowed);
        assert!(!limiter.take("big", 600, 1, t0).allowed);
    }

    #[test]
    fn keys_whose_time_has_passed_are_dropped() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        let many = SHARDS * MIN_SWEEP;
        for i in 0..many {
            assert!(limiter.check(&format!("once-{i}"), 60, t0).allowed);
        }
        assert!(
            limiter.tracked() >= many / 2,
            "kept while their minute lasts"
        );
        // Two minutes on, new keys sweep the old ones out, shard by shard.
        let later = t0 + Duration::from_secs(120);
        for i in 0..2 * many {
            assert!(limiter.check(&format!("later-{i}"), 60, later).allowed);
        }
        let kept = (0..many)
            .filter(|i| limiter.holds(&format!("once-{i}")))
            .count();
        assert_eq!(kept, 0, "keys whose time had passed were kept");
        assert!(limiter.tracked() <= 2 * many);
        // A key swept out starts afresh, as it would have anyway.
        let again = limiter.check("once-0", 60, later);
        assert!(again.allowed);
        assert_eq!(again.remaining, 59);
    }
}
