//! The data plane's answers when it refuses a call: `application/problem+json`
//! (RFC 9457) with an absolute `type` under the public URL, an OpenAI-style
//! `error` object so OpenAI SDKs show the message, and the fields a client
//! needs to act (`balance`, `required`, `payment_method`, …).

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;
use tollgate_api::{PROBLEM_CONTENT_TYPE, REQUEST_ID_HEADER};

/// A field's value: built for this refusal, or JSON written once and shared
/// (what every refusal of a subscription repeats, such as its plan).
#[derive(Debug, Clone)]
pub enum Field {
    Value(Value),
    Raw(Arc<RawValue>),
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(serializer),
            Field::Raw(raw) => raw.serialize(serializer),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub message: String,
    /// The fields a client needs to act, after the standard ones, in order.
    pub fields: Vec<(&'static str, Field)>,
    pub headers: Vec<(HeaderName, String)>,
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        503 => "service_unavailable",
        400 | 404 | 413 | 422 => "invalid_request_error",
        _ => "api_error",
    }
}

impl Refusal {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Refusal {
            status,
            slug,
            title,
            message: message.into(),
            fields: Vec::with_capacity(8),
            headers: Vec::new(),
        }
    }

    /// Adds a field to the body; a later value for the same name wins.
    pub fn field(self, name: &'static str, value: impl Into<Value>) -> Self {
        self.set(name, Field::Value(value.into()))
    }

    /// Adds a field whose JSON was written beforehand.
    pub fn raw_field(self, name: &'static str, json: &Arc<RawValue>) -> Self {
        self.set(name, Field::Raw(json.clone()))
    }

    fn set(mut self, name: &'static str, value: Field) -> Self {
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = value,
            None => self.fields.push((name, value)),
        }
        self
    }

    pub fn header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `application/problem+json` answer, with an OpenAI-style `error`
    /// object inside so that OpenAI SDKs show the message.
    pub fn render(self, request_id: &str, public_url: &str) -> Response {
        let body = serde_json::to_vec(&ProblemBody {
            refusal: &self,
            request_id,
            public_url,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID_HEADER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// Serializes a refusal straight to bytes: this is the data plane's hottest
/// answer, so no intermediate JSON tree is built.
struct ProblemBody<'a> {
    refusal: &'a Refusal,
    request_id: &'a str,
    public_url: &'a str,
}

struct OpenAiError<'a>(&'a Refusal);

/// `invalid-api-key` → `invalid_api_key`, the OpenAI spelling of codes.
struct Code(&'static str);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.split('-').enumerate() {
            if i > 0 {
                f.write_str("_")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

impl Serialize for ProblemBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.refusal;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(
            "type",
            &format_args!("{}/problems/{}", self.public_url, r.slug),
        )?;
        map.serialize_entry("title", r.title)?;
        map.serialize_entry("status", &r.status.as_u16())?;
        map.serialize_entry("detail", &r.message)?;
        map.serialize_entry("request_id", self.request_id)?;
        map.serialize_entry("reason", r.slug)?;
        map.serialize_entry("error", &OpenAiError(r))?;
        for (name, value) in &r.fields {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Serialize for OpenAiError<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("message", &self.0.message)?;
        map.serialize_entry("type", openai_type(self.0.status))?;
        map.serialize_entry("code", &format_args!("{}", Code(self.0.slug)))?;
        map.end()
    }
}

pub const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        "invalid-api-key",
        "Invalid API key",
        "The request carried no consumer API key, or one this gateway does not know. Send `Authorization: Bearer tg_…` (or `x-api-key`) with the key you were given.",
    ),
    (
        "api-key-expired",
        "API key expired",
        "The key passed its expiry date (`expires_at`), or the grace period after its rotation ended. Use the key that replaced it, or ask the gateway's admin for a new one.",
    ),
    (
        "api-key-revoked",
        "API key revoked",
        "The key was revoked by an admin. Ask for a new key.",
    ),
    (
        "not-subscribed",
        "Not subscribed",
        "No subscription of this consumer covers the API that was called, or the key may not call it. Subscribe to a plan that covers it.",
    ),
    (
        "subscription-pending-approval",
        "Subscription pending approval",
        "The subscription waits for an admin's approval. Calls work once it is approved.",
    ),
    (
        "subscription-suspended",
        "Subscription suspended",
        "An admin suspended the subscription; `detail` gives the reason. Contact the gateway's admin.",
    ),
    (
        "consumer-suspended",
        "Consumer suspended",
        "An admin suspended this consumer; all its keys are refused. Contact the gateway's admin.",
    ),
    (
        "subscription-expired",
        "Subscription expired",
        "The subscription's period ended without renewal (`expires_at`), or its grace period after a failed payment ran out. Renew it to call again.",
    ),
    (
        "subscription-past-due",
        "Subscription past due",
        "The renewal charge failed; `payment_method` shows the card and the decline code. Pay before `grace_until`, or the subscription expires.",
    ),
    (
        "insufficient-funds",
        "Insufficient funds",
        "The call costs more than is left: `required` is what it needs, `balance` what is available, both in `currency`. Top up the wallet or wait for the next period's credits.",
    ),
    (
        "payment-method-invalid",
        "Payment method invalid",
        "The renewal could not be charged because the card on file is expired, missing or invalid (`payment_method`). Add a valid card and retry the payment.",
    ),
    (
        "rate-limited",
        "Rate limited",
        "Too many calls for the plan's rate limit. Wait `Retry-After` seconds; the `RateLimit-*` headers say how many calls remain.",
    ),
    (
        "billing-unavailable",
        "Billing unavailable",
        "The gateway cannot bill calls because its own payment settings are broken. This is the gateway's fault, not yours; its admins have been alerted. Retry later.",
    ),
    (
        "upstream-error",
        "Upstream error",
        "The model provider behind the gateway failed or could not be reached; nothing was charged.",
    ),
    (
        "upstream-not-configured",
        "No upstream",
        "This gateway has no model provider configured; nothing was charged.",
    ),
];
