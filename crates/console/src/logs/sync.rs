//! The sync of one instance's call log into its cache: export pages from
//! the cursor (`last_seq`) until the gateway's log ends, each line checked,
//! stored in batches of one transaction each. Incremental (only what is
//! after the cursor), resumable (the cursor moves only with the records it
//! covers), idempotent (records are keyed by seq; a duplicate is compared
//! and ignored), and careful with a misbehaving gateway: a malformed line
//! stops the sync after what came before it is stored, out-of-order and
//! duplicated seqs are stored or ignored and reported, and a log that went
//! back (a reset gateway) or another gateway at the same URL stops it with
//! nothing cached lost.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tollgate_api::CallLog;
use tollgate_api::money::{format_amount, parse_amount};

use super::cache::{Event, Incoming, LogCache};
use super::{LogSyncProgress, LogSyncReport, LogSyncState};
use crate::client::{GatewayClient, GatewayError};
use crate::error::ConsoleError;

pub const EXPORT_PATH: &str = "/admin/v1/logs/export";
pub const HEAD_HEADER: &str = "x-tollgate-log-head";
/// The largest export page the gateway serves.
pub const PAGE_MAX: u32 = 200_000;

/// How a sync reads and stores.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Records asked for per export request (1–200000).
    pub page_size: u32,
    /// Records stored per transaction.
    pub batch_size: usize,
    /// The longest one export request may take in all.
    pub page_timeout: Duration,
    /// The longest an export may stay silent.
    pub idle_timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_size: 20_000,
            // Each batch rewrites the hour and day rollups it touches: 10,000
            // records a transaction ingest 1.5x as fast as 2,000
            // (BENCHMARKS.md, "Call-log cache").
            batch_size: 10_000,
            page_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

pub use crate::error::SyncError;

/// A line of the export as a record, checked; `Err` says what is wrong
/// (without quoting the line, which may hold captured bodies).
pub fn check_line(line: &[u8]) -> Result<Incoming, String> {
    let mut log: CallLog = serde_json::from_slice(line).map_err(|e| {
        // serde's message may quote a value: keep its category and place.
        let kind = match e.classify() {
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Eof => "cut short",
            serde_json::error::Category::Data => "not a call-log record",
            serde_json::error::Category::Io => "unreadable",
        };
        let what = e.to_string();
        let field = what
            .split('`')
            .nth(1)
            .filter(|_| what.contains("missing field") || what.contains("unknown field"))
            .map(|f| format!(" (field `{f}`)"))
            .unwrap_or_default();
        format!("{kind}{field} at column {}", e.column())
    })?;
    if log.seq < 1 {
        return Err(format!("seq {} is not a record's seq", log.seq));
    }
    if log.id.is_empty() {
        return Err(format!("record {} has no id", log.seq));
    }
    if !(100..=599).contains(&log.status) {
        return Err(format!(
            "record {} has the status {}, not an HTTP status",
            log.seq, log.status
        ));
    }
    if log.latency_us < 0 || log.tokens_in < 0 || log.tokens_out < 0 {
        return Err(format!(
            "record {} has a negative latency or token count",
            log.seq
        ));
    }
    let cost_micros = parse_amount(&log.cost)
        .map_err(|_| format!("record {} has a cost that is not a decimal amount", log.seq))?;
    // Stored as micro-units: the same record reads back the same.
    log.cost = format_amount(cost_micros, 2);
    Ok(Incoming { log, cost_micros })
}

/// Runs a blocking cache call off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    cache: &Arc<LogCache>,
    f: impl FnOnce(&LogCache) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, ConsoleError> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || f(&cache))
        .await
        .map_err(|e| ConsoleError::Storage(format!("a log-cache task failed: {e}")))?
        .map_err(super::cache_error)
}

/// One sync run in progress.
struct Run<'a> {
    instance_id: &'a str,
    cache: &'a Arc<LogCache>,
    opts: SyncOptions,
    on_progress: &'a mut (dyn FnMut(LogSyncProgress) + Send),
    report: LogSyncReport,
    /// The greatest seq read in this run (for out-of-order detection).
    greatest: i64,
    batch: Vec<Incoming>,
    out_of_order: Vec<i64>,
}

impl Run<'_> {
    fn progress(&mut self, state: LogSyncState) {
        let p = LogSyncProgress {
            instance_id: self.instance_id.to_owned(),
            state,
            synced: self.report.inserted,
            last_seq: self.report.last_seq,
            head_seq: self.report.head_seq,
            behind: (self.report.head_seq - self.report.last_seq).max(0),
            error: None,
        };
        (self.on_progress)(p);
    }

    /// Stores the records read so far in one transaction.
    async fn flush(&mut self) -> Result<(), ConsoleError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let out_of_order = std::mem::take(&mut self.out_of_order);
        let head = self.report.head_seq;
        let outcome = blocking(self.cache, move |c| {
            c.ingest(&batch, head, &out_of_order, Utc::now())
        })
        .await?;
        self.report.inserted += outcome.inserted as i64;
        self.report.duplicates += outcome.duplicates.len() as i64;
        self.report.conflicts += outcome.conflicts.len() as i64;
        self.report.out_of_order += outcome.late.len() as i64;
        self.report.last_seq = outcome.last_seq;
        self.report.head_seq = outcome.head_seq;
        self.progress(LogSyncState::Running);
        Ok(())
    }

    /// Reads one export page to its end, storing as it goes; answers the
    /// number of lines read.
    async fn page(
        &mut self,
        client: &GatewayClient,
        response: reqwest::Response,
    ) -> Result<u64, ConsoleError> {
        let after = self.report.last_seq;
        let max_line = client.max_response_bytes();
        let mut body = response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut lines = 0u64;
        loop {
            let chunk = match tokio::time::timeout(self.opts.idle_timeout, body.next()).await {
                Err(_) => {
                    self.flush().await?;
                    return Err(GatewayError::Timeout(self.opts.idle_timeout.as_secs()).into());
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    // A cut connection: keep what arrived whole.
                    self.flush().await?;
                    return Err(client.classify(e).into());
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                let line = &pending[start..start + end];
                start += end + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                lines += 1;
                match check_line(line) {
                    Ok(incoming) => self.take(incoming).await?,
                    Err(detail) => {
                        self.flush().await?;
                        return Err(SyncError::MalformedRecord {
                            after_seq: self.greatest.max(after),
                            line: lines,
                            detail,
                        }
                        .into());
                    }
                }
            }
            pending.drain(..start);
            if pending.len() > max_line {
                self.flush().await?;
                return Err(GatewayError::ResponseTooLarge(max_line).into());
            }
        }
        self.flush().await?;
        if !pending.iter().all(u8::is_ascii_whitespace) {
            return Err(SyncError::Truncated {
                after_seq: self.report.last_seq,
            }
            .into());
        }
        Ok(lines)
    }

    async fn take(&mut self, incoming: Incoming) -> Result<(), ConsoleError> {
        let seq = incoming.log.seq;
        if seq <= self.greatest {
            self.out_of_order.push(seq);
        } else {
            self.greatest = seq;
        }
        self.batch.push(incoming);
        if self.batch.len() >= self.opts.batch_size {
            self.flush().await?;
        }
        Ok(())
    }
}

/// Syncs until the gateway's log ends (or something stops it); progress
/// goes to `progress` after every stored batch. Records what it met in
/// the cache's events; the caller records the outcome.
pub(crate) async fn run(
    instance_id: &str,
    cache: &Arc<LogCache>,
    client: &GatewayClient,
    opts: SyncOptions,
    progress: &mut (dyn FnMut(LogSyncProgress) + Send),
) -> Result<LogSyncReport, ConsoleError> {
    let state = blocking(cache, |c| c.state()).await?;
    let info = client.info().await?.info;
    match &state.gateway_id {
        Some(was) if *was != info.instance_id && (state.records > 0 || state.last_seq > 0) => {
            return Err(SyncError::GatewayChanged {
                was: was.clone(),
                now: info.instance_id,
            }
            .into());
        }
        Some(was) if *was == info.instance_id => {}
        _ => {
            let id = info.instance_id.clone();
            blocking(cache, move |c| c.set_gateway_id(&id)).await?;
        }
    }
    let page_size = opts.page_size.clamp(1, PAGE_MAX);
    let mut run = Run {
        instance_id,
        cache,
        opts,
        on_progress: progress,
        report: LogSyncReport {
            last_seq: state.last_seq,
            head_seq: state.head_seq.max(state.last_seq),
            ..LogSyncReport::default()
        },
        greatest: state.last_seq,
        batch: Vec::new(),
        out_of_order: Vec::new(),
    };
    run.progress(LogSyncState::Running);
    let mut noted_empty = false;
    loop {
        let after = run.report.last_seq;
        let path = format!("{EXPORT_PATH}?after={after}&limit={page_size}");
        let response = client.get_ndjson(&path, opts.page_timeout).await?;
        let head = response
            .headers()
            .get(HEAD_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|h| *h >= 0)
            .ok_or_else(|| {
                SyncError::MalformedPage(format!("no valid `{HEAD_HEADER}` header in its answer"))
            })?;
        if head < after {
            if head > 0 {
                return Err(SyncError::LogWentBack {
                    head,
                    last_seq: after,
                }
                .into());
            }
            // An empty log: pruned to nothing, or reset and unused yet.
            if !noted_empty {
                noted_empty = true;
                let event = Event {
                    kind: "log_empty",
                    message: format!(
                        "the gateway's log is empty (the cache has up to seq {after}): its records \
                         were all pruned, or it was reset"
                    ),
                    seq: Some(after),
                };
                blocking(cache, move |c| c.add_events(Utc::now(), &[event])).await?;
            }
        } else {
            run.report.head_seq = run.report.head_seq.max(head);
        }
        run.report.pages += 1;
        let lines = run.page(client, response).await?;
        if lines < u64::from(page_size) {
            break;
        }
    }
    // The head as the gateway last said it, even when it did not move.
    let head = run.report.head_seq;
    blocking(cache, move |c| c.set_head(head)).await?;
    run.report.behind = (run.report.head_seq - run.report.last_seq).max(0);
    Ok(run.report)
}

/// Records a run's outcome in the cache: success clears the last error;
/// a failure is kept, and a problem with the gateway's data is an event.
pub(crate) async fn finish(cache: &Arc<LogCache>, result: &Result<LogSyncReport, ConsoleError>) {
    let (error, event) = match result {
        Ok(_) => (None, None),
        Err(e) => {
            let event = match e {
                ConsoleError::LogSync(s) => Some(Event {
                    kind: s.code().as_str(),
                    message: s.to_string(),
                    seq: match s {
                        SyncError::MalformedRecord { after_seq, .. }
                        | SyncError::Truncated { after_seq } => Some(*after_seq),
                        SyncError::LogWentBack { head, .. } => Some(*head),
                        _ => None,
                    },
                }),
                _ => None,
            };
            (Some((e.code().as_str().to_owned(), e.to_string())), event)
        }
    };
    let outcome = blocking(cache, move |c| {
        let now = Utc::now();
        if let Some(event) = event {
            c.add_events(now, &[event])?;
        }
        c.record_attempt(
            now,
            error
                .as_ref()
                .map(|(code, message)| (code.as_str(), message.as_str())),
        )
    })
    .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "could not record a log sync's outcome");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"{"seq":7,"id":"req_01","at":"2026-01-02T03:04:05.123456Z","api":"chat","method":"POST","path":"/v1/chat/completions","status":200,"latency_us":1500,"tokens_in":2,"tokens_out":3,"cost":"0.0035","currency":"USD"}"#;

    #[test]
    fn lines_are_checked_and_costs_normalised() {
        let ok = check_line(GOOD.as_bytes()).unwrap();
        assert_eq!(ok.log.seq, 7);
        assert_eq!(ok.cost_micros, 3_500);
        let loose = GOOD.replace("\"0.0035\"", "\"1.5\"");
        assert_eq!(check_line(loose.as_bytes()).unwrap().log.cost, "1.50");

        let cases = [
            ("{not json", "not JSON"),
            (&GOOD[..40], "cut short"),
            (r#"{"seq":1}"#, "field `id`"),
            (&GOOD.replace("\"seq\":7", "\"seq\":0"), "seq 0"),
            (
                &GOOD.replace("\"seq\":7", "\"seq\":\"x\""),
                "not a call-log record",
            ),
            (&GOOD.replace("200", "42"), "not an HTTP status"),
            (
                &GOOD.replace("\"0.0035\"", "\"free\""),
                "not a decimal amount",
            ),
            (&GOOD.replace("1500", "-1"), "negative"),
        ];
        for (line, want) in cases {
            let err = check_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
        // The message never quotes the line's values.
        let secret = GOOD.replace("\"tokens_in\":2", "\"tokens_in\":\"sk-secret-value\"");
        let err = check_line(secret.as_bytes()).unwrap_err();
        assert!(!err.contains("sk-secret"), "{err}");
    }
}
