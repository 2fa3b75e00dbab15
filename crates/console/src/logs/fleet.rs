//! The fleet's figures: the charts and breakdowns of several instances'
//! caches at once, merged exactly. Each cache is read as it is for one
//! instance ([`query::collect`]), its dictionary ids turned into names, and
//! the measures added: counts and sums add, latency percentiles come from
//! the merged histograms (never an average of percentiles), and costs stay
//! per currency. Consumer ids belong to one gateway, so a breakdown by
//! consumer keeps each instance's rows apart and names the instance.
//!
//! A scope of one instance is a fleet too: the analytics screen reads both
//! through these queries, so both show the same figures the same way.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_api::money::format_amount;
use tollgate_api::{CostTotal, ReasonCount, StatsPoint};
use ts_rs::TS;

use super::cache::{DIM_ALL, DIM_CONSUMER, DIM_REASON, LogCache, micros_to_time};
use super::query;
use super::rollup::{Grain, Measures};
use super::{
    LogBreakdownRow, LogBucket, LogCacheInfo, LogDimension, LogSeriesPoint, LogValueSeries,
    breakdown_limit, cache_error, chart_range, percentiles,
};
use crate::Console;
use crate::error::ConsoleError;

/// A time range over some instances' caches (the figures and the chart
/// over time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetLogQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// For the chart: default, the finest that gives at most 1500 points.
    #[serde(default)]
    #[ts(optional)]
    pub bucket: Option<LogBucket>,
    /// The instances to read (ids); absent: every instance.
    #[serde(default)]
    #[ts(optional)]
    pub instances: Option<Vec<String>>,
}

/// Totals per value of a dimension over some instances' caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetBreakdownQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub dimension: LogDimension,
    /// The most rows: 1–500, default 20 (8 for a breakdown over time).
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
    /// For a breakdown over time: the width of its points.
    #[serde(default)]
    #[ts(optional)]
    pub bucket: Option<LogBucket>,
    /// The instances to read (ids); absent: every instance.
    #[serde(default)]
    #[ts(optional)]
    pub instances: Option<Vec<String>>,
    /// Rank by what was charged in this currency (rows without any left
    /// out) instead of by requests: the top earners.
    #[serde(default)]
    #[ts(optional)]
    pub revenue_currency: Option<String>,
}

/// One instance's part of the fleet's figures, and how fresh its cache is.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetMember {
    pub instance_id: String,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    #[ts(type = "number")]
    pub requests: i64,
    #[ts(type = "number")]
    pub errors: i64,
    #[ts(type = "number")]
    pub payment_required: i64,
    #[ts(type = "number")]
    pub tokens_in: i64,
    #[ts(type = "number")]
    pub tokens_out: i64,
    #[ts(type = "number")]
    pub latency_p95_us: i64,
    pub cost: Vec<CostTotal>,
    /// The cache's sync: when it last reached the gateway's end, and why
    /// the last attempt failed (the figures are as of `last_sync_at`).
    pub cache: LogCacheInfo,
}

/// The figures of a time range over some instances' caches.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetLogStats {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[ts(type = "number")]
    pub requests: i64,
    /// Answers with a status of 400 or more.
    #[ts(type = "number")]
    pub errors: i64,
    /// 402 answers.
    #[ts(type = "number")]
    pub payment_required: i64,
    #[ts(type = "number")]
    pub tokens_in: i64,
    #[ts(type = "number")]
    pub tokens_out: i64,
    /// From the merged histograms: within 1/16 of the exact value.
    #[ts(type = "number")]
    pub latency_p50_us: i64,
    #[ts(type = "number")]
    pub latency_p95_us: i64,
    #[ts(type = "number")]
    pub latency_p99_us: i64,
    /// Revenue, per currency (never added across currencies).
    pub cost: Vec<CostTotal>,
    /// Refusals and failures by reason, the most first.
    pub by_reason: Vec<ReasonCount>,
    /// In the registry's order.
    pub instances: Vec<FleetMember>,
}

/// A chart over time of some instances' caches.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetLogSeries {
    /// The width of each point (the bucket chosen when none was asked for).
    #[ts(type = "number")]
    pub bucket_seconds: i64,
    /// Only buckets with calls have a point.
    pub points: Vec<LogSeriesPoint>,
}

/// A breakdown row; for consumers, also the instance the consumer is on.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetBreakdownRow {
    /// Only for a breakdown by consumer (ids are per gateway).
    #[ts(optional)]
    pub instance_id: Option<String>,
    #[ts(optional)]
    pub instance_name: Option<String>,
    #[serde(flatten)]
    #[ts(flatten)]
    pub row: LogBreakdownRow,
}

/// A value's calls over time; for consumers, also the instance.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetValueSeries {
    #[ts(optional)]
    pub instance_id: Option<String>,
    #[ts(optional)]
    pub instance_name: Option<String>,
    #[serde(flatten)]
    #[ts(flatten)]
    pub series: LogValueSeries,
}

/// One cache's measures with its ids turned into names: (point, value,
/// currency) → measures.
type Named = BTreeMap<(i64, Option<String>, Option<String>), Measures>;

/// Measures of one (point, instance, value), every currency together, with
/// the cost per currency beside them.
#[derive(Debug, Clone, Default)]
struct Merged {
    m: Measures,
    cost: BTreeMap<String, i64>,
}

impl Merged {
    fn add(&mut self, currency: Option<&String>, m: &Measures) {
        self.m.merge(m);
        if let Some(c) = currency {
            *self.cost.entry(c.clone()).or_default() += m.cost_micros;
        }
    }

    fn cost(&self) -> Vec<CostTotal> {
        // BTreeMap order: by currency code, as the single-instance figures.
        self.cost
            .iter()
            .map(|(currency, micros)| CostTotal {
                currency: currency.clone(),
                amount: format_amount(*micros, 2),
            })
            .collect()
    }
}

/// A value's requests and its points over time.
type ValueTotal = (i64, Vec<StatsPoint>);

/// (point, index of the instance — consumers only —, value).
type MergedKey = (i64, Option<usize>, Option<String>);

/// Adds the instances' measures together; with `per_instance`, each
/// instance's values stay apart.
fn merge(parts: &[Named], per_instance: bool) -> BTreeMap<MergedKey, Merged> {
    let mut out: BTreeMap<MergedKey, Merged> = BTreeMap::new();
    for (index, named) in parts.iter().enumerate() {
        for ((point, value, currency), m) in named {
            out.entry((*point, per_instance.then_some(index), value.clone()))
                .or_default()
                .add(currency.as_ref(), m);
        }
    }
    out
}

/// Reads one cache: the measures of `[from, to)` per value of `dim` (only
/// `only`, when given) and currency, per point of `points` if any.
fn read_named(
    cache: &LogCache,
    from: i64,
    to: i64,
    points: Option<Grain>,
    dim: u8,
    only: Option<&str>,
) -> rusqlite::Result<Named> {
    let mut reader = cache.reader();
    let reader = &mut *reader;
    let only = match only {
        None => None,
        Some(v) => match query::value_id(reader, dim, v)? {
            Some(id) => Some(id),
            // No record of this cache holds the value.
            None => return Ok(Named::new()),
        },
    };
    let mut out = Named::new();
    for ((point, value, currency), m) in query::collect(reader, from, to, points, dim, only)? {
        let value = query::value_name(reader, dim, value)?;
        let currency = match currency {
            0 => None,
            id => Some(reader.name(id)?),
        };
        out.entry((point, value, currency)).or_default().merge(&m);
    }
    Ok(out)
}

/// The status each reason (by name) was answered with, in one cache.
fn reason_statuses(cache: &LogCache) -> rusqlite::Result<HashMap<String, u16>> {
    let mut reader = cache.reader();
    let reader = &mut *reader;
    let mut out = HashMap::new();
    for (id, status) in query::reason_statuses(reader)? {
        out.insert(reader.name(id)?, status);
    }
    Ok(out)
}

/// An instance in a fleet query's scope.
struct Scoped {
    id: String,
    name: String,
    color: String,
}

fn checked_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(i64, i64), ConsoleError> {
    let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
    if from >= to {
        return Err(ConsoleError::validation("from", "must be before `to`"));
    }
    Ok((from, to))
}

impl Console {
    /// The instances a fleet query reads, in the registry's order: those
    /// listed (each must exist), or all of them.
    fn fleet_scope(&self, wanted: Option<&[String]>) -> Result<Vec<Scoped>, ConsoleError> {
        let all = self.list_instances()?;
        if let Some(wanted) = wanted {
            if wanted.is_empty() {
                return Err(ConsoleError::validation(
                    "instances",
                    "must list at least one instance (or be absent, for all)",
                ));
            }
            if let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|i| &i.id == *w)) {
                return Err(ConsoleError::InstanceNotFound(unknown.clone()));
            }
        }
        Ok(all
            .into_iter()
            .filter(|i| wanted.is_none_or(|w| w.contains(&i.id)))
            .map(|i| Scoped {
                id: i.id,
                name: i.name,
                color: i.color,
            })
            .collect())
    }

    /// Reads every scoped cache in turn with `read`.
    async fn read_each<T: Send + 'static>(
        &self,
        scope: &[Scoped],
        read: impl Fn(&LogCache) -> rusqlite::Result<T> + Clone + Send + 'static,
    ) -> Result<Vec<T>, ConsoleError> {
        let mut out = Vec::with_capacity(scope.len());
        for instance in scope {
            let read = read.clone();
            out.push(
                self.on_cache(&instance.id, move |cache| read(cache).map_err(cache_error))
                    .await?,
            );
        }
        Ok(out)
    }

    /// The figures of a time range over the instances' caches (all of them
    /// by default), each instance's part beside them with its cache's sync
    /// state, so a screen can say how fresh every figure is.
    pub async fn fleet_log_stats(&self, q: FleetLogQuery) -> Result<FleetLogStats, ConsoleError> {
        let (from, to) = checked_range(q.from, q.to)?;
        let scope = self.fleet_scope(q.instances.as_deref())?;
        let totals = self
            .read_each(&scope, move |cache| {
                read_named(cache, from, to, None, DIM_ALL, None)
            })
            .await?;
        let reasons = self
            .read_each(&scope, move |cache| {
                Ok((
                    read_named(cache, from, to, None, DIM_REASON, None)?,
                    reason_statuses(cache)?,
                ))
            })
            .await?;

        let mut members = Vec::with_capacity(scope.len());
        for (instance, named) in scope.iter().zip(&totals) {
            let mine = merge(std::slice::from_ref(named), false)
                .into_values()
                .next()
                .unwrap_or_default();
            members.push(FleetMember {
                instance_id: instance.id.clone(),
                name: instance.name.clone(),
                color: instance.color.clone(),
                requests: mine.m.requests,
                errors: mine.m.errors,
                payment_required: mine.m.payment_required,
                tokens_in: mine.m.tokens_in,
                tokens_out: mine.m.tokens_out,
                latency_p95_us: mine.m.percentile(0.95),
                cost: mine.cost(),
                cache: self.log_cache_info(&instance.id).await?,
            });
        }

        let all = merge(&totals, false)
            .into_values()
            .next()
            .unwrap_or_default();
        let (p50, p95, p99) = percentiles(&all.m);
        let statuses: HashMap<String, u16> = reasons
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(k, v)| (k.clone(), *v)))
            .collect();
        let named: Vec<Named> = reasons.into_iter().map(|(n, _)| n).collect();
        let mut by_reason: Vec<ReasonCount> = merge(&named, false)
            .into_iter()
            .filter_map(|((_, _, value), f)| {
                value.map(|reason| ReasonCount {
                    status: statuses.get(&reason).copied().unwrap_or(0),
                    reason,
                    count: f.m.requests,
                })
            })
            .collect();
        by_reason.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));

        Ok(FleetLogStats {
            from: micros_to_time(from),
            to: micros_to_time(to),
            requests: all.m.requests,
            errors: all.m.errors,
            payment_required: all.m.payment_required,
            tokens_in: all.m.tokens_in,
            tokens_out: all.m.tokens_out,
            latency_p50_us: p50,
            latency_p95_us: p95,
            latency_p99_us: p99,
            cost: all.cost(),
            by_reason,
            instances: members,
        })
    }

    /// The chart over time of the instances' caches: calls, errors, 402s,
    /// tokens, latency percentiles (merged histograms) and revenue per
    /// currency, per bucket.
    pub async fn fleet_log_series(&self, q: FleetLogQuery) -> Result<FleetLogSeries, ConsoleError> {
        let (from, to, grain) = chart_range(q.from, q.to, q.bucket)?;
        let scope = self.fleet_scope(q.instances.as_deref())?;
        let parts = self
            .read_each(&scope, move |cache| {
                read_named(cache, from, to, Some(grain), DIM_ALL, None)
            })
            .await?;
        let points = merge(&parts, false)
            .into_iter()
            .map(|((point, _, _), f)| {
                let (p50, p95, p99) = percentiles(&f.m);
                LogSeriesPoint {
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
                    cost: f.cost(),
                }
            })
            .collect();
        Ok(FleetLogSeries {
            bucket_seconds: grain.seconds(),
            points,
        })
    }

    /// Totals per value of a dimension over the instances' caches, the
    /// busiest first (or the top earners in `revenue_currency`).
    pub async fn fleet_log_breakdown(
        &self,
        q: FleetBreakdownQuery,
    ) -> Result<Vec<FleetBreakdownRow>, ConsoleError> {
        let (from, to) = checked_range(q.from, q.to)?;
        let limit = breakdown_limit(q.limit, 20)?;
        let revenue = revenue_currency(q.revenue_currency.as_deref())?;
        let scope = self.fleet_scope(q.instances.as_deref())?;
        let dim = q.dimension.dim();
        let parts = self
            .read_each(&scope, move |cache| {
                Ok((
                    read_named(cache, from, to, None, dim, None)?,
                    if dim == DIM_REASON {
                        reason_statuses(cache)?
                    } else {
                        HashMap::new()
                    },
                ))
            })
            .await?;
        let statuses: HashMap<String, u16> = parts
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(k, v)| (k.clone(), *v)))
            .collect();
        let named: Vec<Named> = parts.into_iter().map(|(n, _)| n).collect();
        let mut rows: Vec<(Option<usize>, Option<String>, Merged)> =
            merge(&named, dim == DIM_CONSUMER)
                .into_iter()
                .map(|((_, instance, value), f)| (instance, value, f))
                .collect();
        let earned = |f: &Merged| {
            revenue
                .as_ref()
                .map_or(0, |c| f.cost.get(c).copied().unwrap_or(0))
        };
        if revenue.is_some() {
            rows.retain(|r| earned(&r.2) > 0);
        }
        rows.sort_by(|a, b| {
            earned(&b.2)
                .cmp(&earned(&a.2))
                .then(b.2.m.requests.cmp(&a.2.m.requests))
                .then_with(|| a.1.cmp(&b.1))
                .then(a.0.cmp(&b.0))
        });
        rows.truncate(limit);
        Ok(rows
            .into_iter()
            .map(|(instance, value, f)| {
                let (p50, p95, p99) = percentiles(&f.m);
                let instance = instance.map(|i| &scope[i]);
                FleetBreakdownRow {
                    instance_id: instance.map(|i| i.id.clone()),
                    instance_name: instance.map(|i| i.name.clone()),
                    row: LogBreakdownRow {
                        status: value.as_ref().and_then(|v| statuses.get(v).copied()),
                        value,
                        requests: f.m.requests,
                        errors: f.m.errors,
                        payment_required: f.m.payment_required,
                        tokens_in: f.m.tokens_in,
                        tokens_out: f.m.tokens_out,
                        cost: f.cost(),
                        latency_p50_us: p50,
                        latency_p95_us: p95,
                        latency_p99_us: p99,
                    },
                }
            })
            .collect())
    }

    /// Calls over time per value of a dimension over the instances' caches
    /// (e.g. 402s by reason), for the `limit` busiest values.
    pub async fn fleet_log_breakdown_series(
        &self,
        q: FleetBreakdownQuery,
    ) -> Result<Vec<FleetValueSeries>, ConsoleError> {
        let (from, to, grain) = chart_range(q.from, q.to, q.bucket)?;
        let limit = breakdown_limit(q.limit, 8)?;
        if q.revenue_currency.is_some() {
            return Err(ConsoleError::validation(
                "revenue_currency",
                "only ranks a breakdown's totals, not one over time",
            ));
        }
        let scope = self.fleet_scope(q.instances.as_deref())?;
        let dim = q.dimension.dim();
        let parts = self
            .read_each(&scope, move |cache| {
                read_named(cache, from, to, Some(grain), dim, None)
            })
            .await?;
        let mut per_value: BTreeMap<(Option<usize>, Option<String>), ValueTotal> = BTreeMap::new();
        for ((point, instance, value), f) in merge(&parts, dim == DIM_CONSUMER) {
            let entry = per_value.entry((instance, value)).or_default();
            entry.0 += f.m.requests;
            // Merged in point order, so each series is in time order.
            entry.1.push(StatsPoint {
                at: micros_to_time(point * 1_000_000),
                requests: f.m.requests,
                errors: f.m.errors,
                payment_required: f.m.payment_required,
            });
        }
        let mut values: Vec<_> = per_value.into_iter().collect();
        values.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        values.truncate(limit);
        Ok(values
            .into_iter()
            .map(|((instance, value), (requests, points))| {
                let instance = instance.map(|i| &scope[i]);
                FleetValueSeries {
                    instance_id: instance.map(|i| i.id.clone()),
                    instance_name: instance.map(|i| i.name.clone()),
                    series: LogValueSeries {
                        value,
                        requests,
                        points,
                    },
                }
            })
            .collect())
    }
}

/// A currency code as the gateway writes them: three capital letters.
fn revenue_currency(v: Option<&str>) -> Result<Option<String>, ConsoleError> {
    match v.map(str::trim) {
        None => Ok(None),
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(Some(c.to_owned()))
        }
        Some(_) => Err(ConsoleError::validation(
            "revenue_currency",
            "must be a currency code such as USD",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::rollup::Fact;

    fn measures(latencies: &[i64], cost: i64) -> Measures {
        let mut m = Measures::default();
        for (i, l) in latencies.iter().enumerate() {
            m.add(&Fact {
                status: if i % 2 == 0 { 200 } else { 402 },
                tokens_in: 3,
                tokens_out: 5,
                cost_micros: if i == 0 { cost } else { 0 },
                latency_us: *l,
            });
        }
        m
    }

    #[test]
    fn merging_adds_counts_keeps_currencies_apart_and_merges_histograms() {
        let usd = Some("USD".to_owned());
        let eur = Some("EUR".to_owned());
        let a: Named = [((0, None, usd.clone()), measures(&[1_000, 2_000], 1_500_000))].into();
        let b: Named = [
            ((0, None, usd), measures(&[100_000], 250_000)),
            ((0, None, eur), measures(&[3_000, 4_000, 5_000], 700_000)),
        ]
        .into();
        let merged = merge(&[a, b], false);
        assert_eq!(merged.len(), 1);
        let all = &merged[&(0, None, None)];
        assert_eq!(all.m.requests, 6);
        assert_eq!(all.m.payment_required, 2);
        assert_eq!(all.m.tokens_out, 30);
        assert_eq!(
            all.cost(),
            vec![
                CostTotal {
                    currency: "EUR".into(),
                    amount: "0.70".into()
                },
                CostTotal {
                    currency: "USD".into(),
                    amount: "1.75".into()
                },
            ]
        );
        // The 6 latencies, merged: the p50 is the third (3 ms), not an
        // average of each part's p50; the max is the 100 ms one.
        let p50 = all.m.percentile(0.5);
        assert!((p50 - 3_000).abs() * 16 <= 3_000, "{p50}");
        assert_eq!(all.m.latency_max_us, 100_000);
        assert!((all.m.percentile(0.99) - 100_000).abs() * 16 <= 100_000);
    }

    #[test]
    fn per_instance_merging_keeps_the_same_value_apart() {
        let consumer = Some("cons_1".to_owned());
        let a: Named = [((0, consumer.clone(), None), measures(&[1], 0))].into();
        let b: Named = [((0, consumer.clone(), None), measures(&[1, 2], 0))].into();
        let merged = merge(&[a.clone(), b.clone()], true);
        assert_eq!(merged[&(0, Some(0), consumer.clone())].m.requests, 1);
        assert_eq!(merged[&(0, Some(1), consumer.clone())].m.requests, 2);
        assert_eq!(merge(&[a, b], false)[&(0, None, consumer)].m.requests, 3);
    }

    #[test]
    fn a_revenue_currency_is_a_code() {
        assert_eq!(revenue_currency(None).unwrap(), None);
        assert_eq!(revenue_currency(Some(" USD ")).unwrap(), Some("USD".into()));
        for bad in ["usd", "US", "DOLLAR", ""] {
            assert_eq!(
                revenue_currency(Some(bad)).unwrap_err().code(),
                "validation"
            );
        }
    }
}
