//! The call log in SQLite: appended in the usage writer's transactions as
//! blocks of records (`store::log_block`; migration 12 says why), one block
//! per row of `call_log_blocks`, read in `seq` order.

mod legacy;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tollgate_api::{CallLog, LogSettings, UpdateLogSettings};

use super::{SqliteStore, backend, parse_ts, singleton_version, ts};
use crate::changes::Change;
use crate::store::log_block::{self, BLOCK_MAX, Entry, Stored, entry_of, matches};
use crate::store::log_stats::Figures;
use crate::store::{AuditContext, CallRecord, LogFilter, LogStore, StoreError, StoreResult};

pub(crate) use legacy::move_rows_into_blocks;

/// A block's records, borrowed from its bytes: readers copy out only the
/// records they keep.
fn records(data: &[u8]) -> rusqlite::Result<Vec<Entry<'_>>> {
    log_block::decode_borrowed(data).map_err(conversion)
}

/// A block's records, owned.
fn owned(data: &[u8]) -> rusqlite::Result<Vec<Stored>> {
    log_block::decode(data).map_err(conversion)
}

pub(crate) fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}

/// Writes one block of `entries` (consecutive seqs, at most [`BLOCK_MAX`]),
/// with the bounds of their end times.
pub(crate) fn insert_block(
    c: &Connection,
    entries: &[Entry<'_>],
    ends: (i64, i64),
    data: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(());
    };
    log_block::encode(entries, data).map_err(conversion)?;
    c.prepare_cached(
        "INSERT INTO call_log_blocks (first_seq, last_seq, records, min_end_us, max_end_us, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        first.seq,
        last.seq,
        entries.len() as i64,
        ends.0,
        ends.1,
        &data[..]
    ])?;
    Ok(())
}

/// Appends `calls` in order (within the window's transaction, which is
/// rolled back as a whole when it fails): one block per [`BLOCK_MAX`]
/// records, seqs given from `log_state`.
pub(super) fn append_calls(tx: &Transaction<'_>, calls: &[CallRecord]) -> StoreResult<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let last_seq: i64 = tx
        .prepare_cached("SELECT last_seq FROM log_state WHERE id = 1")
        .map_err(backend)?
        .query_row([], |r| r.get(0))
        .map_err(backend)?;
    // Room for a refused call's record (~400 bytes), so the block is not
    // copied as it grows.
    let mut data = Vec::with_capacity(calls.len().min(BLOCK_MAX as usize) * 512);
    let mut seq = last_seq;
    for chunk in calls.chunks(BLOCK_MAX as usize) {
        let mut ends = (i64::MAX, i64::MIN);
        let entries: Vec<Entry<'_>> = chunk
            .iter()
            .map(|c| {
                seq += 1;
                let end = c.at_us + c.latency_us;
                ends = (ends.0.min(end), ends.1.max(end));
                entry_of(seq, c)
            })
            .collect();
        insert_block(tx, &entries, ends, &mut data).map_err(backend)?;
    }
    tx.prepare_cached("UPDATE log_state SET last_seq = ?1 WHERE id = 1")
        .map_err(backend)?
        .execute([seq])
        .map_err(backend)?;
    Ok(())
}

fn head_seq(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT last_seq FROM log_state WHERE id = 1", [], |r| {
        r.get(0)
    })
}

/// The blocks holding the seqs `[lo, hi)`, decoded in seq order and passed
/// to `each` until it answers false. Records outside the range are passed
/// too (the caller filters).
fn each_block(
    c: &Connection,
    lo: i64,
    hi: i64,
    mut each: impl FnMut(&[Entry<'_>]) -> rusqlite::Result<bool>,
) -> rusqlite::Result<()> {
    if lo >= hi {
        return Ok(());
    }
    // A block that begins before `lo` may still hold it: its seqs span less
    // than `BLOCK_MAX`.
    let mut stmt = c.prepare_cached(
        "SELECT data FROM call_log_blocks WHERE first_seq > ?1 AND first_seq < ?2 \
         AND last_seq >= ?3 ORDER BY first_seq",
    )?;
    let mut rows = stmt.query(params![lo.saturating_sub(BLOCK_MAX), hi, lo])?;
    while let Some(row) = rows.next()? {
        let records = records(row.get_ref(0)?.as_blob()?)?;
        if !each(&records)? {
            break;
        }
    }
    Ok(())
}

/// How far out of order two records' end times may be (calls ending on
/// different threads reach the writer a moment apart).
const END_SLACK_US: i64 = 5_000_000;

/// Which end time of a block a search compares.
#[derive(Clone, Copy)]
enum Ends {
    /// The latest: a block whose every call ended before `t` lies below.
    Latest,
    /// The earliest: a block whose first call to end ended before `t` lies below.
    Earliest,
}

/// The first seq of the first block whose `ends` end time is at or after
/// `t`: a binary search over the blocks, appended in the order calls end
/// (give or take [`END_SLACK_US`], which callers add to their bounds). With
/// [`Ends::Latest`] no record below it ended at or after `t`; with
/// [`Ends::Earliest`] none at or above it ended before `t`.
fn seq_where_ends_reach(c: &Connection, t: i64, ends: Ends) -> rusqlite::Result<i64> {
    let bounds: Option<(i64, i64)> = c.query_row(
        "SELECT (SELECT first_seq FROM call_log_blocks ORDER BY first_seq LIMIT 1), \
         (SELECT last_seq FROM call_log_blocks ORDER BY first_seq DESC LIMIT 1)",
        [],
        |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
    )?;
    let Some((mut lo, last)) = bounds else {
        return Ok(1);
    };
    let mut hi = last + 1;
    let column = match ends {
        Ends::Latest => "max_end_us",
        Ends::Earliest => "min_end_us",
    };
    // The block holding `seq`, or else the first one after it.
    let mut holding = c.prepare_cached(&format!(
        "SELECT last_seq, {column} FROM call_log_blocks WHERE first_seq <= ?1 \
         ORDER BY first_seq DESC LIMIT 1"
    ))?;
    let mut after = c.prepare_cached(&format!(
        "SELECT last_seq, {column} FROM call_log_blocks WHERE first_seq > ?1 \
         ORDER BY first_seq LIMIT 1"
    ))?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let block: Option<(i64, i64)> = match holding
            .query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        {
            Some((last, end)) if last >= mid => Some((last, end)),
            _ => after
                .query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
        };
        match block {
            Some((last, end)) if end < t => lo = last + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The seqs `[lo, hi)` holding every call that ended in `[from, to)`.
fn seq_range(c: &Connection, from: i64, to: i64) -> rusqlite::Result<(i64, i64)> {
    Ok((
        seq_where_ends_reach(c, from.saturating_sub(END_SLACK_US), Ends::Latest)?,
        seq_where_ends_reach(c, to.saturating_add(END_SLACK_US), Ends::Earliest)?,
    ))
}

/// Rewrites the block that begins at `first_seq` with only the records
/// `keep` accepts (deleting it when none is left); answers how many went.
fn trim_block(
    c: &Connection,
    first_seq: i64,
    keep: impl Fn(&Stored) -> bool,
) -> rusqlite::Result<u64> {
    let data: Vec<u8> = c.query_row(
        "SELECT data FROM call_log_blocks WHERE first_seq = ?1",
        [first_seq],
        |r| r.get(0),
    )?;
    let records = owned(&data)?;
    let before = records.len();
    let kept: Vec<Stored> = records.into_iter().filter(|r| keep(r)).collect();
    c.execute(
        "DELETE FROM call_log_blocks WHERE first_seq = ?1",
        [first_seq],
    )?;
    let ends = kept.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.end_us()), hi.max(r.end_us()))
    });
    let entries: Vec<Entry<'_>> = kept.iter().map(Stored::entry).collect();
    insert_block(c, &entries, ends, &mut Vec::new())?;
    Ok((before - kept.len()) as u64)
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn call_logs(&self, filter: LogFilter, limit: u32) -> StoreResult<(Vec<CallLog>, i64)> {
        self.read(move |c| {
            let (mut lo, mut hi) = (filter.after.saturating_add(1), i64::MAX);
            if filter.from_us.is_some() || filter.to_us.is_some() {
                let from = filter.from_us.unwrap_or(i64::MIN / 2);
                let to = filter.to_us.unwrap_or(i64::MAX / 2);
                let (first, end) = seq_range(c, from, to).map_err(backend)?;
                (lo, hi) = (lo.max(first), end);
            }
            let limit = limit as usize;
            let mut out = Vec::new();
            each_block(c, lo, hi, |records| {
                for r in records {
                    if out.len() == limit {
                        break;
                    }
                    if r.seq >= lo && r.seq < hi && matches(r, &filter) {
                        out.push(r.to_log());
                    }
                }
                Ok(out.len() < limit)
            })
            .map_err(backend)?;
            Ok((out, head_seq(c).map_err(backend)?))
        })
        .await
    }

    async fn export_lines(&self, after: i64, limit: u32) -> StoreResult<(Vec<(i64, String)>, i64)> {
        self.read(move |c| {
            let limit = limit as usize;
            let mut out = Vec::new();
            each_block(c, after.saturating_add(1), i64::MAX, |records| {
                for r in records {
                    if out.len() == limit {
                        break;
                    }
                    if r.seq > after {
                        let log = r.to_log();
                        let line = serde_json::to_string(&log).map_err(conversion)?;
                        out.push((log.seq, line));
                    }
                }
                Ok(out.len() < limit)
            })
            .map_err(backend)?;
            Ok((out, head_seq(c).map_err(backend)?))
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
        let load = |c: &Connection, _: &str| singleton_version(c, "log_settings");
        self.versioned_write("log_settings", expected_version, audit_context, load, move |tx, _, current, changes| {
            let bodies = serde_json::to_string(&update.bodies)
                .map_err(|e| StoreError::Backend(e.into()))?;
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
            changes.push(Change::LogSettings { bodies: saved.bodies.clone() });
            Ok((saved, "logs.settings".into()))
        })
        .await
    }

    async fn prune_call_logs(&self, before_us: i64, max_records: Option<u64>) -> StoreResult<u64> {
        /// Blocks per write transaction, so that the writer of new records
        /// never waits long.
        const BATCH: i64 = 200;
        let mut deleted = 0u64;
        // The records that ended before `before_us`: whole blocks, then the
        // blocks that hold both older and newer ones are rewritten.
        loop {
            let (n, more) = self
                .write(move |c| {
                    let tx = c.transaction().map_err(backend)?;
                    let (_, hi) = seq_range(&tx, before_us, before_us).map_err(backend)?;
                    let blocks: Vec<(i64, i64, i64, i64)> = tx
                        .prepare_cached(
                            "SELECT first_seq, records, min_end_us, max_end_us FROM call_log_blocks \
                             WHERE first_seq < ?1 AND min_end_us < ?2 ORDER BY first_seq LIMIT ?3",
                        )
                        .map_err(backend)?
                        .query_map(params![hi, before_us, BATCH], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })
                        .map_err(backend)?
                        .collect::<rusqlite::Result<_>>()
                        .map_err(backend)?;
                    let mut n = 0u64;
                    for &(first_seq, records, _, max_end) in &blocks {
                        if max_end < before_us {
                            tx.execute(
                                "DELETE FROM call_log_blocks WHERE first_seq = ?1",
                                [first_seq],
                            )
                            .map_err(backend)?;
                            n += records as u64;
                        } else {
                            n += trim_block(&tx, first_seq, |r| r.end_us() >= before_us)
                                .map_err(backend)?;
                        }
                    }
                    tx.commit().map_err(backend)?;
                    Ok((n, blocks.len() as i64 == BATCH))
                })
                .await?;
            deleted += n;
            if !more {
                break;
            }
        }
        if let Some(max) = max_records {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            deleted += self
                .write(move |c| {
                    let tx = c.transaction().map_err(backend)?;
                    let mut surplus: i64 = tx
                        .query_row(
                            "SELECT coalesce(sum(records), 0) FROM call_log_blocks",
                            [],
                            |r| r.get::<_, i64>(0),
                        )
                        .map_err(backend)?
                        - max;
                    let mut n = 0u64;
                    while surplus > 0 {
                        let Some((first_seq, records)) = tx
                            .query_row(
                                "SELECT first_seq, records FROM call_log_blocks \
                                 ORDER BY first_seq LIMIT 1",
                                [],
                                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                            )
                            .optional()
                            .map_err(backend)?
                        else {
                            break;
                        };
                        if records <= surplus {
                            tx.execute(
                                "DELETE FROM call_log_blocks WHERE first_seq = ?1",
                                [first_seq],
                            )
                            .map_err(backend)?;
                            n += records as u64;
                            surplus -= records;
                        } else {
                            // The oldest `surplus` records of this block go.
                            let cut = first_seq;
                            let data: Vec<u8> = tx
                                .query_row(
                                    "SELECT data FROM call_log_blocks WHERE first_seq = ?1",
                                    [cut],
                                    |r| r.get(0),
                                )
                                .map_err(backend)?;
                            let seqs: Vec<i64> = owned(&data)
                                .map_err(backend)?
                                .iter()
                                .map(|r| r.seq)
                                .collect();
                            let oldest_kept = seqs[surplus as usize];
                            n += trim_block(&tx, cut, |r| r.seq >= oldest_kept).map_err(backend)?;
                            surplus = 0;
                        }
                    }
                    tx.commit().map_err(backend)?;
                    Ok(n)
                })
                .await?;
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

/// The live figures of the calls that ended in `[from, to)`: only the
/// range's blocks are read (seq bounds first).
pub(super) fn stats(
    c: &Connection,
    from: i64,
    to: i64,
    bucket: i64,
) -> rusqlite::Result<tollgate_api::CallStats> {
    let mut figures = Figures::new(from, to, bucket);
    let (lo, hi) = seq_range(c, from, to)?;
    each_block(c, lo, hi, |records| {
        for r in records.iter().filter(|r| r.seq >= lo && r.seq < hi) {
            figures.add(r);
        }
        Ok(true)
    })?;
    Ok(figures.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BillingStore, UsageBatch};
    use tollgate_api::money::format_amount;

    #[tokio::test]
    async fn rows_of_the_compact_layout_move_into_blocks() {
        #[derive(serde::Serialize)]
        struct V1Blob<'a> {
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tollgate.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            super::super::MIGRATIONS.to_version(&mut conn, 11).unwrap();
            // 1,030 rows with a gap (a pruned stretch), so blocks split.
            for seq in (1..=600).chain(701..=1_130) {
                let id = format!("req_{seq:05}");
                let blob = V1Blob {
                    id: &id,
                    at_us: 1_764_000_000_000_000 + seq * 1_000,
                    api: "chat",
                    method: "POST",
                    path: "/v1/chat/completions",
                    team_id: Some("team_1"),
                    consumer_id: Some("con_1"),
                    key_id: None,
                    key_prefix: Some("tg_abc"),
                    model: Some("m"),
                    provider_id: None,
                    provider_key: None,
                    reason: None,
                    upstream_status: Some(200),
                    upstream_us: Some(70),
                    ttft_us: None,
                    currency: Some("USD"),
                    client_ip: Some("10.0.0.1"),
                    user_agent: Some("ua"),
                    error: None,
                    request_body: None,
                    response_body: Some("{}"),
                };
                let mut record = vec![1u8];
                record.extend(postcard::to_stdvec(&blob).unwrap());
                conn.execute(
                    "INSERT INTO call_logs (seq, end_us, status, latency_us, tokens_in, tokens_out, \
                     cost_micros, api, record) VALUES (?1, ?2, 200, 100, 1, 2, ?3, 1, ?4)",
                    params![seq, blob.at_us + 100, seq * 10, record],
                )
                .unwrap();
            }
            conn.execute("UPDATE log_state SET last_seq = 1130", [])
                .unwrap();
        }
        let store = SqliteStore::open(dir.path(), Default::default()).unwrap();
        let (logs, head) = store.call_logs(LogFilter::default(), 5_000).await.unwrap();
        assert_eq!((logs.len(), head), (1_030, 1_130));
        let seqs: Vec<i64> = logs.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, (1..=600).chain(701..=1_130).collect::<Vec<_>>());
        let l = &logs[700];
        assert_eq!(l.id, format!("req_{:05}", l.seq));
        assert_eq!(l.cost, format_amount(l.seq * 10, 2));
        assert_eq!((l.tokens_in, l.tokens_out, l.latency_us), (1, 2, 100));
        assert_eq!(l.response_body.as_deref(), Some("{}"));
        assert_eq!(l.client_ip.as_deref(), Some("10.0.0.1"));
        // Blocks never span more than BLOCK_MAX seqs.
        let spans: Vec<i64> = store
            .read(|c| {
                let mut stmt = c
                    .prepare("SELECT last_seq - first_seq FROM call_log_blocks")
                    .map_err(backend)?;
                let spans = stmt
                    .query_map([], |r| r.get(0))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<i64>>>()
                    .map_err(backend)?;
                Ok(spans)
            })
            .await
            .unwrap();
        assert!(
            spans.len() >= 3 && spans.iter().all(|s| *s < BLOCK_MAX),
            "{spans:?}"
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
        let store = SqliteStore::open(dir.path(), Default::default()).unwrap();
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
                calls: std::sync::Arc::new(vec![crate::store::conformance::record(
                    4,
                    1_764_000_003_000_000,
                )]),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        assert_eq!(
            store.call_logs(LogFilter::default(), 10).await.unwrap().1,
            4
        );
    }
}
