//! Request extractors that answer with problems instead of axum's plain-text
//! rejections: JSON bodies (400 / 413 / 422 naming the field) and page queries.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use tollgate_api::{DEFAULT_PAGE_LIMIT, FieldError, MAX_PAGE_LIMIT};

use crate::error::ApiError;

/// A JSON body. Syntax errors are 400; a body that parses but does not fit the
/// type is 422 naming the field; an oversized body is 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            if !ct.starts_with("application/json") && !ct.contains("+json") {
                return Err(ApiError::UnsupportedMediaType(ct.to_owned()));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body: 400 when it is not JSON, 422 naming the field when it
/// does not fit `T`. Every body is an object: serde would read a struct whose
/// fields all have defaults from `[]` as well.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".to_owned(),
        ));
    }
    whole_numbers(&mut value);
    serde_path_to_error::deserialize::<_, T>(value)
        .map_err(|e| ApiError::Validation(vec![field_error(&e)]))
}

/// `2.0` is the integer 2 in JSON (and to JSON Schema's `integer`): such
/// numbers are made integers before `T` reads them, which serde would not do.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Beyond 2^53 a float no longer names one integer: left as it is.
                if f.abs() < 9_007_199_254_740_992.0 {
                    *value = if f < 0.0 {
                        Value::from(f as i64)
                    } else {
                        Value::from(f as u64)
                    };
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let message = e.inner().to_string();
    let path = e.path().to_string();
    // serde reports a missing field at its parent: name the field itself.
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (path.as_str(), missing) {
        (".", Some(name)) => name.to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (p, None) => p.to_owned(),
    };
    FieldError::new(field, without_value(&message))
}

/// serde quotes the offending value ("invalid type: integer `4242…`"): it may
/// be a card number or a key sent in the wrong field, so it is never echoed.
fn without_value(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let expected = message.split("expected ").nth(1).unwrap_or("another value");
        format!("has the wrong type or value: expected {expected}")
    } else {
        message.to_owned()
    }
}

/// `?limit=&cursor=`, validated. `after` is the position the cursor names.
pub struct PageParams {
    pub limit: u32,
    pub after: Option<i64>,
}

impl PageParams {
    /// The cursor of the page after `position`: the position in decimal (a
    /// cursor names a place in the list's order, nothing else).
    pub fn cursor_for(position: i64) -> String {
        position.to_string()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?;
        let mut errors = Vec::new();
        let limit = match query.get("limit") {
            None => DEFAULT_PAGE_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_PAGE_LIMIT}"),
                    ));
                    0
                }
            },
        };
        let after = match query.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => {
                let position = (raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| raw.parse::<i64>().ok())
                    .flatten();
                if position.is_none() {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this endpoint returned",
                    ));
                }
                position
            }
        };
        if errors.is_empty() {
            Ok(PageParams { limit, after })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// A versioned resource as JSON, with its `ETag`.
pub fn versioned<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
    version: i64,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    response
}

/// `201 Created` with `ETag` and `Location`.
pub fn created<T: serde::Serialize>(
    body: &T,
    version: i64,
    location: &str,
) -> axum::response::Response {
    let mut response = versioned(StatusCode::CREATED, body, version);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

/// The version an `If-Match` header requires: `None` when absent or `*`. A
/// value that names no version can never match, so it yields `Some(-1)`.
pub fn if_match(headers: &HeaderMap) -> Option<i64> {
    let raw = headers
        .get(header::IF_MATCH)?
        .to_str()
        .unwrap_or("\"-1\"")
        .trim();
    if raw == "*" {
        return None;
    }
    let first = raw.split(',').next().unwrap_or_default().trim();
    let first = first.strip_prefix("W/").unwrap_or(first);
    Some(first.trim_matches('"').parse::<i64>().unwrap_or(-1))
}

/// A query string read into `T`, refused as a problem (400) when it does not
/// parse: axum's own `Query` would answer in plain text.
pub struct QueryOf<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryOf(value))
            .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_value_is_never_echoed() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Card {
            number: String,
            exp_month: u32,
        }
        for body in [
            r#"{"number": 4242424242424242, "exp_month": 1}"#,
            r#"{"number": "x", "exp_month": -4242424242}"#,
        ] {
            let Err(ApiError::Validation(fields)) = parse_json::<Card>(body.as_bytes()) else {
                panic!("expected a validation error for {body}")
            };
            let text = format!("{fields:?}");
            assert!(!text.contains("4242424242"), "{text}");
            assert!(text.contains("expected"), "{text}");
        }
    }
}
