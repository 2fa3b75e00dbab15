//! Prompt APIs and their immutable versions in PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tollgate_api::{PromptApi, PromptApiStatus, PromptApiVersion, PromptDefinition};

use super::{Column, PgStore, audit, backend, is_unique_violation, json, now, page};
use crate::changes::Change;
use crate::ids;
use crate::store::{AuditContext, PromptApiChange, PromptApiStore, StoreError, StoreResult};

const COLUMNS: &str = "a.id, a.slug, a.name, a.description, a.status, a.current_version, \
    (SELECT max(number) FROM prompt_api_versions v WHERE v.api_id = a.id) AS latest_version, \
    (SELECT definition FROM prompt_api_versions v WHERE v.api_id = a.id AND v.number = a.current_version) \
    AS current_definition, a.deprecated_at, a.sunset_at, a.created_at, a.updated_at, a.version, a.seq";

fn definition_of(text: &str) -> StoreResult<PromptDefinition> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(e.into()))
}

fn number(r: &Row, name: &str) -> StoreResult<u32> {
    u32::try_from(r.col::<i32>(name)?).map_err(|e| StoreError::Backend(e.into()))
}

fn api_row(r: &Row) -> StoreResult<PromptApi> {
    let status: &str = r.col("status")?;
    Ok(PromptApi {
        id: r.col("id")?,
        slug: r.col("slug")?,
        name: r.col("name")?,
        description: r.col("description")?,
        status: PromptApiStatus::parse(status)
            .ok_or_else(|| StoreError::Backend(anyhow::anyhow!("unknown status {status}")))?,
        current_version: number(r, "current_version")?,
        latest_version: number(r, "latest_version")?,
        current: definition_of(r.col("current_definition")?)?,
        deprecated_at: r.col("deprecated_at")?,
        sunset_at: r.col("sunset_at")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
        version: r.col("version")?,
    })
}

/// The API whose `column` (id or slug) is `value`.
async fn load(client: &impl GenericClient, column: &str, value: &str) -> StoreResult<PromptApi> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM prompt_apis a WHERE a.{column} = $1"),
            &[&value],
        )
        .await
        .map_err(backend)?;
    row.as_ref()
        .map(api_row)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

/// The API `id`, its row locked until the end of the transaction.
async fn lock(tx: &Transaction<'_>, id: &str) -> StoreResult<PromptApi> {
    tx.execute("SELECT 1 FROM prompt_apis WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(backend)?;
    load(tx, "id", id).await
}

async fn insert_version(
    tx: &Transaction<'_>,
    api_id: &str,
    number: u32,
    definition: &PromptDefinition,
    ctx: &AuditContext,
) -> StoreResult<()> {
    let number = i32::try_from(number).map_err(|e| StoreError::Backend(e.into()))?;
    tx.execute(
        "INSERT INTO prompt_api_versions (api_id, number, definition, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5)",
        &[&api_id, &number, &json(definition)?, &now(), &ctx.token_id],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl PromptApiStore for PgStore {
    async fn create_prompt_api(
        &self,
        slug: &str,
        name: &str,
        description: &str,
        definition: PromptDefinition,
        ctx: &AuditContext,
    ) -> StoreResult<PromptApi> {
        self.write_changes(async |tx, changes| {
            let id = ids::new_id("papi");
            tx.execute(
                "INSERT INTO prompt_apis (id, slug, name, description, status, current_version, \
                 created_at, updated_at, version) VALUES ($1, $2, $3, $4, 'draft', 1, $5, $5, 1)",
                &[&id, &slug, &name, &description, &now()],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!(
                        "the slug `{slug}` is already another prompt API's"
                    ))
                } else {
                    backend(e)
                }
            })?;
            insert_version(tx, &id, 1, &definition, ctx).await?;
            audit(tx, ctx, "prompt_api.create", &id).await?;
            let api = load(tx, "id", &id).await?;
            changes.push(Change::PromptApi {
                slug: api.slug.clone(),
            });
            Ok(api)
        })
        .await
    }

    async fn prompt_api(&self, id: &str) -> StoreResult<PromptApi> {
        load(&self.client().await?, "id", id).await
    }

    async fn prompt_api_by_slug(&self, slug: &str) -> StoreResult<PromptApi> {
        load(&self.client().await?, "slug", slug).await
    }

    async fn list_prompt_apis(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<PromptApi>, Option<i64>)> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM prompt_apis a WHERE a.seq > $1 ORDER BY a.seq LIMIT $2"
                ),
                &[&after, &(i64::from(limit) + 1)],
            )
            .await
            .map_err(backend)?;
        page(rows, limit, api_row)
    }

    async fn add_prompt_api_version(
        &self,
        id: &str,
        definition: PromptDefinition,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<PromptApi> {
        let load_locked = async |tx: &Transaction<'_>, id: &str| lock(tx, id).await;
        self.versioned_write(id, expected_version, ctx, load_locked, async |tx, id, current, changes| {
            let next = current.latest_version + 1;
            insert_version(tx, id, next, &definition, ctx).await?;
            let next_i32 = i32::try_from(next).map_err(|e| StoreError::Backend(e.into()))?;
            tx.execute(
                "UPDATE prompt_apis SET current_version = $2, updated_at = $3, version = version + 1 \
                 WHERE id = $1",
                &[&id, &next_i32, &now()],
            )
            .await
            .map_err(backend)?;
            let api = load(tx, "id", id).await?;
            changes.push(Change::PromptApi { slug: api.slug.clone() });
            Ok((api, "prompt_api.version".into()))
        })
        .await
    }

    async fn prompt_api_versions(&self, id: &str) -> StoreResult<Vec<PromptApiVersion>> {
        let client = self.client().await?;
        load(&client, "id", id).await?;
        let rows = client
            .query(
                "SELECT number, definition, created_at, created_by FROM prompt_api_versions \
                 WHERE api_id = $1 ORDER BY number DESC",
                &[&id],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(PromptApiVersion {
                    number: number(r, "number")?,
                    definition: definition_of(r.col("definition")?)?,
                    created_at: r.col("created_at")?,
                    created_by: r.col("created_by")?,
                })
            })
            .collect()
    }

    async fn change_prompt_api(
        &self,
        id: &str,
        change: PromptApiChange,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<PromptApi> {
        let load_locked = async |tx: &Transaction<'_>, id: &str| lock(tx, id).await;
        self.versioned_write(
            id,
            expected_version,
            ctx,
            load_locked,
            async |tx, id, _, changes| {
                let current_version = i32::try_from(change.current_version)
                    .map_err(|e| StoreError::Backend(e.into()))?;
                tx.execute(
                    "UPDATE prompt_apis SET status = $2, current_version = $3, deprecated_at = $4, \
                 sunset_at = $5, updated_at = $6, version = version + 1 WHERE id = $1",
                    &[
                        &id,
                        &change.status.as_str(),
                        &current_version,
                        &change.deprecated_at,
                        &change.sunset_at,
                        &now(),
                    ],
                )
                .await
                .map_err(backend)?;
                let api = load(tx, "id", id).await?;
                changes.push(Change::PromptApi {
                    slug: api.slug.clone(),
                });
                Ok((api, change.action.into()))
            },
        )
        .await
    }
}
