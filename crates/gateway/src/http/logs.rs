//! `/admin/v1/logs`: the call log, read in `seq` order from a cursor — the
//! console's sync reads it page after page and resumes from the last `seq`
//! it stored. Needs `read`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use tollgate_api::{CallLogPage, FieldError, Problem};

use super::auth::{Authorized, Read, Write};
use super::{AppState, QueryOf};
use crate::error::{ApiError, ApiResult};
use crate::store::LogFilter;

/// Most records in one page.
pub const LOG_PAGE_MAX: u32 = 5_000;
const LOG_PAGE_DEFAULT: u32 = 500;

/// Where to start and which records to read; every filter is optional.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Records after this `seq` (0, the default, is the start of the log).
    #[param(pattern = "^[0-9]{0,18}$")]
    pub after: Option<String>,
    /// 1–5000, default 500.
    #[param(pattern = "^([1-9][0-9]{0,2}|[1-4][0-9]{3}|5000)?$")]
    pub limit: Option<String>,
    pub consumer_id: Option<String>,
    /// `2`, `3`, `4` or `5`: the status's class.
    #[param(pattern = "^[1-5]?$")]
    pub status_class: Option<String>,
    /// A problem's reason slug, e.g. `insufficient-funds`.
    pub reason: Option<String>,
    /// `chat`, `models`, `billing-status` or a prompt API's slug.
    pub api: Option<String>,
    pub model: Option<String>,
    /// Calls that ended at or after this time (RFC 3339), as an access
    /// log is timed.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Calls that ended before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
}

fn number<T: std::str::FromStr + PartialOrd>(
    field: &str,
    text: Option<&str>,
    range: (T, T),
    what: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let text = text.filter(|t| !t.is_empty())?;
    match text.parse::<T>() {
        Ok(n) if n >= range.0 && n <= range.1 => Some(n),
        _ => {
            errors.push(FieldError::new(field, what));
            None
        }
    }
}

fn instant(field: &str, text: Option<&str>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let text = text?;
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.timestamp_micros()),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 time, e.g. 2026-11-25T10:00:00Z",
            ));
            None
        }
    }
}

fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// The largest `seq` a query names (18 digits).
const SEQ_MAX: i64 = 999_999_999_999_999_999;

/// The query as a store filter and a page size, or every invalid field.
pub fn filter_of(query: LogQuery) -> Result<(LogFilter, u32), ApiError> {
    let mut errors = Vec::new();
    let after = number(
        "after",
        query.after.as_deref(),
        (0i64, SEQ_MAX),
        "must be a record's seq (a whole number, 0 or more)",
        &mut errors,
    );
    let limit = number(
        "limit",
        query.limit.as_deref(),
        (1u32, LOG_PAGE_MAX),
        &format!("must be 1 to {LOG_PAGE_MAX}"),
        &mut errors,
    );
    let status_class = number(
        "status_class",
        query.status_class.as_deref(),
        (1u16, 5),
        "must be 1, 2, 3, 4 or 5",
        &mut errors,
    );
    let from_us = instant("from", query.from.as_deref(), &mut errors);
    let to_us = instant("to", query.to.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok((
        LogFilter {
            after: after.unwrap_or(0),
            consumer_id: text(query.consumer_id),
            status_class,
            reason: text(query.reason),
            api: text(query.api),
            model: text(query.model),
            from_us,
            to_us,
        },
        limit.unwrap_or(LOG_PAGE_DEFAULT),
    ))
}

/// Read the call log from a cursor, oldest first, filtered. Records appear
/// once their group commit is stored (within ~50 ms; this read waits for
/// the current one), never out of `seq` order, and a `seq` is never reused.
#[utoipa::path(get, path = "/admin/v1/logs", tag = "logs",
    security(("admin_token" = ["read"])),
    params(LogQuery),
    responses((status = 200, body = CallLogPage), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_logs(
    State(state): State<AppState>,
    _: Authorized<Read>,
    QueryOf(query): QueryOf<LogQuery>,
) -> ApiResult<Json<CallLogPage>> {
    let (filter, limit) = filter_of(query)?;
    state.data.accounts.usage.flush().await;
    let (items, head_seq) = state.store.call_logs(filter, limit).await?;
    let full = items.len() == limit as usize;
    let next_after = items.last().map(|log| log.seq).filter(|_| full);
    Ok(Json(CallLogPage {
        items,
        next_after,
        head_seq,
    }))
}

/// Most records in one export.
pub const EXPORT_MAX: u32 = 200_000;
/// Records read from the store at a time while an export streams.
const EXPORT_CHUNK: u32 = 2_000;

/// Where an export starts and how many records it holds at most.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Records after this `seq` (default 0).
    #[param(pattern = "^[0-9]{0,18}$")]
    pub after: Option<String>,
    /// 1–200000, default 50000.
    #[param(pattern = "^([1-9][0-9]{0,4}|1[0-9]{5}|200000)?$")]
    pub limit: Option<String>,
}

/// The call log in bulk, for the console's sync: newline-delimited JSON (one
/// `CallLog` per line, in `seq` order), gzip-compressed when the client
/// accepts it, streamed as it is read. Fewer than `limit` lines means the
/// log's end was reached; `x-tollgate-log-head` is the newest `seq` when the
/// export began.
#[utoipa::path(get, path = "/admin/v1/logs/export", tag = "logs",
    security(("admin_token" = ["read"])),
    params(ExportQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String,
            description = "One CallLog per line"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn export_logs(
    State(state): State<AppState>,
    _: Authorized<Read>,
    QueryOf(query): QueryOf<ExportQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::http::{HeaderValue, header};
    use futures_util::StreamExt;
    let mut errors = Vec::new();
    let after = number(
        "after",
        query.after.as_deref(),
        (0i64, SEQ_MAX),
        "must be a record's seq (a whole number, 0 or more)",
        &mut errors,
    )
    .unwrap_or(0);
    let limit = number(
        "limit",
        query.limit.as_deref(),
        (1u32, EXPORT_MAX),
        &format!("must be 1 to {EXPORT_MAX}"),
        &mut errors,
    )
    .unwrap_or(50_000);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    state.data.accounts.usage.flush().await;
    // The first chunk is read before answering, so a store failure is a
    // clean 503 rather than a broken stream.
    let (rows, head) = state
        .store
        .export_lines(after, EXPORT_CHUNK.min(limit))
        .await?;
    let store = state.store.clone();
    let chunks = futures_util::stream::unfold((Some(rows), limit), move |(rows, left)| {
        let store = store.clone();
        async move {
            let rows = match rows {
                Some(rows) => rows,
                None => return None,
            };
            if rows.is_empty() {
                return None;
            }
            let read = rows.len() as u32;
            let last = rows.last().map_or(0, |(seq, _)| *seq);
            let mut out = Vec::with_capacity(rows.len() * 600);
            for (_, line) in rows {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
            let left = left.saturating_sub(read);
            let next = if left == 0 || read < EXPORT_CHUNK {
                None
            } else {
                match store.export_lines(last, EXPORT_CHUNK.min(left)).await {
                    Ok((rows, _)) => Some(rows),
                    Err(e) => {
                        // The client sees a short export and resumes from
                        // its last line.
                        tracing::error!(error = %e, "reading the call log for an export failed");
                        None
                    }
                }
            };
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from(out)),
                (next, left),
            ))
        }
    });
    let mut response =
        axum::response::Response::new(axum::body::Body::from_stream(chunks.fuse().boxed()));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(
        axum::http::HeaderName::from_static("x-tollgate-log-head"),
        HeaderValue::from(head),
    );
    Ok(response)
}

/// The range and bucket of live figures.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// RFC 3339; default an hour before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; default now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `minute`, `hour` or `day`; default the finest that gives at most 1500 points.
    #[param(pattern = "^(minute|hour|day)$")]
    pub bucket: Option<String>,
}

/// The longest range of live figures.
const STATS_RANGE_MAX_DAYS: i64 = 93;
const STATS_POINTS_MAX: i64 = 1_500;

/// Live figures of the calls that ended in a time range: totals, latency percentiles,
/// cost per currency, a time series, refusals by reason, use per model and
/// the top consumers.
#[utoipa::path(get, path = "/admin/v1/logs/stats", tag = "logs",
    security(("admin_token" = ["read"])),
    params(StatsQuery),
    responses((status = 200, body = tollgate_api::CallStats), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn log_stats(
    State(state): State<AppState>,
    _: Authorized<Read>,
    QueryOf(query): QueryOf<StatsQuery>,
) -> ApiResult<Json<tollgate_api::CallStats>> {
    let mut errors = Vec::new();
    let to = instant("to", query.to.as_deref(), &mut errors)
        .unwrap_or_else(|| Utc::now().timestamp_micros() + 1);
    let from = instant("from", query.from.as_deref(), &mut errors).unwrap_or(to - 3_600_000_000);
    const MINUTE: i64 = 60_000_000;
    let span = to - from;
    if errors.is_empty() && span <= 0 {
        errors.push(FieldError::new("from", "must be before `to`"));
    } else if span > STATS_RANGE_MAX_DAYS * 24 * 60 * MINUTE {
        errors.push(FieldError::new(
            "from",
            format!("the range may span {STATS_RANGE_MAX_DAYS} days at most"),
        ));
    }
    let bucket = match query.bucket.as_deref() {
        Some("minute") => MINUTE,
        Some("hour") => 60 * MINUTE,
        Some("day") => 24 * 60 * MINUTE,
        Some(_) => {
            errors.push(FieldError::new("bucket", "must be minute, hour or day"));
            MINUTE
        }
        None => [MINUTE, 60 * MINUTE, 24 * 60 * MINUTE]
            .into_iter()
            .find(|b| span / b <= STATS_POINTS_MAX)
            .unwrap_or(24 * 60 * MINUTE),
    };
    if errors.is_empty() && span / bucket > STATS_POINTS_MAX {
        errors.push(FieldError::new(
            "bucket",
            format!("gives more than {STATS_POINTS_MAX} points for this range; take a coarser one"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    state.data.accounts.usage.flush().await;
    Ok(Json(state.store.call_stats(from, to, bucket).await?))
}

/// Retention when the settings were never saved.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
const BODY_CAPTURES_MAX: usize = 50;
const BODY_BYTES_MAX: u32 = 65_536;

/// The log settings, saved or default.
pub async fn current_settings(
    store: &dyn crate::store::Store,
) -> crate::store::StoreResult<tollgate_api::LogSettings> {
    Ok(store
        .log_settings()
        .await?
        .unwrap_or(tollgate_api::LogSettings {
            retention_days: DEFAULT_RETENTION_DAYS,
            max_records: None,
            bodies: Vec::new(),
            updated_at: None,
            version: 0,
        }))
}

fn check_settings(update: &tollgate_api::UpdateLogSettings) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if !(1..=3650).contains(&update.retention_days) {
        errors.push(FieldError::new("retention_days", "must be 1 to 3650"));
    }
    if update.max_records.is_some_and(|m| m < 1_000) {
        errors.push(FieldError::new(
            "max_records",
            "must be 1000 or more (or absent, for no limit)",
        ));
    }
    if update.bodies.len() > BODY_CAPTURES_MAX {
        errors.push(FieldError::new(
            "bodies",
            format!("at most {BODY_CAPTURES_MAX} APIs"),
        ));
    }
    for (i, b) in update.bodies.iter().enumerate() {
        let shaped = !b.api.is_empty()
            && b.api.len() <= 64
            && b.api
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !shaped {
            errors.push(FieldError::new(
                format!("bodies.{i}.api"),
                "must be `chat` or a prompt API's slug",
            ));
        } else if update.bodies[..i].iter().any(|o| o.api == b.api) {
            errors.push(FieldError::new(
                format!("bodies.{i}.api"),
                "is listed twice",
            ));
        }
        if !(1..=BODY_BYTES_MAX).contains(&b.max_bytes) {
            errors.push(FieldError::new(
                format!("bodies.{i}.max_bytes"),
                format!("must be 1 to {BODY_BYTES_MAX}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// How long the call log keeps records, and which APIs' bodies it captures.
#[utoipa::path(get, path = "/admin/v1/logs/settings", tag = "logs",
    security(("admin_token" = ["read"])),
    responses((status = 200, body = tollgate_api::LogSettings), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn get_log_settings(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> ApiResult<Json<tollgate_api::LogSettings>> {
    Ok(Json(current_settings(state.store.as_ref()).await?))
}

/// Change the retention and body capture (bodies are cut to `max_bytes`
/// and have secrets redacted before they are stored). Honours `If-Match`.
#[utoipa::path(put, path = "/admin/v1/logs/settings", tag = "logs",
    security(("admin_token" = ["write"])),
    params(("If-Match" = Option<String>, Header)),
    request_body = tollgate_api::UpdateLogSettings,
    responses((status = 200, body = tollgate_api::LogSettings), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn put_log_settings(
    State(state): State<AppState>,
    admin: Authorized<Write>,
    headers: axum::http::HeaderMap,
    super::ApiJson(update): super::ApiJson<tollgate_api::UpdateLogSettings>,
) -> ApiResult<Json<tollgate_api::LogSettings>> {
    check_settings(&update)?;
    let saved = state
        .store
        .save_log_settings(update, super::if_match(&headers), &admin.audit())
        .await?;
    Ok(Json(saved))
}

/// Deletes what the retention settings no longer keep.
pub async fn prune(store: &dyn crate::store::Store) -> crate::store::StoreResult<u64> {
    let settings = current_settings(store).await?;
    let before = Utc::now() - chrono::Duration::days(i64::from(settings.retention_days));
    store
        .prune_call_logs(before.timestamp_micros(), settings.max_records)
        .await
}
