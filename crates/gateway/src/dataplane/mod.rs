//! The data plane: the OpenAI-compatible API consumers call with their keys.
//! Each call is authenticated ([`auth`]), matched to a paying subscription
//! ([`decision`]), rate limited ([`ratelimit`]), reserved for ([`accounts`]),
//! forwarded to the upstream, and settled at its actual cost. Refusals are
//! [`refusal::Refusal`]s.

pub mod accounts;
pub mod anthropic;
pub mod auth;
mod cells;
mod chat;
pub mod decision;
mod hold;
pub mod hot;
mod models;
pub mod openapi;
pub mod pool;
mod prompt_call;
mod prompt_docs;
pub mod prompt_run;
pub mod ratelimit;
pub mod refusal;
pub mod routes;
mod status;
mod stream;
pub mod upstream;
pub mod usage;

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Poll;

use foldhash::HashMap;
use std::time::Instant;

use axum::body::Bytes;

use crate::metrics::{Metrics, ProviderKeys, Snapshot};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use bytes::BytesMut;
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use tollgate_api::REQUEST_ID_HEADER;

use std::convert::Infallible;

use crate::activity::Answer;
use crate::activity::{InFlight, TrackedBody};
use crate::billing::Billing;
use crate::changes::{Change, ChangeFeed, ChangeListener};
use crate::crypto::SecretBox;
use crate::instance::Instance;
use crate::store::{CallRecord, Store};
use refusal::Refusal;

/// What a call costs, in micro-units of the plan's currency.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pricing {
    pub per_request: i64,
    pub per_1k_tokens: i64,
}

impl Pricing {
    pub fn cost(&self, tokens: u64) -> i64 {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX / 2);
        self.per_request + tokens.saturating_mul(self.per_1k_tokens) / 1000
    }
}

/// The single upstream named in the config (`upstream_url`), which serves
/// the models no provider serves.
pub struct DefaultUpstream {
    pub target: upstream::Target,
    pub authorization: Option<upstream::KeyHeader>,
}

/// Everything the data plane reads, owned here: the management API holds an
/// `Arc` of it for what it shares (the route table, test runs), never the
/// other way round.
pub struct DataPlane {
    pub store: Arc<dyn Store>,
    /// Opens provider keys sealed at rest.
    pub secrets: Arc<SecretBox>,
    pub instance: Arc<Instance>,
    pub billing: Arc<Billing>,
    /// Keys, subscriptions and prompt APIs as last read.
    pub hot: Arc<hot::HotCache>,
    /// The pooled HTTP client every upstream call goes through.
    pub client: upstream::UpstreamClient,
    /// Which provider and key serve each model.
    pub routes: Arc<routes::Routes>,
    pub upstream: Option<DefaultUpstream>,
    pub pricing: Pricing,
    pub accounts: accounts::Accounts,
    pub limiter: ratelimit::RateLimiter,
    /// Which APIs' bodies the call log captures (from the log settings).
    pub captures: Arc<BodyCaptures>,
    pub metrics: Arc<Metrics>,
}

impl DataPlane {
    /// Subscribes the data plane's caches to the store's changes: nothing
    /// else invalidates them.
    pub fn listen(&self, feed: &ChangeFeed) {
        feed.subscribe(self.hot.clone());
        feed.subscribe(self.routes.clone());
        feed.subscribe(self.captures.clone());
        feed.subscribe(self.accounts.listener());
    }

    /// This node's metrics in the Prometheus text format.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let now = chrono::Utc::now();
        let table = self.route_table().await?;
        let providers = table
            .providers()
            .into_iter()
            .map(|p| {
                let mut states: Vec<(&'static str, i64)> = Vec::new();
                for key in &p.keys {
                    let state = key.state(now);
                    match states.iter_mut().find(|(s, _)| *s == state) {
                        Some((_, n)) => *n += 1,
                        None => states.push((state, 1)),
                    }
                }
                ProviderKeys {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    kind: p.kind.as_str(),
                    states,
                }
            })
            .collect();
        let me = self.store.node_id().to_owned();
        let leases = self
            .store
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.id == me)
            .map_or(0, |n| n.leases);
        Ok(self.metrics.render(Snapshot {
            providers,
            leases,
            leads_jobs: self.store.leads_jobs(),
            pool: self.store.pool_status(),
        })?)
    }

    /// The current route table (rebuilt after a provider's change).
    pub async fn route_table(&self) -> crate::store::StoreResult<Arc<routes::RouteTable>> {
        self.routes
            .current(self.store.as_ref(), &self.secrets)
            .await
    }
}

/// Which APIs' bodies the call log captures, and how many bytes of each.
#[derive(Default)]
pub struct BodyCaptures {
    /// Checked first, so that a gateway capturing nothing pays a load only.
    any: AtomicBool,
    by_api: RwLock<HashMap<String, u32>>,
}

impl ChangeListener for BodyCaptures {
    fn changed(&self, change: &Change) {
        if let Change::LogSettings { bodies } = change {
            self.set(bodies);
        }
    }
}

impl BodyCaptures {
    pub fn set(&self, bodies: &[tollgate_api::BodyCapture]) {
        let map: HashMap<String, u32> = bodies
            .iter()
            .map(|b| (b.api.clone(), b.max_bytes))
            .collect();
        let any = !map.is_empty();
        *self.by_api.write().unwrap_or_else(|p| p.into_inner()) = map;
        self.any.store(any, Ordering::Release);
    }

    pub fn limit_for(&self, api: &str) -> Option<u32> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.by_api
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(api)
            .copied()
    }
}

/// Bytes captured beyond a body's limit, so that a secret cut by the limit
/// is still whole when redaction looks for it (the body is cut to its limit
/// after redaction).
pub const CAPTURE_MARGIN: u32 = 512;

/// At most `max` bytes of `body`, as text.
pub fn clip_body(body: &[u8], max: u32) -> String {
    let cut = &body[..body.len().min(max as usize)];
    match std::str::from_utf8(cut) {
        Ok(text) => text.to_owned(),
        // Cut inside a character, or not text: keep what is valid.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(cut).into_owned(),
    }
}

/// Answers one data-plane request. The server sends every `/v1/` request
/// here directly, on hyper, past the management API's router and middleware
/// (idempotency, cache invalidation, extractors), which the data plane has no
/// use for and which would cost on its hottest path.
pub async fn serve(
    plane: Arc<DataPlane>,
    req: Request<Incoming>,
    in_flight: Option<InFlight>,
    peer: Option<Arc<str>>,
) -> Result<Answer, Infallible> {
    let mut call = Call::start(&req, peer, &plane.captures);
    let (path, answer) = match (req.method(), req.uri().path()) {
        (&Method::POST, CHAT) => (CHAT, chat::chat_completions(&plane, &mut call, req).await),
        (&Method::GET, STATUS) => (
            STATUS,
            status::billing_status(&plane, &mut call, req.headers()).await,
        ),
        (&Method::GET, MODELS) => (
            MODELS,
            models::list_models(&plane, &mut call, req.headers()).await,
        ),
        (_, CHAT) => (CHAT, Err(method_not_allowed("POST"))),
        (_, STATUS) => (STATUS, Err(method_not_allowed("GET"))),
        (_, MODELS) => (MODELS, Err(method_not_allowed("GET"))),
        (&Method::GET, OPENAPI) => (OPENAPI, Ok(openapi::served())),
        (_, OPENAPI) => (OPENAPI, Err(method_not_allowed("GET"))),
        (&Method::GET, APIS_OPENAPI) => (APIS_OPENAPI, prompt_docs::openapi(&plane).await),
        (&Method::POST, path) if path.starts_with(APIS) && path != APIS_OPENAPI => {
            let slug = path[APIS.len()..].to_owned();
            (
                APIS,
                prompt_call::call_prompt_api(&plane, &mut call, &slug, req).await,
            )
        }
        (_, APIS_OPENAPI) => (APIS_OPENAPI, Err(method_not_allowed("GET"))),
        (_, path) if path.starts_with(APIS) => (APIS, Err(method_not_allowed("POST"))),
        _ => ("unknown", Err(not_found())),
    };
    let response = call.finish(&plane, path, answer);
    Ok(response.map(|body| TrackedBody::new(body, in_flight)))
}

/// 503 when what a call needs (`what`: "providers", "APIs") cannot be read;
/// the detail goes to the log, not to the caller.
pub fn unreadable(what: &str, e: &crate::store::StoreError) -> Refusal {
    store_failed(what, e);
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-unavailable",
        "Billing unavailable",
        format!("The gateway cannot read its {what} right now."),
    )
}

/// Logs a store failure the data plane met, at most once a second: with
/// the database away every call fails, and one line a second (with how many
/// were not logged) says so without flooding the log. Answers whether it
/// logged.
pub fn store_failed(what: &str, e: &crate::store::StoreError) -> bool {
    static LOGGED_AT: AtomicI64 = AtomicI64::new(i64::MIN);
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);
    let second = chrono::Utc::now().timestamp();
    let last = LOGGED_AT.load(Ordering::Relaxed);
    if last >= second
        || LOGGED_AT
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    let unlogged = UNLOGGED.swap(0, Ordering::Relaxed);
    tracing::error!(error = %e, what, unlogged, "the data plane could not use the store");
    true
}

/// Whether a JSON body is an object (its first byte past white space is
/// `{`): serde reads a struct from an array too.
fn starts_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

/// Built once: parsing a header name from text on every call costs.
const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

const CHAT: &str = "/v1/chat/completions";
const STATUS: &str = "/v1/billing/status";
const MODELS: &str = "/v1/models";
/// The consumer API's OpenAPI document.
const OPENAPI: &str = "/v1/openapi.json";
/// Prompt APIs: `/apis/{slug}`.
const APIS: &str = "/apis/";
/// The OpenAPI document of the prompt APIs.
const APIS_OPENAPI: &str = "/apis/openapi.json";

/// The request body, up to `limit` bytes. Most bodies arrive in one frame,
/// which is returned as it is; only longer ones are gathered.
/// The request's body, whole: at most `max_body_bytes` (413), arrived within
/// `body_timeout` of the call's start (408, the connection then closed), so
/// a client that stalls its body holds a connection for a bounded time.
///
/// A body that came with its head (nearly every call's) is read at once and
/// no timer is armed: arming and cancelling one per call cost about 400
/// instructions of a refusal's 33,500 (`scripts/bench-instructions.sh`).
pub async fn read_body(body: Incoming, instance: &Instance) -> Result<Bytes, Refusal> {
    let mut read = std::pin::pin!(read_all(body, instance.max_body_bytes));
    let at_once = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
    if let Poll::Ready(read) = at_once {
        return read;
    }
    match tokio::time::timeout(instance.body_timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            format!(
                "The request body did not arrive within {} s.",
                instance.body_timeout.as_secs()
            ),
        )
        .header(header::CONNECTION, "close".to_owned())),
    }
}

async fn read_all(body: Incoming, limit: usize) -> Result<Bytes, Refusal> {
    let mut body = Limited::new(body, limit);
    let first = match body.frame().await {
        None => return Ok(Bytes::new()),
        Some(frame) => frame.map_err(|e| body_error(&*e, limit))?,
    };
    let first = first.into_data().unwrap_or_default();
    if body.is_end_stream() {
        return Ok(first);
    }
    let mut all = BytesMut::from(&first[..]);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(|e| body_error(&*e, limit))?.into_data() {
            all.extend_from_slice(&data);
        }
    }
    Ok(all.freeze())
}

fn body_error(e: &(dyn std::error::Error + Send + Sync + 'static), limit: usize) -> Refusal {
    if e.is::<LengthLimitError>() {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("The request body is larger than this gateway accepts ({limit} bytes)."),
        )
    } else {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            "The request body could not be read.",
        )
    }
}

/// One data-plane request: its id, when it began, and its call log record,
/// filled in as the call goes and written when it is answered (or, for a
/// stream, by the stream's settlement when it ends).
pub struct Call {
    pub request_id: String,
    /// When the call began: the clock its decisions (expiries, periods) read.
    pub at: chrono::DateTime<chrono::Utc>,
    pub started: Instant,
    /// Taken by a streamed answer's settlement, which writes it.
    pub log: Option<Box<CallRecord>>,
    /// Bytes of each body to capture, when the log settings capture this API's.
    pub capture: Option<u32>,
}

/// Longest path and user agent kept in the call log, in bytes.
const LOGGED_TEXT_MAX: usize = 256;

fn clipped(text: &str) -> String {
    let mut end = text.len().min(LOGGED_TEXT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The API a path belongs to, as the call log and plans name it.
fn api_of(path: &str) -> Cow<'static, str> {
    match path {
        CHAT => "chat".into(),
        MODELS => "models".into(),
        STATUS => "billing-status".into(),
        APIS_OPENAPI => "apis-openapi".into(),
        OPENAPI => "openapi".into(),
        _ => match path.strip_prefix(APIS) {
            Some(slug) if !slug.is_empty() => clipped(slug).into(),
            _ => "other".into(),
        },
    }
}

/// The path as logged: the data plane's own paths without a copy.
fn logged_path(path: &str) -> Cow<'static, str> {
    match path {
        CHAT => CHAT.into(),
        MODELS => MODELS.into(),
        STATUS => STATUS.into(),
        _ => clipped(path).into(),
    }
}

/// The method as logged: the usual ones without a copy.
fn logged_method(method: &Method) -> Cow<'static, str> {
    match *method {
        Method::POST => "POST".into(),
        Method::GET => "GET".into(),
        _ => method.as_str().to_owned().into(),
    }
}

impl Call {
    pub fn start(req: &Request<Incoming>, peer: Option<Arc<str>>, captures: &BodyCaptures) -> Self {
        // The clock is read once for the id, the record and the decisions.
        let at = chrono::Utc::now();
        let request_id = crate::ids::new_id_at("req", at.into());
        let path = req.uri().path();
        let api = api_of(path);
        let capture = captures.limit_for(&api);
        let log = CallRecord {
            id: request_id.clone(),
            at_us: at.timestamp_micros(),
            api,
            method: logged_method(req.method()),
            path: logged_path(path),
            client_ip: peer,
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(clipped),
            ..CallRecord::default()
        };
        Call {
            request_id,
            at,
            started: Instant::now(),
            log: Some(Box::new(log)),
            capture,
        }
    }

    /// Keeps the request's body, when this API's are captured.
    pub fn capture_request(&mut self, body: &[u8]) {
        if let (Some(max), Some(log)) = (self.capture, self.log.as_deref_mut()) {
            log.request_body = Some(clip_body(body, max + CAPTURE_MARGIN));
            log.body_limit = max;
        }
    }

    /// Keeps the answer's body, when this API's are captured.
    pub fn capture_response(&mut self, body: &[u8]) {
        if let (Some(max), Some(log)) = (self.capture, self.log.as_deref_mut()) {
            log.response_body = Some(clip_body(body, max + CAPTURE_MARGIN));
            log.body_limit = max;
        }
    }

    /// Notes who is calling, once the key is known.
    pub fn caller(&mut self, caller: &auth::Caller) {
        if let Some(log) = &mut self.log {
            let ids = &caller.credential.logged;
            log.team_id = Some(ids.team_id.clone());
            log.consumer_id = Some(ids.consumer_id.clone());
            log.key_id = Some(ids.key_id.clone());
            log.key_prefix = Some(ids.key_prefix.clone());
        }
    }

    /// The record, while the call still holds it.
    pub fn log(&mut self) -> Option<&mut CallRecord> {
        self.log.as_deref_mut()
    }

    /// Notes the model asked for.
    pub fn asked(&mut self, model: &str) {
        if let Some(log) = self.log() {
            log.model = Some(clipped(model));
        }
    }

    /// Notes the provider, model and key that serve (or were tried last).
    pub fn served_by(&mut self, route: &routes::ModelRoute, key: Option<&str>) {
        if let Some(log) = self.log() {
            log.provider_id = Some(route.provider.id.clone());
            log.model = Some(route.name.clone());
            log.provider_key = key.map(str::to_owned);
        }
    }

    /// Notes how the upstream answered and how long it took.
    pub fn upstream(&mut self, status: Option<StatusCode>, waited: std::time::Duration) {
        if let Some(log) = self.log() {
            log.upstream_status = status.map(|s| s.as_u16());
            log.upstream_us = Some(i64::try_from(waited.as_micros()).unwrap_or(i64::MAX));
        }
    }

    /// Notes what the call used and was charged.
    pub fn charged(&mut self, tokens: (u64, u64), cost: i64, currency: &str) {
        if let Some(log) = self.log() {
            log.tokens_in = i64::try_from(tokens.0).unwrap_or(i64::MAX);
            log.tokens_out = i64::try_from(tokens.1).unwrap_or(i64::MAX);
            log.cost_micros = cost;
            log.currency = Some(currency.to_owned());
        }
    }

    /// Renders a refusal, or passes an answer on, with the request id
    /// header; logs the call unless a stream's settlement will.
    pub fn finish(
        mut self,
        plane: &Arc<DataPlane>,
        path: &'static str,
        answer: Result<Response, Refusal>,
    ) -> Response {
        let (mut response, refused) = match answer {
            Ok(response) => (response, None),
            Err(refusal) => {
                let slug = refusal.slug;
                let (response, message) =
                    refusal.render_keeping_message(&self.request_id, &plane.instance.public_url);
                (response, Some((slug, message)))
            }
        };
        let status = response.status().as_u16();
        let elapsed = self.started.elapsed();
        tracing::info!(
            request_id = self.request_id,
            path,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "call"
        );
        if let Some(mut log) = self.log.take() {
            log.status = status;
            log.latency_us = i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX);
            if let Some((reason, message)) = refused {
                log.reason = Some(reason.into());
                log.error.get_or_insert(message);
            }
            plane.accounts.usage.log(log);
        }
        // The id's own bytes become the header's (no copy).
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(self.request_id)) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
}

fn not_found() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "This gateway offers POST /v1/chat/completions, GET /v1/models, GET /v1/billing/status and POST /apis/{slug}, described at GET /v1/openapi.json.",
    )
}

fn method_not_allowed(allowed: &'static str) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("This path takes {allowed} only."),
    )
    .header(header::ALLOW, allowed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_store_failures_is_logged_once_a_second() {
        let e = crate::store::StoreError::Conflict("the database is away".into());
        // Within one second at most one of many is logged (two when the
        // second turns meanwhile).
        let logged = (0..1_000).filter(|_| store_failed("leases", &e)).count();
        assert!((1..=2).contains(&logged), "{logged} logged");
    }
}
