//! The call-log cache and its sync: each instance's call log copied into a
//! SQLite file of its own (`logs/<instance-id>.db`, [`cache`]) by a sync
//! that runs in the background ([`sync`]), so that every log view, filter,
//! search, chart and export works from the cache ([`query`], [`export`]),
//! also when the instance is unreachable. Rollup maths are in [`rollup`].
//! What the commands take and answer is in `types`, the caches and the
//! `Console` methods in `service`, the reads behind the charts in `charts`.

pub mod cache;
mod charts;
pub mod export;
pub mod export_target;
pub mod fleet;
pub mod query;
pub mod rollup;
pub mod saved_filters;
mod service;
pub mod sync;
mod types;
mod words;

use chrono::{DateTime, Utc};
use tollgate_api::FieldError;
use tollgate_api::money::parse_amount;

use crate::error::ConsoleError;
use cache::is_corruption;
use query::Checked;
use rollup::Grain;
pub use sync::{SyncError, SyncOptions};

// The chart reads the service and the fleet's figures share.
use charts::{breakdown, breakdown_limit, breakdown_series, chart_query, percentiles, stats};
pub(crate) use service::Logs;
pub use types::*;

/// Days of records a new cache keeps.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Most records in one explorer page.
const PAGE_MAX: u32 = 1_000;
const PAGE_DEFAULT: u32 = 100;
/// Most points in one chart.
const POINTS_MAX: i64 = 1_500;
/// Records deleted per transaction by a purge.
const PURGE_BATCH: u32 = 10_000;

/// A cache error as the console reports it: damage is its own error (the
/// caller rebuilds), anything else is logged and summarised.
pub(crate) fn cache_error(e: rusqlite::Error) -> ConsoleError {
    if is_corruption(&e) {
        ConsoleError::CacheCorrupt(e.to_string())
    } else {
        e.into()
    }
}

fn check_filter(f: &LogFilter) -> Result<Checked, ConsoleError> {
    let mut errors = Vec::new();
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let (Some(from), Some(to)) = (f.from, f.to)
        && from >= to
    {
        errors.push(FieldError::new("from", "must be before `to`"));
    }
    if f.status_class.is_some_and(|c| !(1..=5).contains(&c)) {
        errors.push(FieldError::new("status_class", "must be 1, 2, 3, 4 or 5"));
    }
    for (field, v) in [
        ("latency_min_us", f.latency_min_us),
        ("latency_max_us", f.latency_max_us),
    ] {
        if v.is_some_and(|v| v < 0) {
            errors.push(FieldError::new(field, "must be 0 or more"));
        }
    }
    if let (Some(min), Some(max)) = (f.latency_min_us, f.latency_max_us)
        && min > max
    {
        errors.push(FieldError::new(
            "latency_max_us",
            "must not be below the minimum",
        ));
    }
    let mut amount = |field: &str, v: &Option<String>| match text(v) {
        None => None,
        Some(t) => match parse_amount(&t) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.push(FieldError::new(field, e));
                None
            }
        },
    };
    let cost_min = amount("cost_min", &f.cost_min);
    let cost_max = amount("cost_max", &f.cost_max);
    if let (Some(min), Some(max)) = (cost_min, cost_max)
        && min > max
    {
        errors.push(FieldError::new("cost_max", "must not be below the minimum"));
    }
    if !errors.is_empty() {
        return Err(ConsoleError::Validation(errors));
    }
    Ok(Checked {
        from_us: f.from.map(|t| t.timestamp_micros()),
        to_us: f.to.map(|t| t.timestamp_micros()),
        consumer_id: text(&f.consumer_id),
        key_id: text(&f.key_id),
        api: text(&f.api),
        model: text(&f.model),
        reason: text(&f.reason),
        status_class: f.status_class,
        latency_min_us: f.latency_min_us,
        latency_max_us: f.latency_max_us,
        cost_min_micros: cost_min,
        cost_max_micros: cost_max,
        fts: f.text.as_deref().and_then(query::fts_query),
    })
}

/// A chart's range and the grain of its points, checked.
fn chart_range(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Option<LogBucket>,
) -> Result<(i64, i64, Grain), ConsoleError> {
    let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
    if from >= to {
        return Err(ConsoleError::validation("from", "must be before `to`"));
    }
    let span = to - from;
    let grain = match bucket {
        Some(b) => b.grain(),
        None => Grain::ALL
            .into_iter()
            .find(|g| span / g.micros() <= POINTS_MAX)
            .unwrap_or(Grain::Day),
    };
    if span / grain.micros() > POINTS_MAX {
        return Err(ConsoleError::validation(
            "bucket",
            format!("gives more than {POINTS_MAX} points for this range; take a coarser one"),
        ));
    }
    Ok((from, to, grain))
}

#[cfg(test)]
mod tests;
