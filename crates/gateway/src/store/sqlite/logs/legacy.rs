//! The call log's rows before blocks (migrations 9 to 11), moved into blocks
//! once by migration 12.

use rusqlite::Transaction;

use super::insert_block;
use crate::store::log_block::{BLOCK_MAX, Entry, Stored};

/// Moves the rows of `call_logs` (both of its earlier layouts) into blocks
/// and drops it (migration 12's hook).
pub(crate) fn move_rows_into_blocks(tx: &Transaction<'_>) -> rusqlite::Result<()> {
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
            let record = rows::row(row)?;
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
mod rows {
    use crate::store::log_block::Stored;

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
                serde_json::from_slice(record).map_err(crate::store::sqlite::logs::conversion)?;
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
            Some((&BLOB_V1, rest)) => {
                postcard::from_bytes(rest).map_err(crate::store::sqlite::logs::conversion)?
            }
            _ => {
                return Err(crate::store::sqlite::logs::conversion(
                    std::io::Error::other("unknown call record layout"),
                ));
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
