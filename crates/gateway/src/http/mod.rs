//! The HTTP surface: router, middleware, and one module per resource.

pub mod auth;
mod billing_settings;
mod consumers;
mod contract;
mod extract;
mod idempotency;
mod keys;
pub mod logs;
mod payment_methods;
mod plans;
mod problems;
mod prompt_apis;
mod providers;
mod subscriptions;
mod system;
mod teams;
mod wallets;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tollgate_api::{PROBLEM_CONTENT_TYPE, Problem, REQUEST_ID_HEADER};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ProblemDraft};
use crate::store::Store;

pub use extract::{ApiJson, PageParams, QueryOf, created, etag, if_match, parse_json, versioned};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Seals secrets kept at rest (provider keys, processor credentials).
    pub secrets: Arc<crate::crypto::SecretBox>,
    pub instance: Arc<crate::instance::Instance>,
    pub billing: Arc<crate::billing::Billing>,
    pub data: Arc<crate::dataplane::DataPlane>,
}

/// The id of the current request (`req_<ulid>`), set by the outermost middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tollgate management API",
        description = "Manage a Tollgate AI gateway. Every endpoint needs an admin token \
            (`Authorization: Bearer tga_…`) with the scope it names; errors are \
            `application/problem+json` (RFC 9457). Lists page with `?limit=&cursor=`; \
            updates take `If-Match`; POSTs take `Idempotency-Key`."
    ),
    modifiers(&BearerAuth),
    components(schemas(tollgate_api::Problem, tollgate_api::FieldError))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn documented_routes() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::healthz))
        .routes(routes!(system::info))
        .routes(routes!(system::list_audit))
        .routes(routes!(system::list_nodes))
        .routes(routes!(system::metrics))
        .routes(routes!(teams::list_teams, teams::create_team))
        .routes(routes!(
            teams::get_team,
            teams::update_team,
            teams::delete_team
        ))
        .routes(routes!(
            consumers::list_consumers,
            consumers::create_consumer
        ))
        .routes(routes!(
            consumers::get_consumer,
            consumers::update_consumer,
            consumers::delete_consumer
        ))
        .routes(routes!(keys::list_consumer_keys, keys::create_consumer_key))
        .routes(routes!(keys::find_keys))
        .routes(routes!(keys::get_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(plans::list_plans, plans::create_plan))
        .routes(routes!(
            plans::get_plan,
            plans::update_plan,
            plans::delete_plan
        ))
        .routes(routes!(wallets::list_wallets))
        .routes(routes!(wallets::list_entries, wallets::create_entry))
        .routes(routes!(
            subscriptions::list_subscriptions,
            subscriptions::create_subscription
        ))
        .routes(routes!(subscriptions::get_subscription))
        .routes(routes!(subscriptions::subscription_usage))
        .routes(routes!(subscriptions::act_on_subscription))
        .routes(routes!(subscriptions::change_plan))
        .routes(routes!(
            payment_methods::list_payment_methods,
            payment_methods::add_payment_method
        ))
        .routes(routes!(payment_methods::set_default))
        .routes(routes!(payment_methods::remove))
        .routes(routes!(payment_methods::list_charges))
        .routes(routes!(
            billing_settings::get_settings,
            billing_settings::put_settings
        ))
        .routes(routes!(billing_settings::test_settings))
        .routes(routes!(billing_settings::check))
        .routes(routes!(
            providers::list_providers,
            providers::create_provider
        ))
        .routes(routes!(
            providers::get_provider,
            providers::update_provider,
            providers::delete_provider
        ))
        .routes(routes!(
            providers::list_provider_keys,
            providers::create_provider_key
        ))
        .routes(routes!(
            providers::update_provider_key,
            providers::delete_provider_key
        ))
        .routes(routes!(providers::list_key_events))
        .routes(routes!(providers::test_provider))
        .routes(routes!(
            prompt_apis::list_prompt_apis,
            prompt_apis::create_prompt_api
        ))
        .routes(routes!(prompt_apis::get_prompt_api))
        .routes(routes!(
            prompt_apis::list_versions,
            prompt_apis::add_version
        ))
        .routes(routes!(prompt_apis::change_lifecycle))
        .routes(routes!(prompt_apis::run_prompt))
        .routes(routes!(logs::list_logs))
        .routes(routes!(logs::export_logs))
        .routes(routes!(logs::log_stats))
        .routes(routes!(logs::get_log_settings, logs::put_log_settings))
}

/// The OpenAPI 3.1 document, generated from the routes above.
pub fn openapi() -> OpenApi {
    documented_routes_and_doc().1
}

/// The routes and their document, completed with what every operation may
/// answer ([`contract`]).
fn documented_routes_and_doc() -> (axum::Router<AppState>, OpenApi) {
    let (routes, mut doc) = documented_routes().split_for_parts();
    utoipa::Modify::modify(&contract::ProblemAnswers, &mut doc);
    (routes, doc)
}

pub fn router(state: AppState) -> Router {
    let (routes, doc) = documented_routes_and_doc();
    let doc = Arc::new(doc);
    routes
        .route(
            "/admin/v1/openapi.json",
            axum::routing::get(move |admin: auth::Admin| {
                let doc = doc.clone();
                async move {
                    let _ = admin;
                    axum::Json(doc.as_ref().clone())
                }
            }),
        )
        .route("/problems/{slug}", axum::routing::get(problems::page))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .layer(DefaultBodyLimit::max(state.instance.max_body_bytes))
        // gzip for clients that ask (the log export, large lists); never for
        // event streams, which tower-http's default predicate leaves alone.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// Outermost middleware: assigns the request id, turns problem drafts into
/// `application/problem+json` bodies, and logs one line per request.
async fn request_context(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = crate::ids::new_id("req");
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let mut response = finish_problem(next.run(req).await, &request_id, &state.instance.public_url);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    tracing::info!(
        request_id,
        %method,
        path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Renders a [`ProblemDraft`] left by [`ApiError`] into the final body.
pub(crate) fn finish_problem(
    mut response: Response,
    request_id: &str,
    public_url: &str,
) -> Response {
    let Some(draft) = response.extensions_mut().remove::<ProblemDraft>() else {
        return response;
    };
    let problem = Problem {
        type_uri: format!("{public_url}/problems/{}", draft.slug),
        title: draft.title.to_owned(),
        status: draft.status.as_u16(),
        detail: Some(draft.detail),
        request_id: Some(request_id.to_owned()),
        reason: Some(draft.slug.to_owned()),
        errors: draft.errors,
        code: draft.code,
        decline_code: draft.decline_code,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body)).into_response()
}
