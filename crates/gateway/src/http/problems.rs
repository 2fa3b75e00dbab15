//! Human-readable pages for problem `type` URIs (`/problems/<slug>`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every problem slug the gateway answers with: (slug, title, explanation).
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        "unauthorized",
        "Unauthorized",
        "The request carried no admin token, or one that is malformed, unknown or revoked. Send `Authorization: Bearer <token>` with a valid token.",
    ),
    (
        "forbidden",
        "Forbidden",
        "The admin token is valid but lacks the scope this endpoint needs. The detail names the scope; ask an admin for a token that has it.",
    ),
    (
        "not-found",
        "Not found",
        "No resource or route matches the request.",
    ),
    (
        "bad-request",
        "Bad request",
        "The request is malformed, for example its body is not valid JSON.",
    ),
    (
        "validation-failed",
        "Validation failed",
        "The request parsed but some fields are invalid. `errors` lists each field and what is wrong with it.",
    ),
    (
        "conflict",
        "Conflict",
        "The request conflicts with the current state, for example a name already in use.",
    ),
    (
        "precondition-failed",
        "Precondition failed",
        "The `If-Match` header names a version that is no longer current: someone changed the resource since you read it. Read it again and reapply your change.",
    ),
    (
        "idempotency-key-in-use",
        "Idempotency key in use",
        "An earlier request with the same `Idempotency-Key` is still being processed. Retry shortly.",
    ),
    (
        "idempotency-key-reused",
        "Idempotency key reused",
        "The `Idempotency-Key` was already used for a different request. Use a new key for a new request.",
    ),
    (
        "payload-too-large",
        "Payload too large",
        "The request body exceeds the gateway's limit.",
    ),
    (
        "unsupported-media-type",
        "Unsupported media type",
        "The body is not `application/json`: send JSON with that `Content-Type`.",
    ),
    (
        "method-not-allowed",
        "Method not allowed",
        "The route exists but not with this HTTP method.",
    ),
    (
        "service-unavailable",
        "Service unavailable",
        "The gateway cannot reach its store. Retry later; admins should check the gateway's log.",
    ),
    (
        "internal-error",
        "Internal error",
        "The gateway hit an unexpected error. Its log has the detail under the request id.",
    ),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub async fn page(Path(slug): Path<String>) -> Response {
    let found = CATALOGUE
        .iter()
        .chain(crate::dataplane::refusal::CATALOGUE)
        .find(|(s, _, _)| *s == slug);
    let Some((slug, title, text)) = found else {
        return crate::error::ApiError::NotFound(format!("problem type `{slug}`")).into_response();
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p><code>{slug}</code></p><p>{}</p></body></html>",
        escape(text)
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}
