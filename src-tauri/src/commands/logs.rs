//! The call-log cache: sync, explorer, charts, export and cache
//! management. Everything but the sync reads the local cache, so it works
//! with the instance unreachable.

use tauri::ipc::Channel;
use tollgate_api::{CallLog, CallStats};
use tollgate_console::logs::{
    LogCacheCheck, LogCacheInfo, LogExportFormat, LogExportProgress, LogExportSummary, LogFilter,
    LogPage, LogStatsQuery, LogSyncEvent, LogSyncProgress, LogSyncReport,
};

use super::{CommandResult, ConsoleState};

/// Syncs now, streaming progress to `on_event`; answers what it did.
#[tauri::command]
pub async fn sync_logs(
    console: ConsoleState<'_>,
    instance_id: String,
    on_event: Channel<LogSyncProgress>,
) -> CommandResult<LogSyncReport> {
    Ok(console
        .sync_logs(&instance_id, |p| {
            // The screen may have gone; the sync goes on.
            let _ = on_event.send(p.clone());
        })
        .await?)
}

/// False when no sync was running.
#[tauri::command]
pub fn cancel_log_sync(console: ConsoleState<'_>, instance_id: String) -> bool {
    console.cancel_log_sync(&instance_id)
}

/// Forwards the progress of every sync (background ones too) to
/// `on_event` until the UI drops the channel.
#[tauri::command]
pub fn watch_log_sync(console: ConsoleState<'_>, on_event: Channel<LogSyncProgress>) {
    let mut events = console.subscribe_log_sync();
    tauri::async_runtime::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(p) => {
                    if on_event.send(p).is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Newest first; pass `nextBefore` as `before` for the next page.
#[tauri::command]
pub async fn log_page(
    console: ConsoleState<'_>,
    instance_id: String,
    filter: LogFilter,
    before: Option<i64>,
    limit: Option<u32>,
) -> CommandResult<LogPage> {
    Ok(console
        .log_page(&instance_id, filter, before, limit)
        .await?)
}

#[tauri::command]
pub async fn log_record(
    console: ConsoleState<'_>,
    instance_id: String,
    seq: i64,
) -> CommandResult<CallLog> {
    Ok(console.log_record(&instance_id, seq).await?)
}

/// The gateway's `/admin/v1/logs/stats`, from the cache.
#[tauri::command]
pub async fn log_stats(
    console: ConsoleState<'_>,
    instance_id: String,
    query: LogStatsQuery,
) -> CommandResult<CallStats> {
    Ok(console.log_stats(&instance_id, query).await?)
}

#[tauri::command]
pub async fn log_caches(console: ConsoleState<'_>) -> CommandResult<Vec<LogCacheInfo>> {
    Ok(console.log_caches().await?)
}

#[tauri::command]
pub async fn log_cache_info(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<LogCacheInfo> {
    Ok(console.log_cache_info(&instance_id).await?)
}

/// `null` days keeps everything; older records are purged now and after each sync.
#[tauri::command]
pub async fn set_log_retention(
    console: ConsoleState<'_>,
    instance_id: String,
    days: Option<u32>,
) -> CommandResult<LogCacheInfo> {
    Ok(console.set_log_retention(&instance_id, days).await?)
}

/// Answers how many records were deleted.
#[tauri::command]
pub async fn purge_log_cache(
    console: ConsoleState<'_>,
    instance_id: String,
    days: u32,
) -> CommandResult<u64> {
    Ok(console.purge_log_cache(&instance_id, days).await?)
}

#[tauri::command]
pub async fn vacuum_log_cache(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<LogCacheInfo> {
    Ok(console.vacuum_log_cache(&instance_id).await?)
}

#[tauri::command]
pub async fn check_log_cache(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<LogCacheCheck> {
    Ok(console.check_log_cache(&instance_id).await?)
}

/// Empties the cache and syncs it again from the start of the gateway's log.
#[tauri::command]
pub async fn rebuild_log_cache(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<LogCacheInfo> {
    Ok(console.rebuild_log_cache(&instance_id).await?)
}

#[tauri::command]
pub async fn log_sync_events(
    console: ConsoleState<'_>,
    instance_id: String,
    limit: Option<u32>,
) -> CommandResult<Vec<LogSyncEvent>> {
    Ok(console.log_sync_events(&instance_id, limit).await?)
}

/// Streams the progress (records written) to `on_event`.
#[tauri::command]
pub async fn export_logs(
    console: ConsoleState<'_>,
    instance_id: String,
    filter: LogFilter,
    format: LogExportFormat,
    path: String,
    on_event: Channel<LogExportProgress>,
) -> CommandResult<LogExportSummary> {
    Ok(console
        .export_logs(&instance_id, filter, format, &path, move |p| {
            let _ = on_event.send(p.clone());
        })
        .await?)
}

// ---- The fleet: several instances' caches merged (analytics) ----

/// Totals of the range over the instances' caches (all by default), each instance's part and
/// sync state beside them.
#[tauri::command]
pub async fn fleet_log_stats(
    console: ConsoleState<'_>,
    query: tollgate_console::logs::fleet::FleetLogQuery,
) -> CommandResult<tollgate_console::logs::fleet::FleetLogStats> {
    Ok(console.fleet_log_stats(query).await?)
}

/// Points only for buckets with calls; `bucket_seconds` is the bucket used.
#[tauri::command]
pub async fn fleet_log_series(
    console: ConsoleState<'_>,
    query: tollgate_console::logs::fleet::FleetLogQuery,
) -> CommandResult<tollgate_console::logs::fleet::FleetLogSeries> {
    Ok(console.fleet_log_series(query).await?)
}

/// Consumer rows carry their instance (consumer ids are per gateway).
#[tauri::command]
pub async fn fleet_log_breakdown(
    console: ConsoleState<'_>,
    query: tollgate_console::logs::fleet::FleetBreakdownQuery,
) -> CommandResult<Vec<tollgate_console::logs::fleet::FleetBreakdownRow>> {
    Ok(console.fleet_log_breakdown(query).await?)
}

#[tauri::command]
pub async fn fleet_log_breakdown_series(
    console: ConsoleState<'_>,
    query: tollgate_console::logs::fleet::FleetBreakdownQuery,
) -> CommandResult<Vec<tollgate_console::logs::fleet::FleetValueSeries>> {
    Ok(console.fleet_log_breakdown_series(query).await?)
}

// ---- The explorer's saved filters and export target -------------------------

/// By name; one whose stored filter no longer passes the checks carries a `problem`.
#[tauri::command]
pub fn list_saved_log_filters(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<Vec<tollgate_console::logs::saved_filters::SavedLogFilter>> {
    Ok(console.list_saved_log_filters(&instance_id)?)
}

/// A name in use on the instance fails with `conflict`.
#[tauri::command]
pub fn save_log_filter(
    console: ConsoleState<'_>,
    instance_id: String,
    input: tollgate_console::logs::saved_filters::SaveLogFilter,
) -> CommandResult<tollgate_console::logs::saved_filters::SavedLogFilter> {
    Ok(console.save_log_filter(&instance_id, input)?)
}

#[tauri::command]
pub fn delete_saved_log_filter(
    console: ConsoleState<'_>,
    instance_id: String,
    filter_id: String,
) -> CommandResult<()> {
    Ok(console.delete_saved_log_filter(&instance_id, &filter_id)?)
}

/// The folder an export is proposed in (downloads, else home); null when there is none.
#[tauri::command]
pub fn log_export_dir(console: ConsoleState<'_>) -> Option<String> {
    console.log_export_dir()
}

/// Checks an export path (absolute, in an existing folder) and says whether a file is there.
#[tauri::command]
pub fn check_log_export_path(
    console: ConsoleState<'_>,
    path: String,
) -> CommandResult<tollgate_console::logs::export_target::LogExportTarget> {
    Ok(console.check_log_export_path(&path)?)
}
