//! Per-consumer, per-plan rate limits (GCRA: a steady rate with a burst of
//! one minute's allowance), counted in calls or in tokens. A call's tokens
//! are taken at an estimate before it is sent and corrected once its usage
//! is known.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until a call is allowed again (when refused) or the window refills.
    pub retry_after: u64,
}

#[derive(Default)]
pub struct RateLimiter {
    /// Theoretical arrival time per key.
    tat: Mutex<HashMap<String, Instant>>,
}

/// The time one unit of a per-minute allowance takes to come back.
fn interval(per_minute: u32) -> Duration {
    Duration::from_secs(60) / per_minute.max(1)
}

impl RateLimiter {
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
        let mut tats = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
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
        tats.insert(key.to_owned(), next);
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
        let mut tats = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tat) = tats.get_mut(key) {
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
}
