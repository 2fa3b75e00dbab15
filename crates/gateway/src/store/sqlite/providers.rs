//! Providers, their key pools and the pools' status history in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tollgate_api::{
    Provider, ProviderKey, ProviderKeyEvent, ProviderKeyStatus, ProviderKind, ProviderModel,
};

use super::{SqliteStore, audit, backend, is_unique_violation, page, parse_ts, ts};
use crate::changes::Change;
use crate::ids;
use crate::store::{
    AuditContext, KeyActor, NewProviderKey, ProviderKeyChange, ProviderSpec, ProviderStore,
    SealedProviderKey, StoreError, StoreResult,
};

const PROVIDER_COLUMNS: &str = "p.id, p.name, p.kind, p.base_url, p.currency, p.models, \
    p.timeout_secs, p.enabled, p.created_at, p.updated_at, p.version, \
    (SELECT count(*) FROM provider_keys k WHERE k.provider_id = p.id), \
    (SELECT count(*) FROM provider_keys k WHERE k.provider_id = p.id AND k.status = 'active'), \
    p.seq";

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn kind_of(text: &str) -> rusqlite::Result<ProviderKind> {
    match text {
        "openai-compatible" => Ok(ProviderKind::OpenaiCompatible),
        "anthropic" => Ok(ProviderKind::Anthropic),
        other => Err(conversion(std::io::Error::other(format!(
            "unknown provider kind {other}"
        )))),
    }
}

fn status_of(text: &str) -> rusqlite::Result<ProviderKeyStatus> {
    ProviderKeyStatus::parse(text).ok_or_else(|| {
        conversion(std::io::Error::other(format!(
            "unknown provider key status {text}"
        )))
    })
}

fn optional_ts(text: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_ts).transpose()
}

fn provider_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Provider, i64)> {
    let models: String = row.get(5)?;
    Ok((
        Provider {
            id: row.get(0)?,
            name: row.get(1)?,
            kind: kind_of(&row.get::<_, String>(2)?)?,
            base_url: row.get(3)?,
            currency: row.get(4)?,
            models: serde_json::from_str::<Vec<ProviderModel>>(&models).map_err(conversion)?,
            timeout_secs: row.get(6)?,
            enabled: row.get(7)?,
            created_at: parse_ts(&row.get::<_, String>(8)?)?,
            updated_at: parse_ts(&row.get::<_, String>(9)?)?,
            version: row.get(10)?,
            keys_total: row.get(11)?,
            keys_active: row.get(12)?,
        },
        row.get(13)?,
    ))
}

fn load_provider(conn: &Connection, id: &str) -> StoreResult<Provider> {
    conn.query_row(
        &format!("SELECT {PROVIDER_COLUMNS} FROM providers p WHERE p.id = ?1"),
        [id],
        provider_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(p, _)| p)
    .ok_or(StoreError::NotFound)
}

const KEY_COLUMNS: &str = "id, provider_id, label, last4, status, status_reason, \
    status_changed_at, priority, expires_at, requests, failures, tokens, last_used_at, \
    created_at, version, secret_sealed";

fn key_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SealedProviderKey> {
    Ok(SealedProviderKey {
        key: ProviderKey {
            id: row.get(0)?,
            provider_id: row.get(1)?,
            label: row.get(2)?,
            last4: row.get(3)?,
            status: status_of(&row.get::<_, String>(4)?)?,
            status_reason: row.get(5)?,
            status_changed_at: parse_ts(&row.get::<_, String>(6)?)?,
            priority: row.get(7)?,
            expires_at: optional_ts(row.get(8)?)?,
            requests: row.get(9)?,
            failures: row.get(10)?,
            tokens: row.get(11)?,
            last_used_at: optional_ts(row.get(12)?)?,
            created_at: parse_ts(&row.get::<_, String>(13)?)?,
            version: row.get(14)?,
        },
        secret_sealed: row.get(15)?,
    })
}

fn load_key(conn: &Connection, id: &str) -> StoreResult<SealedProviderKey> {
    conn.query_row(
        &format!("SELECT {KEY_COLUMNS} FROM provider_keys WHERE id = ?1"),
        [id],
        key_row,
    )
    .optional()
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

fn keys_of(conn: &Connection, provider_id: &str) -> StoreResult<Vec<SealedProviderKey>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM provider_keys WHERE provider_id = ?1 ORDER BY priority, seq"
        ))
        .map_err(backend)?;
    stmt.query_map([provider_id], key_row)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)
}

/// Model names are unique across providers: the data plane routes by them.
fn check_models_free(conn: &Connection, spec: &ProviderSpec, except: &str) -> StoreResult<()> {
    let others = conn
        .prepare_cached("SELECT name, models FROM providers WHERE id != ?1")
        .map_err(backend)?
        .query_map([except], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    crate::store::rules::models_free(spec, others.iter().map(|(n, m)| (n.as_str(), m.as_str())))
}

fn provider_write_error(e: rusqlite::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a provider named `{name}` already exists"))
    } else {
        backend(e)
    }
}

fn record_event(
    tx: &Connection,
    key: &ProviderKey,
    to: ProviderKeyStatus,
    reason: &str,
    actor: &str,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO provider_key_events (key_id, provider_id, from_status, to_status, reason, actor, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![key.id, key.provider_id, key.status.as_str(), to.as_str(), reason, actor, ts(Utc::now())],
    )
    .map_err(backend)?;
    Ok(())
}

fn admin_actor(ctx: &AuditContext) -> String {
    format!("admin:{}", ctx.token_id)
}

#[async_trait]
impl ProviderStore for SqliteStore {
    async fn create_provider(
        &self,
        spec: ProviderSpec,
        ctx: &AuditContext,
    ) -> StoreResult<Provider> {
        let ctx = ctx.clone();
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("prv");
            check_models_free(&tx, &spec, &id)?;
            let now = ts(Utc::now());
            tx.execute(
                "INSERT INTO providers (id, name, kind, base_url, currency, models, timeout_secs, enabled, \
                 created_at, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 1)",
                params![id, spec.name, spec.kind.as_str(), spec.base_url, spec.currency,
                    serde_json::to_string(&spec.models).map_err(|e| StoreError::Backend(e.into()))?,
                    spec.timeout_secs, spec.enabled, now],
            )
            .map_err(|e| provider_write_error(e, &spec.name))?;
            audit(&tx, &ctx, "provider.create", &id)?;
            let provider = load_provider(&tx, &id)?;
            changes.push(Change::Provider { provider_id: id.clone() });
            tx.commit().map_err(backend)?;
            Ok(provider)
        })
        .await
    }

    async fn provider(&self, id: &str) -> StoreResult<Provider> {
        let id = id.to_owned();
        self.read(move |c| load_provider(c, &id)).await
    }

    async fn list_providers(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Provider>, Option<i64>)> {
        self.read(move |c| {
            page(c, &format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers p WHERE p.seq > ?1 ORDER BY p.seq LIMIT ?2"
                ), params![after, i64::from(limit) + 1], limit, provider_row)
        })
        .await
    }

    async fn update_provider(
        &self,
        id: &str,
        spec: ProviderSpec,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Provider> {
        self.versioned_write(id, expected_version, ctx, load_provider, move |tx, id, _, changes| {
            check_models_free(tx, &spec, id)?;
            tx.execute(
                "UPDATE providers SET name = ?2, kind = ?3, base_url = ?4, currency = ?5, models = ?6, \
                 timeout_secs = ?7, enabled = ?8, updated_at = ?9, version = version + 1 WHERE id = ?1",
                params![id, spec.name, spec.kind.as_str(), spec.base_url, spec.currency,
                    serde_json::to_string(&spec.models).map_err(|e| StoreError::Backend(e.into()))?,
                    spec.timeout_secs, spec.enabled, ts(Utc::now())],
            )
            .map_err(|e| provider_write_error(e, &spec.name))?;
            changes.push(Change::Provider { provider_id: id.to_owned() });
            Ok((load_provider(tx, id)?, "provider.update".into()))
        })
        .await
    }

    async fn delete_provider(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load_provider,
            |tx, id, _, changes| {
                tx.execute("DELETE FROM providers WHERE id = ?1", [id])
                    .map_err(backend)?;
                changes.push(Change::Provider {
                    provider_id: id.to_owned(),
                });
                Ok(((), "provider.delete".into()))
            },
        )
        .await
    }

    async fn create_provider_key(
        &self,
        provider_id: &str,
        new: NewProviderKey,
        ctx: &AuditContext,
    ) -> StoreResult<ProviderKey> {
        let (provider_id, ctx) = (provider_id.to_owned(), ctx.clone());
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            load_provider(&tx, &provider_id)?;
            let id = ids::new_id("pkey");
            let now = ts(Utc::now());
            tx.execute(
                "INSERT INTO provider_keys (id, provider_id, label, secret_sealed, last4, status, \
                 status_changed_at, priority, expires_at, created_at, version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?6, 1)",
                params![id, provider_id, new.label, new.secret_sealed, new.last4, now, new.priority,
                    new.expires_at.map(ts)],
            )
            .map_err(backend)?;
            let key = load_key(&tx, &id)?.key;
            tx.execute(
                "INSERT INTO provider_key_events (key_id, provider_id, from_status, to_status, reason, actor, at) \
                 VALUES (?1, ?2, NULL, 'active', 'added', ?3, ?4)",
                params![id, provider_id, admin_actor(&ctx), now],
            )
            .map_err(backend)?;
            audit(&tx, &ctx, "provider_key.create", &id)?;
            changes.push(Change::Provider { provider_id: provider_id.clone() });
            tx.commit().map_err(backend)?;
            Ok(key)
        })
        .await
    }

    async fn provider_keys(&self, provider_id: &str) -> StoreResult<Vec<ProviderKey>> {
        let provider_id = provider_id.to_owned();
        self.read(move |c| {
            load_provider(c, &provider_id)?;
            Ok(keys_of(c, &provider_id)?
                .into_iter()
                .map(|k| k.key)
                .collect())
        })
        .await
    }

    async fn provider_key(&self, id: &str) -> StoreResult<ProviderKey> {
        let id = id.to_owned();
        self.read(move |c| Ok(load_key(c, &id)?.key)).await
    }

    async fn update_provider_key(
        &self,
        id: &str,
        change: ProviderKeyChange,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<ProviderKey> {
        let actor = admin_actor(ctx);
        let load = |c: &Connection, id: &str| Ok(load_key(c, id)?.key);
        self.versioned_write(id, expected_version, ctx, load, move |tx, id, current, changes| {
            let now = ts(Utc::now());
            if let Some((status, reason)) = &change.status
                && *status != current.status
            {
                record_event(tx, &current, *status, reason, &actor)?;
                tx.execute(
                    "UPDATE provider_keys SET status = ?2, status_reason = ?3, status_changed_at = ?4 \
                     WHERE id = ?1",
                    params![id, status.as_str(), reason, now],
                )
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE provider_keys SET label = ?2, priority = ?3, version = version + 1 WHERE id = ?1",
                params![
                    id,
                    change.label.as_deref().unwrap_or(&current.label),
                    change.priority.unwrap_or(current.priority)
                ],
            )
            .map_err(backend)?;
            let key = load_key(tx, id)?.key;
            changes.push(Change::Provider { provider_id: key.provider_id.clone() });
            Ok((key, "provider_key.update".into()))
        })
        .await
    }

    async fn delete_provider_key(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        let load = |c: &Connection, id: &str| Ok(load_key(c, id)?.key);
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            |tx, id, current, changes| {
                tx.execute("DELETE FROM provider_keys WHERE id = ?1", [id])
                    .map_err(backend)?;
                changes.push(Change::Provider {
                    provider_id: current.provider_id,
                });
                Ok(((), "provider_key.delete".into()))
            },
        )
        .await
    }

    async fn set_provider_key_status(
        &self,
        id: &str,
        status: ProviderKeyStatus,
        reason: &str,
        actor: KeyActor<'_>,
    ) -> StoreResult<bool> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        let (actor, ctx) = match actor {
            KeyActor::Admin(ctx) => (admin_actor(ctx), Some(ctx.clone())),
            KeyActor::Gateway => ("gateway".to_owned(), None),
        };
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let current = load_key(&tx, &id)?.key;
            if current.status == status {
                return Ok(false);
            }
            record_event(&tx, &current, status, &reason, &actor)?;
            tx.execute(
                "UPDATE provider_keys SET status = ?2, status_reason = ?3, status_changed_at = ?4, \
                 version = version + 1 WHERE id = ?1",
                params![id, status.as_str(), reason, ts(Utc::now())],
            )
            .map_err(backend)?;
            if let Some(ctx) = &ctx {
                audit(&tx, ctx, "provider_key.status", &id)?;
            }
            changes.push(Change::Provider {
                provider_id: current.provider_id.clone(),
            });
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn provider_key_events(
        &self,
        provider_id: &str,
        key_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ProviderKeyEvent>> {
        let (provider_id, key_id) = (provider_id.to_owned(), key_id.map(str::to_owned));
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT key_id, provider_id, from_status, to_status, reason, actor, at \
                     FROM provider_key_events WHERE provider_id = ?1 AND (?2 IS NULL OR key_id = ?2) \
                     ORDER BY seq DESC LIMIT ?3",
                )
                .map_err(backend)?;
            stmt.query_map(params![provider_id, key_id, limit], |row| {
                Ok(ProviderKeyEvent {
                    key_id: row.get(0)?,
                    provider_id: row.get(1)?,
                    from: row
                        .get::<_, Option<String>>(2)?
                        .as_deref()
                        .map(status_of)
                        .transpose()?,
                    to: status_of(&row.get::<_, String>(3)?)?,
                    reason: row.get(4)?,
                    actor: row.get(5)?,
                    at: parse_ts(&row.get::<_, String>(6)?)?,
                })
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
        })
        .await
    }

    async fn sealed_provider_keys(&self, provider_id: &str) -> StoreResult<Vec<SealedProviderKey>> {
        let provider_id = provider_id.to_owned();
        self.read(move |c| {
            load_provider(c, &provider_id)?;
            keys_of(c, &provider_id)
        })
        .await
    }

    async fn routing_table(&self) -> StoreResult<Vec<(Provider, Vec<SealedProviderKey>)>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers p WHERE p.enabled = 1 ORDER BY p.seq"
                ))
                .map_err(backend)?;
            let providers = stmt
                .query_map([], provider_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            providers
                .into_iter()
                .map(|(p, _)| {
                    let keys = keys_of(c, &p.id)?;
                    Ok((p, keys))
                })
                .collect()
        })
        .await
    }
}
