//! Consumers and their API keys in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tollgate_api::{Consumer, ConsumerKey, ConsumerKeyStatus, ConsumerStatus};

use super::{SqliteStore, audit, backend, is_unique_violation, page, parse_ts, ts};
use crate::changes::Change;
use crate::ids;
use crate::store::{
    AuditContext, ConsumerPatch, ConsumerStore, KeyCredential, NewConsumer, NewConsumerKey,
    StoreError, StoreResult,
};

const CONSUMER_COLUMNS: &str =
    "id, team_id, name, contact, metadata, status, created_at, updated_at, version, seq";

fn status_str(status: ConsumerStatus) -> &'static str {
    match status {
        ConsumerStatus::Active => "active",
        ConsumerStatus::Suspended => "suspended",
    }
}

fn consumer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Consumer, i64)> {
    let metadata: String = r.get(4)?;
    let status: String = r.get(5)?;
    Ok((
        Consumer {
            id: r.get(0)?,
            team_id: r.get(1)?,
            name: r.get(2)?,
            contact: r.get(3)?,
            metadata: serde_json::from_str(&metadata).unwrap_or_default(),
            status: if status == "suspended" {
                ConsumerStatus::Suspended
            } else {
                ConsumerStatus::Active
            },
            created_at: parse_ts(&r.get::<_, String>(6)?)?,
            updated_at: parse_ts(&r.get::<_, String>(7)?)?,
            version: r.get(8)?,
        },
        r.get(9)?,
    ))
}

fn load_consumer(conn: &Connection, id: &str) -> StoreResult<Consumer> {
    conn.query_row(
        &format!("SELECT {CONSUMER_COLUMNS} FROM consumers WHERE id = ?1"),
        [id],
        consumer_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(c, _)| c)
    .ok_or(StoreError::NotFound)
}

fn consumer_write_error(e: rusqlite::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("the team already has a consumer named `{name}`"))
    } else if super::is_foreign_key_violation(&e) {
        StoreError::Conflict("no such team".into())
    } else {
        backend(e)
    }
}

const KEY_COLUMNS: &str = "k.id, k.consumer_id, k.name, k.display_prefix, k.allowed_apis, k.expires_at, \
     k.grace_until, k.replaced_by, k.last_used_at, k.revoked_at, k.created_at, k.seq";

fn opt_ts(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| parse_ts(&s))
        .transpose()
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ConsumerKey, i64)> {
    let apis: String = r.get(4)?;
    let mut key = ConsumerKey {
        id: r.get(0)?,
        consumer_id: r.get(1)?,
        name: r.get(2)?,
        display_prefix: r.get(3)?,
        allowed_apis: serde_json::from_str(&apis).unwrap_or_default(),
        status: ConsumerKeyStatus::Active,
        expires_at: opt_ts(r, 5)?,
        grace_until: opt_ts(r, 6)?,
        replaced_by: r.get(7)?,
        last_used_at: opt_ts(r, 8)?,
        revoked_at: opt_ts(r, 9)?,
        created_at: parse_ts(&r.get::<_, String>(10)?)?,
    };
    key.status = crate::consumer_keys::key_status(&key, Utc::now());
    Ok((key, r.get(11)?))
}

fn load_key(conn: &Connection, id: &str) -> StoreResult<ConsumerKey> {
    conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM consumer_keys k WHERE k.id = ?1"),
        [id],
        key_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(k, _)| k)
    .ok_or(StoreError::NotFound)
}

fn insert_key(conn: &Connection, new: &NewConsumerKey) -> StoreResult<String> {
    let id = ids::new_id("key");
    let apis = serde_json::to_string(&new.allowed_apis).map_err(anyhow::Error::from)?;
    conn.execute(
        "INSERT INTO consumer_keys (id, consumer_id, name, lookup, secret_hash, display_prefix, allowed_apis, expires_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![id, new.consumer_id, new.name, new.lookup, new.secret_hash, new.display_prefix, apis,
            new.expires_at.map(ts), ts(Utc::now())],
    )
    .map_err(|e| if super::is_foreign_key_violation(&e) { StoreError::NotFound } else { backend(e) })?;
    Ok(id)
}

#[async_trait]
impl ConsumerStore for SqliteStore {
    async fn create_consumer(&self, new: NewConsumer, ctx: &AuditContext) -> StoreResult<Consumer> {
        let ctx = ctx.clone();
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("con");
            let metadata = serde_json::to_string(&new.metadata).map_err(anyhow::Error::from)?;
            tx.execute(
                "INSERT INTO consumers (id, team_id, name, contact, metadata, status, created_at, updated_at, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?6, 1)",
                params![id, new.team_id, new.name, new.contact, metadata, ts(Utc::now())],
            )
            .map_err(|e| consumer_write_error(e, &new.name))?;
            audit(&tx, &ctx, "consumer.create", &id)?;
            let consumer = load_consumer(&tx, &id)?;
            tx.commit().map_err(backend)?;
            Ok(consumer)
        })
        .await
    }

    async fn consumer(&self, id: &str) -> StoreResult<Consumer> {
        let id = id.to_owned();
        self.read(move |c| load_consumer(c, &id)).await
    }

    async fn list_consumers(
        &self,
        team_id: Option<String>,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Consumer>, Option<i64>)> {
        self.read(move |c| {
            page(c, &format!(
                    "SELECT {CONSUMER_COLUMNS} FROM consumers WHERE seq > ?1 AND (?2 IS NULL OR team_id = ?2) \
                     ORDER BY seq LIMIT ?3"
                ), params![after, team_id, i64::from(limit) + 1], limit, consumer_row)
        })
        .await
    }

    async fn update_consumer(
        &self,
        id: &str,
        patch: ConsumerPatch,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Consumer> {
        self.versioned_write(id, expected_version, ctx, load_consumer, move |tx, id, current, changes| {
            let action = crate::store::rules::consumer_action(&patch, current.status);
            let name = patch.name.unwrap_or(current.name);
            let metadata = serde_json::to_string(&patch.metadata.unwrap_or(current.metadata))
                .map_err(anyhow::Error::from)?;
            tx.execute(
                "UPDATE consumers SET name = ?2, contact = ?3, metadata = ?4, status = ?5, updated_at = ?6, \
                 version = version + 1 WHERE id = ?1",
                params![id, name, patch.contact.unwrap_or(current.contact), metadata,
                    status_str(patch.status.unwrap_or(current.status)), ts(Utc::now())],
            )
            .map_err(|e| consumer_write_error(e, &name))?;
            changes.push(Change::Consumer { consumer_id: id.to_owned() });
            Ok((load_consumer(tx, id)?, action.into()))
        })
        .await
    }

    async fn delete_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load_consumer,
            |tx, id, _, changes| {
                tx.execute("DELETE FROM consumers WHERE id = ?1", [id])
                    .map_err(|e| {
                        if super::is_foreign_key_violation(&e) {
                            StoreError::Conflict(
                            "the consumer has wallet history, which is kept: suspend it instead"
                                .into(),
                        )
                        } else {
                            backend(e)
                        }
                    })?;
                changes.push(Change::Consumer {
                    consumer_id: id.to_owned(),
                });
                Ok(((), "consumer.delete".into()))
            },
        )
        .await
    }

    async fn create_consumer_key(
        &self,
        new: NewConsumerKey,
        ctx: &AuditContext,
    ) -> StoreResult<ConsumerKey> {
        let ctx = ctx.clone();
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            load_consumer(&tx, &new.consumer_id)?;
            let id = insert_key(&tx, &new)?;
            audit(&tx, &ctx, "consumer_key.create", &id)?;
            let key = load_key(&tx, &id)?;
            changes.push(Change::Key {
                key_id: key.id.clone(),
                consumer_id: key.consumer_id.clone(),
            });
            tx.commit().map_err(backend)?;
            Ok(key)
        })
        .await
    }

    async fn rotate_consumer_key(
        &self,
        old_id: &str,
        new: NewConsumerKey,
        grace_until: DateTime<Utc>,
        ctx: &AuditContext,
    ) -> StoreResult<ConsumerKey> {
        let (old_id, ctx) = (old_id.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let old = load_key(&tx, &old_id)?;
            match old.status {
                ConsumerKeyStatus::Active => {}
                ConsumerKeyStatus::Rotating => {
                    return Err(StoreError::Conflict(
                        "this key was already rotated; rotate its successor".into(),
                    ));
                }
                ConsumerKeyStatus::Expired | ConsumerKeyStatus::Revoked => {
                    return Err(StoreError::Conflict(
                        "an expired or revoked key cannot be rotated".into(),
                    ));
                }
            }
            let id = insert_key(&tx, &new)?;
            tx.execute(
                "UPDATE consumer_keys SET grace_until = ?2, replaced_by = ?3 WHERE id = ?1",
                params![old_id, ts(grace_until), id],
            )
            .map_err(backend)?;
            audit(&tx, &ctx, "consumer_key.rotate", &old_id)?;
            audit(&tx, &ctx, "consumer_key.create", &id)?;
            let key = load_key(&tx, &id)?;
            changes.push(Change::Key {
                key_id: old_id.clone(),
                consumer_id: key.consumer_id.clone(),
            });
            changes.push(Change::Key {
                key_id: key.id.clone(),
                consumer_id: key.consumer_id.clone(),
            });
            tx.commit().map_err(backend)?;
            Ok(key)
        })
        .await
    }

    async fn revoke_consumer_key(&self, id: &str, ctx: &AuditContext) -> StoreResult<ConsumerKey> {
        let (id, ctx) = (id.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let key = load_key(&tx, &id)?;
            if key.revoked_at.is_none() {
                tx.execute(
                    "UPDATE consumer_keys SET revoked_at = ?2 WHERE id = ?1",
                    params![id, ts(Utc::now())],
                )
                .map_err(backend)?;
                audit(&tx, &ctx, "consumer_key.revoke", &id)?;
            }
            let key = load_key(&tx, &id)?;
            changes.push(Change::Key {
                key_id: key.id.clone(),
                consumer_id: key.consumer_id.clone(),
            });
            tx.commit().map_err(backend)?;
            Ok(key)
        })
        .await
    }

    async fn consumer_key(&self, id: &str) -> StoreResult<ConsumerKey> {
        let id = id.to_owned();
        self.read(move |c| load_key(c, &id)).await
    }

    async fn list_consumer_keys(
        &self,
        consumer_id: Option<String>,
        prefix: Option<String>,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<ConsumerKey>, Option<i64>)> {
        self.read(move |c| {
            // Prefixes are [a-z0-9_] (checked by the handler); `_` is a LIKE
            // wildcard, so it is escaped.
            let pattern = prefix.map(|p| format!("{}%", p.replace('_', "\\_")));
            page(c, &format!(
                    "SELECT {KEY_COLUMNS} FROM consumer_keys k WHERE k.seq > ?1 \
                     AND (?2 IS NULL OR k.consumer_id = ?2) AND (?3 IS NULL OR k.display_prefix LIKE ?3 ESCAPE '\\') \
                     ORDER BY k.seq LIMIT ?4"
                ), params![after, consumer_id, pattern, i64::from(limit) + 1], limit, key_row)
        })
        .await
    }

    async fn key_lookups(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            c.prepare_cached("SELECT lookup FROM consumer_keys")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(backend)
        })
        .await
    }

    async fn key_credential(&self, lookup: &str) -> StoreResult<Option<KeyCredential>> {
        let lookup = lookup.to_owned();
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {KEY_COLUMNS}, k.secret_hash, c.status, c.team_id FROM consumer_keys k \
                     JOIN consumers c ON c.id = k.consumer_id WHERE k.lookup = ?1"
                ),
                [lookup],
                |r| {
                    let (key, _) = key_row(r)?;
                    let status: String = r.get(13)?;
                    Ok(KeyCredential {
                        key,
                        secret_hash: r.get(12)?,
                        consumer_status: if status == "suspended" {
                            ConsumerStatus::Suspended
                        } else {
                            ConsumerStatus::Active
                        },
                        team_id: r.get(14)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn touch_consumer_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            c.execute(
                "UPDATE consumer_keys SET last_used_at = ?2 WHERE id = ?1",
                params![id, ts(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
