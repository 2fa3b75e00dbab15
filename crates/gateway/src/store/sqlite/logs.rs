//! The call log in SQLite: appended in the usage writer's transactions,
//! read in `seq` order.

use async_trait::async_trait;
use rusqlite::{Transaction, params, params_from_iter, types::Value};

use super::{SqliteStore, backend};
use crate::store::{CallRecord, LogFilter, LogStore, StoreResult};

const COLUMNS: &str = "seq, id, at_us, api, method, path, team_id, consumer_id, key_id, key_prefix, \
    model, provider_id, provider_key, status, reason, upstream_status, latency_us, upstream_us, \
    ttft_us, tokens_in, tokens_out, cost_micros, currency, client_ip, user_agent, error";

/// Appends `calls` in order; a record already there (a replayed window) is
/// skipped.
pub(super) fn append_calls(tx: &Transaction<'_>, calls: &[CallRecord]) -> StoreResult<()> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO call_logs (id, at_us, api, method, path, team_id, consumer_id, \
             key_id, key_prefix, model, provider_id, provider_key, status, reason, upstream_status, \
             latency_us, upstream_us, ttft_us, tokens_in, tokens_out, cost_micros, currency, \
             client_ip, user_agent, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
             ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
        )
        .map_err(backend)?;
    for c in calls {
        insert
            .execute(params![
                c.id,
                c.at_us,
                c.api,
                c.method,
                c.path,
                c.team_id,
                c.consumer_id,
                c.key_id,
                c.key_prefix,
                c.model,
                c.provider_id,
                c.provider_key,
                c.status,
                c.reason,
                c.upstream_status,
                c.latency_us,
                c.upstream_us,
                c.ttft_us,
                c.tokens_in,
                c.tokens_out,
                c.cost_micros,
                c.currency,
                c.client_ip,
                c.user_agent,
                c.error
            ])
            .map_err(backend)?;
    }
    Ok(())
}

fn record_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, CallRecord)> {
    Ok((
        row.get(0)?,
        CallRecord {
            id: row.get(1)?,
            at_us: row.get(2)?,
            api: row.get(3)?,
            method: row.get(4)?,
            path: row.get(5)?,
            team_id: row.get(6)?,
            consumer_id: row.get(7)?,
            key_id: row.get(8)?,
            key_prefix: row.get(9)?,
            model: row.get(10)?,
            provider_id: row.get(11)?,
            provider_key: row.get(12)?,
            status: row.get(13)?,
            reason: row.get(14)?,
            upstream_status: row.get(15)?,
            latency_us: row.get(16)?,
            upstream_us: row.get(17)?,
            ttft_us: row.get(18)?,
            tokens_in: row.get(19)?,
            tokens_out: row.get(20)?,
            cost_micros: row.get(21)?,
            currency: row.get(22)?,
            client_ip: row.get(23)?,
            user_agent: row.get(24)?,
            error: row.get(25)?,
        },
    ))
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn call_logs(
        &self,
        filter: LogFilter,
        limit: u32,
    ) -> StoreResult<(Vec<(i64, CallRecord)>, i64)> {
        self.read(move |c| {
            let mut clauses = vec!["seq > ?".to_owned()];
            let mut values: Vec<Value> = vec![Value::Integer(filter.after)];
            let mut text = |column: &str, value: Option<String>| {
                if let Some(v) = value {
                    clauses.push(format!("{column} = ?"));
                    values.push(Value::Text(v));
                }
            };
            text("consumer_id", filter.consumer_id);
            text("reason", filter.reason);
            text("api", filter.api);
            text("model", filter.model);
            if let Some(class) = filter.status_class {
                clauses.push("status BETWEEN ? AND ?".into());
                values.push(Value::Integer(i64::from(class) * 100));
                values.push(Value::Integer(i64::from(class) * 100 + 99));
            }
            if let Some(from) = filter.from_us {
                clauses.push("at_us >= ?".into());
                values.push(Value::Integer(from));
            }
            if let Some(to) = filter.to_us {
                clauses.push("at_us < ?".into());
                values.push(Value::Integer(to));
            }
            values.push(Value::Integer(i64::from(limit)));
            let sql = format!(
                "SELECT {COLUMNS} FROM call_logs WHERE {} ORDER BY seq LIMIT ?",
                clauses.join(" AND ")
            );
            let mut statement = c.prepare_cached(&sql).map_err(backend)?;
            let rows = statement
                .query_map(params_from_iter(values), record_row)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            let head: i64 = c
                .query_row("SELECT coalesce(max(seq), 0) FROM call_logs", [], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            Ok((rows, head))
        })
        .await
    }
}
