//! Instance-level endpoints: health, info, audit log.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::Utc;
use tollgate_api::{
    AuditEntry, Health, InstanceInfo, NodeInfo, NodeList, NodeStatus, PRODUCT, Page, Problem,
};

use super::auth::{Admin, Authorized, Read};
use super::{AppState, PageParams};
use crate::error::{ApiError, ApiResult};

/// Features this build offers, reported by `/admin/v1/info`.
pub const FEATURES: &[&str] = &[
    "teams",
    "consumers",
    "consumer-keys",
    "plans",
    "wallets",
    "subscriptions",
    "payment-methods",
    "audit",
    "idempotency",
    "etag",
];

/// Liveness and store health; needs no token.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.store.ping().await.map_err(|e| {
        tracing::error!(error = %e, "store ping failed");
        ApiError::Unavailable
    })?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// What this instance is, and which token is asking. Any valid token may call it.
#[utoipa::path(get, path = "/admin/v1/info", tag = "system",
    security(("admin_token" = [])),
    responses((status = 200, body = InstanceInfo), (status = 401, body = Problem)))]
pub async fn info(State(state): State<AppState>, admin: Admin) -> Json<InstanceInfo> {
    let instance = &state.instance;
    Json(InstanceInfo {
        product: PRODUCT.into(),
        instance_id: instance.id.clone(),
        name: instance.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        public_url: instance.public_url.clone(),
        started_at: instance.started_at,
        uptime_seconds: instance.started.elapsed().as_secs(),
        server_time: Utc::now(),
        features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        token: admin.identity,
    })
}

/// A node is up while its last heartbeat is at most this old (it beats
/// every 5 seconds).
const NODE_UP_SECS: i64 = 15;

/// The nodes serving this instance: one on SQLite; every node of a
/// PostgreSQL database, each with its last heartbeat.
#[utoipa::path(get, path = "/admin/v1/nodes", tag = "system",
    security(("admin_token" = ["read"])),
    responses((status = 200, body = NodeList), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
pub async fn list_nodes(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> ApiResult<Json<NodeList>> {
    let now = Utc::now();
    let items = state
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeInfo {
            status: if (now - n.heartbeat_at).num_seconds() <= NODE_UP_SECS {
                NodeStatus::Up
            } else {
                NodeStatus::Stale
            },
            id: n.id,
            address: n.address,
            version: n.version,
            started_at: n.started_at,
            heartbeat_at: n.heartbeat_at,
            leads_jobs: n.leads_jobs,
            leases: u64::try_from(n.leases).unwrap_or(0),
        })
        .collect();
    Ok(Json(NodeList { items }))
}

/// Filter of `GET /admin/v1/audit`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about these targets: up to 20 ids (1–64 characters of
    /// `A–Z a–z 0–9 _ . : -`) separated by commas, without spaces; empty
    /// for every entry.
    #[param(pattern = r"^([A-Za-z0-9_.:-]{1,64}(,[A-Za-z0-9_.:-]{1,64}){0,19})?$")]
    pub targets: Option<String>,
}

const AUDIT_TARGETS_MAX: usize = 20;
const AUDIT_TARGET_MAX: usize = 64;

/// Every management write, newest first (or those about given targets).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "system",
    security(("admin_token" = ["read"])),
    params(tollgate_api::PageQuery, AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_audit(
    State(state): State<AppState>,
    _: Authorized<Read>,
    page: PageParams,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let Query(query) =
        query.map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?;
    let targets: Vec<String> = match query.targets.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => list.split(',').map(str::to_owned).collect(),
    };
    if targets.len() > AUDIT_TARGETS_MAX {
        return Err(ApiError::validation(
            "targets",
            format!("at most {AUDIT_TARGETS_MAX} targets"),
        ));
    }
    let is_id = |t: &String| {
        (1..=AUDIT_TARGET_MAX).contains(&t.len())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    };
    if let Some(bad) = targets.iter().find(|t| !is_id(t)) {
        return Err(ApiError::validation(
            "targets",
            format!(
                "`{}` is not an id: ids are 1 to {AUDIT_TARGET_MAX} characters of A-Z, a-z, 0-9, _ . : - separated by commas",
                bad.chars().take(16).collect::<String>()
            ),
        ));
    }
    let (items, next) = state
        .store
        .list_audit(&targets, page.after, page.limit)
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(PageParams::cursor_for),
    }))
}

/// This node's metrics in the Prometheus text format (version 0.0.4):
/// calls by status, reason, model and provider; latency histograms; tokens;
/// what was charged; provider keys' states; the usage writer's lag; leases;
/// the database pool. Also served without a token on `metrics_listen`
/// when the settings name one.
#[utoipa::path(get, path = "/metrics", tag = "system",
    security(("admin_token" = ["read"])),
    responses(
        (status = 200, body = String, content_type = "text/plain",
            description = "The metrics, in the Prometheus text format (`text/plain; version=0.0.4`)"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem)))]
pub async fn metrics(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> ApiResult<impl axum::response::IntoResponse> {
    let text = state.data.metrics_text().await.map_err(|e| {
        tracing::error!(error = %e, "the metrics could not be read");
        ApiError::Unavailable
    })?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        text,
    ))
}
