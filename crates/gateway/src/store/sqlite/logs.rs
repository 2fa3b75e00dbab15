//! The call log in SQLite: appended in the usage writer's transactions as
//! blocks of records (migration 12 says why), read in `seq` order.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tollgate_api::money::format_amount;
use tollgate_api::{CallLog, LogSettings, UpdateLogSettings};

use super::{SqliteStore, audit, backend, check_version, parse_ts, ts};
use crate::changes::Change;
use crate::store::{AuditContext, CallRecord, LogFilter, LogStore, StoreError, StoreResult};

/// The block layout (its first byte): each distinct string once, in a table
/// the records point into (a refused call's record takes ~70 bytes instead
/// of ~400, and so do the pages the log writes). Layout 1, the records as
/// they are, was never released.
const BLOCK_V2: u8 = 2;
/// Records per block at most; a block's seqs span less than this.
const BLOCK_MAX: i64 = 512;

/// A record as a block holds it (postcard, positional: fields are only ever
/// appended, under a new block version).
#[derive(serde::Serialize)]
struct Entry<'a> {
    seq: i64,
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
    status: u16,
    reason: Option<&'a str>,
    upstream_status: Option<u16>,
    latency_us: i64,
    upstream_us: Option<i64>,
    ttft_us: Option<i64>,
    tokens_in: i64,
    tokens_out: i64,
    cost_micros: i64,
    currency: Option<&'a str>,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    error: Option<&'a str>,
    request_body: Option<&'a str>,
    response_body: Option<&'a str>,
}

/// [`Entry`] read back.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    seq: i64,
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
    status: u16,
    reason: Option<String>,
    upstream_status: Option<u16>,
    latency_us: i64,
    upstream_us: Option<i64>,
    ttft_us: Option<i64>,
    tokens_in: i64,
    tokens_out: i64,
    cost_micros: i64,
    currency: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    error: Option<String>,
    request_body: Option<String>,
    response_body: Option<String>,
}

impl Stored {
    /// When the call's answer ended: the order blocks are appended in.
    fn end_us(&self) -> i64 {
        self.at_us + self.latency_us
    }

    fn entry(&self) -> Entry<'_> {
        Entry {
            seq: self.seq,
            id: &self.id,
            at_us: self.at_us,
            api: &self.api,
            method: &self.method,
            path: &self.path,
            team_id: self.team_id.as_deref(),
            consumer_id: self.consumer_id.as_deref(),
            key_id: self.key_id.as_deref(),
            key_prefix: self.key_prefix.as_deref(),
            model: self.model.as_deref(),
            provider_id: self.provider_id.as_deref(),
            provider_key: self.provider_key.as_deref(),
            status: self.status,
            reason: self.reason.as_deref(),
            upstream_status: self.upstream_status,
            latency_us: self.latency_us,
            upstream_us: self.upstream_us,
            ttft_us: self.ttft_us,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost_micros: self.cost_micros,
            currency: self.currency.as_deref(),
            client_ip: self.client_ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            error: self.error.as_deref(),
            request_body: self.request_body.as_deref(),
            response_body: self.response_body.as_deref(),
        }
    }

    /// As the API shows it.
    fn into_log(self) -> CallLog {
        CallLog {
            seq: self.seq,
            id: self.id,
            at: Utc
                .timestamp_micros(self.at_us)
                .single()
                .unwrap_or_else(Utc::now),
            api: self.api,
            method: self.method,
            path: self.path,
            team_id: self.team_id,
            consumer_id: self.consumer_id,
            key_id: self.key_id,
            key_prefix: self.key_prefix,
            model: self.model,
            provider_id: self.provider_id,
            provider_key: self.provider_key,
            status: self.status,
            reason: self.reason,
            upstream_status: self.upstream_status,
            latency_us: self.latency_us,
            upstream_us: self.upstream_us,
            ttft_us: self.ttft_us,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost: format_amount(self.cost_micros, 2),
            currency: self.currency,
            client_ip: self.client_ip,
            user_agent: self.user_agent,
            error: self.error,
            request_body: self.request_body,
            response_body: self.response_body,
        }
    }
}

impl Entry<'_> {
    /// When the call's answer ended.
    fn end_us(&self) -> i64 {
        self.at_us + self.latency_us
    }

    fn to_stored(&self) -> Stored {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Stored {
            seq: self.seq,
            id: self.id.to_owned(),
            at_us: self.at_us,
            api: self.api.to_owned(),
            method: self.method.to_owned(),
            path: self.path.to_owned(),
            team_id: own(self.team_id),
            consumer_id: own(self.consumer_id),
            key_id: own(self.key_id),
            key_prefix: own(self.key_prefix),
            model: own(self.model),
            provider_id: own(self.provider_id),
            provider_key: own(self.provider_key),
            status: self.status,
            reason: own(self.reason),
            upstream_status: self.upstream_status,
            latency_us: self.latency_us,
            upstream_us: self.upstream_us,
            ttft_us: self.ttft_us,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cost_micros: self.cost_micros,
            currency: own(self.currency),
            client_ip: own(self.client_ip),
            user_agent: own(self.user_agent),
            error: own(self.error),
            request_body: own(self.request_body),
            response_body: own(self.response_body),
        }
    }

    /// As the API shows it.
    fn to_log(&self) -> CallLog {
        self.to_stored().into_log()
    }
}

fn entry_of(seq: i64, c: &CallRecord) -> Entry<'_> {
    Entry {
        seq,
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
        status: c.status,
        reason: c.reason.as_deref(),
        upstream_status: c.upstream_status,
        latency_us: c.latency_us,
        upstream_us: c.upstream_us,
        ttft_us: c.ttft_us,
        tokens_in: c.tokens_in,
        tokens_out: c.tokens_out,
        cost_micros: c.cost_micros,
        currency: c.currency.as_deref(),
        client_ip: c.client_ip.as_deref(),
        user_agent: c.user_agent.as_deref(),
        error: c.error.as_deref(),
        request_body: c.request_body.as_deref(),
        response_body: c.response_body.as_deref(),
    }
}

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}

/// Writes one block of `entries` (consecutive seqs, at most [`BLOCK_MAX`]),
/// with the bounds of their end times.
fn insert_block(
    c: &Connection,
    entries: &[Entry<'_>],
    ends: (i64, i64),
    data: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(());
    };
    data.clear();
    data.push(BLOCK_V2);
    *data = postcard::to_extend(&Table::of(entries), std::mem::take(data)).map_err(conversion)?;
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

/// A record of a v2 block: its strings are indexes into the block's table.
#[derive(serde::Serialize, serde::Deserialize)]
struct Coded {
    seq: i64,
    id: u32,
    at_us: i64,
    api: u32,
    method: u32,
    path: u32,
    team_id: Option<u32>,
    consumer_id: Option<u32>,
    key_id: Option<u32>,
    key_prefix: Option<u32>,
    model: Option<u32>,
    provider_id: Option<u32>,
    provider_key: Option<u32>,
    status: u16,
    reason: Option<u32>,
    upstream_status: Option<u16>,
    latency_us: i64,
    upstream_us: Option<i64>,
    ttft_us: Option<i64>,
    tokens_in: i64,
    tokens_out: i64,
    cost_micros: i64,
    currency: Option<u32>,
    client_ip: Option<u32>,
    user_agent: Option<u32>,
    error: Option<u32>,
    request_body: Option<u32>,
    response_body: Option<u32>,
}

/// The string fields of a record, each with its own "previous value" slot.
const SLOTS: usize = 17;

/// A v2 block as written: the distinct strings, then the records.
#[derive(serde::Serialize)]
struct Table<'a> {
    strings: Vec<&'a str>,
    records: Vec<Coded>,
}

impl<'a> Table<'a> {
    fn of(entries: &[Entry<'a>]) -> Table<'a> {
        // Sized for a block at once (a request id and a few new strings per
        // record): the table is not rehashed nor the list regrown as it fills.
        let mut strings: Vec<&'a str> = Vec::with_capacity(entries.len() * 3 + 16);
        let mut index: foldhash::HashMap<&'a str, u32> =
            foldhash::HashMap::with_capacity_and_hasher(entries.len() * 2 + 16, Default::default());
        let mut code = |s: &'a str| -> u32 {
            *index.entry(s).or_insert_with(|| {
                strings.push(s);
                (strings.len() - 1) as u32
            })
        };
        // Consecutive records mostly repeat each other's strings (the same
        // consumer, key, model, path, refusal): comparing with the previous
        // record's value per field is cheaper than hashing every string.
        let mut last: [(&'a str, u32); SLOTS] = [("", u32::MAX); SLOTS];
        let mut at = |slot: usize, s: &'a str| -> u32 {
            let (seen, seen_code) = last[slot];
            if seen_code != u32::MAX && seen == s {
                return seen_code;
            }
            let c = code(s);
            last[slot] = (s, c);
            c
        };
        let mut records: Vec<Coded> = entries
            .iter()
            .map(|e| Coded {
                seq: e.seq,
                // Request ids are unique: not looked up, numbered after the
                // block's other strings below.
                id: u32::MAX,
                at_us: e.at_us,
                api: at(0, e.api),
                method: at(1, e.method),
                path: at(2, e.path),
                team_id: e.team_id.map(|s| at(3, s)),
                consumer_id: e.consumer_id.map(|s| at(4, s)),
                key_id: e.key_id.map(|s| at(5, s)),
                key_prefix: e.key_prefix.map(|s| at(6, s)),
                model: e.model.map(|s| at(7, s)),
                provider_id: e.provider_id.map(|s| at(8, s)),
                provider_key: e.provider_key.map(|s| at(9, s)),
                status: e.status,
                reason: e.reason.map(|s| at(10, s)),
                upstream_status: e.upstream_status,
                latency_us: e.latency_us,
                upstream_us: e.upstream_us,
                ttft_us: e.ttft_us,
                tokens_in: e.tokens_in,
                tokens_out: e.tokens_out,
                cost_micros: e.cost_micros,
                currency: e.currency.map(|s| at(11, s)),
                client_ip: e.client_ip.map(|s| at(12, s)),
                user_agent: e.user_agent.map(|s| at(13, s)),
                error: e.error.map(|s| at(14, s)),
                request_body: e.request_body.map(|s| at(15, s)),
                response_body: e.response_body.map(|s| at(16, s)),
            })
            .collect();
        for (r, e) in records.iter_mut().zip(entries) {
            r.id = strings.len() as u32;
            strings.push(e.id);
        }
        Table { strings, records }
    }
}

/// A v2 block as read: its strings borrowed from the row's bytes.
#[derive(serde::Deserialize)]
struct BorrowedTable<'b> {
    #[serde(borrow)]
    strings: Vec<&'b str>,
    records: Vec<Coded>,
}

impl<'b> BorrowedTable<'b> {
    fn entries(&self) -> rusqlite::Result<Vec<Entry<'b>>> {
        let text = |i: u32| -> rusqlite::Result<&'b str> {
            self.strings.get(i as usize).copied().ok_or_else(|| {
                conversion(std::io::Error::other(
                    "a call log block points past its strings",
                ))
            })
        };
        let opt = |i: Option<u32>| i.map(text).transpose();
        self.records
            .iter()
            .map(|c| {
                Ok(Entry {
                    seq: c.seq,
                    id: text(c.id)?,
                    at_us: c.at_us,
                    api: text(c.api)?,
                    method: text(c.method)?,
                    path: text(c.path)?,
                    team_id: opt(c.team_id)?,
                    consumer_id: opt(c.consumer_id)?,
                    key_id: opt(c.key_id)?,
                    key_prefix: opt(c.key_prefix)?,
                    model: opt(c.model)?,
                    provider_id: opt(c.provider_id)?,
                    provider_key: opt(c.provider_key)?,
                    status: c.status,
                    reason: opt(c.reason)?,
                    upstream_status: c.upstream_status,
                    latency_us: c.latency_us,
                    upstream_us: c.upstream_us,
                    ttft_us: c.ttft_us,
                    tokens_in: c.tokens_in,
                    tokens_out: c.tokens_out,
                    cost_micros: c.cost_micros,
                    currency: opt(c.currency)?,
                    client_ip: opt(c.client_ip)?,
                    user_agent: opt(c.user_agent)?,
                    error: opt(c.error)?,
                    request_body: opt(c.request_body)?,
                    response_body: opt(c.response_body)?,
                })
            })
            .collect()
    }
}

/// A block's records, borrowed from its bytes: readers copy out only the
/// records they keep.
fn decode_borrowed(data: &[u8]) -> rusqlite::Result<Vec<Entry<'_>>> {
    match data.split_first() {
        Some((&BLOCK_V2, rest)) => postcard::from_bytes::<BorrowedTable<'_>>(rest)
            .map_err(conversion)?
            .entries(),
        _ => Err(conversion(std::io::Error::other(
            "unknown call log block layout",
        ))),
    }
}

/// A block's records, owned.
fn decode(data: &[u8]) -> rusqlite::Result<Vec<Stored>> {
    Ok(decode_borrowed(data)?
        .iter()
        .map(Entry::to_stored)
        .collect())
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
        let records = decode_borrowed(row.get_ref(0)?.as_blob()?)?;
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

/// Whether a record passes `filter` (the `after` cursor aside).
fn matches(r: &Entry<'_>, f: &LogFilter) -> bool {
    let same =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    same(&f.consumer_id, r.consumer_id)
        && same(&f.reason, r.reason)
        && f.api.as_deref().is_none_or(|a| a == r.api)
        && same(&f.model, r.model)
        && f.status_class.is_none_or(|c| r.status / 100 == c)
        && f.from_us.is_none_or(|from| r.end_us() >= from)
        && f.to_us.is_none_or(|to| r.end_us() < to)
}

/// Moves the rows of `call_logs` (both of its earlier layouts) into blocks
/// and drops it (migration 12's hook).
pub(super) fn move_rows_into_blocks(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut block: Vec<Stored> = Vec::new();
    let mut data = Vec::new();
    let flush = |block: &mut Vec<Stored>, data: &mut Vec<u8>| -> rusqlite::Result<()> {
        let ends = block.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
            (lo.min(r.end_us()), hi.max(r.end_us()))
        });
        let entries: Vec<Entry<'_>> = block.iter().map(Stored::entry).collect();
        insert_block(tx, &entries, ends, data)?;
        block.clear();
        Ok(())
    };
    {
        let mut stmt = tx.prepare(
            "SELECT l.seq, l.status, l.latency_us, l.tokens_in, l.tokens_out, l.cost_micros, \
             l.record FROM call_logs l ORDER BY l.seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let record = legacy::row(row)?;
            if block
                .first()
                .is_some_and(|first| record.seq - first.seq >= BLOCK_MAX)
            {
                flush(&mut block, &mut data)?;
            }
            block.push(record);
        }
    }
    if !block.is_empty() {
        flush(&mut block, &mut data)?;
    }
    tx.execute_batch("DROP TABLE call_logs; DROP TABLE log_names;")
}

/// The rows of the log before blocks (migrations 9 to 11), read once by
/// the migration to blocks.
mod legacy {
    use super::Stored;

    /// Version of a row's blob; a blob that starts with `{` is a JSON
    /// `CallLog` (rows written before blobs).
    const BLOB_V1: u8 = 1;

    #[derive(serde::Deserialize)]
    struct Blob {
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

    /// A row of (seq, status, latency_us, tokens_in, tokens_out,
    /// cost_micros, record).
    pub fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
        let seq: i64 = r.get(0)?;
        let record = r.get_ref(6)?.as_blob()?;
        if record.first() == Some(&b'{') {
            let log: tollgate_api::CallLog =
                serde_json::from_slice(record).map_err(super::conversion)?;
            return Ok(Stored {
                seq,
                id: log.id,
                at_us: log.at.timestamp_micros(),
                api: log.api,
                method: log.method,
                path: log.path,
                team_id: log.team_id,
                consumer_id: log.consumer_id,
                key_id: log.key_id,
                key_prefix: log.key_prefix,
                model: log.model,
                provider_id: log.provider_id,
                provider_key: log.provider_key,
                status: r.get(1)?,
                reason: log.reason,
                upstream_status: log.upstream_status,
                latency_us: r.get(2)?,
                upstream_us: log.upstream_us,
                ttft_us: log.ttft_us,
                tokens_in: r.get(3)?,
                tokens_out: r.get(4)?,
                cost_micros: r.get(5)?,
                currency: log.currency,
                client_ip: log.client_ip,
                user_agent: log.user_agent,
                error: log.error,
                request_body: log.request_body,
                response_body: log.response_body,
            });
        }
        let b: Blob = match record.split_first() {
            Some((&BLOB_V1, rest)) => postcard::from_bytes(rest).map_err(super::conversion)?,
            _ => {
                return Err(super::conversion(std::io::Error::other(
                    "unknown call record layout",
                )));
            }
        };
        Ok(Stored {
            seq,
            id: b.id,
            at_us: b.at_us,
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
            cost_micros: r.get(5)?,
            currency: b.currency,
            client_ip: b.client_ip,
            user_agent: b.user_agent,
            error: b.error,
            request_body: b.request_body,
            response_body: b.response_body,
        })
    }
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
    let records = decode(&data)?;
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
        let audit_context = audit_context.clone();
        self.write_changes(move |c, changes| {
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
            audit(&tx, &audit_context, "logs.settings", "log_settings")?;
            changes.push(Change::LogSettings { bodies: saved.bodies.clone() });
            tx.commit().map_err(backend)?;
            Ok(saved)
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
                            let seqs: Vec<i64> = decode(&data)
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

/// The value at fraction `p` of sorted `latencies` (nearest rank).
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let count = sorted.len();
    let rank = ((count as f64 * p).ceil() as usize).clamp(1, count) - 1;
    sorted[rank]
}

/// Per name: (requests, a second count, a third sum) and the largest status.
#[derive(Default)]
struct Tally {
    requests: i64,
    second: i64,
    third: i64,
    status: u16,
}

/// The tally of `name`, added on first sight (a name is copied once).
fn named<'m, T: Default>(map: &'m mut BTreeMap<String, T>, name: &str) -> &'m mut T {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), T::default());
    }
    map.get_mut(name).expect("inserted above")
}

/// The groups of a tally, most requests first, then by name.
fn ranked(groups: BTreeMap<String, Tally>, limit: usize) -> Vec<(String, Tally)> {
    let mut ranked: Vec<(String, Tally)> = groups.into_iter().collect();
    // Stable: names stay in order among equal counts.
    ranked.sort_by_key(|t| std::cmp::Reverse(t.1.requests));
    ranked.truncate(limit);
    ranked
}

pub(super) fn stats(
    c: &Connection,
    from: i64,
    to: i64,
    bucket: i64,
) -> rusqlite::Result<tollgate_api::CallStats> {
    use tollgate_api::{ConsumerUse, CostTotal, ModelUse, ReasonCount, StatsPoint};

    let at = |us: i64| Utc.timestamp_micros(us).single().unwrap_or_else(Utc::now);
    let (mut requests, mut errors, mut tokens_in, mut tokens_out) = (0i64, 0i64, 0i64, 0i64);
    let mut latencies: Vec<i64> = Vec::new();
    let mut cost: BTreeMap<String, i64> = BTreeMap::new();
    let mut series: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    let mut reasons: BTreeMap<String, Tally> = BTreeMap::new();
    let mut models: BTreeMap<String, Tally> = BTreeMap::new();
    let mut consumers: BTreeMap<String, Tally> = BTreeMap::new();
    // Calls that ended in the range (seq bounds first, so that only the
    // range's blocks are read).
    let (lo, hi) = seq_range(c, from, to)?;
    each_block(c, lo, hi, |records| {
        for r in records {
            let end = r.end_us();
            if r.seq < lo || r.seq >= hi || end < from || end >= to {
                continue;
            }
            let error = i64::from(r.status >= 400);
            requests += 1;
            errors += error;
            tokens_in += r.tokens_in;
            tokens_out += r.tokens_out;
            latencies.push(r.latency_us);
            if let Some(currency) = r.currency {
                *named(&mut cost, currency) += r.cost_micros;
            }
            let point = series.entry((end - from) / bucket).or_default();
            point.0 += 1;
            point.1 += error;
            point.2 += i64::from(r.status == 402);
            if let Some(reason) = r.reason {
                let t = named(&mut reasons, reason);
                t.requests += 1;
                t.status = t.status.max(r.status);
            }
            if let Some(model) = r.model {
                let t = named(&mut models, model);
                t.requests += 1;
                t.second += r.tokens_in;
                t.third += r.tokens_out;
            }
            if let Some(consumer) = r.consumer_id {
                let t = named(&mut consumers, consumer);
                t.requests += 1;
                t.second += error;
            }
        }
        Ok(true)
    })?;
    latencies.sort_unstable();
    Ok(tollgate_api::CallStats {
        from: at(from),
        to: at(to),
        bucket_seconds: bucket / 1_000_000,
        requests,
        errors,
        tokens_in,
        tokens_out,
        latency_p50_us: percentile(&latencies, 0.50),
        latency_p95_us: percentile(&latencies, 0.95),
        latency_p99_us: percentile(&latencies, 0.99),
        cost: cost
            .into_iter()
            .map(|(currency, micros)| CostTotal {
                currency,
                amount: format_amount(micros, 2),
            })
            .collect(),
        series: series
            .into_iter()
            .map(|(i, (requests, errors, payment_required))| StatsPoint {
                at: at(from + i * bucket),
                requests,
                errors,
                payment_required,
            })
            .collect(),
        by_reason: ranked(reasons, usize::MAX)
            .into_iter()
            .map(|(reason, t)| ReasonCount {
                reason,
                status: t.status,
                count: t.requests,
            })
            .collect(),
        by_model: ranked(models, 50)
            .into_iter()
            .map(|(model, t)| ModelUse {
                model,
                requests: t.requests,
                tokens_in: t.second,
                tokens_out: t.third,
            })
            .collect(),
        top_consumers: ranked(consumers, 10)
            .into_iter()
            .map(|(consumer_id, t)| ConsumerUse {
                consumer_id,
                requests: t.requests,
                errors: t.second,
            })
            .collect(),
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
        let store = SqliteStore::open(dir.path(), Default::default()).unwrap();
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

    /// 1,700 varied records in windows of 700 (so blocks of 512 and less,
    /// and a cursor that falls inside a block).
    async fn varied(store: &SqliteStore) -> Vec<CallRecord> {
        let t0 = 1_764_000_000_000_000i64;
        let calls: Vec<CallRecord> = (0..1_700)
            .map(|i| {
                let mut r = record(i, t0 + i as i64 * 1_000_000);
                r.status = [200, 200, 402, 401, 429, 502][i % 6];
                r.consumer_id = (i % 7 != 0).then(|| format!("con_{}", i % 5).into());
                r.model = (i % 3 != 0).then(|| ["m1", "m2"][i % 2].to_owned());
                r.reason = (r.status != 200).then(|| format!("reason-{}", r.status).into());
                r.currency = (r.status == 200).then(|| ["USD", "EUR"][i % 2].to_owned());
                r.cost_micros = if r.status == 200 { i as i64 * 7 } else { 0 };
                r.latency_us = 1_000 + (i as i64 * 7_919) % 90_000;
                r.tokens_in = i as i64 % 13;
                r.tokens_out = i as i64 % 29;
                if i % 4 == 0 {
                    r.api = "summarize".into();
                }
                r
            })
            .collect();
        for window in calls.chunks(700) {
            store
                .settle_calls(UsageBatch {
                    calls: std::sync::Arc::new(window.to_vec()),
                    ..UsageBatch::default()
                })
                .await
                .unwrap();
        }
        calls
    }

    #[tokio::test]
    async fn filtered_pages_and_figures_read_across_blocks_as_a_scan_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Default::default()).unwrap();
        let calls = varied(&store).await;
        let end = |r: &CallRecord| r.at_us + r.latency_us;
        let (from, to) = (end(&calls[333]), end(&calls[1_444]));
        let filters = [
            LogFilter::default(),
            LogFilter {
                consumer_id: Some("con_2".into()),
                status_class: Some(4),
                ..LogFilter::default()
            },
            LogFilter {
                model: Some("m1".into()),
                api: Some("summarize".into()),
                from_us: Some(from),
                to_us: Some(to),
                ..LogFilter::default()
            },
            LogFilter {
                reason: Some("reason-402".into()),
                after: 600,
                ..LogFilter::default()
            },
        ];
        for filter in filters {
            let want: Vec<String> = calls
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    (*i as i64 + 1) > filter.after
                        && filter
                            .consumer_id
                            .as_ref()
                            .is_none_or(|c| r.consumer_id.as_deref() == Some(c.as_str()))
                        && filter.status_class.is_none_or(|c| r.status / 100 == c)
                        && filter
                            .model
                            .as_ref()
                            .is_none_or(|m| r.model.as_ref() == Some(m))
                        && filter.api.as_ref().is_none_or(|a| r.api == *a)
                        && filter
                            .reason
                            .as_ref()
                            .is_none_or(|x| r.reason.as_deref() == Some(x.as_str()))
                        && filter.from_us.is_none_or(|f| end(r) >= f)
                        && filter.to_us.is_none_or(|t| end(r) < t)
                })
                .map(|(_, r)| r.id.clone())
                .collect();
            // Page by page, 37 at a time, each from the last one's cursor.
            let mut got: Vec<String> = Vec::new();
            let mut page = filter.clone();
            loop {
                let (logs, head) = store.call_logs(page.clone(), 37).await.unwrap();
                assert_eq!(head, 1_700);
                got.extend(logs.iter().map(|l| l.id.clone()));
                match logs.last() {
                    Some(last) if logs.len() == 37 => page.after = last.seq,
                    _ => break,
                }
            }
            assert_eq!(got, want, "{filter:?}");
        }
        // The export from a cursor inside a block.
        let (lines, _) = store.export_lines(1_000, 50).await.unwrap();
        let seqs: Vec<i64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(seqs, (1_001..=1_050).collect::<Vec<_>>());

        // Figures: the same as counting the records by hand.
        let stats = store.call_stats(from, to, 60_000_000).await.unwrap();
        let inside: Vec<&CallRecord> = calls
            .iter()
            .filter(|r| end(r) >= from && end(r) < to)
            .collect();
        assert_eq!(stats.requests, inside.len() as i64);
        assert_eq!(
            stats.errors,
            inside.iter().filter(|r| r.status >= 400).count() as i64
        );
        assert_eq!(
            stats.tokens_in,
            inside.iter().map(|r| r.tokens_in).sum::<i64>()
        );
        let mut latencies: Vec<i64> = inside.iter().map(|r| r.latency_us).collect();
        latencies.sort_unstable();
        let rank = |p: f64| {
            latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        assert_eq!(
            (
                stats.latency_p50_us,
                stats.latency_p95_us,
                stats.latency_p99_us
            ),
            (rank(0.5), rank(0.95), rank(0.99))
        );
        let usd: i64 = inside
            .iter()
            .filter(|r| r.currency.as_deref() == Some("USD"))
            .map(|r| r.cost_micros)
            .sum();
        assert_eq!(stats.cost[1].currency, "USD");
        assert_eq!(stats.cost[1].amount, format_amount(usd, 2));
        assert_eq!(
            stats.series.iter().map(|p| p.requests).sum::<i64>(),
            stats.requests
        );
        assert_eq!(
            stats.series.iter().map(|p| p.payment_required).sum::<i64>(),
            inside.iter().filter(|r| r.status == 402).count() as i64
        );
        // Most requests first, ties by name.
        let counts: Vec<(String, i64)> = stats
            .top_consumers
            .iter()
            .map(|c| (c.consumer_id.clone(), c.requests))
            .collect();
        let mut sorted = counts.clone();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(counts, sorted);
        assert_eq!(counts.len(), 5);
        let by_reason: Vec<(String, u16)> = stats
            .by_reason
            .iter()
            .map(|r| (r.reason.clone(), r.status))
            .collect();
        assert!(by_reason.contains(&("reason-502".into(), 502)));
        assert_eq!(stats.by_model.len(), 2);
    }

    #[test]
    fn a_block_reads_back_and_a_bad_one_is_an_error() {
        let calls: Vec<CallRecord> = (0..40)
            .map(|i| {
                let mut r = record(i, 1_764_000_000_000_000 + i as i64);
                r.consumer_id = Some(format!("con_{}", i % 3).into());
                r.error = (i % 2 == 0).then(|| "refused: insufficient-funds".to_owned());
                r.request_body = (i == 7).then(|| "{\"a\":1}".to_owned());
                r.team_id = Some("team_01jc7h0m5x2y3z4a5b6c7d8e9f".into());
                r.key_prefix = Some("tg_ab12cd34".into());
                r.user_agent = Some("python-httpx/0.27.2".into());
                r
            })
            .collect();
        let entries: Vec<Entry<'_>> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| entry_of(i as i64 + 1, c))
            .collect();
        let want: Vec<Stored> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| Stored {
                seq: i as i64 + 1,
                id: c.id.clone(),
                at_us: c.at_us,
                api: c.api.to_string(),
                method: c.method.to_string(),
                path: c.path.to_string(),
                team_id: c.team_id.as_deref().map(str::to_owned),
                consumer_id: c.consumer_id.as_deref().map(str::to_owned),
                key_id: None,
                key_prefix: c.key_prefix.as_deref().map(str::to_owned),
                model: None,
                provider_id: None,
                provider_key: None,
                status: c.status,
                reason: None,
                upstream_status: None,
                latency_us: 0,
                upstream_us: None,
                ttft_us: None,
                tokens_in: 0,
                tokens_out: 0,
                cost_micros: 0,
                currency: None,
                client_ip: None,
                user_agent: c.user_agent.clone(),
                error: c.error.clone(),
                request_body: c.request_body.clone(),
                response_body: None,
            })
            .collect();
        let mut block = vec![BLOCK_V2];
        block.extend(postcard::to_stdvec(&Table::of(&entries)).unwrap());
        assert_eq!(decode(&block).unwrap(), want);
        // Each distinct string once: far smaller than the records as they are.
        let plain = postcard::to_stdvec(&entries).unwrap();
        assert!(
            block.len() * 2 < plain.len(),
            "as they are {} bytes, in a block {}",
            plain.len(),
            block.len()
        );
        // A record pointing past the table, or an unknown layout, is an error.
        let mut table = Table::of(&entries);
        table.records[3].api = 9_999;
        let mut bad = vec![BLOCK_V2];
        bad.extend(postcard::to_stdvec(&table).unwrap());
        assert!(decode(&bad).is_err());
        assert!(decode(&[7, 1, 2]).is_err());
        assert!(decode(&plain).is_err(), "a block without its layout byte");
        assert!(decode(&[]).is_err());
    }

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
        let store = SqliteStore::open(dir.path(), Default::default()).unwrap();
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
