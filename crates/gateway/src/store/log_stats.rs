//! The call log's live figures (`GET /admin/v1/logs/stats`), whatever the
//! store: the store passes each record that ended in the range to
//! [`Figures::add`], then [`Figures::finish`] answers.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use tollgate_api::money::format_amount;
use tollgate_api::{CallStats, ConsumerUse, CostTotal, ModelUse, ReasonCount, StatsPoint};

use super::log_block::Entry;

/// The value at fraction `p` of sorted `latencies` (nearest rank).
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let count = sorted.len();
    let rank = ((count as f64 * p).ceil() as usize).clamp(1, count) - 1;
    sorted[rank]
}

/// Per name: (requests, a second count, a third sum) and the largest status.
#[derive(Default)]
struct Tally {
    requests: i64,
    second: i64,
    third: i64,
    status: u16,
}

/// The tally of `name`, added on first sight (a name is copied once).
fn named<'m, T: Default>(map: &'m mut BTreeMap<String, T>, name: &str) -> &'m mut T {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), T::default());
    }
    map.get_mut(name).expect("inserted above")
}

/// The groups of a tally, most requests first, then by name.
fn ranked(groups: BTreeMap<String, Tally>, limit: usize) -> Vec<(String, Tally)> {
    let mut ranked: Vec<(String, Tally)> = groups.into_iter().collect();
    // Stable: names stay in order among equal counts.
    ranked.sort_by_key(|t| std::cmp::Reverse(t.1.requests));
    ranked.truncate(limit);
    ranked
}

/// The figures of a range, as records are added.
pub(crate) struct Figures {
    from: i64,
    to: i64,
    bucket: i64,
    requests: i64,
    errors: i64,
    tokens_in: i64,
    tokens_out: i64,
    latencies: Vec<i64>,
    cost: BTreeMap<String, i64>,
    series: BTreeMap<i64, (i64, i64, i64)>,
    reasons: BTreeMap<String, Tally>,
    models: BTreeMap<String, Tally>,
    consumers: BTreeMap<String, Tally>,
}

impl Figures {
    /// Figures of the calls that end in `[from, to)`, in `bucket`-long points
    /// (microseconds).
    pub(crate) fn new(from: i64, to: i64, bucket: i64) -> Self {
        Figures {
            from,
            to,
            bucket,
            requests: 0,
            errors: 0,
            tokens_in: 0,
            tokens_out: 0,
            latencies: Vec::new(),
            cost: BTreeMap::new(),
            series: BTreeMap::new(),
            reasons: BTreeMap::new(),
            models: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Counts a record if it ended in the range.
    pub(crate) fn add(&mut self, r: &Entry<'_>) {
        let end = r.end_us();
        if end < self.from || end >= self.to {
            return;
        }
        let error = i64::from(r.status >= 400);
        self.requests += 1;
        self.errors += error;
        self.tokens_in += r.tokens_in;
        self.tokens_out += r.tokens_out;
        self.latencies.push(r.latency_us);
        if let Some(currency) = r.currency {
            *named(&mut self.cost, currency) += r.cost_micros;
        }
        // Points by arrival, as the console's rollups count them (a call
        // that arrived before `from` and ended in range counts in the first).
        let point = self
            .series
            .entry((r.at_us - self.from).max(0) / self.bucket)
            .or_default();
        point.0 += 1;
        point.1 += error;
        point.2 += i64::from(r.status == 402);
        if let Some(reason) = r.reason {
            let t = named(&mut self.reasons, reason);
            t.requests += 1;
            t.status = t.status.max(r.status);
        }
        if let Some(model) = r.model {
            let t = named(&mut self.models, model);
            t.requests += 1;
            t.second += r.tokens_in;
            t.third += r.tokens_out;
        }
        if let Some(consumer) = r.consumer_id {
            let t = named(&mut self.consumers, consumer);
            t.requests += 1;
            t.second += error;
        }
    }

    pub(crate) fn finish(mut self) -> CallStats {
        let (from, bucket) = (self.from, self.bucket);
        let at = |us: i64| Utc.timestamp_micros(us).single().unwrap_or_else(Utc::now);
        self.latencies.sort_unstable();
        CallStats {
            from: at(from),
            to: at(self.to),
            bucket_seconds: bucket / 1_000_000,
            requests: self.requests,
            errors: self.errors,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            latency_p50_us: percentile(&self.latencies, 0.50),
            latency_p95_us: percentile(&self.latencies, 0.95),
            latency_p99_us: percentile(&self.latencies, 0.99),
            cost: self
                .cost
                .into_iter()
                .map(|(currency, micros)| CostTotal {
                    currency,
                    amount: format_amount(micros, 2),
                })
                .collect(),
            series: self
                .series
                .into_iter()
                .map(|(i, (requests, errors, payment_required))| StatsPoint {
                    at: at(from + i * bucket),
                    requests,
                    errors,
                    payment_required,
                })
                .collect(),
            by_reason: ranked(self.reasons, usize::MAX)
                .into_iter()
                .map(|(reason, t)| ReasonCount {
                    reason,
                    status: t.status,
                    count: t.requests,
                })
                .collect(),
            by_model: ranked(self.models, 50)
                .into_iter()
                .map(|(model, t)| ModelUse {
                    model,
                    requests: t.requests,
                    tokens_in: t.second,
                    tokens_out: t.third,
                })
                .collect(),
            top_consumers: ranked(self.consumers, 10)
                .into_iter()
                .map(|(consumer_id, t)| ConsumerUse {
                    consumer_id,
                    requests: t.requests,
                    errors: t.second,
                })
                .collect(),
        }
    }
}
