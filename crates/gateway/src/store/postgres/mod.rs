//! PostgreSQL implementation of [`Store`], for several nodes on one database:
//! a deadpool of tokio-postgres connections, embedded ordered migrations
//! (refinery, `migrations/postgres/`), a newer schema refused, and start-up
//! under an advisory lock so that nodes starting at the same instant on an
//! empty database migrate it once. Every write and its audit entry share a
//! transaction, as in the SQLite store.
//!
//! [`Store`]: super::Store

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use tollgate_api::{AuditEntry, Scope, Team};

use super::{
    AdminTokenRecord, AuditContext, IdempotencyBegin, NewTeam, NodeRecord, PoolStatus, StoreError,
    StoreResult, StoredResponse, SystemStore, TeamPatch, TeamStore,
};
use crate::changes::{Change, ChangeFeed};
use crate::ids;

mod billing;
mod connect;
mod consumers;
mod leader;
mod leases;
mod logs;
mod notify;
mod partitions;
mod prompt_apis;
mod providers;
mod subscriptions;

pub use connect::OpenError;

/// Checks a database URL's form without connecting (settings are checked
/// before anything starts).
pub fn check_url(url: &str) -> Result<(), OpenError> {
    connect::parse(url).map(|_| ())
}

refinery::embed_migrations!("migrations/postgres");

/// How long an Idempotency-Key is remembered.
const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// A pending key older than this is considered abandoned (its request died).
const IDEMPOTENCY_PENDING_SECS: i64 = 60;
/// The advisory lock every node takes for start-up (migrations, the
/// bootstrap token): one number for this application.
const STARTUP_LOCK: i64 = 0x746f_6c6c_6761_7465; // "tollgate"

/// Connections each node keeps at most (the settings file can change it).
pub const DEFAULT_POOL_SIZE: usize = 16;

pub struct PgStore {
    pool: Pool,
    feed: Arc<ChangeFeed>,
    /// This process among the nodes: its own notices are not published twice.
    node: String,
    /// Hears the other nodes' changes (aborted with the store).
    listener: tokio::task::JoinHandle<()>,
    /// Counts the times the listener has started listening.
    listening: tokio::sync::watch::Receiver<u64>,
    /// Whether this node leads the jobs, and the task that campaigns for it.
    leading: Arc<std::sync::atomic::AtomicBool>,
    campaign: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.campaign.abort();
    }
}

/// Times are kept to the millisecond, as the SQLite store keeps them, so that
/// both stores answer the same instant the same way.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::milliseconds(1))
        .unwrap_or_else(|_| Utc::now())
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(anyhow::Error::new(e))
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(anyhow::Error::new(e))
}

/// A column of a row, its conversion failure a backend error.
trait Column {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, name: &str) -> StoreResult<T>;
}

impl Column for Row {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, name: &str) -> StoreResult<T> {
        self.try_get(name).map_err(backend)
    }
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.into()))
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn is_foreign_key_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

impl PgStore {
    /// Connects to `url`, migrates the database under the start-up lock and
    /// refuses one whose schema is newer than this binary. Changes are
    /// published on `feed`. Each failure names the part that failed.
    pub async fn open(
        url: &str,
        pool_size: usize,
        feed: Arc<ChangeFeed>,
    ) -> Result<Self, OpenError> {
        let config = connect::parse(url)?;
        let (mut client, connection) = connect::first_connection(&config).await?;
        let guard = tokio::spawn(connection);
        let migrated = connect::startup(&mut client).await;
        drop(client);
        let _ = guard.await;
        migrated?;
        let listen_config = config.clone();
        let leading = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let campaign = leader::campaign(config.clone(), leading.clone());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| OpenError::Pool(e.to_string()))?;
        let node = ids::new_id("node");
        let (ready, mut listening) = tokio::sync::watch::channel(0);
        let listener = notify::listen(listen_config, node.clone(), feed.clone(), ready);
        // Writes are not answered before the node hears other nodes' changes.
        let _ = tokio::time::timeout(Duration::from_secs(10), listening.wait_for(|n| *n > 0)).await;
        Ok(PgStore {
            pool,
            feed,
            node,
            listener,
            listening,
            leading,
            campaign,
        })
    }

    /// Waits until the listener listens again after it lost its connection
    /// `times` times in all (for tests of the reconnection).
    pub async fn listening(&self, times: u64) {
        let mut listening = self.listening.clone();
        let _ = listening.wait_for(|n| *n >= times).await;
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A write in one transaction: `f` records each [`Change`] it makes, and
    /// they are published once the transaction has committed — never for a
    /// failed write.
    async fn write_changes<T>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>, &mut Vec<Change>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let mut changes = Vec::new();
        let out = f(&tx, &mut changes).await?;
        notify::send(&tx, &self.node, &changes).await?;
        tx.commit().await.map_err(backend)?;
        self.feed.publish(&changes);
        Ok(out)
    }

    /// The one shape of every update and delete under `If-Match`, in one
    /// transaction: `load` the row (locked until the commit), check its
    /// version, `write`, record the audit entry on `target`, commit.
    async fn versioned_write<T: super::Versioned, R>(
        &self,
        target: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
        load: impl AsyncFnOnce(&Transaction<'_>, &str) -> StoreResult<T>,
        write: impl AsyncFnOnce(
            &Transaction<'_>,
            &str,
            T,
            &mut Vec<Change>,
        ) -> StoreResult<super::Audited<R>>,
    ) -> StoreResult<R> {
        self.write_changes(async |tx, changes| {
            let current = load(tx, target).await?;
            super::check_version(current.version(), expected_version)?;
            let (out, action) = write(tx, target, current, changes).await?;
            audit(tx, ctx, &action, target).await?;
            Ok(out)
        })
        .await
    }
}

async fn audit(
    tx: &Transaction<'_>,
    ctx: &AuditContext,
    action: &str,
    target: &str,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO audit_log (id, time, token_id, action, target, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &ids::new_id("aud"),
            &now(),
            &ctx.token_id,
            &action,
            &target,
            &ctx.request_id,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// The version of a settings row (`id = 1`), locked: 0 before it is first
/// saved (then the insert of a concurrent first save fails on the key).
async fn singleton_version(tx: &Transaction<'_>, table: &str) -> StoreResult<i64> {
    let row = tx
        .query_opt(
            &format!("SELECT version FROM {table} WHERE id = 1 FOR UPDATE"),
            &[],
        )
        .await
        .map_err(backend)?;
    row.map(|r| r.col("version"))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// One page of a list: `rows` holds up to `limit + 1` items, each with its
/// `seq`; the extra one only says that a next page exists.
fn page<T>(
    rows: Vec<Row>,
    limit: u32,
    item: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<(Vec<T>, Option<i64>)> {
    let items = rows
        .iter()
        .map(|r| Ok((item(r)?, r.try_get::<_, i64>("seq").map_err(backend)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(super::split_page(items, limit))
}

fn token_row(row: &Row) -> StoreResult<AdminTokenRecord> {
    let scopes: String = row.try_get("scopes").map_err(backend)?;
    Ok(AdminTokenRecord {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        secret_hash: row.try_get("secret_hash").map_err(backend)?,
        scopes: scopes
            .split(',')
            .filter_map(|s| s.parse::<Scope>().ok())
            .collect(),
        created_at: row.try_get("created_at").map_err(backend)?,
        revoked_at: row.try_get("revoked_at").map_err(backend)?,
        last_used_at: row.try_get("last_used_at").map_err(backend)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, secret_hash, scopes, created_at, revoked_at, last_used_at";

#[async_trait]
impl SystemStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        self.client()
            .await?
            .simple_query("SELECT 1")
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn leads_jobs(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Acquire)
    }

    fn node_id(&self) -> &str {
        &self.node
    }

    fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }

    async fn heartbeat(&self, node: &NodeRecord) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO nodes (id, address, version, started_at, heartbeat_at, leads_jobs) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                 address = excluded.address, heartbeat_at = excluded.heartbeat_at, \
                 leads_jobs = excluded.leads_jobs",
                &[
                    &node.id,
                    &node.address,
                    &node.version,
                    &node.started_at,
                    &node.heartbeat_at,
                    &node.leads_jobs,
                ],
            )
            .await
            .map_err(backend)?;
        client
            .execute(
                "DELETE FROM nodes WHERE heartbeat_at < $1",
                &[&(node.heartbeat_at - crate::store::NODE_FORGOTTEN_AFTER)],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, address, version, started_at, heartbeat_at, leads_jobs, \
                 (SELECT count(*) FROM leases l WHERE l.node_id = nodes.id) AS leases FROM nodes \
                 ORDER BY started_at DESC, id",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(NodeRecord {
                    id: r.col("id")?,
                    address: r.col("address")?,
                    version: r.col("version")?,
                    started_at: r.col("started_at")?,
                    heartbeat_at: r.col("heartbeat_at")?,
                    leads_jobs: r.col("leads_jobs")?,
                    leases: r.col("leases")?,
                })
            })
            .collect()
    }

    async fn key_check(&self, sealed: String) -> StoreResult<String> {
        // The first node to start with a key sets it for all.
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING",
                &[&sealed],
            )
            .await
            .map_err(backend)?;
        client
            .query_one("SELECT value FROM meta WHERE key = 'key_check'", &[])
            .await
            .map_err(backend)?
            .col("value")
    }

    async fn instance_id(&self) -> StoreResult<String> {
        // Every node of one database is one instance: the first to ask names it.
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ('instance_id', $1) ON CONFLICT (key) DO NOTHING",
                &[&ids::new_id("inst")],
            )
            .await
            .map_err(backend)?;
        let row = client
            .query_one("SELECT value FROM meta WHERE key = 'instance_id'", &[])
            .await
            .map_err(backend)?;
        row.try_get(0).map_err(backend)
    }

    async fn bootstrap_admin_token(&self, token: AdminTokenRecord) -> StoreResult<bool> {
        self.write_changes(async |tx, _| {
            // Nodes starting at once on an empty database: one mints.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&STARTUP_LOCK])
                .await
                .map_err(backend)?;
            let any: bool = tx
                .query_one("SELECT EXISTS (SELECT 1 FROM admin_tokens)", &[])
                .await
                .map_err(backend)?
                .try_get(0)
                .map_err(backend)?;
            if any {
                return Ok(false);
            }
            insert_token(tx, &token).await?;
            Ok(true)
        })
        .await
    }

    async fn insert_admin_token(&self, token: AdminTokenRecord) -> StoreResult<()> {
        let client = self.client().await?;
        insert_token(&client, &token).await
    }

    async fn admin_token(&self, id: &str) -> StoreResult<Option<AdminTokenRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(token_row).transpose()
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY created_at, id"),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_admin_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id, &at],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn touch_admin_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE admin_tokens SET last_used_at = $2 WHERE id = $1",
                &[&id, &at],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        targets: &[String],
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<AuditEntry>, Option<i64>)> {
        let client = self.client().await?;
        let before = before.unwrap_or(i64::MAX);
        let fetch = i64::from(limit) + 1;
        let rows = if targets.is_empty() {
            client
                .query(
                    "SELECT id, time, token_id, action, target, request_id, seq FROM audit_log \
                     WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                    &[&before, &fetch],
                )
                .await
        } else {
            client
                .query(
                    "SELECT id, time, token_id, action, target, request_id, seq FROM audit_log \
                     WHERE seq < $1 AND target = ANY($3) ORDER BY seq DESC LIMIT $2",
                    &[&before, &fetch, &targets],
                )
                .await
        }
        .map_err(backend)?;
        page(rows, limit, |r| {
            Ok(AuditEntry {
                id: r.try_get("id").map_err(backend)?,
                time: r.try_get("time").map_err(backend)?,
                token_id: r.try_get("token_id").map_err(backend)?,
                action: r.try_get("action").map_err(backend)?,
                target: r.try_get("target").map_err(backend)?,
                request_id: r.try_get("request_id").map_err(backend)?,
            })
        })
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &[u8],
    ) -> StoreResult<IdempotencyBegin> {
        self.write_changes(async |tx, _| {
            let now = Utc::now().timestamp();
            tx.execute(
                "DELETE FROM idempotency_keys WHERE created_at < $1 \
                 OR (state = 'pending' AND created_at < $2)",
                &[
                    &(now - IDEMPOTENCY_TTL_SECS),
                    &(now - IDEMPOTENCY_PENDING_SECS),
                ],
            )
            .await
            .map_err(backend)?;
            // Two nodes with the same key at once: one inserts, the other
            // waits on the row and then reads it.
            let inserted = tx
                .execute(
                    "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at) \
                     VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (scope, key) DO NOTHING",
                    &[&scope, &key, &fingerprint, &now],
                )
                .await
                .map_err(backend)?;
            if inserted == 1 {
                return Ok(IdempotencyBegin::Started);
            }
            let row = tx
                .query_one(
                    "SELECT fingerprint, state, status, headers, body FROM idempotency_keys \
                     WHERE scope = $1 AND key = $2 FOR UPDATE",
                    &[&scope, &key],
                )
                .await
                .map_err(backend)?;
            let stored: Vec<u8> = row.try_get(0).map_err(backend)?;
            let state: String = row.try_get(1).map_err(backend)?;
            Ok(if stored != fingerprint {
                IdempotencyBegin::Mismatch
            } else if state == "pending" {
                IdempotencyBegin::InProgress
            } else {
                let status: Option<i32> = row.try_get(2).map_err(backend)?;
                let headers: Option<String> = row.try_get(3).map_err(backend)?;
                let body: Option<Vec<u8>> = row.try_get(4).map_err(backend)?;
                IdempotencyBegin::Replay(StoredResponse {
                    status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                    headers: headers
                        .and_then(|h| serde_json::from_str(&h).ok())
                        .unwrap_or_default(),
                    body: body.unwrap_or_default(),
                })
            })
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: StoredResponse,
    ) -> StoreResult<()> {
        let headers = serde_json::to_string(&response.headers).map_err(anyhow::Error::from)?;
        self.client()
            .await?
            .execute(
                "UPDATE idempotency_keys SET state = 'done', status = $3, headers = $4, body = $5 \
                 WHERE scope = $1 AND key = $2",
                &[
                    &scope,
                    &key,
                    &i32::from(response.status),
                    &headers,
                    &response.body,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'pending'",
                &[&scope, &key],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }
}

async fn insert_token(
    client: &impl deadpool_postgres::GenericClient,
    t: &AdminTokenRecord,
) -> StoreResult<()> {
    let scopes = t
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    client
        .execute(
            "INSERT INTO admin_tokens (id, name, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&t.id, &t.name, &t.secret_hash, &scopes, &t.created_at],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

const TEAM_COLUMNS: &str = "id, name, description, created_at, updated_at, version, seq";

fn team_row(row: &Row) -> StoreResult<Team> {
    Ok(Team {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        description: row.try_get("description").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
        version: row.try_get("version").map_err(backend)?,
    })
}

/// The team `id`, locked until the end of the transaction.
async fn load_team(tx: &Transaction<'_>, id: &str) -> StoreResult<Team> {
    let row = tx
        .query_opt(
            &format!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(team_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

fn name_conflict(e: tokio_postgres::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a team named `{name}` already exists"))
    } else {
        backend(e)
    }
}

#[async_trait]
impl TeamStore for PgStore {
    async fn create_team(&self, new: NewTeam, ctx: &AuditContext) -> StoreResult<Team> {
        self.write_changes(async |tx, _| {
            let id = ids::new_id("team");
            let now = now();
            tx.execute(
                "INSERT INTO teams (id, name, description, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $4, 1)",
                &[&id, &new.name, &new.description, &now],
            )
            .await
            .map_err(|e| name_conflict(e, &new.name))?;
            audit(tx, ctx, "team.create", &id).await?;
            load_team(tx, &id).await
        })
        .await
    }

    async fn team(&self, id: &str) -> StoreResult<Team> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(team_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn list_teams(&self, after: i64, limit: u32) -> StoreResult<(Vec<Team>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {TEAM_COLUMNS} FROM teams WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, team_row)
    }

    async fn update_team(
        &self,
        id: &str,
        patch: TeamPatch,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Team> {
        self.versioned_write(id, expected_version, ctx, load_team, async |tx, id, current, _| {
            let name = patch.name.unwrap_or(current.name);
            let description = patch.description.unwrap_or(current.description);
            tx.execute(
                "UPDATE teams SET name = $2, description = $3, updated_at = $4, version = version + 1 \
                 WHERE id = $1",
                &[&id, &name, &description, &now()],
            )
            .await
            .map_err(|e| name_conflict(e, &name))?;
            Ok((load_team(tx, id).await?, "team.update".into()))
        })
        .await
    }

    async fn delete_team(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load_team,
            async |tx, id, _, _| {
                tx.execute("DELETE FROM teams WHERE id = $1", &[&id])
                    .await
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
            },
        )
        .await
    }
}
