//! Human-readable pages for problem `type` URIs (`/problems/<slug>`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub async fn page(Path(slug): Path<String>) -> Response {
    let found = crate::problem_types::all().find(|(s, _, _)| *s == slug);
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
