//! Providers, their key pools and the pools' status history in PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tollgate_api::{
    Provider, ProviderKey, ProviderKeyEvent, ProviderKeyStatus, ProviderKind, ProviderModel,
};

use super::{Column, PgStore, audit, backend, is_unique_violation, json, now, page};
use crate::changes::Change;
use crate::ids;
use crate::store::{
    AuditContext, KeyActor, NewProviderKey, ProviderKeyChange, ProviderSpec, ProviderStore,
    SealedProviderKey, StoreError, StoreResult,
};

/// Provider writes take this lock (for their transaction): model names are
/// unique across providers, which no index can say, so two nodes must not
/// check them at once.
const PROVIDERS_LOCK: i64 = 0x7072_6f76_6964_6572; // "provider"

const PROVIDER_COLUMNS: &str = "p.id, p.name, p.kind, p.base_url, p.currency, p.models, \
    p.timeout_secs, p.enabled, p.created_at, p.updated_at, p.version, \
    (SELECT count(*) FROM provider_keys k WHERE k.provider_id = p.id) AS keys_total, \
    (SELECT count(*) FROM provider_keys k WHERE k.provider_id = p.id AND k.status = 'active') AS keys_active, \
    p.seq";

fn corrupt(what: String) -> StoreError {
    StoreError::Backend(anyhow::anyhow!(what))
}

fn kind_of(text: &str) -> StoreResult<ProviderKind> {
    match text {
        "openai-compatible" => Ok(ProviderKind::OpenaiCompatible),
        "anthropic" => Ok(ProviderKind::Anthropic),
        other => Err(corrupt(format!("unknown provider kind {other}"))),
    }
}

fn status_of(text: &str) -> StoreResult<ProviderKeyStatus> {
    ProviderKeyStatus::parse(text).ok_or_else(|| corrupt(format!("unknown key status {text}")))
}

fn unsigned(r: &Row, name: &str) -> StoreResult<u32> {
    let value: i64 = match r.try_get::<_, i32>(name) {
        Ok(v) => i64::from(v),
        Err(_) => r.col(name)?,
    };
    u32::try_from(value).map_err(|e| StoreError::Backend(e.into()))
}

fn provider_row(r: &Row) -> StoreResult<Provider> {
    Ok(Provider {
        id: r.col("id")?,
        name: r.col("name")?,
        kind: kind_of(r.col("kind")?)?,
        base_url: r.col("base_url")?,
        currency: r.col("currency")?,
        models: serde_json::from_str::<Vec<ProviderModel>>(r.col("models")?)
            .map_err(|e| StoreError::Backend(e.into()))?,
        timeout_secs: unsigned(r, "timeout_secs")?,
        enabled: r.col("enabled")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        version: r.col("version")?,
        keys_total: unsigned(r, "keys_total")?,
        keys_active: unsigned(r, "keys_active")?,
    })
}

async fn load_provider(client: &impl GenericClient, id: &str) -> StoreResult<Provider> {
    let row = client
        .query_opt(
            &format!("SELECT {PROVIDER_COLUMNS} FROM providers p WHERE p.id = $1"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(provider_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

/// The provider `id` for a write: the providers' lock taken, the row locked.
async fn lock_provider(tx: &Transaction<'_>, id: &str) -> StoreResult<Provider> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PROVIDERS_LOCK])
        .await
        .map_err(backend)?;
    tx.execute("SELECT 1 FROM providers WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(backend)?;
    load_provider(tx, id).await
}

const KEY_COLUMNS: &str = "id, provider_id, label, last4, status, status_reason, \
    status_changed_at, priority, expires_at, requests, failures, tokens, last_used_at, \
    created_at, version, secret_sealed";

fn key_row(r: &Row) -> StoreResult<SealedProviderKey> {
    Ok(SealedProviderKey {
        key: ProviderKey {
            id: r.col("id")?,
            provider_id: r.col("provider_id")?,
            label: r.col("label")?,
            last4: r.col("last4")?,
            status: status_of(r.col("status")?)?,
            status_reason: r.col("status_reason")?,
            status_changed_at: r.col("status_changed_at")?,
            priority: unsigned(r, "priority")?,
            expires_at: r.col("expires_at")?,
            requests: r.col("requests")?,
            failures: r.col("failures")?,
            tokens: r.col("tokens")?,
            last_used_at: r.col("last_used_at")?,
            created_at: r.col("created_at")?,
            version: r.col("version")?,
        },
        secret_sealed: r.col("secret_sealed")?,
    })
}

async fn load_key(client: &impl GenericClient, id: &str, lock: bool) -> StoreResult<ProviderKey> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM provider_keys WHERE id = $1{lock}"),
            &[&id],
        )
        .await
        .map_err(backend)?;
    Ok(row
        .as_ref()
        .map(key_row)
        .transpose()?
        .ok_or(StoreError::NotFound)?
        .key)
}

async fn keys_of(
    client: &impl GenericClient,
    provider_id: &str,
) -> StoreResult<Vec<SealedProviderKey>> {
    let rows = client
        .query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM provider_keys WHERE provider_id = $1 ORDER BY priority, seq"
            ),
            &[&provider_id],
        )
        .await
        .map_err(backend)?;
    rows.iter().map(key_row).collect()
}

/// Model names are unique across providers: the data plane routes by them.
async fn check_models_free(
    tx: &Transaction<'_>,
    spec: &ProviderSpec,
    except: &str,
) -> StoreResult<()> {
    let rows = tx
        .query(
            "SELECT name, models FROM providers WHERE id <> $1",
            &[&except],
        )
        .await
        .map_err(backend)?;
    let others = rows
        .iter()
        .map(|r| Ok((r.col::<&str>("name")?, r.col::<&str>("models")?)))
        .collect::<StoreResult<Vec<_>>>()?;
    crate::store::rules::models_free(spec, others)
}

fn provider_write_error(e: tokio_postgres::Error, name: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!("a provider named `{name}` already exists"))
    } else {
        backend(e)
    }
}

async fn record_event(
    tx: &Transaction<'_>,
    key: &ProviderKey,
    to: ProviderKeyStatus,
    reason: &str,
    actor: &str,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO provider_key_events (key_id, provider_id, from_status, to_status, reason, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&key.id, &key.provider_id, &key.status.as_str(), &to.as_str(), &reason, &actor, &now()],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

fn admin_actor(ctx: &AuditContext) -> String {
    format!("admin:{}", ctx.token_id)
}

fn timeout(spec: &ProviderSpec) -> StoreResult<i32> {
    i32::try_from(spec.timeout_secs).map_err(|e| StoreError::Backend(e.into()))
}

#[async_trait]
impl ProviderStore for PgStore {
    async fn create_provider(
        &self,
        spec: ProviderSpec,
        ctx: &AuditContext,
    ) -> StoreResult<Provider> {
        self.write_changes(async |tx, changes| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PROVIDERS_LOCK])
                .await
                .map_err(backend)?;
            let id = ids::new_id("prv");
            check_models_free(tx, &spec, &id).await?;
            tx.execute(
                "INSERT INTO providers (id, name, kind, base_url, currency, models, timeout_secs, \
                 enabled, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)",
                &[
                    &id,
                    &spec.name,
                    &spec.kind.as_str(),
                    &spec.base_url,
                    &spec.currency,
                    &json(&spec.models)?,
                    &timeout(&spec)?,
                    &spec.enabled,
                    &now(),
                ],
            )
            .await
            .map_err(|e| provider_write_error(e, &spec.name))?;
            audit(tx, ctx, "provider.create", &id).await?;
            changes.push(Change::Provider {
                provider_id: id.clone(),
            });
            load_provider(tx, &id).await
        })
        .await
    }

    async fn provider(&self, id: &str) -> StoreResult<Provider> {
        load_provider(&self.client().await?, id).await
    }

    async fn list_providers(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Provider>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers p WHERE p.seq > $1 ORDER BY p.seq LIMIT $2"
                ),
                &[&after, &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, provider_row)
    }

    async fn update_provider(
        &self,
        id: &str,
        spec: ProviderSpec,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<Provider> {
        let load = async |tx: &Transaction<'_>, id: &str| lock_provider(tx, id).await;
        self.versioned_write(id, expected_version, ctx, load, async |tx, id, _, changes| {
            check_models_free(tx, &spec, id).await?;
            tx.execute(
                "UPDATE providers SET name = $2, kind = $3, base_url = $4, currency = $5, models = $6, \
                 timeout_secs = $7, enabled = $8, updated_at = $9, version = version + 1 WHERE id = $1",
                &[
                    &id,
                    &spec.name,
                    &spec.kind.as_str(),
                    &spec.base_url,
                    &spec.currency,
                    &json(&spec.models)?,
                    &timeout(&spec)?,
                    &spec.enabled,
                    &now(),
                ],
            )
            .await
            .map_err(|e| provider_write_error(e, &spec.name))?;
            changes.push(Change::Provider { provider_id: id.to_owned() });
            Ok((load_provider(tx, id).await?, "provider.update".into()))
        })
        .await
    }

    async fn delete_provider(
        &self,
        id: &str,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<()> {
        let load = async |tx: &Transaction<'_>, id: &str| lock_provider(tx, id).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            async |tx, id, _, changes| {
                tx.execute("DELETE FROM providers WHERE id = $1", &[&id])
                    .await
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
        self.write_changes(async |tx, changes| {
            tx.execute("SELECT 1 FROM providers WHERE id = $1 FOR SHARE", &[&provider_id])
                .await
                .map_err(backend)?;
            load_provider(tx, provider_id).await?;
            let id = ids::new_id("pkey");
            let now = now();
            tx.execute(
                "INSERT INTO provider_keys (id, provider_id, label, secret_sealed, last4, status, \
                 status_changed_at, priority, expires_at, created_at, version) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $6, 1)",
                &[
                    &id,
                    &provider_id,
                    &new.label,
                    &new.secret_sealed,
                    &new.last4,
                    &now,
                    &i64::from(new.priority),
                    &new.expires_at,
                ],
            )
            .await
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO provider_key_events (key_id, provider_id, from_status, to_status, reason, \
                 actor, at) VALUES ($1, $2, NULL, 'active', 'added', $3, $4)",
                &[&id, &provider_id, &admin_actor(ctx), &now],
            )
            .await
            .map_err(backend)?;
            audit(tx, ctx, "provider_key.create", &id).await?;
            changes.push(Change::Provider { provider_id: provider_id.to_owned() });
            load_key(tx, &id, false).await
        })
        .await
    }

    async fn provider_keys(&self, provider_id: &str) -> StoreResult<Vec<ProviderKey>> {
        let client = self.client().await?;
        load_provider(&client, provider_id).await?;
        Ok(keys_of(&client, provider_id)
            .await?
            .into_iter()
            .map(|k| k.key)
            .collect())
    }

    async fn provider_key(&self, id: &str) -> StoreResult<ProviderKey> {
        load_key(&self.client().await?, id, false).await
    }

    async fn update_provider_key(
        &self,
        id: &str,
        change: ProviderKeyChange,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<ProviderKey> {
        let actor = admin_actor(ctx);
        let load = async |tx: &Transaction<'_>, id: &str| load_key(tx, id, true).await;
        self.versioned_write(id, expected_version, ctx, load, async |tx, id, current, changes| {
            if let Some((status, reason)) = &change.status
                && *status != current.status
            {
                record_event(tx, &current, *status, reason, &actor).await?;
                tx.execute(
                    "UPDATE provider_keys SET status = $2, status_reason = $3, status_changed_at = $4 \
                     WHERE id = $1",
                    &[&id, &status.as_str(), reason, &now()],
                )
                .await
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE provider_keys SET label = $2, priority = $3, version = version + 1 WHERE id = $1",
                &[
                    &id,
                    &change.label.as_deref().unwrap_or(&current.label),
                    &i64::from(change.priority.unwrap_or(current.priority)),
                ],
            )
            .await
            .map_err(backend)?;
            let key = load_key(tx, id, false).await?;
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
        let load = async |tx: &Transaction<'_>, id: &str| load_key(tx, id, true).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load,
            async |tx, id, current, changes| {
                tx.execute("DELETE FROM provider_keys WHERE id = $1", &[&id])
                    .await
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
        let (actor, ctx) = match actor {
            KeyActor::Admin(ctx) => (admin_actor(ctx), Some(ctx)),
            KeyActor::Gateway => ("gateway".to_owned(), None),
        };
        self.write_changes(async |tx, changes| {
            let current = load_key(tx, id, true).await?;
            if current.status == status {
                return Ok(false);
            }
            record_event(tx, &current, status, reason, &actor).await?;
            tx.execute(
                "UPDATE provider_keys SET status = $2, status_reason = $3, status_changed_at = $4, \
                 version = version + 1 WHERE id = $1",
                &[&id, &status.as_str(), &reason, &now()],
            )
            .await
            .map_err(backend)?;
            if let Some(ctx) = ctx {
                audit(tx, ctx, "provider_key.status", id).await?;
            }
            changes.push(Change::Provider {
                provider_id: current.provider_id.clone(),
            });
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
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key_id, provider_id, from_status, to_status, reason, actor, at \
                 FROM provider_key_events WHERE provider_id = $1 AND ($2::text IS NULL OR key_id = $2) \
                 ORDER BY seq DESC LIMIT $3",
                &[&provider_id, &key_id, &i64::from(limit)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(ProviderKeyEvent {
                    key_id: r.col("key_id")?,
                    provider_id: r.col("provider_id")?,
                    from: r
                        .col::<Option<&str>>("from_status")?
                        .map(status_of)
                        .transpose()?,
                    to: status_of(r.col("to_status")?)?,
                    reason: r.col("reason")?,
                    actor: r.col("actor")?,
                    at: r.col("at")?,
                })
            })
            .collect()
    }

    async fn sealed_provider_keys(&self, provider_id: &str) -> StoreResult<Vec<SealedProviderKey>> {
        let client = self.client().await?;
        load_provider(&client, provider_id).await?;
        keys_of(&client, provider_id).await
    }

    async fn routing_table(&self) -> StoreResult<Vec<(Provider, Vec<SealedProviderKey>)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {PROVIDER_COLUMNS} FROM providers p WHERE p.enabled ORDER BY p.seq"
                ),
                &[],
            )
            .await
            .map_err(backend)?;
        let mut table = Vec::with_capacity(rows.len());
        for row in &rows {
            let provider = provider_row(row)?;
            let keys = keys_of(&client, &provider.id).await?;
            table.push((provider, keys));
        }
        Ok(table)
    }
}
