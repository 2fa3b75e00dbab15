//! The call log's time partitions in PostgreSQL: `call_log_blocks` is
//! partitioned by the end of each block's last call (`max_end_us`), one
//! partition a week (`call_log_blocks_YYYYMMDD`, named by the UTC day it
//! starts). Retention drops the partitions it has passed whole — nothing is
//! deleted row by row, nothing left for vacuum — and trims the rest row by
//! row. A DEFAULT partition takes the blocks of weeks that have no partition
//! yet (the migrated log, a clock far off); they move into their week's
//! partition when it is made.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;

use super::{Column, backend};
use crate::store::{StoreError, StoreResult};

/// A partition's span.
pub(super) const WEEK_US: i64 = 7 * 86_400 * 1_000_000;
const PREFIX: &str = "call_log_blocks_";
const DEFAULT: &str = "call_log_blocks_default";

/// The start of the week (from the epoch, in µs) holding `us`.
pub(super) fn week_of(us: i64) -> i64 {
    us.div_euclid(WEEK_US) * WEEK_US
}

fn name_of(start_us: i64) -> StoreResult<String> {
    let day = DateTime::<Utc>::from_timestamp_micros(start_us)
        .ok_or_else(|| StoreError::Backend(anyhow::anyhow!("no date at {start_us} µs")))?;
    Ok(format!("{PREFIX}{}", day.format("%Y%m%d")))
}

fn start_of(name: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(name.strip_prefix(PREFIX)?, "%Y%m%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// The week partitions, as `(start µs, name)`, oldest first.
pub(super) async fn partitions(client: &Object) -> StoreResult<Vec<(i64, String)>> {
    let rows = client
        .query(
            "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'call_log_blocks'::regclass",
            &[],
        )
        .await
        .map_err(backend)?;
    let mut found = Vec::new();
    for row in &rows {
        let name: String = row.col("name")?;
        if let Some(start) = start_of(&name) {
            found.push((start, name));
        }
    }
    found.sort();
    Ok(found)
}

/// Makes the partition of the week starting at `start`, moving its blocks
/// out of the default partition (which is locked meanwhile: a block written
/// at that moment waits, then lands in its partition).
async fn make(client: &mut Object, start: i64) -> StoreResult<()> {
    let name = name_of(start)?;
    let end = start + WEEK_US;
    let tx = client.transaction().await.map_err(backend)?;
    tx.batch_execute(&format!("LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE"))
        .await
        .map_err(backend)?;
    let exists = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL AS found", &[&name])
        .await
        .map_err(backend)?
        .col::<bool>("found")?;
    if exists {
        return Ok(());
    }
    // Numbers only go into this text: no value of anyone's.
    tx.batch_execute(&format!(
        "CREATE TABLE {name} (LIKE call_log_blocks INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         WITH moved AS (DELETE FROM {DEFAULT} WHERE max_end_us >= {start} AND max_end_us < {end} RETURNING *)
         INSERT INTO {name} SELECT * FROM moved;
         ALTER TABLE call_log_blocks ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end});"
    ))
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

/// Drops the partition `name`: how many records it held.
async fn drop(client: &mut Object, name: &str) -> StoreResult<u64> {
    let tx = client.transaction().await.map_err(backend)?;
    let records: i64 = tx
        .query_one(
            &format!("SELECT coalesce(sum(records), 0)::bigint AS n FROM {name}"),
            &[],
        )
        .await
        .map_err(backend)?
        .col("n")?;
    tx.batch_execute(&format!(
        "ALTER TABLE call_log_blocks DETACH PARTITION {name}; DROP TABLE {name};"
    ))
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(records.max(0).unsigned_abs())
}

/// Keeps the partitions: makes this week's and the next (and those of
/// blocks waiting in the default partition that retention keeps), then
/// drops every partition whose whole week ended before `before_us`. Answers
/// how many records the dropped partitions held.
pub(super) async fn maintain(client: &mut Object, now_us: i64, before_us: i64) -> StoreResult<u64> {
    let mut weeks = vec![week_of(now_us), week_of(now_us) + WEEK_US];
    let waiting = client
        .query(
            &format!(
                "SELECT DISTINCT (max_end_us / {WEEK_US}) * {WEEK_US} AS week FROM {DEFAULT} \
                 WHERE max_end_us >= $1"
            ),
            &[&week_of(before_us)],
        )
        .await
        .map_err(backend)?;
    for row in &waiting {
        weeks.push(week_of(row.col::<i64>("week")?));
    }
    weeks.sort_unstable();
    weeks.dedup();
    let made: Vec<i64> = partitions(client).await?.iter().map(|p| p.0).collect();
    for week in weeks.into_iter().filter(|w| !made.contains(w)) {
        make(client, week).await?;
    }
    let mut dropped = 0;
    for (start, name) in partitions(client).await? {
        if start + WEEK_US <= before_us {
            dropped += drop(client, &name).await?;
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_are_named_by_their_first_day_and_read_back() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-07T19:00:00Z")
            .unwrap()
            .timestamp_micros();
        let start = week_of(t);
        assert!(start <= t && t < start + WEEK_US);
        let name = name_of(start).unwrap();
        assert_eq!(
            name, "call_log_blocks_20261203",
            "weeks start on Thursdays (the epoch's day)"
        );
        assert_eq!(start_of(&name), Some(start));
        assert_eq!(start_of(DEFAULT), None);
        // Before the epoch too.
        assert_eq!(week_of(-1), -WEEK_US);
    }
}
