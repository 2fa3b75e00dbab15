//! SQLite implementation of [`Store`]: one writer connection and a few reader
//! connections over a WAL database in the data directory. Blocking SQLite work
//! runs on tokio's blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use tollgate_api::{AuditEntry, Scope, Team};

use super::{
    AdminTokenRecord, AuditContext, Audited, IdempotencyBegin, NewTeam, NodeRecord, PoolStatus,
    StoreError, StoreResult, StoredResponse, SystemStore, TeamPatch, TeamStore, Versioned,
    check_version, split_page,
};
use crate::changes::{Change, ChangeFeed};
use crate::ids;

mod billing;
mod consumers;
mod leases;
mod logs;
mod prompt_apis;
mod providers;
mod subscriptions;

/// Ordered, embedded schema migrations. Append only; never edit a released one.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/0001_init.sql")),
        M::up(include_str!("../../../migrations/0002_consumers.sql")),
        M::up(include_str!("../../../migrations/0003_billing.sql")),
        M::up(include_str!("../../../migrations/0004_subscriptions.sql")),
        M::up(include_str!("../../../migrations/0005_usage.sql")),
        M::up(include_str!(
            "../../../migrations/0006_payment_settings.sql"
        )),
        M::up(include_str!("../../../migrations/0007_providers.sql")),
        M::up(include_str!("../../../migrations/0008_prompt_apis.sql")),
        M::up(include_str!("../../../migrations/0009_call_logs.sql")),
        M::up(include_str!("../../../migrations/0010_log_settings.sql")),
        M::up(include_str!("../../../migrations/0011_call_logs_lean.sql")),
        M::up_with_hook(
            include_str!("../../../migrations/0012_call_log_blocks.sql"),
            |tx: &rusqlite::Transaction<'_>| Ok(logs::move_rows_into_blocks(tx)?),
        ),
        M::up(include_str!("../../../migrations/0013_audit_by_target.sql")),
        M::up(include_str!("../../../migrations/0014_charge_once.sql")),
        M::up(include_str!("../../../migrations/0015_nodes.sql")),
        M::up(include_str!("../../../migrations/0016_leases.sql")),
        M::up(include_str!("../../../migrations/0017_rate_allowances.sql")),
        M::up(include_str!("../../../migrations/0018_stripe_settings.sql")),
    ])
});

/// How long an Idempotency-Key is remembered.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// A pending key older than this is considered abandoned (its request died).
const IDEMPOTENCY_PENDING_SECS: i64 = 60;
const READER_CONNECTIONS: usize = 4;

/// The one place every connection is configured.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// This process, the store's only node.
    node: String,
    writer: Mutex<Connection>,
    /// Where each committed write's changes are published.
    feed: Arc<ChangeFeed>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(anyhow::Error::new(e))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/tollgate.db` and migrates it. Refuses a
    /// database whose schema is newer than this binary. Changes are published
    /// on `feed`.
    pub fn open(data_dir: &Path, feed: Arc<ChangeFeed>) -> StoreResult<Self> {
        let path = data_dir.join("tollgate.db");
        let mut writer =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        configure(&writer).map_err(backend)?;
        MIGRATIONS
            .to_latest(&mut writer)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let readers = (0..READER_CONNECTIONS)
            .map(|_| {
                let conn = Connection::open(&path)?;
                configure(&conn)?;
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                node: ids::new_id("node"),
                writer: Mutex::new(writer),
                feed,
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(e.into()))?
    }

    /// A write that changes what the data plane reads: `f` records each
    /// [`Change`] as it makes it, and they are published once `f` has
    /// returned with its transaction committed — never for a failed write.
    /// Published under the writer's lock, so listeners hear changes in
    /// commit order.
    async fn write_changes<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &mut Vec<Change>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            let mut changes = Vec::new();
            let out = f(&mut conn, &mut changes)?;
            inner.feed.publish(&changes);
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Backend(e.into()))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = inner.readers[i].lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(e.into()))?
    }
}

impl SqliteStore {
    /// The one shape of every update and delete under `If-Match`, in one
    /// transaction: `load` the row as it is, check its version, `write`
    /// (which pushes what it changed for the feed), record the audit entry
    /// on `target` (the row's id), commit.
    async fn versioned_write<T, R, L, W>(
        &self,
        target: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
        load: L,
        write: W,
    ) -> StoreResult<R>
    where
        T: Versioned,
        R: Send + 'static,
        L: FnOnce(&Connection, &str) -> StoreResult<T> + Send + 'static,
        W: FnOnce(&rusqlite::Transaction<'_>, &str, T, &mut Vec<Change>) -> StoreResult<Audited<R>>
            + Send
            + 'static,
    {
        let (target, ctx) = (target.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let current = load(&tx, &target)?;
            check_version(current.version(), expected_version)?;
            let (out, action) = write(&tx, &target, current, changes)?;
            audit(&tx, &ctx, &action, &target)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }
}

fn audit(tx: &Connection, ctx: &AuditContext, action: &str, target: &str) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO audit_log (id, time, token_id, action, target, request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![ids::new_id("aud"), ts(Utc::now()), ctx.token_id, action, target, ctx.request_id],
    )
    .map_err(backend)?;
    Ok(())
}

const TEAM_COLUMNS: &str = "id, name, description, created_at, updated_at, version, seq";

fn team_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Team, i64)> {
    Ok((
        Team {
            id: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            created_at: parse_ts(&row.get::<_, String>(3)?)?,
            updated_at: parse_ts(&row.get::<_, String>(4)?)?,
            version: row.get(5)?,
        },
        row.get(6)?,
    ))
}

fn load_team(conn: &Connection, id: &str) -> StoreResult<Team> {
    conn.query_row(
        &format!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = ?1"),
        [id],
        team_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(team, _)| team)
    .ok_or(StoreError::NotFound)
}

/// One page of a list: `sql` selects up to `limit + 1` rows ordered by their
/// `seq`, which `row` returns beside each item; the extra row only says
/// whether there is a next page (whose cursor is the last `seq` kept).
fn page<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    limit: u32,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<(T, i64)>,
) -> StoreResult<(Vec<T>, Option<i64>)> {
    let rows = conn
        .prepare_cached(sql)
        .map_err(backend)?
        .query_map(params, row)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    Ok(split_page(rows, limit))
}

/// The version of a settings row (`id = 1`): 0 before it is first saved.
fn singleton_version(conn: &Connection, table: &str) -> StoreResult<i64> {
    conn.query_row(
        &format!("SELECT version FROM {table} WHERE id = 1"),
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
    .map(Option::unwrap_or_default)
}

/// SQLite reports `ON DELETE RESTRICT` as a trigger constraint, other foreign
/// key failures as FOREIGNKEY; both say "FOREIGN KEY constraint failed".
fn is_foreign_key_violation(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, message) => {
            f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
                || (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER
                    && message
                        .as_deref()
                        .is_some_and(|m| m.contains("FOREIGN KEY")))
        }
        _ => false,
    }
}

fn name_conflict(e: rusqlite::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a team named `{name}` already exists"))
    } else {
        backend(e)
    }
}

fn token_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AdminTokenRecord> {
    let scopes: String = row.get(3)?;
    Ok(AdminTokenRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        scopes: scopes
            .split(',')
            .filter_map(|s| s.parse::<Scope>().ok())
            .collect(),
        created_at: parse_ts(&row.get::<_, String>(4)?)?,
        revoked_at: row
            .get::<_, Option<String>>(5)?
            .map(|s| parse_ts(&s))
            .transpose()?,
        last_used_at: row
            .get::<_, Option<String>>(6)?
            .map(|s| parse_ts(&s))
            .transpose()?,
    })
}

fn insert_token(c: &Connection, t: &AdminTokenRecord) -> StoreResult<()> {
    let scopes = t
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    c.execute(
        "INSERT INTO admin_tokens (id, name, secret_hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![t.id, t.name, t.secret_hash, scopes, ts(t.created_at)],
    )
    .map_err(backend)?;
    Ok(())
}

const TOKEN_COLUMNS: &str = "id, name, secret_hash, scopes, created_at, revoked_at, last_used_at";

#[async_trait]
impl SystemStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    fn leads_jobs(&self) -> bool {
        true
    }

    fn node_id(&self) -> &str {
        &self.inner.node
    }

    fn pool_status(&self) -> PoolStatus {
        let connections = std::iter::once(&self.inner.writer).chain(&self.inner.readers);
        let idle = connections.filter(|c| c.try_lock().is_ok()).count();
        let open = self.inner.readers.len() + 1;
        PoolStatus {
            max: open,
            open,
            idle,
            waiting: 0,
        }
    }

    async fn heartbeat(&self, node: &NodeRecord) -> StoreResult<()> {
        let node = node.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO nodes (id, address, version, started_at, heartbeat_at, leads_jobs) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET \
                 address = excluded.address, heartbeat_at = excluded.heartbeat_at, leads_jobs = excluded.leads_jobs",
                params![node.id, node.address, node.version, ts(node.started_at), ts(node.heartbeat_at), node.leads_jobs],
            )
            .map_err(backend)?;
            c.execute(
                "DELETE FROM nodes WHERE heartbeat_at < ?1",
                [ts(node.heartbeat_at - crate::store::NODE_FORGOTTEN_AFTER)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, address, version, started_at, heartbeat_at, leads_jobs, \
                 (SELECT count(*) FROM leases l WHERE l.node_id = nodes.id) FROM nodes \
                 ORDER BY started_at DESC, id",
            )
            .map_err(backend)?
            .query_map([], |r| {
                Ok(NodeRecord {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    version: r.get(2)?,
                    started_at: parse_ts(&r.get::<_, String>(3)?)?,
                    heartbeat_at: parse_ts(&r.get::<_, String>(4)?)?,
                    leads_jobs: r.get(5)?,
                    leases: r.get(6)?,
                })
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
        })
        .await
    }

    async fn key_check(&self, sealed: String) -> StoreResult<String> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('key_check', ?1) ON CONFLICT (key) DO NOTHING",
                [&sealed],
            )
            .map_err(backend)?;
            c.query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn instance_id(&self) -> StoreResult<String> {
        self.write(|c| {
            let existing: Option<String> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'instance_id'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(id) = existing {
                return Ok(id);
            }
            let id = ids::new_id("inst");
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('instance_id', ?1)",
                [&id],
            )
            .map_err(backend)?;
            Ok(id)
        })
        .await
    }

    async fn bootstrap_admin_token(&self, t: AdminTokenRecord) -> StoreResult<bool> {
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let any: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM admin_tokens)", [], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            if !any {
                insert_token(&tx, &t)?;
            }
            tx.commit().map_err(backend)?;
            Ok(!any)
        })
        .await
    }

    async fn insert_admin_token(&self, t: AdminTokenRecord) -> StoreResult<()> {
        self.write(move |c| insert_token(c, &t)).await
    }

    async fn admin_token(&self, id: &str) -> StoreResult<Option<AdminTokenRecord>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = ?1"),
                [id],
                token_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>> {
        self.read(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY created_at, id"
                ))
                .map_err(backend)?;
            stmt.query_map([], token_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)
        })
        .await
    }

    async fn revoke_admin_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                    params![id, ts(at)],
                )
                .map_err(backend)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn touch_admin_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            c.execute(
                "UPDATE admin_tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, ts(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_audit(
        &self,
        targets: &[String],
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<AuditEntry>, Option<i64>)> {
        let targets = targets.to_vec();
        self.read(move |c| {
            const COLUMNS: &str =
                "SELECT id, time, token_id, action, target, request_id, seq FROM audit_log";
            let sql = if targets.is_empty() {
                format!("{COLUMNS} WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2")
            } else {
                // Targets are bound, never spliced: `?3`, `?4`, … (at most 20).
                let places: Vec<String> =
                    (0..targets.len()).map(|i| format!("?{}", i + 3)).collect();
                format!(
                    "{COLUMNS} WHERE seq < ?1 AND target IN ({}) ORDER BY seq DESC LIMIT ?2",
                    places.join(", ")
                )
            };
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let mut values: Vec<rusqlite::types::Value> = vec![
                before.unwrap_or(i64::MAX).into(),
                (i64::from(limit) + 1).into(),
            ];
            values.extend(targets.into_iter().map(rusqlite::types::Value::from));
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values), |r| {
                    Ok((
                        AuditEntry {
                            id: r.get(0)?,
                            time: parse_ts(&r.get::<_, String>(1)?)?,
                            token_id: r.get(2)?,
                            action: r.get(3)?,
                            target: r.get(4)?,
                            request_id: r.get(5)?,
                        },
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(split_page(rows, limit))
        })
        .await
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &[u8],
    ) -> StoreResult<IdempotencyBegin> {
        let (scope, key, fingerprint) = (scope.to_owned(), key.to_owned(), fingerprint.to_vec());
        self.write(move |c| {
            let now = Utc::now().timestamp();
            let tx = c.transaction().map_err(backend)?;
            tx.execute(
                "DELETE FROM idempotency_keys WHERE created_at < ?1",
                [now - IDEMPOTENCY_TTL_SECS],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM idempotency_keys WHERE state = 'pending' AND created_at < ?1",
                [now - IDEMPOTENCY_PENDING_SECS],
            )
            .map_err(backend)?;
            type Row = (Vec<u8>, String, Option<u16>, Option<String>, Option<Vec<u8>>);
            let existing: Option<Row> = tx
                .query_row(
                    "SELECT fingerprint, state, status, headers, body FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
                    params![scope, key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(backend)?;
            let outcome = match existing {
                None => {
                    tx.execute(
                        "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at) VALUES (?1, ?2, ?3, 'pending', ?4)",
                        params![scope, key, fingerprint, now],
                    )
                    .map_err(backend)?;
                    IdempotencyBegin::Started
                }
                Some((stored, _, _, _, _)) if stored != fingerprint => IdempotencyBegin::Mismatch,
                Some((_, state, _, _, _)) if state == "pending" => IdempotencyBegin::InProgress,
                Some((_, _, status, headers, body)) => IdempotencyBegin::Replay(StoredResponse {
                    status: status.unwrap_or(200),
                    headers: headers
                        .and_then(|h| serde_json::from_str(&h).ok())
                        .unwrap_or_default(),
                    body: body.unwrap_or_default(),
                }),
            };
            tx.commit().map_err(backend)?;
            Ok(outcome)
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: StoredResponse,
    ) -> StoreResult<()> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.write(move |c| {
            let headers = serde_json::to_string(&response.headers).map_err(anyhow::Error::from)?;
            c.execute(
                "UPDATE idempotency_keys SET state = 'done', status = ?3, headers = ?4, body = ?5 WHERE scope = ?1 AND key = ?2",
                params![scope, key, response.status, headers, response.body],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.write(move |c| {
            c.execute(
                "DELETE FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND state = 'pending'",
                params![scope, key],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl TeamStore for SqliteStore {
    async fn create_team(&self, new: NewTeam, ctx: &AuditContext) -> StoreResult<Team> {
        let ctx = ctx.clone();
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("team");
            let now = ts(Utc::now());
            tx.execute(
                "INSERT INTO teams (id, name, description, created_at, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?4, 1)",
                params![id, new.name, new.description, now],
            )
            .map_err(|e| name_conflict(e, &new.name))?;
            audit(&tx, &ctx, "team.create", &id)?;
            let team = load_team(&tx, &id)?;
            tx.commit().map_err(backend)?;
            Ok(team)
        })
        .await
    }

    async fn team(&self, id: &str) -> StoreResult<Team> {
        let id = id.to_owned();
        self.read(move |c| load_team(c, &id)).await
    }

    async fn list_teams(&self, after: i64, limit: u32) -> StoreResult<(Vec<Team>, Option<i64>)> {
        self.read(move |c| {
            page(
                c,
                &format!("SELECT {TEAM_COLUMNS} FROM teams WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after, i64::from(limit) + 1],
                limit,
                team_row,
            )
        })
        .await
    }

    async fn update_team(
        &self,
        id: &str,
        patch: TeamPatch,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Team> {
        self.versioned_write(id, expected_version, ctx, load_team, move |tx, id, current, _| {
            let name = patch.name.unwrap_or(current.name);
            let description = patch.description.unwrap_or(current.description);
            tx.execute(
                "UPDATE teams SET name = ?2, description = ?3, updated_at = ?4, version = version + 1 WHERE id = ?1",
                params![id, name, description, ts(Utc::now())],
            )
            .map_err(|e| name_conflict(e, &name))?;
            Ok((load_team(tx, id)?, "team.update".into()))
        })
        .await
    }

    async fn delete_team(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        self.versioned_write(id, expected_version, ctx, load_team, |tx, id, _, _| {
            tx.execute("DELETE FROM teams WHERE id = ?1", [id])
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        StoreError::Conflict(
                            "the team still has consumers: delete them first".into(),
                        )
                    } else {
                        backend(e)
                    }
                })?;
            Ok(((), "team.delete".into()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_database_newer_than_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), Default::default()).unwrap());
        let conn = Connection::open(dir.path().join("tollgate.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        match SqliteStore::open(dir.path(), Default::default()) {
            Err(StoreError::Migration(msg)) => assert!(!msg.is_empty()),
            other => panic!("expected a migration error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn the_ledger_refuses_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path(), Default::default()).unwrap());
        let conn = Connection::open(dir.path().join("tollgate.db")).unwrap();
        configure(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO teams (id, name, description, created_at, updated_at, version) VALUES ('team_1', 't', '', 'x', 'x', 1);
             INSERT INTO consumers (id, team_id, name, contact, metadata, status, created_at, updated_at, version)
               VALUES ('con_1', 'team_1', 'c', '', '{}', 'active', 'x', 'x', 1);
             INSERT INTO wallets (consumer_id, currency, balance_micros) VALUES ('con_1', 'USD', 5);
             INSERT INTO ledger_entries (id, consumer_id, currency, kind, amount_micros, balance_after_micros, reason,
               idempotency_key, actor, created_at) VALUES ('led_1', 'con_1', 'USD', 'grant', 5, 5, '', 'k', 'a', 'x');",
        )
        .unwrap();
        for sql in [
            "UPDATE ledger_entries SET amount_micros = 500",
            "DELETE FROM ledger_entries",
        ] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(err.contains("append-only"), "{sql}: {err}");
        }
    }

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }
}
