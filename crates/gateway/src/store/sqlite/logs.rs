//! The call log in SQLite: appended in the usage writer's transactions,
//! read in `seq` order.

use async_trait::async_trait;
use rusqlite::{Transaction, params, params_from_iter, types::Value};

use chrono::Utc;
use rusqlite::OptionalExtension;
use tollgate_api::{LogSettings, UpdateLogSettings};

use super::{SqliteStore, audit, backend, check_version, parse_ts, ts};
use crate::store::{AuditContext, CallRecord, LogFilter, LogStore, StoreResult};

const COLUMNS: &str = "seq, id, at_us, api, method, path, team_id, consumer_id, key_id, key_prefix, \
    model, provider_id, provider_key, status, reason, upstream_status, latency_us, upstream_us, \
    ttft_us, tokens_in, tokens_out, cost_micros, currency, client_ip, user_agent, error, \
    request_body, response_body";

/// Appends `calls` in order; a record already there (a replayed window) is
/// skipped.
pub(super) fn append_calls(tx: &Transaction<'_>, calls: &[CallRecord]) -> StoreResult<()> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO call_logs (id, at_us, api, method, path, team_id, consumer_id, \
             key_id, key_prefix, model, provider_id, provider_key, status, reason, upstream_status, \
             latency_us, upstream_us, ttft_us, tokens_in, tokens_out, cost_micros, currency, \
             client_ip, user_agent, error, request_body, response_body) VALUES (?1, ?2, ?3, ?4, ?5, \
             ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, \
             ?24, ?25, ?26, ?27)",
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
                c.error,
                c.request_body,
                c.response_body
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
            request_body: row.get(26)?,
            response_body: row.get(27)?,
            body_limit: 0,
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

    async fn call_stats(
        &self,
        from_us: i64,
        to_us: i64,
        bucket_us: i64,
    ) -> StoreResult<tollgate_api::CallStats> {
        self.read(move |c| stats(c, from_us, to_us, bucket_us).map_err(backend))
            .await
    }

    async fn log_settings(&self) -> StoreResult<Option<LogSettings>> {
        self.read(|c| {
            c.query_row(
                "SELECT retention_days, max_records, bodies, updated_at, version \
                 FROM log_settings WHERE id = 1",
                [],
                settings_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn save_log_settings(
        &self,
        update: UpdateLogSettings,
        expected_version: Option<i64>,
        audit_context: &AuditContext,
    ) -> StoreResult<LogSettings> {
        let audit_context = audit_context.clone();
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            let current: i64 = tx
                .query_row("SELECT version FROM log_settings WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?
                .unwrap_or(0);
            check_version(current, expected_version)?;
            let bodies = serde_json::to_string(&update.bodies)
                .map_err(|e| crate::store::StoreError::Backend(e.into()))?;
            let max = update.max_records.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
            tx.execute(
                "INSERT INTO log_settings (id, retention_days, max_records, bodies, updated_at, version) \
                 VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET \
                 retention_days = ?1, max_records = ?2, bodies = ?3, updated_at = ?4, version = ?5",
                params![update.retention_days, max, bodies, ts(Utc::now()), current + 1],
            )
            .map_err(backend)?;
            let saved = tx
                .query_row(
                    "SELECT retention_days, max_records, bodies, updated_at, version \
                     FROM log_settings WHERE id = 1",
                    [],
                    settings_row,
                )
                .map_err(backend)?;
            audit(&tx, &audit_context, "logs.settings", "log_settings")?;
            tx.commit().map_err(backend)?;
            Ok(saved)
        })
        .await
    }

    async fn prune_call_logs(&self, before_us: i64, max_records: Option<u64>) -> StoreResult<u64> {
        const BATCH: i64 = 10_000;
        let mut deleted = 0u64;
        loop {
            // Small batches, so that the writer of new records never waits long.
            let n = self
                .write(move |c| {
                    c.execute(
                        "DELETE FROM call_logs WHERE seq IN \
                         (SELECT seq FROM call_logs WHERE at_us < ?1 ORDER BY seq LIMIT ?2)",
                        params![before_us, BATCH],
                    )
                    .map_err(backend)
                })
                .await?;
            deleted += n as u64;
            if (n as i64) < BATCH {
                break;
            }
        }
        if let Some(max) = max_records {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            let n = self
                .write(move |c| {
                    c.execute(
                        "DELETE FROM call_logs WHERE seq <= \
                         (SELECT seq FROM call_logs ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
                        params![max],
                    )
                    .map_err(backend)
                })
                .await?;
            deleted += n as u64;
        }
        Ok(deleted)
    }
}

fn settings_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogSettings> {
    let bodies: String = r.get(2)?;
    let max: Option<i64> = r.get(1)?;
    Ok(LogSettings {
        retention_days: r.get(0)?,
        max_records: max.map(|m| m.max(0) as u64),
        bodies: serde_json::from_str(&bodies).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        updated_at: Some(parse_ts(&r.get::<_, String>(3)?)?),
        version: r.get(4)?,
    })
}

/// The value at fraction `p` of the range's latencies (nearest rank).
fn percentile(
    c: &rusqlite::Connection,
    from: i64,
    to: i64,
    count: i64,
    p: f64,
) -> rusqlite::Result<i64> {
    if count == 0 {
        return Ok(0);
    }
    let rank = ((count as f64 * p).ceil() as i64).clamp(1, count) - 1;
    c.query_row(
        "SELECT latency_us FROM call_logs WHERE at_us >= ?1 AND at_us < ?2 \
         ORDER BY latency_us LIMIT 1 OFFSET ?3",
        params![from, to, rank],
        |r| r.get(0),
    )
}

pub(super) fn stats(
    c: &rusqlite::Connection,
    from: i64,
    to: i64,
    bucket: i64,
) -> rusqlite::Result<tollgate_api::CallStats> {
    use chrono::{TimeZone, Utc};
    use tollgate_api::money::format_amount;
    use tollgate_api::{ConsumerUse, CostTotal, ModelUse, ReasonCount, StatsPoint};

    let at = |us: i64| Utc.timestamp_micros(us).single().unwrap_or_else(Utc::now);
    let range = params![from, to];
    let (requests, errors, tokens_in, tokens_out): (i64, i64, i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(status >= 400), 0), coalesce(sum(tokens_in), 0), \
         coalesce(sum(tokens_out), 0) FROM call_logs WHERE at_us >= ?1 AND at_us < ?2",
        range,
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let cost = c
        .prepare_cached(
            "SELECT currency, sum(cost_micros) FROM call_logs WHERE at_us >= ?1 AND at_us < ?2 \
             AND currency IS NOT NULL GROUP BY currency ORDER BY currency",
        )?
        .query_map(range, |r| {
            Ok(CostTotal {
                currency: r.get(0)?,
                amount: format_amount(r.get(1)?, 2),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let series = c
        .prepare_cached(
            "SELECT (at_us - ?1) / ?3, count(*), sum(status >= 400), sum(status = 402) \
             FROM call_logs WHERE at_us >= ?1 AND at_us < ?2 GROUP BY 1 ORDER BY 1",
        )?
        .query_map(params![from, to, bucket], |r| {
            Ok(StatsPoint {
                at: at(from + r.get::<_, i64>(0)? * bucket),
                requests: r.get(1)?,
                errors: r.get(2)?,
                payment_required: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let by_reason = c
        .prepare_cached(
            "SELECT reason, max(status), count(*) FROM call_logs WHERE at_us >= ?1 AND at_us < ?2 \
             AND reason IS NOT NULL GROUP BY reason ORDER BY 3 DESC, 1",
        )?
        .query_map(range, |r| {
            Ok(ReasonCount {
                reason: r.get(0)?,
                status: r.get(1)?,
                count: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let by_model = c
        .prepare_cached(
            "SELECT model, count(*), sum(tokens_in), sum(tokens_out) FROM call_logs \
             WHERE at_us >= ?1 AND at_us < ?2 AND model IS NOT NULL GROUP BY model \
             ORDER BY 2 DESC, 1 LIMIT 50",
        )?
        .query_map(range, |r| {
            Ok(ModelUse {
                model: r.get(0)?,
                requests: r.get(1)?,
                tokens_in: r.get(2)?,
                tokens_out: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let top_consumers = c
        .prepare_cached(
            "SELECT consumer_id, count(*), sum(status >= 400) FROM call_logs \
             WHERE at_us >= ?1 AND at_us < ?2 AND consumer_id IS NOT NULL GROUP BY consumer_id \
             ORDER BY 2 DESC, 1 LIMIT 10",
        )?
        .query_map(range, |r| {
            Ok(ConsumerUse {
                consumer_id: r.get(0)?,
                requests: r.get(1)?,
                errors: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tollgate_api::CallStats {
        from: at(from),
        to: at(to),
        bucket_seconds: bucket / 1_000_000,
        requests,
        errors,
        tokens_in,
        tokens_out,
        latency_p50_us: percentile(c, from, to, requests, 0.50)?,
        latency_p95_us: percentile(c, from, to, requests, 0.95)?,
        latency_p99_us: percentile(c, from, to, requests, 0.99)?,
        cost,
        series,
        by_reason,
        by_model,
        top_consumers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BillingStore, UsageBatch};

    fn record(id: usize, at_us: i64) -> CallRecord {
        CallRecord {
            id: format!("req_{id:08}"),
            at_us,
            api: "chat".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            status: 200,
            ..CallRecord::default()
        }
    }

    #[tokio::test]
    async fn pruning_deletes_the_old_then_the_surplus_and_seqs_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        // 3,000 records a day old, then 2,500 of now.
        let (old, new) = (1_000_000_000_000i64, 2_000_000_000_000i64);
        let calls: Vec<_> = (0..5_500)
            .map(|i| record(i, if i < 3_000 { old } else { new }))
            .collect();
        store
            .settle_calls(UsageBatch {
                calls: calls.clone(),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        // A replayed window adds nothing.
        store
            .settle_calls(UsageBatch {
                calls: calls[..10].to_vec(),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        let (_, head) = store.call_logs(LogFilter::default(), 1).await.unwrap();
        assert_eq!(head, 5_500);

        assert_eq!(store.prune_call_logs(old + 1, None).await.unwrap(), 3_000);
        assert_eq!(
            store.prune_call_logs(old + 1, Some(2_000)).await.unwrap(),
            500
        );
        let (left, _) = store.call_logs(LogFilter::default(), 5_000).await.unwrap();
        assert_eq!(left.len(), 2_000);
        assert_eq!(left[0].0, 3_501, "the newest are kept");
        assert_eq!(left[0].1, calls[3_500]);

        // New records never reuse a deleted seq (seqs only grow; a replayed
        // record may leave a gap, never a repeat).
        store
            .settle_calls(UsageBatch {
                calls: vec![record(9_999, new)],
                ..UsageBatch::default()
            })
            .await
            .unwrap();
        let (newest, head) = store
            .call_logs(
                LogFilter {
                    after: 5_500,
                    ..LogFilter::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].1.id, "req_00009999");
        assert_eq!(newest[0].0, head);
    }
}
