//! The caches of every instance, opened on first use and set aside when
//! damaged, the background sync's schedule, and the `Console` methods of
//! the call log: sync, pages, figures, cache management, export.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, broadcast};
use tollgate_api::{CallLog, CallStats};

use super::*;
use crate::Console;
use crate::error::ConsoleError;
use crate::models::ReportError;
use cache::{CacheError, LogCache, micros_to_time};

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
    pub(super) async fn on_cache<T: Send + 'static>(
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

fn open_error(e: CacheError) -> ConsoleError {
    match e {
        CacheError::Corrupt(d) => ConsoleError::CacheCorrupt(d),
        CacheError::Sqlite(e) => cache_error(e),
        other => ConsoleError::Storage(other.to_string()),
    }
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
