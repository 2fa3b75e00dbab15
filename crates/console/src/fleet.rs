//! Health of every instance, checked in the background with backoff:
//! every 30 s while an instance answers, then 5 s, 10 s, 20 s … up to 5 min
//! while it does not.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::models::{ConnectionReport, Reachability};

pub const HEALTHY_INTERVAL: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Default)]
pub struct Health {
    pub last_report: Option<ConnectionReport>,
    pub failures: u32,
    pub next_check_at: Option<DateTime<Utc>>,
}

impl Health {
    pub fn state(&self) -> Reachability {
        match &self.last_report {
            None => Reachability::Unknown,
            Some(r) if r.ok => Reachability::Reachable,
            Some(r) => match r.error.as_ref().map(|e| e.code.as_str()) {
                Some(
                    "unauthorized" | "forbidden" | "not_a_gateway" | "malformed_response"
                    | "missing_token",
                ) => Reachability::Degraded,
                _ => Reachability::Unreachable,
            },
        }
    }

    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_check_at.is_none_or(|t| t <= now)
    }

    /// Records a check and schedules the next one.
    pub fn record(&mut self, report: ConnectionReport) {
        self.failures = if report.ok {
            0
        } else {
            self.failures.saturating_add(1)
        };
        self.next_check_at = Some(
            report.checked_at
                + chrono::Duration::from_std(backoff(self.failures)).unwrap_or_default(),
        );
        self.last_report = Some(report);
    }
}

/// Delay before the next check after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return HEALTHY_INTERVAL;
    }
    let factor = 1u32 << (failures - 1).min(16);
    FIRST_RETRY.saturating_mul(factor).min(MAX_BACKOFF)
}

/// In-memory health of every instance, keyed by instance id.
#[derive(Debug, Default)]
pub struct Fleet {
    pub health: HashMap<String, Health>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (0..9).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, vec![30, 5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn failures_count_up_and_reset_on_success() {
        let mut h = Health::default();
        assert_eq!(h.state(), Reachability::Unknown);
        let mut report = ConnectionReport {
            ok: false,
            checked_at: Utc::now(),
            latency_ms: None,
            version: None,
            instance_id: None,
            instance_name: None,
            scopes: vec![],
            clock_skew_ms: None,
            error: Some(crate::models::ReportError {
                code: "connection_refused".into(),
                message: String::new(),
            }),
            nodes: None,
        };
        h.record(report.clone());
        h.record(report.clone());
        assert_eq!((h.failures, h.state()), (2, Reachability::Unreachable));
        report.ok = true;
        report.error = None;
        h.record(report);
        assert_eq!((h.failures, h.state()), (0, Reachability::Reachable));
        assert!(!h.due(Utc::now()));
    }
}
