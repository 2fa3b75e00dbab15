//! One instance's call-log cache: a SQLite file (`logs/<instance-id>.db`)
//! configured here, migrated by its own embedded migrations, written by one
//! connection (the sync's ingest, purge, vacuum) and read by another, so
//! the explorer stays responsive while a sync writes.
//!
//! Ingest is one transaction per batch: the records, their full-text rows,
//! the rollups of the newly inserted ones, the minute → seq map, the events
//! and the cursor move together or not at all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::Notify;
use tollgate_api::CallLog;
use tollgate_api::money::format_amount;

use super::rollup::{Fact, Grain, Histogram, Measures};
use super::words::{self, NewWords};

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/logs/0001_log_cache.sql")),
        M::up_with_hook(
            include_str!("../../migrations/logs/0002_fts_whole_ids.sql"),
            |tx: &Transaction<'_>| Ok(index_words(tx)?),
        ),
        M::up_with_hook(
            include_str!("../../migrations/logs/0003_search_words.sql"),
            |tx: &Transaction<'_>| Ok(words::fill(tx)?),
        ),
    ])
});

/// Fills the full-text index from the records (after its words changed).
fn index_words(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut lookup = tx.prepare("SELECT value FROM strings WHERE id = ?1")?;
    let mut insert = tx.prepare("INSERT INTO records_fts (rowid, text) VALUES (?1, ?2)")?;
    let mut records = tx.prepare(&format!("SELECT {RECORD_COLUMNS} FROM records r"))?;
    let mut rows = records.query([])?;
    while let Some(row) = rows.next()? {
        let log = RawRecord::read(row)?.into_log(|id| {
            if let Some(name) = names.get(&id) {
                return Ok(name.clone());
            }
            let name: String = lookup.query_row([id], |r| r.get(0))?;
            names.insert(id, name.clone());
            Ok(name)
        })?;
        insert.execute(params![log.seq, search_text(&log)])?;
    }
    Ok(())
}

/// Rollup dimensions (the `dim` column).
pub const DIM_ALL: u8 = 0;
pub const DIM_CONSUMER: u8 = 1;
pub const DIM_MODEL: u8 = 2;
pub const DIM_API: u8 = 3;
pub const DIM_STATUS: u8 = 4;
pub const DIM_REASON: u8 = 5;
const DIMS: [u8; 6] = [
    DIM_ALL,
    DIM_CONSUMER,
    DIM_MODEL,
    DIM_API,
    DIM_STATUS,
    DIM_REASON,
];

/// Events kept in `sync_events`.
const EVENTS_KEPT: i64 = 1_000;
/// Strings remembered in memory per connection before the map is cleared.
const DICT_MAX: usize = 200_000;

/// Why the cache cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file is not a database, or its pages are damaged.
    #[error("the log cache is damaged: {0}")]
    Corrupt(String),
    #[error("the log cache was written by a newer Tollgate: {0}")]
    Newer(String),
    #[error("the log cache failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot prepare the log cache: {0}")]
    Io(#[from] std::io::Error),
}

/// True for the errors SQLite gives for a damaged file.
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

impl CacheError {
    fn of(e: rusqlite::Error) -> Self {
        if is_corruption(&e) {
            CacheError::Corrupt(e.to_string())
        } else {
            CacheError::Sqlite(e)
        }
    }
}

/// The one place the cache's connections are configured.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // 32 MiB of page cache per connection.
    conn.pragma_update(None, "cache_size", -32_000)?;
    // `PRAGMA optimize` samples rather than reads whole indexes.
    conn.pragma_update(None, "analysis_limit", 1_000)?;
    Ok(())
}

/// The writer's connection, the strings it has interned and the texts
/// whose words it has stored lately.
pub(crate) struct Writer {
    pub conn: Connection,
    ids: HashMap<String, i64>,
    known_texts: HashSet<String>,
}

/// The reader's connection and the strings it has looked up.
pub(crate) struct Reader {
    pub conn: Connection,
    names: HashMap<i64, String>,
}

impl Reader {
    /// The string with id `id` (empty for an id the cache does not have).
    pub fn name(&mut self, id: i64) -> rusqlite::Result<String> {
        if let Some(v) = self.names.get(&id) {
            return Ok(v.clone());
        }
        let v: String = self
            .conn
            .query_row("SELECT value FROM strings WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or_default();
        if self.names.len() >= DICT_MAX {
            self.names.clear();
        }
        self.names.insert(id, v.clone());
        Ok(v)
    }

    /// The id of `value`, if any record ever held it.
    pub fn id_of(&self, value: &str) -> rusqlite::Result<Option<i64>> {
        self.conn
            .query_row("SELECT id FROM strings WHERE value = ?1", [value], |r| {
                r.get(0)
            })
            .optional()
    }
}

pub struct LogCache {
    pub path: PathBuf,
    writer: Mutex<Writer>,
    reader: Mutex<Reader>,
    /// One sync at a time per cache.
    pub(crate) sync_lock: tokio::sync::Mutex<()>,
    /// Set while a sync runs: notified to cancel it.
    pub(crate) cancel: Mutex<Option<Arc<Notify>>>,
}

/// A record from the gateway, checked, with its cost in micro-units.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub log: CallLog,
    pub cost_micros: i64,
}

/// The sync's cursor and outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncState {
    pub last_seq: i64,
    pub head_seq: i64,
    pub records: i64,
    pub gateway_id: Option<String>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
    pub retention_days: Option<u32>,
}

/// What one ingested batch did.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    pub inserted: u64,
    /// Already cached, the same record: ignored.
    pub duplicates: Vec<i64>,
    /// Already cached with different content: the cached one is kept.
    pub conflicts: Vec<i64>,
    /// New records at or below the cursor (late or out of order): stored.
    pub late: Vec<i64>,
    pub last_seq: i64,
    pub head_seq: i64,
}

/// An event as stored: (at in unix micros, kind, message, seq).
pub type StoredEvent = (i64, String, String, Option<i64>);

/// A reported event of the sync.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub message: String,
    pub seq: Option<i64>,
}

pub(crate) fn micros_to_time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

impl LogCache {
    /// Opens (creating and migrating) the cache at `path`. A damaged file
    /// is [`CacheError::Corrupt`]; the caller moves it aside and starts over.
    pub fn open(path: &Path) -> Result<LogCache, CacheError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut writer = Connection::open(path).map_err(CacheError::of)?;
        configure(&writer).map_err(CacheError::of)?;
        MIGRATIONS.to_latest(&mut writer).map_err(|e| match e {
            rusqlite_migration::Error::RusqliteError { err, .. } => CacheError::of(err),
            rusqlite_migration::Error::MigrationDefinition(
                rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
            ) => CacheError::Newer(e.to_string()),
            other => CacheError::Corrupt(other.to_string()),
        })?;
        // Touch the data, so that a damaged file is found now rather than
        // in the middle of a sync.
        writer
            .query_row("SELECT last_seq FROM sync_state WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(CacheError::of)?;
        let reader = Connection::open(path).map_err(CacheError::of)?;
        configure(&reader).map_err(CacheError::of)?;
        reader
            .pragma_update(None, "query_only", "ON")
            .map_err(CacheError::of)?;
        Ok(LogCache {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn: writer,
                ids: HashMap::new(),
                known_texts: HashSet::new(),
            }),
            reader: Mutex::new(Reader {
                conn: reader,
                names: HashMap::new(),
            }),
            sync_lock: tokio::sync::Mutex::new(()),
            cancel: Mutex::new(None),
        })
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn reader(&self) -> MutexGuard<'_, Reader> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> rusqlite::Result<SyncState> {
        let reader = self.reader();
        read_state(&reader.conn)
    }

    /// Stores a batch (see the module's comment). `out_of_order` lists the
    /// seqs that came after a greater one in the export.
    pub fn ingest(
        &self,
        batch: &[Incoming],
        head_seq: i64,
        out_of_order: &[i64],
        now: DateTime<Utc>,
    ) -> rusqlite::Result<IngestOutcome> {
        let mut writer = self.writer();
        let Writer {
            conn,
            ids,
            known_texts,
        } = &mut *writer;
        let result = ingest(conn, ids, known_texts, batch, head_seq, out_of_order, now);
        if result.is_err() {
            // Ids interned and words stored by the rolled-back transaction
            // are gone.
            ids.clear();
            NewWords::forget(known_texts);
        }
        result
    }

    /// Records the outcome of a sync attempt: success clears the error.
    pub fn record_attempt(
        &self,
        now: DateTime<Utc>,
        error: Option<(&str, &str)>,
    ) -> rusqlite::Result<()> {
        let writer = self.writer();
        let now = now.timestamp_micros();
        match error {
            None => writer.conn.execute(
                "UPDATE sync_state SET last_attempt_at = ?1, last_sync_at = ?1, \
                 last_error_code = NULL, last_error = NULL WHERE id = 1",
                [now],
            )?,
            Some((code, message)) => writer.conn.execute(
                "UPDATE sync_state SET last_attempt_at = ?1, last_error_code = ?2, \
                 last_error = ?3 WHERE id = 1",
                params![now, code, message],
            )?,
        };
        Ok(())
    }

    pub fn set_gateway_id(&self, id: &str) -> rusqlite::Result<()> {
        self.writer()
            .conn
            .execute("UPDATE sync_state SET gateway_id = ?1 WHERE id = 1", [id])?;
        Ok(())
    }

    pub fn set_head(&self, head_seq: i64) -> rusqlite::Result<()> {
        self.writer().conn.execute(
            "UPDATE sync_state SET head_seq = ?1 WHERE id = 1",
            [head_seq],
        )?;
        Ok(())
    }

    pub fn add_events(&self, now: DateTime<Utc>, events: &[Event]) -> rusqlite::Result<()> {
        let mut writer = self.writer();
        let tx = writer.conn.transaction()?;
        insert_events(&tx, now, events)?;
        tx.commit()
    }

    /// The newest events first: (at, kind, message, seq).
    pub fn events(&self, limit: u32) -> rusqlite::Result<Vec<StoredEvent>> {
        let reader = self.reader();
        let mut stmt = reader.conn.prepare_cached(
            "SELECT at_us, kind, message, seq FROM sync_events ORDER BY id DESC LIMIT ?1",
        )?;
        stmt.query_map([limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect()
    }

    pub fn set_retention(&self, days: Option<u32>) -> rusqlite::Result<()> {
        self.writer().conn.execute(
            "UPDATE sync_state SET retention_days = ?1 WHERE id = 1",
            [days],
        )?;
        Ok(())
    }

    /// Deletes the records that arrived before `cutoff_us` (and the
    /// rollup buckets wholly before it), in batches of `batch` rows, each
    /// its own transaction. Answers how many records went.
    pub fn purge(&self, cutoff_us: i64, batch: u32) -> rusqlite::Result<u64> {
        let cutoff_minute = cutoff_us.div_euclid(60_000_000);
        let bound: Option<i64> = self.reader().conn.query_row(
            "SELECT max(max_seq) FROM minute_seqs WHERE minute <= ?1",
            [cutoff_minute],
            |r| r.get(0),
        )?;
        let mut deleted = 0u64;
        if let Some(bound) = bound {
            loop {
                let mut writer = self.writer();
                let tx = writer.conn.transaction()?;
                let n = tx.execute(
                    "DELETE FROM records WHERE seq IN (SELECT seq FROM records \
                     WHERE seq <= ?1 AND at_us < ?2 LIMIT ?3)",
                    params![bound, cutoff_us, batch],
                )?;
                tx.execute(
                    "UPDATE sync_state SET records = max(records - ?1, 0) WHERE id = 1",
                    [n as i64],
                )?;
                tx.commit()?;
                deleted += n as u64;
                if n < batch as usize {
                    break;
                }
            }
        }
        let mut writer = self.writer();
        let tx = writer.conn.transaction()?;
        tx.execute("DELETE FROM minute_seqs WHERE minute < ?1", [cutoff_minute])?;
        let cutoff_s = cutoff_us.div_euclid(1_000_000);
        for grain in Grain::ALL {
            for dim in DIMS {
                tx.execute(
                    &format!(
                        "DELETE FROM {} WHERE dim = ?1 AND bucket <= ?2",
                        grain.table()
                    ),
                    params![dim, cutoff_s - grain.seconds()],
                )?;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// Refreshes the query planner's statistics where they are stale
    /// (cheap: sampled); run after a sync stored records.
    pub fn optimize(&self) -> rusqlite::Result<()> {
        self.writer().conn.execute_batch("PRAGMA optimize")
    }

    pub fn vacuum(&self) -> rusqlite::Result<()> {
        let writer = self.writer();
        writer.conn.execute_batch("VACUUM")?;
        writer
            .conn
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: `ok`, or what is wrong.
    pub fn integrity_check(&self) -> rusqlite::Result<String> {
        let reader = self.reader();
        let mut stmt = reader.conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(lines.join("; "))
    }

    /// Bytes on disk: the database and its write-ahead log.
    pub fn size(&self) -> (u64, u64) {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        (len(&self.path), len(Path::new(&wal)))
    }

    /// The oldest and newest arrival times cached.
    pub fn time_span(&self) -> rusqlite::Result<(Option<i64>, Option<i64>)> {
        let reader = self.reader();
        let first = |sql: &str| -> rusqlite::Result<Option<i64>> {
            reader
                .conn
                .query_row(sql, [], |r| r.get(0))
                .optional()
                .map(Option::flatten)
        };
        Ok((
            first("SELECT at_us FROM records ORDER BY seq LIMIT 1")?,
            first("SELECT at_us FROM records ORDER BY seq DESC LIMIT 1")?,
        ))
    }
}

fn read_state(conn: &Connection) -> rusqlite::Result<SyncState> {
    conn.query_row(
        "SELECT last_seq, head_seq, records, gateway_id, last_sync_at, last_attempt_at, \
         last_error_code, last_error, retention_days FROM sync_state WHERE id = 1",
        [],
        |r| {
            Ok(SyncState {
                last_seq: r.get(0)?,
                head_seq: r.get(1)?,
                records: r.get(2)?,
                gateway_id: r.get(3)?,
                last_sync_at: r.get::<_, Option<i64>>(4)?.map(micros_to_time),
                last_attempt_at: r.get::<_, Option<i64>>(5)?.map(micros_to_time),
                last_error_code: r.get(6)?,
                last_error: r.get(7)?,
                retention_days: r.get(8)?,
            })
        },
    )
}

fn insert_events(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    events: &[Event],
) -> rusqlite::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO sync_events (at_us, kind, message, seq) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in events {
        insert.execute(params![now.timestamp_micros(), e.kind, e.message, e.seq])?;
    }
    tx.execute(
        "DELETE FROM sync_events WHERE id <= (SELECT max(id) FROM sync_events) - ?1",
        [EVENTS_KEPT],
    )?;
    Ok(())
}

fn intern(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, i64>,
    new_words: &mut NewWords<'_>,
    value: &str,
) -> rusqlite::Result<i64> {
    if let Some(id) = ids.get(value) {
        return Ok(*id);
    }
    let inserted = tx
        .prepare_cached("INSERT OR IGNORE INTO strings (value) VALUES (?1)")?
        .execute([value])?;
    if inserted > 0 {
        new_words.add_new(value);
    }
    let id: i64 = tx
        .prepare_cached("SELECT id FROM strings WHERE value = ?1")?
        .query_row([value], |r| r.get(0))?;
    if ids.len() >= DICT_MAX {
        ids.clear();
    }
    ids.insert(value.to_owned(), id);
    Ok(id)
}

fn intern_opt(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, i64>,
    new_words: &mut NewWords<'_>,
    value: Option<&str>,
) -> rusqlite::Result<Option<i64>> {
    value.map(|v| intern(tx, ids, new_words, v)).transpose()
}

/// The words a record is found by.
fn search_text(l: &CallLog) -> String {
    let mut text = String::with_capacity(256);
    let status = l.status.to_string();
    let parts = [
        Some(l.id.as_str()),
        Some(l.api.as_str()),
        Some(l.method.as_str()),
        Some(l.path.as_str()),
        Some(status.as_str()),
        l.team_id.as_deref(),
        l.consumer_id.as_deref(),
        l.key_id.as_deref(),
        l.key_prefix.as_deref(),
        l.model.as_deref(),
        l.provider_id.as_deref(),
        l.provider_key.as_deref(),
        l.reason.as_deref(),
        l.client_ip.as_deref(),
        l.user_agent.as_deref(),
        l.error.as_deref(),
        l.request_body.as_deref(),
        l.response_body.as_deref(),
    ];
    for p in parts.into_iter().flatten() {
        text.push_str(p);
        text.push('\n');
    }
    text
}

/// A rollup row's key: grain, dimension, bucket, value, currency.
type RollupKey = (Grain, u8, i64, i64, i64);

fn ingest(
    conn: &mut Connection,
    ids: &mut HashMap<String, i64>,
    known_texts: &mut HashSet<String>,
    batch: &[Incoming],
    head_seq: i64,
    out_of_order: &[i64],
    now: DateTime<Utc>,
) -> rusqlite::Result<IngestOutcome> {
    let tx = conn.transaction()?;
    let cursor: i64 = tx.query_row("SELECT last_seq FROM sync_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let mut outcome = IngestOutcome {
        last_seq: cursor,
        ..IngestOutcome::default()
    };
    let out_of_order: std::collections::HashSet<i64> = out_of_order.iter().copied().collect();
    // Prepared once per batch: a statement cache lookup hashes the SQL text.
    let mut insert_record = tx.prepare_cached(
        "INSERT OR IGNORE INTO records (seq, request_id, at_us, api, method, path, team, \
                 consumer, key_id, key_prefix, model, provider, provider_key, status, reason, \
                 upstream_status, latency_us, upstream_us, ttft_us, tokens_in, tokens_out, \
                 cost_micros, currency, client_ip, user_agent, error, request_body, response_body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
    )?;
    let mut insert_words =
        tx.prepare_cached("INSERT INTO records_fts (rowid, text) VALUES (?1, ?2)")?;
    let mut rollups: HashMap<RollupKey, Measures> = HashMap::new();
    let mut minutes: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut reasons: HashMap<i64, u16> = HashMap::new();
    let mut new_words = NewWords::new(known_texts);
    for incoming in batch {
        let l = &incoming.log;
        let at_us = l.at.timestamp_micros();
        let api = intern(&tx, ids, &mut new_words, &l.api)?;
        let consumer = intern_opt(&tx, ids, &mut new_words, l.consumer_id.as_deref())?;
        let model = intern_opt(&tx, ids, &mut new_words, l.model.as_deref())?;
        let reason = intern_opt(&tx, ids, &mut new_words, l.reason.as_deref())?;
        let currency = intern_opt(&tx, ids, &mut new_words, l.currency.as_deref())?;
        let values = params![
            l.seq,
            l.id,
            at_us,
            api,
            intern(&tx, ids, &mut new_words, &l.method)?,
            intern(&tx, ids, &mut new_words, &l.path)?,
            intern_opt(&tx, ids, &mut new_words, l.team_id.as_deref())?,
            consumer,
            intern_opt(&tx, ids, &mut new_words, l.key_id.as_deref())?,
            intern_opt(&tx, ids, &mut new_words, l.key_prefix.as_deref())?,
            model,
            intern_opt(&tx, ids, &mut new_words, l.provider_id.as_deref())?,
            intern_opt(&tx, ids, &mut new_words, l.provider_key.as_deref())?,
            l.status,
            reason,
            l.upstream_status,
            l.latency_us,
            l.upstream_us,
            l.ttft_us,
            l.tokens_in,
            l.tokens_out,
            incoming.cost_micros,
            currency,
            intern_opt(&tx, ids, &mut new_words, l.client_ip.as_deref())?,
            intern_opt(&tx, ids, &mut new_words, l.user_agent.as_deref())?,
            l.error,
            l.request_body,
            l.response_body,
        ];
        let inserted = insert_record.execute(values)?;
        if inserted == 0 {
            let same = load_record(&tx, l.seq)?.is_some_and(|cached| cached == *l);
            if same {
                outcome.duplicates.push(l.seq);
            } else {
                outcome.conflicts.push(l.seq);
            }
            continue;
        }
        outcome.inserted += 1;
        if l.seq <= cursor || out_of_order.contains(&l.seq) {
            outcome.late.push(l.seq);
        }
        outcome.last_seq = outcome.last_seq.max(l.seq);
        insert_words.execute(params![l.seq, search_text(l)])?;
        // The words of the texts that are not interned strings (those are
        // added when first interned).
        new_words.add(&l.status.to_string());
        for text in [&l.error, &l.request_body, &l.response_body]
            .into_iter()
            .flatten()
        {
            new_words.add(text);
        }
        if !l.id.starts_with("req_") {
            new_words.add(&l.id);
        }
        let minute = at_us.div_euclid(60_000_000);
        let span = minutes.entry(minute).or_insert((l.seq, l.seq));
        span.0 = span.0.min(l.seq);
        span.1 = span.1.max(l.seq);
        if let Some(reason) = reason {
            let status = reasons.entry(reason).or_insert(l.status);
            *status = (*status).max(l.status);
        }
        let fact = Fact {
            status: l.status,
            tokens_in: l.tokens_in,
            tokens_out: l.tokens_out,
            cost_micros: incoming.cost_micros,
            latency_us: l.latency_us,
        };
        let currency = currency.unwrap_or(0);
        let dims = [
            (DIM_ALL, 0),
            (DIM_CONSUMER, consumer.unwrap_or(0)),
            (DIM_MODEL, model.unwrap_or(0)),
            (DIM_API, api),
            (DIM_STATUS, i64::from(l.status)),
            (DIM_REASON, reason.unwrap_or(0)),
        ];
        for grain in Grain::ALL {
            let bucket = grain.bucket_of(at_us);
            for (dim, value) in dims {
                rollups
                    .entry((grain, dim, bucket, value, currency))
                    .or_default()
                    .add(&fact);
            }
        }
    }
    new_words.store(&tx)?;
    for (minute, (low, high)) in minutes {
        tx.prepare_cached(
            "INSERT INTO minute_seqs (minute, min_seq, max_seq) VALUES (?1, ?2, ?3) \
             ON CONFLICT (minute) DO UPDATE SET min_seq = min(min_seq, excluded.min_seq), \
             max_seq = max(max_seq, excluded.max_seq)",
        )?
        .execute(params![minute, low, high])?;
    }
    for (reason, status) in reasons {
        tx.prepare_cached(
            "INSERT INTO reason_status (reason, status) VALUES (?1, ?2) \
             ON CONFLICT (reason) DO UPDATE SET status = max(status, excluded.status)",
        )?
        .execute(params![reason, status])?;
    }
    drop((insert_record, insert_words));
    let mut rollup_statements = Vec::with_capacity(Grain::ALL.len());
    for grain in Grain::ALL {
        let table = grain.table();
        rollup_statements.push((
            tx.prepare_cached(&format!(
                "SELECT {MEASURE_COLUMNS} FROM {table} WHERE dim = ?1 AND bucket = ?2 \
                 AND value = ?3 AND currency = ?4"
            ))?,
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO {table} (dim, bucket, value, currency, {MEASURE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))?,
        ));
    }
    for ((grain, dim, bucket, value, currency), delta) in rollups {
        // `Grain::ALL` lists the grains in declaration order.
        let (read, write) = &mut rollup_statements[grain as usize];
        add_rollup(
            read,
            write,
            [i64::from(dim), bucket, value, currency],
            &delta,
        )?;
    }
    drop(rollup_statements);
    let mut events = Vec::new();
    if !outcome.duplicates.is_empty() {
        events.push(Event {
            kind: "duplicate",
            message: format!(
                "{} record(s) the cache already had came again (ignored): seq {}",
                outcome.duplicates.len(),
                sample(&outcome.duplicates)
            ),
            seq: outcome.duplicates.first().copied(),
        });
    }
    if !outcome.conflicts.is_empty() {
        events.push(Event {
            kind: "conflict",
            message: format!(
                "{} record(s) came again with different content; the cached ones are kept: seq {}",
                outcome.conflicts.len(),
                sample(&outcome.conflicts)
            ),
            seq: outcome.conflicts.first().copied(),
        });
    }
    if !outcome.late.is_empty() {
        events.push(Event {
            kind: "out_of_order",
            message: format!(
                "{} record(s) came out of seq order; stored: seq {}",
                outcome.late.len(),
                sample(&outcome.late)
            ),
            seq: outcome.late.first().copied(),
        });
    }
    insert_events(&tx, now, &events)?;
    outcome.head_seq = head_seq.max(outcome.last_seq);
    tx.execute(
        "UPDATE sync_state SET last_seq = ?1, head_seq = ?2, records = records + ?3 WHERE id = 1",
        params![outcome.last_seq, outcome.head_seq, outcome.inserted as i64],
    )?;
    tx.commit()?;
    Ok(outcome)
}

/// The first few seqs of a list, for a message.
fn sample(seqs: &[i64]) -> String {
    let mut text: Vec<String> = seqs.iter().take(10).map(i64::to_string).collect();
    if seqs.len() > 10 {
        text.push("…".into());
    }
    text.join(", ")
}

const MEASURE_COLUMNS: &str = "requests, errors, payment_required, tokens_in, tokens_out, \
    cost_micros, latency_sum_us, latency_max_us, hist";

/// Reads the measures of a rollup row from column `first` on.
pub(crate) fn measures_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Measures> {
    let hist: Vec<u8> = r.get(first + 8)?;
    Ok(Measures {
        requests: r.get(first)?,
        errors: r.get(first + 1)?,
        payment_required: r.get(first + 2)?,
        tokens_in: r.get(first + 3)?,
        tokens_out: r.get(first + 4)?,
        cost_micros: r.get(first + 5)?,
        latency_sum_us: r.get(first + 6)?,
        latency_max_us: r.get(first + 7)?,
        hist: Histogram::decode(&hist).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                first + 8,
                rusqlite::types::Type::Blob,
                "a latency histogram the cache did not write".into(),
            )
        })?,
    })
}

pub(crate) fn measure_columns() -> &'static str {
    MEASURE_COLUMNS
}

/// Adds `delta` to one rollup row (dim, bucket, value, currency), with the
/// grain's statements: `read` its measures, `write` them back.
fn add_rollup(
    read: &mut rusqlite::CachedStatement<'_>,
    write: &mut rusqlite::CachedStatement<'_>,
    key: [i64; 4],
    delta: &Measures,
) -> rusqlite::Result<()> {
    let existing = read.query_row(key, |r| measures_at(r, 0)).optional()?;
    let mut m = existing.unwrap_or_default();
    m.merge(delta);
    write.execute(params![
        key[0],
        key[1],
        key[2],
        key[3],
        m.requests,
        m.errors,
        m.payment_required,
        m.tokens_in,
        m.tokens_out,
        m.cost_micros,
        m.latency_sum_us,
        m.latency_max_us,
        m.hist.encode()
    ])?;
    Ok(())
}

pub(crate) const RECORD_COLUMNS: &str = "r.seq, r.request_id, r.at_us, r.api, r.method, r.path, \
    r.team, r.consumer, r.key_id, r.key_prefix, r.model, r.provider, r.provider_key, r.status, \
    r.reason, r.upstream_status, r.latency_us, r.upstream_us, r.ttft_us, r.tokens_in, \
    r.tokens_out, r.cost_micros, r.currency, r.client_ip, r.user_agent, r.error, \
    r.request_body, r.response_body";

/// A record row as stored: strings still as ids.
pub(crate) struct RawRecord {
    /// Columns 0 to 24 of [`RECORD_COLUMNS`] but `request_id` (1).
    ints: [Option<i64>; 25],
    request_id: String,
    error: Option<String>,
    request_body: Option<String>,
    response_body: Option<String>,
}

impl RawRecord {
    /// Reads the columns of [`RECORD_COLUMNS`].
    pub fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
        let mut ints = [None; 25];
        for (column, slot) in ints.iter_mut().enumerate() {
            if column != 1 {
                *slot = r.get(column)?;
            }
        }
        Ok(RawRecord {
            ints,
            request_id: r.get(1)?,
            error: r.get(25)?,
            request_body: r.get(26)?,
            response_body: r.get(27)?,
        })
    }

    pub fn seq(&self) -> i64 {
        self.ints[0].unwrap_or_default()
    }

    /// The record as the gateway sent it, with `name` turning ids into strings.
    pub fn into_log(
        self,
        mut name: impl FnMut(i64) -> rusqlite::Result<String>,
    ) -> rusqlite::Result<CallLog> {
        let col = self.ints;
        let mut text =
            |c: usize| -> rusqlite::Result<Option<String>> { col[c].map(&mut name).transpose() };
        Ok(CallLog {
            seq: col[0].unwrap_or_default(),
            id: self.request_id,
            at: micros_to_time(col[2].unwrap_or_default()),
            api: text(3)?.unwrap_or_default(),
            method: text(4)?.unwrap_or_default(),
            path: text(5)?.unwrap_or_default(),
            team_id: text(6)?,
            consumer_id: text(7)?,
            key_id: text(8)?,
            key_prefix: text(9)?,
            model: text(10)?,
            provider_id: text(11)?,
            provider_key: text(12)?,
            status: col[13].unwrap_or_default() as u16,
            reason: text(14)?,
            upstream_status: col[15].map(|s| s as u16),
            latency_us: col[16].unwrap_or_default(),
            upstream_us: col[17],
            ttft_us: col[18],
            tokens_in: col[19].unwrap_or_default(),
            tokens_out: col[20].unwrap_or_default(),
            cost: format_amount(col[21].unwrap_or_default(), 2),
            currency: text(22)?,
            client_ip: text(23)?,
            user_agent: text(24)?,
            error: self.error,
            request_body: self.request_body,
            response_body: self.response_body,
        })
    }
}

/// One record by seq, read on any connection (strings looked up one by one).
pub(crate) fn load_record(conn: &Connection, seq: i64) -> rusqlite::Result<Option<CallLog>> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records r WHERE r.seq = ?1"
        ))?
        .query_row([seq], RawRecord::read)
        .optional()?;
    match raw {
        None => Ok(None),
        Some(raw) => {
            let mut lookup = conn.prepare_cached("SELECT value FROM strings WHERE id = ?1")?;
            raw.into_log(|id| lookup.query_row([id], |r| r.get(0)))
                .map(Some)
        }
    }
}
