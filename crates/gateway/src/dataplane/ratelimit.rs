//! Per-consumer, per-plan request rate limits (GCRA: a steady rate with a
//! burst of one minute's allowance).

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

impl RateLimiter {
    /// Admits one call for `key` at `now` under `per_minute`.
    pub fn check(&self, key: &str, per_minute: u32, now: Instant) -> Decision {
        let per_minute = per_minute.max(1);
        let interval = Duration::from_secs(60) / per_minute;
        let burst = interval * per_minute;
        let mut tats = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let next = tat + interval;
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
            remaining: per_minute.saturating_sub(used as u32),
            retry_after: (next - now).as_secs(),
        }
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
}
