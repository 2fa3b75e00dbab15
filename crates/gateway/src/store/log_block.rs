//! The call log's blocks, whatever the store: records appended in blocks
//! of up to [`BLOCK_MAX`] consecutive seqs, each block's distinct strings
//! written once in a table its records point into (a refused call's record
//! takes ~70 bytes instead of ~400). The SQLite store keeps a block per row
//! (`store/sqlite/logs`); the codec, the record types and the filter live
//! here so that another store can keep the same blocks.

use chrono::{TimeZone, Utc};
use tollgate_api::CallLog;
use tollgate_api::money::format_amount;

use crate::store::{CallRecord, LogFilter};

/// A block that cannot be read (or written).
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("a call log block is malformed: {0}")]
    Codec(#[from] postcard::Error),
    #[error("a call log block points past its strings")]
    PastItsStrings,
    #[error("unknown call log block layout")]
    UnknownLayout,
}

/// The block layout (its first byte): each distinct string once, in a table
/// the records point into (a refused call's record takes ~70 bytes instead
/// of ~400, and so do the pages the log writes). Layout 1, the records as
/// they are, was never released.
pub(crate) const BLOCK_V2: u8 = 2;
/// Records per block at most; a block's seqs span less than this.
pub(crate) const BLOCK_MAX: i64 = 512;

/// A record as a block holds it (postcard, positional: fields are only ever
/// appended, under a new block version).
#[derive(serde::Serialize)]
pub(crate) struct Entry<'a> {
    pub(crate) seq: i64,
    pub(crate) id: &'a str,
    pub(crate) at_us: i64,
    pub(crate) api: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) team_id: Option<&'a str>,
    pub(crate) consumer_id: Option<&'a str>,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) key_prefix: Option<&'a str>,
    pub(crate) model: Option<&'a str>,
    pub(crate) provider_id: Option<&'a str>,
    pub(crate) provider_key: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) reason: Option<&'a str>,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) latency_us: i64,
    pub(crate) upstream_us: Option<i64>,
    pub(crate) ttft_us: Option<i64>,
    pub(crate) tokens_in: i64,
    pub(crate) tokens_out: i64,
    pub(crate) cost_micros: i64,
    pub(crate) currency: Option<&'a str>,
    pub(crate) client_ip: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    pub(crate) request_body: Option<&'a str>,
    pub(crate) response_body: Option<&'a str>,
}

/// [`Entry`] read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) at_us: i64,
    pub(crate) api: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) team_id: Option<String>,
    pub(crate) consumer_id: Option<String>,
    pub(crate) key_id: Option<String>,
    pub(crate) key_prefix: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) provider_id: Option<String>,
    pub(crate) provider_key: Option<String>,
    pub(crate) status: u16,
    pub(crate) reason: Option<String>,
    pub(crate) upstream_status: Option<u16>,
    pub(crate) latency_us: i64,
    pub(crate) upstream_us: Option<i64>,
    pub(crate) ttft_us: Option<i64>,
    pub(crate) tokens_in: i64,
    pub(crate) tokens_out: i64,
    pub(crate) cost_micros: i64,
    pub(crate) currency: Option<String>,
    pub(crate) client_ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) request_body: Option<String>,
    pub(crate) response_body: Option<String>,
}

impl Stored {
    /// When the call's answer ended: the order blocks are appended in.
    pub(crate) fn end_us(&self) -> i64 {
        self.at_us + self.latency_us
    }

    pub(crate) fn entry(&self) -> Entry<'_> {
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
    pub(crate) fn into_log(self) -> CallLog {
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
    pub(crate) fn end_us(&self) -> i64 {
        self.at_us + self.latency_us
    }

    pub(crate) fn to_stored(&self) -> Stored {
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
    pub(crate) fn to_log(&self) -> CallLog {
        self.to_stored().into_log()
    }
}

pub(crate) fn entry_of(seq: i64, c: &CallRecord) -> Entry<'_> {
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
    fn entries(&self) -> Result<Vec<Entry<'b>>, BlockError> {
        let text = |i: u32| -> Result<&'b str, BlockError> {
            self.strings
                .get(i as usize)
                .copied()
                .ok_or(BlockError::PastItsStrings)
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
pub(crate) fn decode_borrowed(data: &[u8]) -> Result<Vec<Entry<'_>>, BlockError> {
    match data.split_first() {
        Some((&BLOCK_V2, rest)) => postcard::from_bytes::<BorrowedTable<'_>>(rest)?.entries(),
        _ => Err(BlockError::UnknownLayout),
    }
}

/// Writes a block of `entries` into `data` (cleared first).
pub(crate) fn encode(entries: &[Entry<'_>], data: &mut Vec<u8>) -> Result<(), BlockError> {
    data.clear();
    data.push(BLOCK_V2);
    *data = postcard::to_extend(&Table::of(entries), std::mem::take(data))?;
    Ok(())
}

/// A block's records, owned.
pub(crate) fn decode(data: &[u8]) -> Result<Vec<Stored>, BlockError> {
    Ok(decode_borrowed(data)?
        .iter()
        .map(Entry::to_stored)
        .collect())
}

/// Whether a record passes `filter` (the `after` cursor aside).
pub(crate) fn matches(r: &Entry<'_>, f: &LogFilter) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
