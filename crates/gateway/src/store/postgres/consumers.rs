//! Consumers and their API keys in PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tollgate_api::{Consumer, ConsumerKey, ConsumerKeyStatus, ConsumerStatus};

use super::{
    Column, PgStore, audit, backend, is_foreign_key_violation, is_unique_violation, json, now, page,
};
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

fn status_of(text: &str) -> ConsumerStatus {
    if text == "suspended" {
        ConsumerStatus::Suspended
    } else {
        ConsumerStatus::Active
    }
}

fn consumer_row(r: &Row) -> StoreResult<Consumer> {
    Ok(Consumer {
        id: r.col("id")?,
        team_id: r.col("team_id")?,
        name: r.col("name")?,
        contact: r.col("contact")?,
        metadata: serde_json::from_str(r.col("metadata")?).unwrap_or_default(),
        status: status_of(r.col("status")?),
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        version: r.col("version")?,
    })
}

/// The consumer `id`; locked until the end of the transaction when `tx` is one.
async fn load_consumer(tx: &impl GenericClient, id: &str) -> StoreResult<Consumer> {
    let row = tx
        .query_opt(
            &format!("SELECT {CONSUMER_COLUMNS} FROM consumers WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(consumer_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

fn consumer_write_error(e: tokio_postgres::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("the team already has a consumer named `{name}`"))
    } else if is_foreign_key_violation(&e) {
        StoreError::Conflict("no such team".into())
    } else {
        backend(e)
    }
}

const KEY_COLUMNS: &str = "k.id, k.consumer_id, k.name, k.display_prefix, k.allowed_apis, k.expires_at, \
     k.grace_until, k.replaced_by, k.last_used_at, k.revoked_at, k.created_at, k.seq";

fn key_row(r: &Row) -> StoreResult<ConsumerKey> {
    let mut key = ConsumerKey {
        id: r.col("id")?,
        consumer_id: r.col("consumer_id")?,
        name: r.col("name")?,
        display_prefix: r.col("display_prefix")?,
        allowed_apis: serde_json::from_str(r.col("allowed_apis")?).unwrap_or_default(),
        status: ConsumerKeyStatus::Active,
        expires_at: r.col("expires_at")?,
        grace_until: r.col("grace_until")?,
        replaced_by: r.col("replaced_by")?,
        last_used_at: r.col("last_used_at")?,
        revoked_at: r.col("revoked_at")?,
        created_at: r.col("created_at")?,
    };
    key.status = crate::consumer_keys::key_status(&key, Utc::now());
    Ok(key)
}

async fn load_key(tx: &impl GenericClient, id: &str) -> StoreResult<ConsumerKey> {
    let row = tx
        .query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM consumer_keys k WHERE k.id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(key_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

async fn insert_key(tx: &Transaction<'_>, new: &NewConsumerKey) -> StoreResult<String> {
    let id = ids::new_id("key");
    tx.execute(
        "INSERT INTO consumer_keys (id, consumer_id, name, lookup, secret_hash, display_prefix, \
         allowed_apis, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &id,
            &new.consumer_id,
            &new.name,
            &new.lookup,
            &new.secret_hash,
            &new.display_prefix,
            &json(&new.allowed_apis)?,
            &new.expires_at,
            &now(),
        ],
    )
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::NotFound
        } else {
            backend(e)
        }
    })?;
    Ok(id)
}

fn key_change(key: &ConsumerKey) -> Change {
    Change::Key {
        key_id: key.id.clone(),
        consumer_id: key.consumer_id.clone(),
    }
}

#[async_trait]
impl ConsumerStore for PgStore {
    async fn create_consumer(&self, new: NewConsumer, ctx: &AuditContext) -> StoreResult<Consumer> {
        self.write_changes(async |tx, _| {
            let id = ids::new_id("con");
            tx.execute(
                "INSERT INTO consumers (id, team_id, name, contact, metadata, status, created_at, \
                 updated_at, version) VALUES ($1, $2, $3, $4, $5, 'active', $6, $6, 1)",
                &[
                    &id,
                    &new.team_id,
                    &new.name,
                    &new.contact,
                    &json(&new.metadata)?,
                    &now(),
                ],
            )
            .await
            .map_err(|e| consumer_write_error(e, &new.name))?;
            audit(tx, ctx, "consumer.create", &id).await?;
            load_consumer(tx, &id).await
        })
        .await
    }

    async fn consumer(&self, id: &str) -> StoreResult<Consumer> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {CONSUMER_COLUMNS} FROM consumers WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(consumer_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn list_consumers(
        &self,
        team_id: Option<String>,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Consumer>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {CONSUMER_COLUMNS} FROM consumers WHERE seq > $1 \
                     AND ($2::text IS NULL OR team_id = $2) ORDER BY seq LIMIT $3"
                ),
                &[&after, &team_id, &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, consumer_row)
    }

    async fn update_consumer(
        &self,
        id: &str,
        patch: ConsumerPatch,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Consumer> {
        let load = async |tx: &Transaction<'_>, id: &str| load_consumer(tx, id).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            async |tx, id, current, changes| {
                let action = crate::store::rules::consumer_action(&patch, current.status);
                let name = patch.name.unwrap_or(current.name);
                let metadata = json(&patch.metadata.unwrap_or(current.metadata))?;
                tx.execute(
                    "UPDATE consumers SET name = $2, contact = $3, metadata = $4, status = $5, \
                 updated_at = $6, version = version + 1 WHERE id = $1",
                    &[
                        &id,
                        &name,
                        &patch.contact.unwrap_or(current.contact),
                        &metadata,
                        &status_str(patch.status.unwrap_or(current.status)),
                        &now(),
                    ],
                )
                .await
                .map_err(|e| consumer_write_error(e, &name))?;
                changes.push(Change::Consumer {
                    consumer_id: id.to_owned(),
                });
                Ok((load_consumer(tx, id).await?, action.into()))
            },
        )
        .await
    }

    async fn delete_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        let load = async |tx: &Transaction<'_>, id: &str| load_consumer(tx, id).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            async |tx, id, _, changes| {
                tx.execute("DELETE FROM consumers WHERE id = $1", &[&id])
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
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
        self.write_changes(async |tx, changes| {
            load_consumer(tx, &new.consumer_id).await?;
            let id = insert_key(tx, &new).await?;
            audit(tx, ctx, "consumer_key.create", &id).await?;
            let key = load_key(tx, &id).await?;
            changes.push(key_change(&key));
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
        self.write_changes(async |tx, changes| {
            let old = load_key(tx, old_id).await?;
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
            let id = insert_key(tx, &new).await?;
            tx.execute(
                "UPDATE consumer_keys SET grace_until = $2, replaced_by = $3 WHERE id = $1",
                &[&old_id, &grace_until, &id],
            )
            .await
            .map_err(backend)?;
            audit(tx, ctx, "consumer_key.rotate", old_id).await?;
            audit(tx, ctx, "consumer_key.create", &id).await?;
            let key = load_key(tx, &id).await?;
            changes.push(key_change(&old));
            changes.push(key_change(&key));
            Ok(key)
        })
        .await
    }

    async fn revoke_consumer_key(&self, id: &str, ctx: &AuditContext) -> StoreResult<ConsumerKey> {
        self.write_changes(async |tx, changes| {
            let key = load_key(tx, id).await?;
            if key.revoked_at.is_none() {
                tx.execute(
                    "UPDATE consumer_keys SET revoked_at = $2 WHERE id = $1",
                    &[&id, &now()],
                )
                .await
                .map_err(backend)?;
                audit(tx, ctx, "consumer_key.revoke", id).await?;
            }
            let key = load_key(tx, id).await?;
            changes.push(key_change(&key));
            Ok(key)
        })
        .await
    }

    async fn consumer_key(&self, id: &str) -> StoreResult<ConsumerKey> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM consumer_keys k WHERE k.id = $1"),
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.as_ref()
            .map(key_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn list_consumer_keys(
        &self,
        consumer_id: Option<String>,
        prefix: Option<String>,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<ConsumerKey>, Option<i64>)> {
        // Prefixes are [a-z0-9_] (checked by the handler); `_` is a LIKE
        // wildcard, so it is escaped.
        let pattern = prefix.map(|p| format!("{}%", p.replace('_', "\\_")));
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM consumer_keys k WHERE k.seq > $1 \
                     AND ($2::text IS NULL OR k.consumer_id = $2) \
                     AND ($3::text IS NULL OR k.display_prefix LIKE $3) ORDER BY k.seq LIMIT $4"
                ),
                &[&after, &consumer_id, &pattern, &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, key_row)
    }

    async fn key_lookups(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query("SELECT lookup FROM consumer_keys", &[])
            .await
            .map_err(backend)?;
        rows.iter().map(|r| r.col("lookup")).collect()
    }

    async fn key_credential(&self, lookup: &str) -> StoreResult<Option<KeyCredential>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {KEY_COLUMNS}, k.secret_hash, c.status AS consumer_status, c.team_id \
                     FROM consumer_keys k JOIN consumers c ON c.id = k.consumer_id WHERE k.lookup = $1"
                ),
                &[&lookup],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(KeyCredential {
                key: key_row(&r)?,
                secret_hash: r.col("secret_hash")?,
                consumer_status: status_of(r.col("consumer_status")?),
                team_id: r.col("team_id")?,
            })
        })
        .transpose()
    }

    async fn touch_consumer_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE consumer_keys SET last_used_at = $2 WHERE id = $1",
                &[&id, &at],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }
}
