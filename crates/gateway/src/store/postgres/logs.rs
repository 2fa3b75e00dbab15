//! The call log in PostgreSQL: the same blocks of records as the SQLite
//! store (`store::log_block`), appended by every node's usage writer with
//! seqs in commit order (`billing::append_calls`), read in `seq` order, kept
//! in weekly time partitions that retention drops whole (`partitions`).

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tollgate_api::{CallLog, LogSettings, UpdateLogSettings};

use super::{Column, PgStore, backend, now, partitions};
use crate::changes::Change;
use crate::store::log_block::{self, BLOCK_MAX, Entry, Stored, matches};
use crate::store::log_stats::Figures;
use crate::store::{AuditContext, LogFilter, LogStore, StoreError, StoreResult};

/// Blocks read per query while walking the log.
const BLOCKS_PER_READ: i64 = 32;
/// Blocks deleted or rewritten per transaction while pruning, so that the
/// writers of new records never wait long.
const PRUNE_BATCH: i64 = 200;

fn corrupt(e: log_block::BlockError) -> StoreError {
    StoreError::Backend(e.into())
}

async fn head_seq(client: &impl GenericClient) -> StoreResult<i64> {
    client
        .query_one("SELECT last_seq FROM log_state WHERE id = 1", &[])
        .await
        .map_err(backend)?
        .col("last_seq")
}

/// The blocks that may hold seqs `[lo, hi)` and calls that ended in
/// `ends` (`[from, to)`), decoded in seq order and passed to `each` until
/// it answers false; the caller filters their records.
async fn each_block(
    client: &impl GenericClient,
    lo: i64,
    hi: i64,
    ends: (Option<i64>, Option<i64>),
    mut each: impl FnMut(&[Entry<'_>]) -> StoreResult<bool>,
) -> StoreResult<()> {
    // A block that begins before `lo` may still hold it: its seqs span less
    // than `BLOCK_MAX`.
    let mut after = lo.saturating_sub(BLOCK_MAX);
    loop {
        let rows = client
            .query(
                "SELECT first_seq, data FROM call_log_blocks WHERE first_seq > $1 AND first_seq < $2 \
                 AND last_seq >= $3 AND ($4::bigint IS NULL OR max_end_us >= $4) \
                 AND ($5::bigint IS NULL OR min_end_us < $5) ORDER BY first_seq LIMIT $6",
                &[&after, &hi, &lo, &ends.0, &ends.1, &BLOCKS_PER_READ],
            )
            .await
            .map_err(backend)?;
        for row in &rows {
            after = row.col("first_seq")?;
            let records = log_block::decode_borrowed(row.col("data")?).map_err(corrupt)?;
            if !each(&records)? {
                return Ok(());
            }
        }
        if (rows.len() as i64) < BLOCKS_PER_READ {
            return Ok(());
        }
    }
}

fn settings_row(r: &Row) -> StoreResult<LogSettings> {
    let max: Option<i64> = r.col("max_records")?;
    Ok(LogSettings {
        retention_days: u32::try_from(r.col::<i32>("retention_days")?)
            .map_err(|e| StoreError::Backend(e.into()))?,
        max_records: max.map(|m| m.max(0).unsigned_abs()),
        bodies: serde_json::from_str(r.col("bodies")?)
            .map_err(|e| StoreError::Backend(e.into()))?,
        updated_at: Some(r.col("updated_at")?),
        version: r.col("version")?,
    })
}

/// Rewrites the block that begins at `first_seq` with only the records
/// `keep` accepts (deleting it when none is left); answers how many went.
async fn trim_block(
    tx: &Transaction<'_>,
    first_seq: i64,
    keep: impl Fn(&Stored) -> bool,
) -> StoreResult<u64> {
    let data: Vec<u8> = tx
        .query_one(
            "DELETE FROM call_log_blocks WHERE first_seq = $1 RETURNING data",
            &[&first_seq],
        )
        .await
        .map_err(backend)?
        .col("data")?;
    let records = log_block::decode(&data).map_err(corrupt)?;
    let before = records.len();
    let kept: Vec<Stored> = records.into_iter().filter(|r| keep(r)).collect();
    let gone = (before - kept.len()) as u64;
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return Ok(gone);
    };
    let ends = kept.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.end_us()), hi.max(r.end_us()))
    });
    let entries: Vec<Entry<'_>> = kept.iter().map(Stored::entry).collect();
    let mut data = Vec::new();
    log_block::encode(&entries, &mut data).map_err(corrupt)?;
    let records = i32::try_from(entries.len()).map_err(|e| StoreError::Backend(e.into()))?;
    tx.execute(
        "INSERT INTO call_log_blocks (first_seq, last_seq, records, min_end_us, max_end_us, data) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&first.seq, &last.seq, &records, &ends.0, &ends.1, &data],
    )
    .await
    .map_err(backend)?;
    Ok(gone)
}

#[async_trait]
impl LogStore for PgStore {
    async fn call_logs(&self, filter: LogFilter, limit: u32) -> StoreResult<(Vec<CallLog>, i64)> {
        let client = self.client().await?;
        // The head first: every record at or below it has committed.
        let head = head_seq(&client).await?;
        let lo = filter.after.saturating_add(1);
        let limit = limit as usize;
        let mut out = Vec::new();
        each_block(
            &client,
            lo,
            head + 1,
            (filter.from_us, filter.to_us),
            |records| {
                for r in records {
                    if out.len() == limit {
                        break;
                    }
                    if r.seq >= lo && r.seq <= head && matches(r, &filter) {
                        out.push(r.to_log());
                    }
                }
                Ok(out.len() < limit)
            },
        )
        .await?;
        Ok((out, head))
    }

    async fn export_lines(&self, after: i64, limit: u32) -> StoreResult<(Vec<(i64, String)>, i64)> {
        let client = self.client().await?;
        let head = head_seq(&client).await?;
        let limit = limit as usize;
        let mut out = Vec::new();
        each_block(
            &client,
            after.saturating_add(1),
            head + 1,
            (None, None),
            |records| {
                for r in records {
                    if out.len() == limit {
                        break;
                    }
                    if r.seq > after && r.seq <= head {
                        let log = r.to_log();
                        let line = serde_json::to_string(&log)
                            .map_err(|e| StoreError::Backend(e.into()))?;
                        out.push((log.seq, line));
                    }
                }
                Ok(out.len() < limit)
            },
        )
        .await?;
        Ok((out, head))
    }

    async fn call_stats(
        &self,
        from_us: i64,
        to_us: i64,
        bucket_us: i64,
    ) -> StoreResult<tollgate_api::CallStats> {
        let client = self.client().await?;
        let mut figures = Figures::new(from_us, to_us, bucket_us);
        each_block(
            &client,
            1,
            i64::MAX,
            (Some(from_us), Some(to_us)),
            |records| {
                for r in records {
                    figures.add(r);
                }
                Ok(true)
            },
        )
        .await?;
        Ok(figures.finish())
    }

    async fn log_settings(&self) -> StoreResult<Option<LogSettings>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT retention_days, max_records, bodies, updated_at, version \
                 FROM log_settings WHERE id = 1",
                &[],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(settings_row).transpose()
    }

    async fn save_log_settings(
        &self,
        update: UpdateLogSettings,
        expected_version: Option<i64>,
        audit_context: &AuditContext,
    ) -> StoreResult<LogSettings> {
        let load = async |tx: &Transaction<'_>, _: &str| {
            super::singleton_version(tx, "log_settings").await
        };
        self.versioned_write("log_settings", expected_version, audit_context, load, async |tx, _, current, changes| {
            let retention = i32::try_from(update.retention_days).map_err(|e| StoreError::Backend(e.into()))?;
            let max = update.max_records.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
            let row = tx
                .query_one(
                    "INSERT INTO log_settings (id, retention_days, max_records, bodies, updated_at, version) \
                     VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                     retention_days = excluded.retention_days, max_records = excluded.max_records, \
                     bodies = excluded.bodies, updated_at = excluded.updated_at, version = excluded.version \
                     RETURNING retention_days, max_records, bodies, updated_at, version",
                    &[&retention, &max, &super::json(&update.bodies)?, &now(), &(current + 1)],
                )
                .await
                .map_err(backend)?;
            let saved = settings_row(&row)?;
            changes.push(Change::LogSettings { bodies: saved.bodies.clone() });
            Ok((saved, "logs.settings".into()))
        })
        .await
    }

    async fn prune_call_logs(&self, before_us: i64, max_records: Option<u64>) -> StoreResult<u64> {
        // Whole weeks past retention go at once; the rest row by row below.
        let mut deleted = {
            let mut client = self.client().await?;
            let now = chrono::Utc::now().timestamp_micros();
            partitions::maintain(&mut client, now, before_us).await?
        };
        // The records that ended before `before_us`: whole blocks, then the
        // blocks that hold both older and newer ones are rewritten.
        loop {
            let (n, more) = self
                .write_changes(async |tx, _| {
                    let blocks = tx
                        .query(
                            "SELECT first_seq, records, max_end_us FROM call_log_blocks \
                             WHERE min_end_us < $1 ORDER BY first_seq LIMIT $2 FOR UPDATE SKIP LOCKED",
                            &[&before_us, &PRUNE_BATCH],
                        )
                        .await
                        .map_err(backend)?;
                    let mut n = 0u64;
                    for block in &blocks {
                        let first_seq: i64 = block.col("first_seq")?;
                        if block.col::<i64>("max_end_us")? < before_us {
                            tx.execute("DELETE FROM call_log_blocks WHERE first_seq = $1", &[&first_seq])
                                .await
                                .map_err(backend)?;
                            n += u64::try_from(block.col::<i32>("records")?).unwrap_or(0);
                        } else {
                            n += trim_block(tx, first_seq, |r| r.end_us() >= before_us).await?;
                        }
                    }
                    Ok((n, blocks.len() as i64 == PRUNE_BATCH))
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
                .write_changes(async |tx, _| {
                    // One pruner at a time trims the surplus.
                    tx.execute("LOCK TABLE call_log_blocks IN SHARE ROW EXCLUSIVE MODE", &[])
                        .await
                        .map_err(backend)?;
                    let mut surplus: i64 = tx
                        .query_one("SELECT coalesce(sum(records), 0)::bigint AS n FROM call_log_blocks", &[])
                        .await
                        .map_err(backend)?
                        .col::<i64>("n")?
                        - max;
                    let mut n = 0u64;
                    while surplus > 0 {
                        let Some(oldest) = tx
                            .query_opt(
                                "SELECT first_seq, records, data FROM call_log_blocks ORDER BY first_seq LIMIT 1",
                                &[],
                            )
                            .await
                            .map_err(backend)?
                        else {
                            break;
                        };
                        let first_seq: i64 = oldest.col("first_seq")?;
                        let records = i64::from(oldest.col::<i32>("records")?);
                        if records <= surplus {
                            tx.execute("DELETE FROM call_log_blocks WHERE first_seq = $1", &[&first_seq])
                                .await
                                .map_err(backend)?;
                            n += records.unsigned_abs();
                            surplus -= records;
                        } else {
                            // The oldest `surplus` records of this block go.
                            let seqs: Vec<i64> = log_block::decode(oldest.col("data")?)
                                .map_err(corrupt)?
                                .iter()
                                .map(|r| r.seq)
                                .collect();
                            let oldest_kept = seqs[surplus as usize];
                            n += trim_block(tx, first_seq, |r| r.seq >= oldest_kept).await?;
                            surplus = 0;
                        }
                    }
                    Ok(n)
                })
                .await?;
        }
        Ok(deleted)
    }
}
