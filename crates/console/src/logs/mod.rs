//! The call-log cache and its sync: each instance's call log copied into a
//! SQLite file of its own (`logs/<instance-id>.db`, [`cache`]) by a sync
//! that runs in the background ([`sync`]), so that every log view, filter,
//! search, chart and export works from the cache ([`query`], [`export`]),
//! also when the instance is unreachable. Rollup maths are in [`rollup`].

pub mod cache;
pub mod export;
pub mod export_target;
pub mod fleet;
pub mod query;
pub mod rollup;
pub mod saved_filters;
pub mod sync;
mod words;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tollgate_api::money::parse_amount;
use tollgate_api::{
    CallLog, CallStats, ConsumerUse, CostTotal, FieldError, ModelUse, ReasonCount, StatsPoint,
};
use ts_rs::TS;

use crate::Console;
use crate::error::ConsoleError;
use crate::models::ReportError;
use cache::{
    CacheError, DIM_ALL, DIM_API, DIM_CONSUMER, DIM_MODEL, DIM_REASON, DIM_STATUS, LogCache,
    is_corruption, micros_to_time,
};
use query::{Checked, Folded};
use rollup::Grain;
pub use sync::{SyncError, SyncOptions};

/// Days of records a new cache keeps.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Most records in one explorer page.
const PAGE_MAX: u32 = 1_000;
const PAGE_DEFAULT: u32 = 100;
/// Most points in one chart.
const POINTS_MAX: i64 = 1_500;
/// Records deleted per transaction by a purge.
const PURGE_BATCH: u32 = 10_000;

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
    fn grain(self) -> Grain {
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
    fn dim(self) -> u8 {
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

/// A cache error as the console reports it: damage is its own error (the
/// caller rebuilds), anything else is logged and summarised.
pub(crate) fn cache_error(e: rusqlite::Error) -> ConsoleError {
    if is_corruption(&e) {
        ConsoleError::CacheCorrupt(e.to_string())
    } else {
        e.into()
    }
}

/// When each instance syncs next, and whether it is syncing now.
#[derive(Debug, Default, Clone)]
struct Slot {
    failures: u32,
    next_at: Option<DateTime<Utc>>,
    running: bool,
}

/// The caches of every instance and the background sync's schedule.
pub(crate) struct Logs {
    dir: PathBuf,
    caches: Mutex<HashMap<String, Arc<LogCache>>>,
    /// Held while a cache is being opened (see [`Console::log_cache`]).
    opening: tokio::sync::Mutex<()>,
    slots: Mutex<HashMap<String, Slot>>,
    progress: broadcast::Sender<LogSyncProgress>,
    options: Mutex<SyncOptions>,
}

impl Logs {
    pub fn new(data_dir: &Path) -> Logs {
        Logs {
            dir: data_dir.join("logs"),
            caches: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            slots: Mutex::new(HashMap::new()),
            progress: broadcast::channel(256).0,
            options: Mutex::new(SyncOptions::default()),
        }
    }

    fn caches(&self) -> MutexGuard<'_, HashMap<String, Arc<LogCache>>> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, instance_id: &str) -> PathBuf {
        self.dir.join(format!("{instance_id}.db"))
    }
}

/// The file and its companions (write-ahead log, shared memory).
fn cache_files(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    [path.to_owned(), with("-wal"), with("-shm")]
}

/// Moves a damaged cache aside (`<id>.db.damaged-<time>`), kept for a look.
/// Opens the cache file; a damaged one is set aside and a new cache
/// started in its place, with an event saying so.
fn open_or_replace(instance_id: &str, path: &Path) -> Result<LogCache, ConsoleError> {
    match LogCache::open(path) {
        Ok(cache) => Ok(cache),
        Err(CacheError::Corrupt(detail)) => {
            let aside = set_aside(path).map_err(|e| {
                ConsoleError::Storage(format!("cannot set the damaged log cache aside: {e}"))
            })?;
            tracing::warn!(instance = %instance_id, %detail, aside = %aside.display(), "log cache damaged; rebuilding");
            let cache = LogCache::open(path).map_err(open_error)?;
            let event = cache::Event {
                kind: "cache_rebuilt",
                message: format!(
                    "the cache was damaged ({detail}); it was moved to {} and is being rebuilt \
                     from the gateway",
                    aside.display()
                ),
                seq: None,
            };
            cache
                .add_events(Utc::now(), &[event])
                .map_err(cache_error)?;
            Ok(cache)
        }
        Err(e) => Err(open_error(e)),
    }
}

fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".damaged-{stamp}"));
    let aside = PathBuf::from(aside);
    for (from, to) in cache_files(path).iter().zip(cache_files(&aside).iter()) {
        match std::fs::rename(from, to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(aside)
}

fn report_error(e: &ConsoleError) -> ReportError {
    ReportError {
        code: e.code().as_str().to_owned(),
        message: e.to_string(),
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

impl Console {
    /// The cache of an instance, opened on first use. A damaged file is
    /// set aside and a new cache started (the sync refills it).
    ///
    /// Opening runs the cache's migrations, which can take minutes on a big
    /// cache (re-indexing it), so it happens on a blocking thread, one open
    /// at a time; the caches already open stay usable meanwhile.
    pub(crate) async fn log_cache(&self, id: &str) -> Result<Arc<LogCache>, ConsoleError> {
        if let Some(cache) = self.logs.caches().get(id) {
            return Ok(cache.clone());
        }
        self.instance(id)?;
        let _opening = self.logs.opening.lock().await;
        if let Some(cache) = self.logs.caches().get(id) {
            return Ok(cache.clone());
        }
        let path = self.logs.path(id);
        let instance = id.to_owned();
        let cache = tokio::task::spawn_blocking(move || open_or_replace(&instance, &path))
            .await
            .map_err(|e| ConsoleError::Storage(format!("opening the log cache failed: {e}")))??;
        let cache = Arc::new(cache);
        self.logs.caches().insert(id.to_owned(), cache.clone());
        Ok(cache)
    }

    /// Drops a damaged cache: set aside, reopened empty, synced again soon.
    async fn rebuild_damaged(&self, id: &str, detail: &str) -> Result<Arc<LogCache>, ConsoleError> {
        self.forget_log_cache(id, false);
        let path = self.logs.path(id);
        let aside = set_aside(&path).map_err(|e| {
            ConsoleError::Storage(format!("cannot set the damaged log cache aside: {e}"))
        })?;
        tracing::warn!(instance = %id, %detail, aside = %aside.display(), "log cache damaged; rebuilding");
        let cache = self.log_cache(id).await?;
        let event = cache::Event {
            kind: "cache_rebuilt",
            message: format!(
                "the cache was damaged ({detail}); it was moved to {} and is being rebuilt from the \
                 gateway",
                aside.display()
            ),
            seq: None,
        };
        cache
            .add_events(Utc::now(), &[event])
            .map_err(cache_error)?;
        self.logs.slots().entry(id.to_owned()).or_default().next_at = None;
        Ok(cache)
    }

    /// Closes an instance's cache (cancelling its sync); with `delete`, its
    /// files go too (the instance was removed).
    pub(crate) fn forget_log_cache(&self, id: &str, delete: bool) {
        let cache = self.logs.caches().remove(id);
        if let Some(cache) = &cache
            && let Some(cancel) = cache
                .cancel
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
        {
            cancel.notify_one();
        }
        drop(cache);
        if delete {
            self.logs.slots().remove(id);
            for file in cache_files(&self.logs.path(id)) {
                let _ = std::fs::remove_file(file);
            }
        }
    }

    /// Runs `f` on the instance's cache off the async runtime; a cache
    /// found damaged is rebuilt and the error says so.
    async fn on_cache<T: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce(&LogCache) -> Result<T, ConsoleError> + Send + 'static,
    ) -> Result<T, ConsoleError> {
        let cache = self.log_cache(id).await?;
        let result = tokio::task::spawn_blocking(move || f(&cache))
            .await
            .map_err(|e| ConsoleError::Storage(format!("a log-cache task failed: {e}")))?;
        match result {
            Err(ConsoleError::CacheCorrupt(detail)) => {
                self.rebuild_damaged(id, &detail).await?;
                Err(ConsoleError::CacheCorrupt(detail))
            }
            other => other,
        }
    }

    /// Sets the sync's page and batch sizes (the CLI and tests use it).
    pub fn set_log_sync_options(&self, options: SyncOptions) {
        *self.logs.options.lock().unwrap_or_else(|p| p.into_inner()) = options;
    }

    /// Brings the instance's cache up to the gateway's log now; each
    /// stored batch is reported to `on_progress` (and to every
    /// [`Console::subscribe_log_sync`] receiver). Waits for a sync already
    /// running on the instance to end first. Applies the cache's
    /// retention afterwards.
    pub async fn sync_logs(
        &self,
        id: &str,
        mut on_progress: impl FnMut(&LogSyncProgress) + Send,
    ) -> Result<LogSyncReport, ConsoleError> {
        let cache = self.log_cache(id).await?;
        let _running = cache.sync_lock.lock().await;
        let cancel = Arc::new(Notify::new());
        *cache.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        let options = *self.logs.options.lock().unwrap_or_else(|p| p.into_inner());
        let sender = self.logs.progress.clone();
        let mut last = LogSyncProgress {
            instance_id: id.to_owned(),
            state: LogSyncState::Running,
            synced: 0,
            last_seq: 0,
            head_seq: 0,
            behind: 0,
            error: None,
        };
        let result = {
            let mut forward = |p: LogSyncProgress| {
                on_progress(&p);
                let _ = sender.send(p.clone());
                last = p;
            };
            let work = async {
                let client = self.client(id).await?;
                sync::run(id, &cache, &client, options, &mut forward).await
            };
            tokio::select! {
                _ = cancel.notified() => Err(ConsoleError::Cancelled),
                r = work => r,
            }
        };
        *cache.cancel.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let result = match result {
            Err(ConsoleError::CacheCorrupt(detail)) => {
                drop(_running);
                self.rebuild_damaged(id, &detail).await?;
                Err(ConsoleError::CacheCorrupt(detail))
            }
            other => {
                sync::finish(&cache, &other).await;
                other
            }
        };
        if let Ok(report) = &result {
            if let Err(e) = self.apply_retention(id).await {
                tracing::warn!(instance = %id, error = %e, "log cache retention failed");
            }
            if report.inserted > 0
                && let Err(e) = sync::blocking(&cache, |c| c.optimize()).await
            {
                tracing::warn!(instance = %id, error = %e, "log cache optimize failed");
            }
        }
        let state = match &result {
            Ok(_) => LogSyncState::Done,
            Err(ConsoleError::Cancelled) => LogSyncState::Cancelled,
            Err(_) => LogSyncState::Failed,
        };
        let end = match &result {
            Ok(r) => LogSyncProgress {
                state,
                synced: r.inserted,
                last_seq: r.last_seq,
                head_seq: r.head_seq,
                behind: r.behind,
                ..last
            },
            Err(e) => LogSyncProgress {
                state,
                error: Some(report_error(e)),
                ..last
            },
        };
        on_progress(&end);
        let _ = self.logs.progress.send(end);
        result
    }

    /// Stops the instance's sync in progress (what it stored stays).
    /// False when none is running.
    pub fn cancel_log_sync(&self, id: &str) -> bool {
        let Some(cache) = self.logs.caches().get(id).cloned() else {
            return false;
        };
        let guard = cache.cancel.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(cancel) => {
                cancel.notify_one();
                true
            }
            None => false,
        }
    }

    /// Every sync's progress, background ones included.
    pub fn subscribe_log_sync(&self) -> broadcast::Receiver<LogSyncProgress> {
        self.logs.progress.subscribe()
    }

    /// Starts the syncs that are due: every 30 s per instance while it
    /// answers, backing off 5 s → 5 min while it fails.
    pub fn start_due_log_syncs(self: &Arc<Self>) -> usize {
        let now = Utc::now();
        let instances = match self.list_instances() {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "log sync could not list instances");
                return 0;
            }
        };
        let mut due = Vec::new();
        {
            let mut slots = self.logs.slots();
            slots.retain(|id, _| instances.iter().any(|i| &i.id == id));
            for instance in instances {
                let slot = slots.entry(instance.id.clone()).or_default();
                if !slot.running && slot.next_at.is_none_or(|t| t <= now) {
                    slot.running = true;
                    due.push(instance.id);
                }
            }
        }
        let count = due.len();
        for id in due {
            let console = self.clone();
            tokio::spawn(async move {
                let ok = console.sync_logs(&id, |_| {}).await.is_ok();
                let mut slots = console.logs.slots();
                if let Some(slot) = slots.get_mut(&id) {
                    slot.running = false;
                    slot.failures = if ok {
                        0
                    } else {
                        slot.failures.saturating_add(1)
                    };
                    slot.next_at = Some(
                        Utc::now()
                            + chrono::Duration::from_std(crate::fleet::backoff(slot.failures))
                                .unwrap_or_default(),
                    );
                }
            });
        }
        count
    }

    /// Runs [`Console::start_due_log_syncs`] every second until the
    /// console is dropped. The shell spawns it on its async runtime.
    pub async fn run_log_sync(console: Weak<Console>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(console) = console.upgrade() else {
                break;
            };
            console.start_due_log_syncs();
        }
    }

    /// Makes the instance's background sync due now.
    pub fn refresh_log_sync(&self, id: &str) {
        self.logs.slots().entry(id.to_owned()).or_default().next_at = None;
    }

    /// A page of the instance's cached records, newest first, from the
    /// cursor `before` (a seq), filtered.
    pub async fn log_page(
        &self,
        id: &str,
        filter: LogFilter,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<LogPage, ConsoleError> {
        // Checked before the cache is opened too: a bad filter never touches it.
        check_filter(&filter)?;
        let limit = limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(ConsoleError::validation(
                "limit",
                format!("must be 1 to {PAGE_MAX}"),
            ));
        }
        self.on_cache(id, move |cache| cache.page(&filter, before, limit))
            .await
    }

    /// One cached record.
    pub async fn log_record(&self, id: &str, seq: i64) -> Result<CallLog, ConsoleError> {
        self.on_cache(id, move |cache| {
            query::record(&mut cache.reader(), seq)
                .map_err(cache_error)?
                .ok_or(ConsoleError::RecordNotFound(seq))
        })
        .await
    }

    /// The figures of a time range, as the gateway's `/admin/v1/logs/stats`
    /// gives them, from the cache (percentiles from the rollups'
    /// histograms; points aligned to UTC buckets). `to` defaults to now,
    /// `from` to an hour before it.
    pub async fn log_stats(&self, id: &str, q: LogStatsQuery) -> Result<CallStats, ConsoleError> {
        let to =
            q.to.unwrap_or_else(|| Utc::now() + chrono::Duration::microseconds(1));
        let from = q.from.unwrap_or(to - chrono::Duration::hours(1));
        let (from_us, to_us, grain) = chart_range(from, to, q.bucket)?;
        self.on_cache(id, move |cache| {
            stats(cache, from_us, to_us, grain).map_err(cache_error)
        })
        .await
    }

    /// A chart's points over time: calls, errors, 402s, tokens, latency
    /// percentiles and revenue per currency, of every call or of one value
    /// of a dimension. Only buckets with calls have a point.
    pub async fn log_series(
        &self,
        id: &str,
        q: LogSeriesQuery,
    ) -> Result<Vec<LogSeriesPoint>, ConsoleError> {
        // Checked before the cache is opened: a bad query never touches it.
        chart_query(&q)?;
        self.on_cache(id, move |cache| cache.chart(&q)).await
    }

    /// Totals per value of a dimension (tokens and cost per consumer,
    /// model or API; top consumers; refusals by reason or status), the
    /// busiest first.
    pub async fn log_breakdown(
        &self,
        id: &str,
        q: LogBreakdownQuery,
    ) -> Result<Vec<LogBreakdownRow>, ConsoleError> {
        let (from_us, to_us) = (q.from.timestamp_micros(), q.to.timestamp_micros());
        if from_us >= to_us {
            return Err(ConsoleError::validation("from", "must be before `to`"));
        }
        let limit = breakdown_limit(q.limit, 20)?;
        let dim = q.dimension.dim();
        self.on_cache(id, move |cache| {
            breakdown(cache, from_us, to_us, dim, limit).map_err(cache_error)
        })
        .await
    }

    /// Calls over time per value of a dimension (e.g. 402s by reason), for
    /// the `limit` busiest values.
    pub async fn log_breakdown_series(
        &self,
        id: &str,
        q: LogBreakdownQuery,
    ) -> Result<Vec<LogValueSeries>, ConsoleError> {
        let (from_us, to_us, grain) = chart_range(q.from, q.to, q.bucket)?;
        let limit = breakdown_limit(q.limit, 8)?;
        let dim = q.dimension.dim();
        self.on_cache(id, move |cache| {
            breakdown_series(cache, from_us, to_us, grain, dim, limit).map_err(cache_error)
        })
        .await
    }

    pub async fn log_cache_info(&self, id: &str) -> Result<LogCacheInfo, ConsoleError> {
        let syncing = self.logs.slots().get(id).is_some_and(|s| s.running);
        let owned = id.to_owned();
        self.on_cache(id, move |cache| {
            let state = cache.state().map_err(cache_error)?;
            let (oldest, newest) = cache.time_span().map_err(cache_error)?;
            let (db, wal) = cache.size();
            let running = syncing
                || cache
                    .cancel
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some();
            Ok(LogCacheInfo {
                instance_id: owned,
                bytes: db + wal,
                records: state.records,
                oldest_at: oldest.map(micros_to_time),
                newest_at: newest.map(micros_to_time),
                last_seq: state.last_seq,
                head_seq: state.head_seq,
                behind: (state.head_seq - state.last_seq).max(0),
                last_sync_at: state.last_sync_at,
                last_attempt_at: state.last_attempt_at,
                last_error: state.last_error_code.map(|code| ReportError {
                    code,
                    message: state.last_error.unwrap_or_default(),
                }),
                retention_days: state.retention_days,
                syncing: running,
            })
        })
        .await
    }

    /// The cache of every instance.
    pub async fn log_caches(&self) -> Result<Vec<LogCacheInfo>, ConsoleError> {
        let mut out = Vec::new();
        for instance in self.list_instances()? {
            out.push(self.log_cache_info(&instance.id).await?);
        }
        Ok(out)
    }

    /// Keeps `days` days of records (`None`: all), purging the older now.
    pub async fn set_log_retention(
        &self,
        id: &str,
        days: Option<u32>,
    ) -> Result<LogCacheInfo, ConsoleError> {
        if days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(ConsoleError::validation(
                "retention_days",
                "must be 1 to 3650 (or absent, to keep everything)",
            ));
        }
        self.on_cache(id, move |cache| {
            cache.set_retention(days).map_err(cache_error)
        })
        .await?;
        self.apply_retention(id).await?;
        self.log_cache_info(id).await
    }

    async fn apply_retention(&self, id: &str) -> Result<u64, ConsoleError> {
        self.on_cache(id, |cache| {
            let Some(days) = cache.state().map_err(cache_error)?.retention_days else {
                return Ok(0);
            };
            purge(cache, Utc::now() - chrono::Duration::days(i64::from(days)))
        })
        .await
    }

    /// Deletes the cached records older than `days` days now; answers how many.
    pub async fn purge_log_cache(&self, id: &str, days: u32) -> Result<u64, ConsoleError> {
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
        self.on_cache(id, move |cache| purge(cache, cutoff)).await
    }

    /// Gives the space of purged records back to the file system.
    pub async fn vacuum_log_cache(&self, id: &str) -> Result<LogCacheInfo, ConsoleError> {
        self.on_cache(id, |cache| cache.vacuum().map_err(cache_error))
            .await?;
        self.log_cache_info(id).await
    }

    /// `PRAGMA integrity_check`; a damaged cache is set aside and rebuilt
    /// from the gateway.
    pub async fn check_log_cache(&self, id: &str) -> Result<LogCacheCheck, ConsoleError> {
        let detail = match self
            .on_cache(id, |cache| cache.integrity_check().map_err(cache_error))
            .await
        {
            Ok(detail) if detail == "ok" => {
                return Ok(LogCacheCheck {
                    ok: true,
                    detail,
                    rebuilt: false,
                });
            }
            Ok(detail) => {
                self.rebuild_damaged(id, &detail).await?;
                detail
            }
            // `on_cache` has rebuilt it.
            Err(ConsoleError::CacheCorrupt(detail)) => detail,
            Err(e) => return Err(e),
        };
        Ok(LogCacheCheck {
            ok: false,
            detail,
            rebuilt: true,
        })
    }

    /// Empties the instance's cache and syncs it again from the start of
    /// the gateway's log (after a gateway was reset or replaced). The
    /// retention setting is kept.
    pub async fn rebuild_log_cache(&self, id: &str) -> Result<LogCacheInfo, ConsoleError> {
        let retention = self
            .on_cache(id, |cache| {
                Ok(cache.state().map_err(cache_error)?.retention_days)
            })
            .await?;
        let cache = self.log_cache(id).await?;
        // Wait for a sync in progress to stop.
        self.cancel_log_sync(id);
        let running = cache.sync_lock.lock().await;
        self.forget_log_cache(id, true);
        drop(running);
        drop(cache);
        self.on_cache(id, move |cache| {
            cache.set_retention(retention).map_err(cache_error)?;
            let event = cache::Event {
                kind: "cache_rebuilt",
                message: "the cache was emptied on request and is being rebuilt from the gateway"
                    .into(),
                seq: None,
            };
            cache.add_events(Utc::now(), &[event]).map_err(cache_error)
        })
        .await?;
        self.refresh_log_sync(id);
        self.log_cache_info(id).await
    }

    /// What the sync met and reported, newest first.
    pub async fn log_sync_events(
        &self,
        id: &str,
        limit: Option<u32>,
    ) -> Result<Vec<LogSyncEvent>, ConsoleError> {
        let limit = limit.unwrap_or(100).clamp(1, 1_000);
        self.on_cache(id, move |cache| {
            Ok(cache
                .events(limit)
                .map_err(cache_error)?
                .into_iter()
                .map(|(at, kind, message, seq)| LogSyncEvent {
                    at: micros_to_time(at),
                    kind,
                    message,
                    seq,
                })
                .collect())
        })
        .await
    }

    /// Writes every cached record the filter matches to `path` (CSV or a
    /// JSON array), newest first; `on_progress` hears the count after each
    /// page. The file appears complete or not at all.
    pub async fn export_logs(
        &self,
        id: &str,
        filter: LogFilter,
        format: LogExportFormat,
        path: &str,
        mut on_progress: impl FnMut(&LogExportProgress) + Send + 'static,
    ) -> Result<LogExportSummary, ConsoleError> {
        let checked = check_filter(&filter)?;
        let target = export_target::check_path(path)?;
        let shown = target.display().to_string();
        self.on_cache(id, move |cache| {
            let resolved = query::resolve(&cache.reader(), &checked).map_err(cache_error)?;
            let (records, bytes) =
                export::write(cache, &resolved, format, &target, &mut |written| {
                    on_progress(&LogExportProgress { written });
                })
                .map_err(|e| match e {
                    export::ExportError::Sqlite(e) => cache_error(e),
                    export::ExportError::Io(e) => {
                        ConsoleError::Storage(format!("cannot write {}: {e}", target.display()))
                    }
                })?;
            Ok(LogExportSummary {
                path: shown,
                records,
                bytes,
            })
        })
        .await
    }
}

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
type ChartQuery = (i64, i64, Grain, Option<(u8, String)>);

fn chart_query(q: &LogSeriesQuery) -> Result<ChartQuery, ConsoleError> {
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

fn open_error(e: CacheError) -> ConsoleError {
    match e {
        CacheError::Corrupt(d) => ConsoleError::CacheCorrupt(d),
        CacheError::Sqlite(e) => cache_error(e),
        other => ConsoleError::Storage(other.to_string()),
    }
}

fn breakdown_limit(limit: Option<u32>, default: u32) -> Result<usize, ConsoleError> {
    let limit = limit.unwrap_or(default);
    if !(1..=500).contains(&limit) {
        return Err(ConsoleError::validation("limit", "must be 1 to 500"));
    }
    Ok(limit as usize)
}

fn purge(cache: &LogCache, cutoff: DateTime<Utc>) -> Result<u64, ConsoleError> {
    let n = cache
        .purge(cutoff.timestamp_micros(), PURGE_BATCH)
        .map_err(cache_error)?;
    if n > 0 {
        let event = cache::Event {
            kind: "purged",
            message: format!("{n} record(s) older than {} purged", cutoff.to_rfc3339()),
            seq: None,
        };
        cache
            .add_events(Utc::now(), &[event])
            .map_err(cache_error)?;
    }
    Ok(n)
}

fn percentiles(m: &rollup::Measures) -> (i64, i64, i64) {
    (m.percentile(0.50), m.percentile(0.95), m.percentile(0.99))
}

fn stats(cache: &LogCache, from: i64, to: i64, grain: Grain) -> rusqlite::Result<CallStats> {
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

fn series(
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

fn breakdown(
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

fn breakdown_series(
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

#[cfg(test)]
mod tests;
