//! Prompt APIs and their immutable versions in SQLite.

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use tollgate_api::{PromptApi, PromptApiStatus, PromptApiVersion, PromptDefinition};

use super::{SqliteStore, audit, backend, is_unique_violation, page, parse_ts, ts};
use crate::changes::Change;
use crate::ids;
use crate::store::{AuditContext, PromptApiChange, PromptApiStore, StoreError, StoreResult};

const COLUMNS: &str = "a.id, a.slug, a.name, a.description, a.status, a.current_version, \
    (SELECT max(number) FROM prompt_api_versions v WHERE v.api_id = a.id), \
    (SELECT definition FROM prompt_api_versions v WHERE v.api_id = a.id AND v.number = a.current_version), \
    a.deprecated_at, a.sunset_at, a.created_at, a.updated_at, a.version, a.seq";

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn definition_of(text: &str) -> rusqlite::Result<PromptDefinition> {
    serde_json::from_str(text).map_err(conversion)
}

fn api_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(PromptApi, i64)> {
    let status: String = row.get(4)?;
    let optional = |i| -> rusqlite::Result<_> {
        row.get::<_, Option<String>>(i)?
            .as_deref()
            .map(parse_ts)
            .transpose()
    };
    Ok((
        PromptApi {
            id: row.get(0)?,
            slug: row.get(1)?,
            name: row.get(2)?,
            description: row.get(3)?,
            status: PromptApiStatus::parse(&status).ok_or_else(|| {
                conversion(std::io::Error::other(format!("unknown status {status}")))
            })?,
            current_version: row.get(5)?,
            latest_version: row.get(6)?,
            current: definition_of(&row.get::<_, String>(7)?)?,
            deprecated_at: optional(8)?,
            sunset_at: optional(9)?,
            created_at: parse_ts(&row.get::<_, String>(10)?)?,
            updated_at: parse_ts(&row.get::<_, String>(11)?)?,
            version: row.get(12)?,
        },
        row.get(13)?,
    ))
}

fn load(conn: &Connection, column: &str, value: &str) -> StoreResult<PromptApi> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM prompt_apis a WHERE a.{column} = ?1"),
        [value],
        api_row,
    )
    .optional()
    .map_err(backend)?
    .map(|(api, _)| api)
    .ok_or(StoreError::NotFound)
}

fn insert_version(
    tx: &Connection,
    api_id: &str,
    number: u32,
    definition: &PromptDefinition,
    ctx: &AuditContext,
) -> StoreResult<()> {
    let text = serde_json::to_string(definition).map_err(|e| StoreError::Backend(e.into()))?;
    tx.execute(
        "INSERT INTO prompt_api_versions (api_id, number, definition, created_at, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![api_id, number, text, ts(Utc::now()), ctx.token_id],
    )
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl PromptApiStore for SqliteStore {
    async fn create_prompt_api(
        &self,
        slug: &str,
        name: &str,
        description: &str,
        definition: PromptDefinition,
        ctx: &AuditContext,
    ) -> StoreResult<PromptApi> {
        let (slug, name, description, ctx) = (
            slug.to_owned(),
            name.to_owned(),
            description.to_owned(),
            ctx.clone(),
        );
        self.write_changes(move |c, changes| {
            let tx = c.transaction().map_err(backend)?;
            let id = ids::new_id("papi");
            let now = ts(Utc::now());
            tx.execute(
                "INSERT INTO prompt_apis (id, slug, name, description, status, current_version, created_at, \
                 updated_at, version) VALUES (?1, ?2, ?3, ?4, 'draft', 1, ?5, ?5, 1)",
                params![id, slug, name, description, now],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("the slug `{slug}` is already another prompt API's"))
                } else {
                    backend(e)
                }
            })?;
            insert_version(&tx, &id, 1, &definition, &ctx)?;
            audit(&tx, &ctx, "prompt_api.create", &id)?;
            let api = load(&tx, "id", &id)?;
            changes.push(Change::PromptApi { slug: api.slug.clone() });
            tx.commit().map_err(backend)?;
            Ok(api)
        })
        .await
    }

    async fn prompt_api(&self, id: &str) -> StoreResult<PromptApi> {
        let id = id.to_owned();
        self.read(move |c| load(c, "id", &id)).await
    }

    async fn prompt_api_by_slug(&self, slug: &str) -> StoreResult<PromptApi> {
        let slug = slug.to_owned();
        self.read(move |c| load(c, "slug", &slug)).await
    }

    async fn list_prompt_apis(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<PromptApi>, Option<i64>)> {
        self.read(move |c| {
            page(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM prompt_apis a WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2"
                ),
                params![after, i64::from(limit) + 1],
                limit,
                api_row,
            )
        })
        .await
    }

    async fn add_prompt_api_version(
        &self,
        id: &str,
        definition: PromptDefinition,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<PromptApi> {
        let author = ctx.clone();
        let by_id = |c: &Connection, id: &str| load(c, "id", id);
        self.versioned_write(id, expected_version, ctx, by_id, move |tx, id, current, changes| {
            let number = current.latest_version + 1;
            insert_version(tx, id, number, &definition, &author)?;
            tx.execute(
                "UPDATE prompt_apis SET current_version = ?2, updated_at = ?3, version = version + 1 WHERE id = ?1",
                params![id, number, ts(Utc::now())],
            )
            .map_err(backend)?;
            let api = load(tx, "id", id)?;
            changes.push(Change::PromptApi { slug: api.slug.clone() });
            Ok((api, "prompt_api.version".into()))
        })
        .await
    }

    async fn prompt_api_versions(&self, id: &str) -> StoreResult<Vec<PromptApiVersion>> {
        let id = id.to_owned();
        self.read(move |c| {
            load(c, "id", &id)?;
            let mut stmt = c
                .prepare_cached(
                    "SELECT number, definition, created_at, created_by FROM prompt_api_versions \
                     WHERE api_id = ?1 ORDER BY number DESC",
                )
                .map_err(backend)?;
            stmt.query_map([&id], |row| {
                Ok(PromptApiVersion {
                    number: row.get(0)?,
                    definition: definition_of(&row.get::<_, String>(1)?)?,
                    created_at: parse_ts(&row.get::<_, String>(2)?)?,
                    created_by: row.get(3)?,
                })
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)
        })
        .await
    }

    async fn change_prompt_api(
        &self,
        id: &str,
        change: PromptApiChange,
        expected_version: Option<i64>,
        ctx: &AuditContext,
    ) -> StoreResult<PromptApi> {
        let by_id = |c: &Connection, id: &str| load(c, "id", id);
        self.versioned_write(id, expected_version, ctx, by_id, move |tx, id, _, changes| {
            tx.execute(
                "UPDATE prompt_apis SET status = ?2, current_version = ?3, deprecated_at = ?4, sunset_at = ?5, \
                 updated_at = ?6, version = version + 1 WHERE id = ?1",
                params![id, change.status.as_str(), change.current_version, change.deprecated_at.map(ts),
                    change.sunset_at.map(ts), ts(Utc::now())],
            )
            .map_err(backend)?;
            let api = load(tx, "id", id)?;
            changes.push(Change::PromptApi { slug: api.slug.clone() });
            Ok((api, change.action.into()))
        })
        .await
    }
}
