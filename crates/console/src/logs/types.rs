//! What the call-log cache's commands take and answer, as the UI sees them
//! (ts-rs bindings).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_api::{CallLog, CostTotal, StatsPoint};
use ts_rs::TS;

use super::cache::{DIM_API, DIM_CONSUMER, DIM_MODEL, DIM_REASON, DIM_STATUS};
use super::rollup::Grain;
use crate::models::ReportError;
/// The explorer's filter; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(default, deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogFilter {
    /// Records that arrived at or after this time.
    #[ts(optional)]
    pub from: Option<DateTime<Utc>>,
    /// Records that arrived before this time.
    #[ts(optional)]
    pub to: Option<DateTime<Utc>>,
    #[ts(optional)]
    pub consumer_id: Option<String>,
    #[ts(optional)]
    pub key_id: Option<String>,
    /// `chat`, `models`, `billing-status` or a prompt API's slug.
    #[ts(optional)]
    pub api: Option<String>,
    #[ts(optional)]
    pub model: Option<String>,
    /// 1–5: the status's class.
    #[ts(optional)]
    pub status_class: Option<u16>,
    /// A problem's reason slug, e.g. `insufficient-funds`.
    #[ts(optional)]
    pub reason: Option<String>,
    #[ts(optional, type = "number")]
    pub latency_min_us: Option<i64>,
    #[ts(optional, type = "number")]
    pub latency_max_us: Option<i64>,
    /// Decimal string, in the record's currency.
    #[ts(optional)]
    pub cost_min: Option<String>,
    #[ts(optional)]
    pub cost_max: Option<String>,
    /// Words to find (all of them; `word*` matches a prefix) in ids,
    /// names, errors, paths, user agents and captured bodies.
    #[ts(optional)]
    pub text: Option<String>,
}

/// A page of cached records, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogPage {
    pub items: Vec<CallLog>,
    /// Pass as `before` for the next page; absent at the end. A page may
    /// hold fewer records than asked for (even none) while more remain: a
    /// page stops looking after 25 ms, so that a filter few records match
    /// answers in parts instead of freezing the explorer.
    #[ts(optional, type = "number")]
    pub next_before: Option<i64>,
}

/// The width of a chart's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum LogBucket {
    Minute,
    Hour,
    Day,
}

impl LogBucket {
    pub(super) fn grain(self) -> Grain {
        match self {
            LogBucket::Minute => Grain::Minute,
            LogBucket::Hour => Grain::Hour,
            LogBucket::Day => Grain::Day,
        }
    }
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum LogDimension {
    Consumer,
    Model,
    Api,
    Status,
    Reason,
}

impl LogDimension {
    pub(super) fn dim(self) -> u8 {
        match self {
            LogDimension::Consumer => DIM_CONSUMER,
            LogDimension::Model => DIM_MODEL,
            LogDimension::Api => DIM_API,
            LogDimension::Status => DIM_STATUS,
            LogDimension::Reason => DIM_REASON,
        }
    }
}

/// The figures of a time range, as the gateway's `/admin/v1/logs/stats`
/// gives them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(default, deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogStatsQuery {
    /// Default: an hour before `to`.
    #[ts(optional)]
    pub from: Option<DateTime<Utc>>,
    /// Default: now.
    #[ts(optional)]
    pub to: Option<DateTime<Utc>>,
    /// Default: the finest that gives at most 1500 points.
    #[ts(optional)]
    pub bucket: Option<LogBucket>,
}

/// A chart over time, of every call or of one value of a dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogSeriesQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Default: the finest that gives at most 1500 points.
    #[serde(default)]
    #[ts(optional)]
    pub bucket: Option<LogBucket>,
    /// With `value`: only the calls of that consumer, model, API, status or reason.
    #[serde(default)]
    #[ts(optional)]
    pub dimension: Option<LogDimension>,
    #[serde(default)]
    #[ts(optional)]
    pub value: Option<String>,
}

/// One point of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogSeriesPoint {
    pub at: DateTime<Utc>,
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
    pub latency_avg_us: i64,
    /// Percentiles from the rollups' histograms: within 1/16 of the exact value.
    #[ts(type = "number")]
    pub latency_p50_us: i64,
    #[ts(type = "number")]
    pub latency_p95_us: i64,
    #[ts(type = "number")]
    pub latency_p99_us: i64,
    /// What the calls were charged (revenue), per currency.
    pub cost: Vec<CostTotal>,
}

/// Totals per value of a dimension over a time range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogBreakdownQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub dimension: LogDimension,
    /// The most rows, the busiest first: 1–500, default 20.
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
    /// For a breakdown over time: the width of its points.
    #[serde(default)]
    #[ts(optional)]
    pub bucket: Option<LogBucket>,
}

/// One value's totals.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogBreakdownRow {
    /// The consumer id, model, API, status code or reason; absent for the
    /// calls without one (e.g. refused before a consumer was known).
    #[ts(optional)]
    pub value: Option<String>,
    /// For a reason: the status it was answered with.
    #[ts(optional)]
    pub status: Option<u16>,
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
    pub cost: Vec<CostTotal>,
    #[ts(type = "number")]
    pub latency_p50_us: i64,
    #[ts(type = "number")]
    pub latency_p95_us: i64,
    #[ts(type = "number")]
    pub latency_p99_us: i64,
}

/// One value's calls over time (e.g. 402s by reason).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogValueSeries {
    #[ts(optional)]
    pub value: Option<String>,
    #[ts(type = "number")]
    pub requests: i64,
    pub points: Vec<StatsPoint>,
}

/// Where a sync is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum LogSyncState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// A sync's progress, sent after every stored batch and at its end.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogSyncProgress {
    pub instance_id: String,
    pub state: LogSyncState,
    /// Records stored by this run so far.
    #[ts(type = "number")]
    pub synced: i64,
    /// The cursor: every record up to it is cached.
    #[ts(type = "number")]
    pub last_seq: i64,
    /// The gateway's newest record, as it last said.
    #[ts(type = "number")]
    pub head_seq: i64,
    /// `head_seq - last_seq` (records not yet cached, at most).
    #[ts(type = "number")]
    pub behind: i64,
    #[ts(optional)]
    pub error: Option<ReportError>,
}

/// What a finished sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogSyncReport {
    /// New records stored.
    #[ts(type = "number")]
    pub inserted: i64,
    /// Records the cache already had, sent again (ignored).
    #[ts(type = "number")]
    pub duplicates: i64,
    /// Records sent again with other content (the cached ones kept).
    #[ts(type = "number")]
    pub conflicts: i64,
    /// Records that came out of seq order (stored).
    #[ts(type = "number")]
    pub out_of_order: i64,
    #[ts(type = "number")]
    pub last_seq: i64,
    #[ts(type = "number")]
    pub head_seq: i64,
    #[ts(type = "number")]
    pub behind: i64,
    /// Export requests made.
    pub pages: u32,
}

/// Something the sync met and reported.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogSyncEvent {
    pub at: DateTime<Utc>,
    /// `duplicate`, `conflict`, `out_of_order`, `log_empty`,
    /// `log_malformed_record`, `log_malformed_page`, `log_truncated`,
    /// `log_went_back`, `gateway_changed`, `cache_rebuilt`, `purged`.
    pub kind: String,
    pub message: String,
    #[ts(optional, type = "number")]
    pub seq: Option<i64>,
}

/// One instance's cache: size, contents and sync.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogCacheInfo {
    pub instance_id: String,
    /// The database file and its write-ahead log.
    #[ts(type = "number")]
    pub bytes: u64,
    #[ts(type = "number")]
    pub records: i64,
    #[ts(optional)]
    pub oldest_at: Option<DateTime<Utc>>,
    #[ts(optional)]
    pub newest_at: Option<DateTime<Utc>>,
    #[ts(type = "number")]
    pub last_seq: i64,
    #[ts(type = "number")]
    pub head_seq: i64,
    #[ts(type = "number")]
    pub behind: i64,
    /// The last sync that reached the end of the gateway's log.
    #[ts(optional)]
    pub last_sync_at: Option<DateTime<Utc>>,
    #[ts(optional)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    #[ts(optional)]
    pub last_error: Option<ReportError>,
    /// Records older than this are purged after each sync; absent keeps all.
    #[ts(optional)]
    pub retention_days: Option<u32>,
    pub syncing: bool,
}

/// The outcome of an integrity check.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogCacheCheck {
    pub ok: bool,
    /// `ok`, or what SQLite found wrong.
    pub detail: String,
    /// The damaged cache was set aside and a new one is syncing.
    pub rebuilt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum LogExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogExportProgress {
    #[ts(type = "number")]
    pub written: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogExportSummary {
    pub path: String,
    #[ts(type = "number")]
    pub records: u64,
    #[ts(type = "number")]
    pub bytes: u64,
}
