//! The reads behind the explorer and the charts on one open cache: a page
//! of records, live figures, time series and breakdowns from the rollups.

use std::collections::{BTreeMap, HashMap};

use tollgate_api::{CallStats, ConsumerUse, ModelUse, ReasonCount, StatsPoint};

use super::*;
use crate::error::ConsoleError;
use cache::{DIM_ALL, DIM_CONSUMER, DIM_MODEL, DIM_REASON, LogCache, micros_to_time};
use query::Folded;
use rollup::Grain;

/// The reads behind the explorer and the charts, on one open cache (the
/// `Console` methods run them off the async runtime); public for the
/// benchmarks (`examples/bench_log_cache.rs`).
impl LogCache {
    /// A page of records, newest first, from the cursor `before` (a seq).
    pub fn page(
        &self,
        filter: &LogFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<LogPage, ConsoleError> {
        let checked = check_filter(filter)?;
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(ConsoleError::validation(
                "limit",
                format!("must be 1 to {PAGE_MAX}"),
            ));
        }
        let mut reader = self.reader();
        let resolved = query::resolve(&reader, &checked).map_err(cache_error)?;
        let (items, next_before) =
            query::page(&mut reader, &resolved, before, limit).map_err(cache_error)?;
        Ok(LogPage { items, next_before })
    }

    /// A chart's points (see [`Console::log_series`]).
    pub fn chart(&self, q: &LogSeriesQuery) -> Result<Vec<LogSeriesPoint>, ConsoleError> {
        let (from_us, to_us, grain, filter) = chart_query(q)?;
        series(self, from_us, to_us, grain, filter).map_err(cache_error)
    }
}

/// A chart query checked: its range in micros, grain and (dimension, value).
pub(super) type ChartQuery = (i64, i64, Grain, Option<(u8, String)>);

pub(super) fn chart_query(q: &LogSeriesQuery) -> Result<ChartQuery, ConsoleError> {
    let (from_us, to_us, grain) = chart_range(q.from, q.to, q.bucket)?;
    let filter = match (q.dimension, &q.value) {
        (Some(d), Some(v)) => Some((d.dim(), v.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConsoleError::validation(
                "value",
                "is required with a dimension",
            ));
        }
        (None, Some(_)) => {
            return Err(ConsoleError::validation(
                "dimension",
                "is required with a value",
            ));
        }
    };
    Ok((from_us, to_us, grain, filter))
}

pub(super) fn breakdown_limit(limit: Option<u32>, default: u32) -> Result<usize, ConsoleError> {
    let limit = limit.unwrap_or(default);
    if !(1..=500).contains(&limit) {
        return Err(ConsoleError::validation("limit", "must be 1 to 500"));
    }
    Ok(limit as usize)
}

pub(super) fn percentiles(m: &rollup::Measures) -> (i64, i64, i64) {
    (m.percentile(0.50), m.percentile(0.95), m.percentile(0.99))
}

pub(super) fn stats(
    cache: &LogCache,
    from: i64,
    to: i64,
    grain: Grain,
) -> rusqlite::Result<CallStats> {
    let mut reader = cache.reader();
    let reader = &mut *reader;
    let whole =
        |dim: u8, reader: &mut cache::Reader| -> rusqlite::Result<BTreeMap<(i64, i64), Folded>> {
            Ok(query::fold(&query::collect(
                reader, from, to, None, dim, None,
            )?))
        };
    let all = whole(DIM_ALL, reader)?.remove(&(0, 0)).unwrap_or_default();
    let (p50, p95, p99) = percentiles(&all.m);
    let series = query::fold(&query::collect(
        reader,
        from,
        to,
        Some(grain),
        DIM_ALL,
        None,
    )?)
    .into_iter()
    .map(|((point, _), f)| StatsPoint {
        at: micros_to_time(point * 1_000_000),
        requests: f.m.requests,
        errors: f.m.errors,
        payment_required: f.m.payment_required,
    })
    .collect();
    let statuses = query::reason_statuses(reader)?;
    let mut by_reason = Vec::new();
    for ((_, value), f) in whole(DIM_REASON, reader)? {
        if value != 0 {
            by_reason.push(ReasonCount {
                reason: reader.name(value)?,
                status: statuses.get(&value).copied().unwrap_or(0),
                count: f.m.requests,
            });
        }
    }
    by_reason.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    let mut by_model = Vec::new();
    for ((_, value), f) in whole(DIM_MODEL, reader)? {
        if value != 0 {
            by_model.push(ModelUse {
                model: reader.name(value)?,
                requests: f.m.requests,
                tokens_in: f.m.tokens_in,
                tokens_out: f.m.tokens_out,
            });
        }
    }
    by_model.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.model.cmp(&b.model))
    });
    by_model.truncate(50);
    let mut top_consumers = Vec::new();
    for ((_, value), f) in whole(DIM_CONSUMER, reader)? {
        if value != 0 {
            top_consumers.push(ConsumerUse {
                consumer_id: reader.name(value)?,
                requests: f.m.requests,
                errors: f.m.errors,
            });
        }
    }
    top_consumers.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.consumer_id.cmp(&b.consumer_id))
    });
    top_consumers.truncate(10);
    Ok(CallStats {
        from: micros_to_time(from),
        to: micros_to_time(to),
        bucket_seconds: grain.seconds(),
        requests: all.m.requests,
        errors: all.m.errors,
        tokens_in: all.m.tokens_in,
        tokens_out: all.m.tokens_out,
        latency_p50_us: p50,
        latency_p95_us: p95,
        latency_p99_us: p99,
        cost: query::costs(reader, &all.cost)?,
        series,
        by_reason,
        by_model,
        top_consumers,
    })
}

pub(super) fn series(
    cache: &LogCache,
    from: i64,
    to: i64,
    grain: Grain,
    filter: Option<(u8, String)>,
) -> rusqlite::Result<Vec<LogSeriesPoint>> {
    let mut reader = cache.reader();
    let reader = &mut *reader;
    let (dim, only) = match filter {
        None => (DIM_ALL, None),
        Some((dim, value)) => match query::value_id(reader, dim, &value)? {
            Some(id) => (dim, Some(id)),
            None => return Ok(Vec::new()),
        },
    };
    let mut points: BTreeMap<i64, Folded> = BTreeMap::new();
    for ((point, _), f) in query::fold(&query::collect(reader, from, to, Some(grain), dim, only)?) {
        let p = points.entry(point).or_default();
        p.m.merge(&f.m);
        for (currency, micros) in f.cost {
            *p.cost.entry(currency).or_default() += micros;
        }
    }
    let mut out = Vec::with_capacity(points.len());
    for (point, f) in points {
        let (p50, p95, p99) = percentiles(&f.m);
        out.push(LogSeriesPoint {
            at: micros_to_time(point * 1_000_000),
            requests: f.m.requests,
            errors: f.m.errors,
            payment_required: f.m.payment_required,
            tokens_in: f.m.tokens_in,
            tokens_out: f.m.tokens_out,
            latency_avg_us: f.m.latency_sum_us.checked_div(f.m.requests).unwrap_or(0),
            latency_p50_us: p50,
            latency_p95_us: p95,
            latency_p99_us: p99,
            cost: query::costs(reader, &f.cost)?,
        });
    }
    Ok(out)
}

pub(super) fn breakdown(
    cache: &LogCache,
    from: i64,
    to: i64,
    dim: u8,
    limit: usize,
) -> rusqlite::Result<Vec<LogBreakdownRow>> {
    let mut reader = cache.reader();
    let reader = &mut *reader;
    let mut rows: Vec<(i64, Folded)> =
        query::fold(&query::collect(reader, from, to, None, dim, None)?)
            .into_iter()
            .map(|((_, value), f)| (value, f))
            .collect();
    rows.sort_by(|a, b| b.1.m.requests.cmp(&a.1.m.requests).then(a.0.cmp(&b.0)));
    rows.truncate(limit);
    let statuses = if dim == DIM_REASON {
        query::reason_statuses(reader)?
    } else {
        HashMap::new()
    };
    let mut out = Vec::with_capacity(rows.len());
    for (value, f) in rows {
        let (p50, p95, p99) = percentiles(&f.m);
        out.push(LogBreakdownRow {
            value: query::value_name(reader, dim, value)?,
            status: statuses.get(&value).copied(),
            requests: f.m.requests,
            errors: f.m.errors,
            payment_required: f.m.payment_required,
            tokens_in: f.m.tokens_in,
            tokens_out: f.m.tokens_out,
            cost: query::costs(reader, &f.cost)?,
            latency_p50_us: p50,
            latency_p95_us: p95,
            latency_p99_us: p99,
        });
    }
    Ok(out)
}

pub(super) fn breakdown_series(
    cache: &LogCache,
    from: i64,
    to: i64,
    grain: Grain,
    dim: u8,
    limit: usize,
) -> rusqlite::Result<Vec<LogValueSeries>> {
    let mut reader = cache.reader();
    let reader = &mut *reader;
    let folded = query::fold(&query::collect(reader, from, to, Some(grain), dim, None)?);
    let mut per_value: BTreeMap<i64, (i64, Vec<StatsPoint>)> = BTreeMap::new();
    for ((point, value), f) in folded {
        let entry = per_value.entry(value).or_default();
        entry.0 += f.m.requests;
        entry.1.push(StatsPoint {
            at: micros_to_time(point * 1_000_000),
            requests: f.m.requests,
            errors: f.m.errors,
            payment_required: f.m.payment_required,
        });
    }
    let mut values: Vec<(i64, (i64, Vec<StatsPoint>))> = per_value.into_iter().collect();
    values.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    values.truncate(limit);
    let mut out = Vec::with_capacity(values.len());
    for (value, (requests, mut points)) in values {
        points.sort_by_key(|p| p.at);
        out.push(LogValueSeries {
            value: query::value_name(reader, dim, value)?,
            requests,
            points,
        });
    }
    Ok(out)
}
