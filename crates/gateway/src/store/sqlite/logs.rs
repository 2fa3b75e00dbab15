//! The call log in SQLite: appended in the usage writer's transactions,
//! read in `seq` order.

use async_trait::async_trait;
use rusqlite::{Transaction, params, params_from_iter, types::Value};

use chrono::{TimeZone, Utc};
use rusqlite::OptionalExtension;
use tollgate_api::money::format_amount;
use tollgate_api::{LogSettings, UpdateLogSettings};

use super::{SqliteStore, audit, backend, check_version, parse_ts, ts};
use crate::store::{AuditContext, CallRecord, LogFilter, LogStore, StoreResult};
use tollgate_api::CallLog;

/// Version of the blob layout; a row whose blob starts with `{` is a JSON
/// `CallLog` (written before blobs).
const BLOB_V1: u8 = 1;

/// The part of a record kept in its blob (postcard, positional: fields are
/// only ever appended, under a new version).
#[derive(serde::Serialize)]
struct Blob<'a> {
    id: &'a str,
    at_us: i64,
    api: &'a str,
    method: &'a str,
    path: &'a str,
    team_id: Option<&'a str>,
    consumer_id: Option<&'a str>,
    key_id: Option<&'a str>,
    key_prefix: Option<&'a str>,
    model: Option<&'a str>,
    provider_id: Option<&'a str>,
    provider_key: Option<&'a str>,
    reason: Option<&'a str>,
    upstream_status: Option<u16>,
    upstream_us: Option<i64>,
    ttft_us: Option<i64>,
    currency: Option<&'a str>,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    error: Option<&'a str>,
    request_body: Option<&'a str>,
    response_body: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct OwnedBlob {
    id: String,
    at_us: i64,
    api: String,
    method: String,
    path: String,
    team_id: Option<String>,
    consumer_id: Option<String>,
    key_id: Option<String>,
    key_prefix: Option<String>,
    model: Option<String>,
    provider_id: Option<String>,
    provider_key: Option<String>,
    reason: Option<String>,
    upstream_status: Option<u16>,
    upstream_us: Option<i64>,
    ttft_us: Option<i64>,
    currency: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    error: Option<String>,
    request_body: Option<String>,
    response_body: Option<String>,
}

fn blob_of(c: &CallRecord, out: &mut Vec<u8>) -> StoreResult<()> {
    out.clear();
    out.push(BLOB_V1);
    let blob = Blob {
        id: &c.id,
        at_us: c.at_us,
        api: &c.api,
        method: &c.method,
        path: &c.path,
        team_id: c.team_id.as_deref(),
        consumer_id: c.consumer_id.as_deref(),
        key_id: c.key_id.as_deref(),
        key_prefix: c.key_prefix.as_deref(),
        model: c.model.as_deref(),
        provider_id: c.provider_id.as_deref(),
        provider_key: c.provider_key.as_deref(),
        reason: c.reason.as_deref(),
        upstream_status: c.upstream_status,
        upstream_us: c.upstream_us,
        ttft_us: c.ttft_us,
        currency: c.currency.as_deref(),
        client_ip: c.client_ip.as_deref(),
        user_agent: c.user_agent.as_deref(),
        error: c.error.as_deref(),
        request_body: c.request_body.as_deref(),
        response_body: c.response_body.as_deref(),
    };
    postcard::to_io(&blob, &mut *out).map_err(|e| crate::store::StoreError::Backend(e.into()))?;
    Ok(())
}

/// The columns a read takes, in order.
const READ_COLUMNS: &str = "seq, status, latency_us, tokens_in, tokens_out, cost_micros, record";

fn conversion(i: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
}

/// A row (of [`READ_COLUMNS`]) as the API shows it.
fn log_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallLog> {
    let seq: i64 = r.get(0)?;
    let record = r.get_ref(6)?.as_blob()?;
    if record.first() == Some(&b'{') {
        let mut log: CallLog = serde_json::from_slice(record).map_err(|e| conversion(6, e))?;
        log.seq = seq;
        return Ok(log);
    }
    let b: OwnedBlob = match record.split_first() {
        Some((&BLOB_V1, rest)) => postcard::from_bytes(rest).map_err(|e| conversion(6, e))?,
        _ => {
            return Err(conversion(
                6,
                std::io::Error::other("unknown call record layout"),
            ));
        }
    };
    Ok(CallLog {
        seq,
        id: b.id,
        at: Utc
            .timestamp_micros(b.at_us)
            .single()
            .unwrap_or_else(Utc::now),
        api: b.api,
        method: b.method,
        path: b.path,
        team_id: b.team_id,
        consumer_id: b.consumer_id,
        key_id: b.key_id,
        key_prefix: b.key_prefix,
        model: b.model,
        provider_id: b.provider_id,
        provider_key: b.provider_key,
        status: r.get(1)?,
        reason: b.reason,
        upstream_status: b.upstream_status,
        latency_us: r.get(2)?,
        upstream_us: b.upstream_us,
        ttft_us: b.ttft_us,
        tokens_in: r.get(3)?,
        tokens_out: r.get(4)?,
        cost: format_amount(r.get(5)?, 2),
        currency: b.currency,
        client_ip: b.client_ip,
        user_agent: b.user_agent,
        error: b.error,
        request_body: b.request_body,
        response_body: b.response_body,
    })
}

/// The ids of names in `log_names`, looked up (or added) once per window.
struct Names<'t> {
    tx: &'t Transaction<'t>,
    known: foldhash::HashMap<String, i64>,
}

impl Names<'_> {
    fn id(&mut self, name: &str) -> StoreResult<i64> {
        if let Some(id) = self.known.get(name) {
            return Ok(*id);
        }
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM log_names WHERE name = ?1")
            .map_err(backend)?
            .query_row([name], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        let id = match found {
            Some(id) => id,
            None => {
                self.tx
                    .prepare_cached("INSERT INTO log_names (name) VALUES (?1)")
                    .map_err(backend)?
                    .execute([name])
                    .map_err(backend)?;
                self.tx.last_insert_rowid()
            }
        };
        self.known.insert(name.to_owned(), id);
        Ok(id)
    }

    fn opt(&mut self, name: Option<&str>) -> StoreResult<Option<i64>> {
        name.map(|n| self.id(n)).transpose()
    }
}

const COLUMNS_PER_ROW: usize = 13;
/// Rows per INSERT statement (13 × 64 parameters, under SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

/// `INSERT … VALUES (…), (…)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO call_logs (seq, end_us, status, latency_us, tokens_in, tokens_out, \
         cost_micros, api, consumer, model, reason, currency, record) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

/// Appends `calls` in order (within the window's transaction, which is
/// rolled back as a whole when it fails).
pub(super) fn append_calls(tx: &Transaction<'_>, calls: &[CallRecord]) -> StoreResult<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let mut names = Names {
        tx,
        known: foldhash::HashMap::default(),
    };
    let mut seq: i64 = tx
        .query_row("SELECT last_seq FROM log_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .map_err(backend)?;
    // Rows go in by statements of many rows: SQLite's per-statement work
    // is paid once per chunk rather than once per row.
    let mut rows: Vec<[Value; COLUMNS_PER_ROW]> = Vec::with_capacity(ROWS_PER_INSERT);
    let flush = |rows: &mut Vec<[Value; COLUMNS_PER_ROW]>| -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        tx.prepare_cached(&insert_sql(rows.len()))
            .map_err(backend)?
            .execute(params_from_iter(rows.iter().flatten()))
            .map_err(backend)?;
        rows.clear();
        Ok(())
    };
    let int = Value::Integer;
    let name = |id: Option<i64>| id.map_or(Value::Null, Value::Integer);
    for c in calls {
        let mut blob = Vec::with_capacity(256);
        blob_of(c, &mut blob)?;
        seq += 1;
        rows.push([
            int(seq),
            int(c.at_us + c.latency_us),
            int(i64::from(c.status)),
            int(c.latency_us),
            int(c.tokens_in),
            int(c.tokens_out),
            int(c.cost_micros),
            int(names.id(&c.api)?),
            name(names.opt(c.consumer_id.as_deref())?),
            name(names.opt(c.model.as_deref())?),
            name(names.opt(c.reason.as_deref())?),
            name(names.opt(c.currency.as_deref())?),
            Value::Blob(blob),
        ]);
        if rows.len() == ROWS_PER_INSERT {
            flush(&mut rows)?;
        }
    }
    flush(&mut rows)?;
    tx.execute("UPDATE log_state SET last_seq = ?1 WHERE id = 1", [seq])
        .map_err(backend)?;
    Ok(())
}

fn head_seq(c: &rusqlite::Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT last_seq FROM log_state WHERE id = 1", [], |r| {
        r.get(0)
    })
}

/// How far out of order two rows' end times may be (calls ending on
/// different threads reach the writer a moment apart).
const END_SLACK_US: i64 = 5_000_000;

/// The first seq whose call ended at or after `t` — found by a binary search,
/// since rows are appended in the order calls end (give or take
/// [`END_SLACK_US`], which callers add to their bounds).
fn seq_ending_at(c: &rusqlite::Connection, t: i64) -> rusqlite::Result<i64> {
    let (mut lo, mut hi): (i64, i64) = c.query_row(
        "SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) + 1 FROM call_logs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut probe =
        c.prepare_cached("SELECT seq, end_us FROM call_logs WHERE seq >= ?1 ORDER BY seq LIMIT 1")?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row: Option<(i64, i64)> = probe
            .query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((seq, end)) if end < t => lo = seq + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The seqs `[lo, hi)` holding every call that ended in `[from, to)`.
fn seq_range(c: &rusqlite::Connection, from: i64, to: i64) -> rusqlite::Result<(i64, i64)> {
    Ok((
        seq_ending_at(c, from.saturating_sub(END_SLACK_US))?,
        seq_ending_at(c, to.saturating_add(END_SLACK_US))?,
    ))
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn call_logs(&self, filter: LogFilter, limit: u32) -> StoreResult<(Vec<CallLog>, i64)> {
        self.read(move |c| {
            let mut clauses = vec!["seq > ?".to_owned()];
            let mut values: Vec<Value> = vec![Value::Integer(filter.after)];
            let mut named = |column: &str, value: Option<String>| {
                if let Some(v) = value {
                    clauses.push(format!(
                        "{column} = (SELECT id FROM log_names WHERE name = ?)"
                    ));
                    values.push(Value::Text(v));
                }
            };
            named("consumer", filter.consumer_id);
            named("reason", filter.reason);
            named("api", filter.api);
            named("model", filter.model);
            if let Some(class) = filter.status_class {
                clauses.push("status BETWEEN ? AND ?".into());
                values.push(Value::Integer(i64::from(class) * 100));
                values.push(Value::Integer(i64::from(class) * 100 + 99));
            }
            if filter.from_us.is_some() || filter.to_us.is_some() {
                let from = filter.from_us.unwrap_or(i64::MIN / 2);
                let to = filter.to_us.unwrap_or(i64::MAX / 2);
                let (lo, hi) = seq_range(c, from, to).map_err(backend)?;
                clauses.push("seq >= ? AND seq < ? AND end_us >= ? AND end_us < ?".into());
                values.extend([lo, hi, from, to].map(Value::Integer));
            }
            values.push(Value::Integer(i64::from(limit)));
            let sql = format!(
                "SELECT {READ_COLUMNS} FROM call_logs WHERE {} ORDER BY seq LIMIT ?",
                clauses.join(" AND ")
            );
            let mut statement = c.prepare_cached(&sql).map_err(backend)?;
            let rows = statement
                .query_map(params_from_iter(values), log_row)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok((rows, head_seq(c).map_err(backend)?))
        })
        .await
    }

    async fn export_lines(&self, after: i64, limit: u32) -> StoreResult<(Vec<(i64, String)>, i64)> {
        self.read(move |c| {
            let mut statement = c
                .prepare_cached(&format!(
                    "SELECT {READ_COLUMNS} FROM call_logs WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map(params![after, limit], |r| {
                    let log = log_row(r)?;
                    let line = serde_json::to_string(&log).map_err(|e| conversion(6, e))?;
                    Ok((log.seq, line))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok((rows, head_seq(c).map_err(backend)?))
        })
        .await
    }

    async fn call_stats(
        &self,
        from_us: i64,
        to_us: i64,
        bucket_us: i64,
    ) -> StoreResult<tollgate_api::CallStats> {
        self.read(move |c| stats(c, from_us, to_us, bucket_us).map_err(backend))
            .await
    }

    async fn log_settings(&self) -> StoreResult<Option<LogSettings>> {
        self.read(|c| {
            c.query_row(
                "SELECT retention_days, max_records, bodies, updated_at, version \
                 FROM log_settings WHERE id = 1",
                [],
                settings_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn save_log_settings(
        &self,
        update: UpdateLogSettings,
        expected_version: Option<i64>,
        audit_context: &AuditContext,
    ) -> StoreResult<LogSettings> {
        let audit_context = audit_context.clone();
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let current: i64 = tx
                .query_row("SELECT version FROM log_settings WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?
                .unwrap_or(0);
            check_version(current, expected_version)?;
            let bodies = serde_json::to_string(&update.bodies)
                .map_err(|e| crate::store::StoreError::Backend(e.into()))?;
            let max = update.max_records.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
            tx.execute(
                "INSERT INTO log_settings (id, retention_days, max_records, bodies, updated_at, version) \
                 VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
                 retention_days = ?1, max_records = ?2, bodies = ?3, updated_at = ?4, version = ?5",
                params![update.retention_days, max, bodies, ts(Utc::now()), current + 1],
            )
            .map_err(backend)?;
            let saved = tx
                .query_row(
                    "SELECT retention_days, max_records, bodies, updated_at, version \
                     FROM log_settings WHERE id = 1",
                    [],
                    settings_row,
                )
                .map_err(backend)?;
            audit(&tx, &audit_context, "logs.settings", "log_settings")?;
            tx.commit().map_err(backend)?;
            Ok(saved)
        })
        .await
    }

    async fn prune_call_logs(&self, before_us: i64, max_records: Option<u64>) -> StoreResult<u64> {
        const BATCH: i64 = 10_000;
        let mut deleted = 0u64;
        loop {
            // Small batches, so that the writer of new records never waits long.
            let n = self
                .write(move |c| {
                    let (_, hi) = seq_range(c, before_us, before_us).map_err(backend)?;
                    c.execute(
                        "DELETE FROM call_logs WHERE seq IN (SELECT seq FROM call_logs \
                         WHERE seq < ?1 AND end_us < ?2 ORDER BY seq LIMIT ?3)",
                        params![hi, before_us, BATCH],
                    )
                    .map_err(backend)
                })
                .await?;
            deleted += n as u64;
            if (n as i64) < BATCH {
                break;
            }
        }
        if let Some(max) = max_records {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            let n = self
                .write(move |c| {
                    c.execute(
                        "DELETE FROM call_logs WHERE seq <= \
                         (SELECT seq FROM call_logs ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                        params![max],
                    )
                    .map_err(backend)
                })
                .await?;
            deleted += n as u64;
        }
        Ok(deleted)
    }
}

fn settings_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogSettings> {
    let bodies: String = r.get(2)?;
    let max: Option<i64> = r.get(1)?;
    Ok(LogSettings {
        retention_days: r.get(0)?,
        max_records: max.map(|m| m.max(0) as u64),
        bodies: serde_json::from_str(&bodies).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        updated_at: Some(parse_ts(&r.get::<_, String>(3)?)?),
        version: r.get(4)?,
    })
}

/// The value at fraction `p` of the range's latencies (nearest rank).
fn percentile(
    c: &rusqlite::Connection,
    (from, to, lo, hi): (i64, i64, i64, i64),
    count: i64,
    p: f64,
) -> rusqlite::Result<i64> {
    if count == 0 {
        return Ok(0);
    }
    let rank = ((count as f64 * p).ceil() as i64).clamp(1, count) - 1;
    c.query_row(
        "SELECT latency_us FROM call_logs WHERE seq >= ?3 AND seq < ?4 AND end_us >= ?1 \
         AND end_us < ?2 ORDER BY latency_us LIMIT 1 OFFSET ?5",
        params![from, to, lo, hi, rank],
        |r| r.get(0),
    )
}

pub(super) fn stats(
    c: &rusqlite::Connection,
    from: i64,
    to: i64,
    bucket: i64,
) -> rusqlite::Result<tollgate_api::CallStats> {
    use tollgate_api::{ConsumerUse, CostTotal, ModelUse, ReasonCount, StatsPoint};

    let at = |us: i64| Utc.timestamp_micros(us).single().unwrap_or_else(Utc::now);
    // Calls that ended in the range (seq bounds first, so that only the
    // range's rows are read).
    let (lo, hi) = seq_range(c, from, to)?;
    let range = params![from, to, bucket, lo, hi];
    let (requests, errors, tokens_in, tokens_out): (i64, i64, i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(status >= 400), 0), coalesce(sum(tokens_in), 0), \
         coalesce(sum(tokens_out), 0) FROM call_logs WHERE seq >= ?4 AND seq < ?5 AND end_us >= ?1 AND end_us < ?2",
        range,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let cost = c
        .prepare_cached(
            "SELECT n.name, sum(l.cost_micros) FROM call_logs l JOIN log_names n ON n.id = l.currency \
             WHERE l.seq >= ?4 AND l.seq < ?5 AND l.end_us >= ?1 AND l.end_us < ?2 GROUP BY l.currency ORDER BY n.name",
        )?
        .query_map(range, |r| {
            Ok(CostTotal {
                currency: r.get(0)?,
                amount: format_amount(r.get(1)?, 2),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let series = c
        .prepare_cached(
            "SELECT (end_us - ?1) / ?3, count(*), sum(status >= 400), sum(status = 402) \
             FROM call_logs WHERE seq >= ?4 AND seq < ?5 AND end_us >= ?1 AND end_us < ?2 GROUP BY 1 ORDER BY 1",
        )?
        .query_map(range, |r| {
            Ok(StatsPoint {
                at: at(from + r.get::<_, i64>(0)? * bucket),
                requests: r.get(1)?,
                errors: r.get(2)?,
                payment_required: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let by_reason = c
        .prepare_cached(
            "SELECT n.name, max(l.status), count(*) FROM call_logs l JOIN log_names n ON n.id = l.reason \
             WHERE l.seq >= ?4 AND l.seq < ?5 AND l.end_us >= ?1 AND l.end_us < ?2 GROUP BY l.reason ORDER BY 3 DESC, 1",
        )?
        .query_map(range, |r| {
            Ok(ReasonCount {
                reason: r.get(0)?,
                status: r.get(1)?,
                count: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let by_model = c
        .prepare_cached(
            "SELECT n.name, count(*), sum(l.tokens_in), sum(l.tokens_out) FROM call_logs l \
             JOIN log_names n ON n.id = l.model WHERE l.seq >= ?4 AND l.seq < ?5 AND l.end_us >= ?1 AND l.end_us < ?2 \
             GROUP BY l.model ORDER BY 2 DESC, 1 LIMIT 50",
        )?
        .query_map(range, |r| {
            Ok(ModelUse {
                model: r.get(0)?,
                requests: r.get(1)?,
                tokens_in: r.get(2)?,
                tokens_out: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let top_consumers = c
        .prepare_cached(
            "SELECT n.name, count(*), sum(l.status >= 400) FROM call_logs l \
             JOIN log_names n ON n.id = l.consumer WHERE l.seq >= ?4 AND l.seq < ?5 AND l.end_us >= ?1 AND l.end_us < ?2 \
             GROUP BY l.consumer ORDER BY 2 DESC, 1 LIMIT 10",
        )?
        .query_map(range, |r| {
            Ok(ConsumerUse {
                consumer_id: r.get(0)?,
                requests: r.get(1)?,
                errors: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tollgate_api::CallStats {
        from: at(from),
        to: at(to),
        bucket_seconds: bucket / 1_000_000,
        requests,
        errors,
        tokens_in,
        tokens_out,
        latency_p50_us: percentile(c, (from, to, lo, hi), requests, 0.50)?,
        latency_p95_us: percentile(c, (from, to, lo, hi), requests, 0.95)?,
        latency_p99_us: percentile(c, (from, to, lo, hi), requests, 0.99)?,
        cost,
        series,
        by_reason,
        by_model,
        top_consumers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BillingStore, UsageBatch};

    fn record(id: usize, at_us: i64) -> CallRecord {
        CallRecord {
            id: format!("req_{id:08}"),
            at_us,
            api: "chat".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            status: 200,
            ..CallRecord::default()
        }
    }

    #[tokio::test]
    async fn a_record_reads_back_as_written_in_pages_and_exports() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut full = record(7, 1_764_000_000_123_456);
        full.consumer_id = Some("con_1".into());
        full.team_id = Some("team_1".into());
        full.key_prefix = Some("tg_abcdefgh".into());
        full.model = Some("m".into());
        full.provider_key = Some("pkey_1 (…9f3a)".into());
        full.client_ip = Some("127.0.0.1".into());
        full.user_agent = Some("ua/1".into());
        full.latency_us = 1_500;
        full.upstream_us = Some(1_000);
        full.cost_micros = 1_234_567;
        full.currency = Some("USD".into());
        full.upstream_status = Some(200);
        full.request_body = Some("{\"a\":\"ünïcode\"}".into());
        store
            .settle_calls(UsageBatch {
                calls: std::sync::Arc::new(vec![full.clone()]),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        let (logs, head) = store.call_logs(LogFilter::default(), 10).await.unwrap();
        let log = &logs[0];
        assert_eq!((log.seq, head), (1, 1));
        assert_eq!(log.id, "req_00000007");
        assert_eq!(log.at.timestamp_micros(), 1_764_000_000_123_456);
        assert_eq!(log.cost, "1.234567");
        assert_eq!(log.latency_us, 1_500);
        assert_eq!(log.provider_key.as_deref(), Some("pkey_1 (…9f3a)"));
        assert_eq!(log.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(log.request_body, full.request_body);
        assert_eq!(log.ttft_us, None);
        let (lines, _) = store.export_lines(0, 10).await.unwrap();
        let exported: CallLog = serde_json::from_str(&lines[0].1).unwrap();
        assert_eq!(&exported, log);
        // Time filters select by when calls ended (arrival + latency).
        let ended = |from: i64, to: i64| LogFilter {
            from_us: Some(from),
            to_us: Some(to),
            ..LogFilter::default()
        };
        let end = 1_764_000_000_123_456 + 1_500;
        assert_eq!(
            store
                .call_logs(ended(end, end + 1), 10)
                .await
                .unwrap()
                .0
                .len(),
            1
        );
        assert!(
            store
                .call_logs(ended(end + 1, end + 9), 10)
                .await
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[tokio::test]
    async fn records_of_the_earlier_schema_read_the_same_after_its_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            super::super::MIGRATIONS.to_version(&mut conn, 10).unwrap();
            conn.execute_batch(
                "INSERT INTO call_logs (id, at_us, api, method, path, consumer_id, model, status, reason, \
                   latency_us, tokens_in, tokens_out, cost_micros, currency, client_ip) VALUES \
                 ('req_a', 1764000000123456, 'chat', 'POST', '/v1/chat/completions', 'con_1', 'm', 200, NULL, \
                   900, 2, 3, 1234567, 'USD', '127.0.0.1'), \
                 ('req_b', 1764000001000000, 'chat', 'POST', '/v1/chat/completions', NULL, NULL, 401, \
                   'invalid-api-key', 50, 0, 0, 0, NULL, NULL); \
                 DELETE FROM call_logs WHERE id = 'req_b'; \
                 INSERT INTO call_logs (id, at_us, api, method, path, status, latency_us, tokens_in, \
                   tokens_out, cost_micros) VALUES ('req_c', 1764000002000000, 'models', 'GET', '/v1/models', \
                   200, 10, 0, 0, 0);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let (logs, head) = store.call_logs(LogFilter::default(), 10).await.unwrap();
        assert_eq!(head, 3);
        assert_eq!(logs.len(), 2);
        let a = &logs[0];
        assert_eq!((a.seq, a.id.as_str(), a.status), (1, "req_a", 200));
        assert_eq!(a.at.timestamp_millis(), 1_764_000_000_123);
        assert_eq!(a.cost, "1.234567");
        assert_eq!(a.consumer_id.as_deref(), Some("con_1"));
        assert_eq!(a.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(logs[1].seq, 3);
        // Filters by name still find them; the next record continues the seq.
        let by_consumer = LogFilter {
            consumer_id: Some("con_1".into()),
            ..LogFilter::default()
        };
        assert_eq!(store.call_logs(by_consumer, 10).await.unwrap().0.len(), 1);
        store
            .settle_calls(UsageBatch {
                calls: std::sync::Arc::new(vec![record(4, 1_764_000_003_000_000)]),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        assert_eq!(
            store.call_logs(LogFilter::default(), 10).await.unwrap().1,
            4
        );
    }

    #[tokio::test]
    async fn pruning_deletes_the_old_then_the_surplus_and_seqs_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        // 3,000 records a day old, then 2,500 of now.
        let (old, new) = (1_000_000_000_000i64, 2_000_000_000_000i64);
        let calls: Vec<_> = (0..5_500)
            .map(|i| record(i, if i < 3_000 { old } else { new }))
            .collect();
        store
            .settle_calls(UsageBatch {
                calls: std::sync::Arc::new(calls.clone()),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        let (_, head) = store.call_logs(LogFilter::default(), 1).await.unwrap();
        assert_eq!(head, 5_500);

        assert_eq!(store.prune_call_logs(old + 1, None).await.unwrap(), 3_000);
        assert_eq!(
            store.prune_call_logs(old + 1, Some(2_000)).await.unwrap(),
            500
        );
        let (left, _) = store.call_logs(LogFilter::default(), 5_000).await.unwrap();
        assert_eq!(left.len(), 2_000);
        assert_eq!(left[0].seq, 3_501, "the newest are kept");
        assert_eq!(left[0].id, calls[3_500].id);

        // Everything pruned: new records still never reuse a seq.
        assert_eq!(store.prune_call_logs(new + 1, None).await.unwrap(), 2_000);
        store
            .settle_calls(UsageBatch {
                calls: std::sync::Arc::new(vec![record(9_999, new)]),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        let (newest, head) = store
            .call_logs(
                LogFilter {
                    after: 5_500,
                    ..LogFilter::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].id, "req_00009999");
        assert_eq!((newest[0].seq, head), (5_501, 5_501));
    }
}
