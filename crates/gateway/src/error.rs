//! The management API's error type. Every variant maps to a status and a
//! problem slug; store and internal errors are logged with detail and answered
//! with a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_api::{FieldError, Scope};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No admin token, or one that is malformed, unknown or revoked.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token lacks the scope the endpoint needs.
    #[error("this action needs the `{0}` scope")]
    Forbidden(Scope),
    #[error("{0} not found")]
    NotFound(String),
    /// The body is not valid JSON, or a header is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body or query parsed but some fields are invalid.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names a version that is no longer current.
    #[error("the resource changed since you read it (current version {current})")]
    PreconditionFailed { current: i64 },
    #[error("an earlier request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    #[error("the request body is larger than this gateway accepts (its `max_body_bytes` setting)")]
    PayloadTooLarge,
    /// A body of another type than the JSON the operation reads.
    #[error("the body must be application/json, not `{0}`")]
    UnsupportedMediaType(String),
    #[error("no route for this method and path")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the gateway's store is unavailable")]
    Unavailable,
    /// The payment processor refused a card (Stripe-style codes).
    #[error("{}", card_detail(.0))]
    Card(crate::payments::CardError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn card_detail(e: &crate::payments::CardError) -> String {
    match &e.decline_code {
        Some(decline) => format!("{} ({}, {decline})", e.message, e.code),
        None => format!("{} ({})", e.message, e.code),
    }
}

/// A problem waiting for its request id and absolute type URI, which the
/// request-context middleware adds before the answer leaves.
#[derive(Debug, Clone)]
pub struct ProblemDraft {
    pub slug: &'static str,
    pub title: &'static str,
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
}

impl ApiError {
    pub fn status_and_slug(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PreconditionFailed { .. } => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency-key-in-use",
                "Idempotency key in use",
            ),
            IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            RouteNotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "Service unavailable",
            ),
            Card(_) => (StatusCode::PAYMENT_REQUIRED, "card-error", "Card error"),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
            ),
        }
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource".into()),
            StoreError::Conflict(msg) => ApiError::Conflict(msg),
            StoreError::VersionMismatch { current } => ApiError::PreconditionFailed { current },
            StoreError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            StoreError::Migration(msg) => ApiError::Internal(anyhow::anyhow!(msg)),
            StoreError::Backend(err) => ApiError::Internal(err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.status_and_slug();
        let detail = match &self {
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                "The gateway hit an internal error; its log has the detail (search for the request id).".to_owned()
            }
            other => other.to_string(),
        };
        let (code, decline_code) = match &self {
            ApiError::Card(card) => (Some(card.code.clone()), card.decline_code.clone()),
            _ => (None, None),
        };
        let errors = match self {
            ApiError::Validation(errors) => errors,
            _ => Vec::new(),
        };
        let mut response = status.into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(ProblemDraft {
            slug,
            title,
            status,
            detail,
            errors,
            code,
            decline_code,
        });
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Store errors for a resource of `kind` named by `id`: "not found" names it.
pub fn for_resource<'a>(kind: &'static str, id: &'a str) -> impl Fn(StoreError) -> ApiError + 'a {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("{kind} `{id}`")),
        other => other.into(),
    }
}

/// Set on answers that carry a secret: the idempotency layer stores this
/// redacted body for replays instead of the real one.
#[derive(Debug, Clone)]
pub struct RedactedReplay(pub Vec<u8>);
