//! `POST /v1/chat/completions`: the minimal forwarding path to one
//! OpenAI-compatible upstream, billed per request and per token.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use tollgate_api::money::Amount;

use super::DataPlane;
use super::DefaultUpstream;
use super::hold::Hold;
use super::hot::Coverage;
use super::pool::{self, Served, Unserved};
use super::ratelimit::TokenCharge;
use super::refusal::Refusal;
use super::routes::{ModelRoute, RouteTable};
use super::stream::{self, Dialect, Settlement};
use super::upstream::Reply;
use super::upstream::UpstreamError;
use super::{Call, auth, decision};
use crate::store::ProviderKeyUse;
use tollgate_api::ProviderKind;

const API: &str = "chat";

/// Takes a call's estimated tokens from its plan's tokens-per-minute
/// allowance, if the plan has one; refused when the allowance is spent.
async fn take_tokens(
    data: &DataPlane,
    cover: &Coverage,
    estimate: u64,
    rate_headers: &mut Vec<(HeaderName, String)>,
) -> Result<Option<TokenCharge>, Refusal> {
    let plan = &cover.plan;
    let Some(per_minute) = plan.rate_limits.tokens_per_minute else {
        return Ok(None);
    };
    let key = format!("{}:{}:tokens", cover.sub.consumer_id, plan.id);
    let (d, charge) = data
        .limiter
        .take_tokens(key, per_minute, estimate)
        .await
        .map_err(|e| super::unreadable("rate limits", &e))?;
    rate_headers.push((X_RATELIMIT_LIMIT_TOKENS, d.limit.to_string()));
    rate_headers.push((X_RATELIMIT_REMAINING_TOKENS, d.remaining.to_string()));
    if d.allowed {
        return Ok(charge);
    }
    let mut refusal = Refusal::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Rate limited",
        format!(
            "The plan {} allows {per_minute} tokens a minute and this call may use up to {estimate}; retry in {} s.",
            plan.name, d.retry_after
        ),
    )
    .field("retry_after", d.retry_after)
    .field("limit", per_minute)
    .field("limit_unit", "tokens")
    .header(header::RETRY_AFTER, d.retry_after.to_string());
    for (name, value) in std::mem::take(rate_headers) {
        refusal = refusal.header(name, value);
    }
    Err(refusal)
}

const X_RATELIMIT_LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const X_RATELIMIT_REMAINING_TOKENS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-tokens");
const X_TOLLGATE_COST: HeaderName = HeaderName::from_static("x-tollgate-cost");
const X_TOLLGATE_SUBSCRIPTION: HeaderName = HeaderName::from_static("x-tollgate-subscription");
/// Completion tokens assumed when the request sets no `max_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 256;

fn bad_request(message: &str) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        "bad-request",
        "Bad request",
        message,
    )
}

/// The fields of a chat completion request the gateway reads; the body is
/// forwarded as it came.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    model: Option<Cow<'a, str>>,
    messages: Option<IgnoredArray>,
    stream: Option<bool>,
    #[serde(default, deserialize_with = "allowance_field")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "allowance_field")]
    max_completion_tokens: Option<u64>,
}

/// The most tokens a call may ask to generate: no model writes more, and
/// its price is held while the call runs. The consumer API's document says
/// the same.
pub const MAX_TOKENS_LIMIT: u64 = 1_000_000_000;

/// A token allowance: a whole number up to [`MAX_TOKENS_LIMIT`]; `2.0` is the
/// integer 2 in JSON.
fn allowance_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let number: Option<serde_json::Number> = Option::deserialize(d)?;
    let Some(number) = number else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_TOKENS_LIMIT as f64)
            .map(|f| f as u64)
    });
    match whole {
        Some(n) if n <= MAX_TOKENS_LIMIT => Ok(Some(n)),
        _ => Err(de::Error::custom("not a token allowance")),
    }
}

impl ChatRequest<'_> {
    /// Tokens the request may use: its text at ~4 characters a token, plus
    /// its completion allowance.
    fn token_allowance(&self, raw_len: usize) -> u64 {
        let (prompt, completion) = self.token_estimate(raw_len);
        prompt + completion
    }

    /// (prompt, completion) tokens at most: the body's text at ~4
    /// characters a token, and the completion allowance.
    fn token_estimate(&self, raw_len: usize) -> (u64, u64) {
        let completion = self
            .max_tokens
            .or(self.max_completion_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        ((raw_len as u64).div_ceil(4), completion)
    }
}

/// Parses the fields above. Errors name the fields, never their values.
fn parse_request(body: &[u8]) -> Result<ChatRequest<'_>, Refusal> {
    const FIELDS: &str = "A chat completion is an object with `model` (a string) and `messages` (an array); \
        `stream` must be true or false, `max_tokens` and `max_completion_tokens` whole numbers up to 1000000000.";
    // JSON is UTF-8 text (RFC 8259): checked once for the whole body, so
    // the parser need not check each string again, and a message's bytes
    // are text before they are forwarded.
    let text = std::str::from_utf8(body).map_err(|e| {
        bad_request(&format!(
            "The body is not valid JSON: it is not UTF-8 text (byte {}).",
            e.valid_up_to()
        ))
    })?;
    if !super::starts_object(body) && serde_json::from_str::<de::IgnoredAny>(text).is_ok() {
        return Err(bad_request(FIELDS));
    }
    let parsed: ChatRequest = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => bad_request(FIELDS),
        _ => bad_request(&format!(
            "The body is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        )),
    })?;
    if parsed.model.is_none() || parsed.messages.is_none() {
        return Err(bad_request(FIELDS));
    }
    if let Some(escape) = lone_surrogate(text) {
        return Err(lone_surrogate_refusal(text, escape));
    }
    Ok(parsed)
}

/// The first `\uXXXX` escape of `text` that is half of a UTF-16 surrogate
/// pair without its other half: JSON the parser above accepts in the parts
/// it skips, but no character, which providers refuse. `None` for text
/// without one; a body without a backslash costs one scan for it.
fn lone_surrogate(text: &str) -> Option<&str> {
    fn unit(hex: &[u8]) -> Option<u16> {
        std::str::from_utf8(hex.get(..4)?)
            .ok()
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[at..]) {
        let escape = at + found;
        match bytes.get(escape + 1) {
            Some(b'u') => {
                let Some(u) = unit(&bytes[escape + 2..]) else {
                    at = escape + 2;
                    continue;
                };
                at = escape + 6;
                if (0xDC00..=0xDFFF).contains(&u) {
                    return Some(&text[escape..at]);
                }
                if (0xD800..=0xDBFF).contains(&u) {
                    let paired = bytes.get(at..at + 2) == Some(b"\\u")
                        && unit(&bytes[at + 2..])
                            .is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                    if !paired {
                        return Some(&text[escape..at]);
                    }
                    at += 6;
                }
            }
            // Any other escape is two characters: skip both (`\\` among them).
            Some(_) => at = escape + 2,
            None => break,
        }
    }
    None
}

/// 400 naming where in the body the lone surrogate is (found again with
/// the path-tracking parser: rare, so the hot path never pays for it).
fn lone_surrogate_refusal(text: &str, escape: &str) -> Refusal {
    let mut json = serde_json::Deserializer::from_str(text);
    let path = match serde_path_to_error::deserialize::<_, serde_json::Value>(&mut json) {
        Err(e) => e.path().to_string(),
        Ok(_) => ".".to_owned(),
    };
    bad_request(&format!(
        "The body is not valid JSON text: `{path}` holds {escape}, half of a UTF-16 surrogate pair \
         without its other half, which is no character."
    ))
    .field("param", path)
}

/// An optional string, borrowed from the body unless it has escapes (serde
/// borrows a `Cow` field only when it is not inside an `Option`).
fn borrowed_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(V)
        }
    }
    d.deserialize_option(V)
}

/// Accepts any JSON array and keeps nothing. (Cheaper than taking the
/// array as a `RawValue`, measured.)
struct IgnoredArray;

impl<'de> Deserialize<'de> for IgnoredArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IgnoredArray;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<IgnoredArray, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(IgnoredArray)
            }
        }
        d.deserialize_seq(V)
    }
}

/// The part of the upstream's answer the gateway bills from.
#[derive(Deserialize)]
struct Answer {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    total_tokens: Option<u64>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl Usage {
    /// (prompt, completion) tokens; a total alone counts as completion.
    fn split(&self) -> (u64, u64) {
        match (self.prompt_tokens, self.completion_tokens) {
            (None, None) => (0, self.total_tokens.unwrap_or(0)),
            (p, c) => (p.unwrap_or(0), c.unwrap_or(0)),
        }
    }

    fn tokens(&self) -> u64 {
        self.total_tokens.unwrap_or_else(|| {
            self.prompt_tokens.unwrap_or(0) + self.completion_tokens.unwrap_or(0)
        })
    }
}

pub async fn chat_completions(
    plane: &Arc<DataPlane>,
    call: &mut Call,
    req: Request<Incoming>,
) -> Result<Response, Refusal> {
    let (parts, body) = req.into_parts();
    // The key is in the head: one that is not valid is refused before its
    // body is read, or waited for.
    let caller = auth::authenticate(plane, &parts.headers, call.at).await?;
    call.caller(&caller);
    let body = super::read_body(body, &plane.instance).await?;
    call.capture_request(&body);
    handle(plane, call, caller, body, API, &[]).await
}

/// Answers a chat completion request: of the chat API itself, or built by a
/// prompt API (`api` is then its slug and `chain` its fallback models).
pub async fn handle(
    plane: &Arc<DataPlane>,
    call: &mut Call,
    caller: auth::Caller,
    body: Bytes,
    api: &str,
    chain: &[String],
) -> Result<Response, Refusal> {
    let now = call.at;
    let data = plane;

    let cover = decision::subscription_for(plane, &caller, api, now).await?;
    let (sub, plan) = (&cover.sub, &cover.plan);
    if let Some(fault) = plane.billing.fault_for(plan) {
        plane.billing.record_incident(&fault);
        return Err(decision::billing_unavailable());
    }

    let mut rate_headers = Vec::new();
    if let Some(rpm) = plan.rate_limits.requests_per_minute {
        let d = data
            .limiter
            .check(&format!("{}:{}", sub.consumer_id, plan.id), rpm)
            .await
            .map_err(|e| super::unreadable("rate limits", &e))?;
        rate_headers = vec![
            (
                HeaderName::from_static("ratelimit-limit"),
                d.limit.to_string(),
            ),
            (
                HeaderName::from_static("ratelimit-remaining"),
                d.remaining.to_string(),
            ),
            (
                HeaderName::from_static("ratelimit-reset"),
                d.retry_after.to_string(),
            ),
        ];
        if !d.allowed {
            let mut refusal = Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Rate limited",
                format!(
                    "The plan {} allows {rpm} calls a minute; retry in {} s.",
                    plan.name, d.retry_after
                ),
            )
            .field("retry_after", d.retry_after)
            .field("limit", rpm)
            .field("limit_unit", "requests")
            .header(header::RETRY_AFTER, d.retry_after.to_string());
            for (name, value) in rate_headers {
                refusal = refusal.header(name, value);
            }
            return Err(refusal);
        }
    }

    let parsed = parse_request(&body)?;
    let stream = parsed.stream == Some(true);
    let model = parsed.model.as_deref().unwrap_or_default();
    call.asked(model);
    if !plan.models.is_empty() && !plan.models.iter().any(|m| m == model) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "not-subscribed",
            "Not subscribed",
            format!("The plan {} does not cover the model `{model}`.", plan.name),
        )
        .field("model", model)
        .covering(&cover));
    }
    let table = plane
        .route_table()
        .await
        .map_err(|e| super::unreadable("providers", &e))?;
    // A prompt API's chain serves when its first model has no provider.
    let route = table
        .model(model)
        .or_else(|| chain.iter().find_map(|m| table.model(m)));
    if let Some(route) = route {
        if route.provider.currency != plan.currency {
            plane.billing.record_incident(&format!(
                "the model {} is priced in {} but the plan {} in {}",
                route.name, route.provider.currency, plan.name, plan.currency
            ));
            return Err(decision::billing_unavailable());
        }
        let (prompt, completion) = parsed.token_estimate(body.len());
        let tokens = take_tokens(data, &cover, prompt + completion, &mut rate_headers).await?;
        let estimate = data.pricing.per_request + route.cost(prompt, completion);
        let hold = hold(data, &cover, estimate, tokens).await?;
        let route = route.clone();
        return Box::pin(forward_routed(
            plane,
            call,
            &cover,
            rate_headers,
            hold,
            Routed {
                asked: model.to_owned(),
                table,
                route,
                chain,
                prompt,
                stream,
            },
            body,
        ))
        .await;
    }
    let Some(upstream) = &data.upstream else {
        return Err(if table.is_empty() {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream-not-configured",
                "No upstream",
                "This gateway has no model provider configured.",
            )
        } else {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "model-not-found",
                "Model not found",
                format!("No provider of this gateway serves the model `{model}`."),
            )
            .field("model", model)
        });
    };
    if stream {
        return Err(bad_request(
            "Streaming is offered for the models of the gateway's providers; this model is served by its default upstream. Send `stream: false`.",
        ));
    }

    let allowance = parsed.token_allowance(body.len());
    let tokens = take_tokens(data, &cover, allowance, &mut rate_headers).await?;
    let hold = hold(data, &cover, data.pricing.cost(allowance), tokens).await?;
    // Boxed so that the refusals above, the hottest answers, do not carry
    // (and copy) the forwarding's much larger state.
    Box::pin(forward(
        plane,
        call,
        &cover,
        rate_headers,
        hold,
        upstream,
        body,
    ))
    .await
}

/// Reserves a call's estimated cost; tokens taken for it are given back
/// when the reservation is refused.
async fn hold(
    data: &DataPlane,
    cover: &Coverage,
    estimate: i64,
    tokens: Option<TokenCharge>,
) -> Result<Hold, Refusal> {
    match data.accounts.reserve(cover, estimate).await {
        Ok(reservation) => Ok(Hold {
            reservation,
            tokens,
        }),
        Err(refusal) => {
            if let Some(tokens) = &tokens {
                tokens.refund(&data.limiter).await;
            }
            Err(refusal)
        }
    }
}

/// Sends a reserved call upstream and settles it at its actual cost.
async fn forward(
    plane: &Arc<DataPlane>,
    call: &mut Call,
    cover: &Coverage,
    rate_headers: Vec<(HeaderName, String)>,
    hold: Hold,
    upstream: &DefaultUpstream,
    body: Bytes,
) -> Result<Response, Refusal> {
    let (data, plan) = (plane, &cover.plan);
    let sent = Instant::now();
    let answer = data
        .client
        .chat_completions(&upstream.target, upstream.authorization.as_ref(), body)
        .await;
    call.upstream(answer.as_ref().ok().map(|a| a.status), sent.elapsed());
    let (status, upstream_body) = match answer {
        Ok(answer) => (answer.status, answer.body),
        Err(e) => {
            hold.release(data).await;
            tracing::warn!(error = %e, "forwarding to the upstream failed");
            let what = match e {
                UpstreamError::Unreachable(_) => "the upstream could not be reached",
                UpstreamError::Timeout(_) => "the upstream did not answer in time",
                UpstreamError::Broken(_) => "the upstream's answer broke off",
                UpstreamError::TooLarge => "the upstream's answer was too large",
            };
            return Err(upstream_error(what, None));
        }
    };
    if !status.is_success() {
        hold.release(data).await;
        return Err(upstream_error(
            &format!("the upstream answered {status}"),
            Some(status.as_u16()),
        ));
    }
    // An answer without usage is billed at the per-request price only.
    let usage = serde_json::from_slice::<Answer>(&upstream_body)
        .ok()
        .and_then(|a| a.usage);
    let tokens = usage.as_ref().map_or(0, Usage::tokens);
    let cost = data.pricing.cost(tokens);
    hold.settle(data, cost, tokens, &call.request_id).await;
    call.charged(usage.map_or((0, 0), |u| u.split()), cost, &plan.currency);
    call.capture_response(&upstream_body);

    let mut response = (StatusCode::OK, upstream_body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    cost_header(h, cost, &plan.currency);
    h.insert(X_TOLLGATE_SUBSCRIPTION, cover.subscription_header.clone());
    for (name, value) in rate_headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(response)
}

/// A call matched to a provider's model.
struct Routed<'a> {
    /// The model named in the request body.
    asked: String,
    table: Arc<RouteTable>,
    route: Arc<ModelRoute>,
    /// More models to try after the route's own fallbacks.
    chain: &'a [String],
    /// The prompt tokens estimated from the body, for an answer without usage.
    prompt: u64,
    /// The client asked for server-sent events.
    stream: bool,
}

pub(super) const X_TOLLGATE_PROVIDER: HeaderName = HeaderName::from_static("x-tollgate-provider");
pub(super) const X_TOLLGATE_MODEL: HeaderName = HeaderName::from_static("x-tollgate-model");

/// Sends a reserved call through the model's provider (its key pool, then
/// its fallbacks) and settles it at the serving model's price.
async fn forward_routed(
    plane: &Arc<DataPlane>,
    call: &mut Call,
    cover: &Coverage,
    rate_headers: Vec<(HeaderName, String)>,
    hold: Hold,
    routed: Routed<'_>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let (data, plan) = (plane, &cover.plan);
    // A stream is asked to end with its usage, which the gateway bills from.
    let (body, relay_usage) = match routed.stream {
        true => stream::with_usage_requested(&body).unwrap_or((body, true)),
        false => (body, false),
    };
    call.served_by(&routed.route, None);
    let sent = Instant::now();
    let served = pool::send(
        data,
        &routed.table,
        &routed.route,
        (&routed.asked, routed.chain),
        &plane.billing,
        body,
        routed.stream,
    )
    .await;
    let Served {
        route,
        key_id,
        key_logged_as,
        reply,
    } = match served {
        Ok(served) => served,
        Err(unserved) => {
            hold.release(data).await;
            call.upstream(unserved.upstream_status(), sent.elapsed());
            return Err(unserved_refusal(unserved));
        }
    };
    call.served_by(&route, Some(&key_logged_as));
    call.upstream(
        match &reply {
            Reply::Whole(answer) => Some(answer.status),
            Reply::Stream(_) => Some(StatusCode::OK),
        },
        sent.elapsed(),
    );
    if route.provider.currency != plan.currency {
        // A fallback priced in another currency: served, but billed at the
        // price asked for, and flagged.
        plane.billing.record_incident(&format!(
            "the fallback model {} is priced in {} but the plan {} in {}",
            route.name, route.provider.currency, plan.name, plan.currency
        ));
    }
    let priced = if route.provider.currency == plan.currency {
        &route
    } else {
        &routed.route
    };
    let anthropic = route.provider.kind == ProviderKind::Anthropic;
    let answer = match reply {
        Reply::Whole(mut answer) => {
            if anthropic {
                let Some(chat) = super::anthropic::response(&answer.body) else {
                    hold.release(data).await;
                    return Err(upstream_error(
                        "the provider's answer is not a Messages answer",
                        Some(answer.status.as_u16()),
                    ));
                };
                answer.body = Bytes::from(chat);
            }
            answer
        }
        Reply::Stream(events) => {
            call.charged((0, 0), 0, &plan.currency);
            let settlement = Settlement::new(
                plane.clone(),
                hold,
                call,
                (priced.clone(), key_id),
                routed.prompt,
            );
            let dialect = if anthropic {
                Dialect::Anthropic(Box::default())
            } else {
                Dialect::OpenAi
            };
            let body = stream::relay(
                events,
                settlement,
                relay_usage,
                route.provider.target.timeout,
                dialect,
            );
            let mut response = Response::new(body);
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            described(h, cover, &route, rate_headers);
            return Ok(response);
        }
    };
    let (prompt, completion) = serde_json::from_slice::<Answer>(&answer.body)
        .ok()
        .and_then(|a| a.usage)
        .map_or((routed.prompt, 0), |u| u.split());
    let cost = data.pricing.per_request + priced.cost(prompt, completion);
    hold.settle(data, cost, prompt + completion, &call.request_id)
        .await;
    call.charged((prompt, completion), cost, &plan.currency);
    call.capture_response(&answer.body);
    data.accounts.usage.record_key_use(ProviderKeyUse {
        key_id,
        requests: 0,
        failures: 0,
        tokens: i64::try_from(prompt + completion).unwrap_or(i64::MAX),
        at: Utc::now(),
    });

    let mut response = (StatusCode::OK, answer.body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    cost_header(h, cost, &plan.currency);
    described(h, cover, &route, rate_headers);
    Ok(response)
}

/// `x-tollgate-cost: 0.000123 USD`, written without `format!`.
fn cost_header(h: &mut HeaderMap, cost: i64, currency: &str) {
    let amount = Amount::new(cost, 2);
    let mut text = Vec::with_capacity(amount.as_bytes().len() + 1 + currency.len());
    text.extend_from_slice(amount.as_bytes());
    text.push(b' ');
    text.extend_from_slice(currency.as_bytes());
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(text)) {
        h.insert(X_TOLLGATE_COST, v);
    }
}

/// The headers that say who served a call and under which subscription.
fn described(
    h: &mut HeaderMap,
    cover: &Coverage,
    route: &ModelRoute,
    rate_headers: Vec<(HeaderName, String)>,
) {
    h.insert(X_TOLLGATE_SUBSCRIPTION, cover.subscription_header.clone());
    h.insert(X_TOLLGATE_PROVIDER, route.provider.name_header.clone());
    h.insert(X_TOLLGATE_MODEL, route.name_header.clone());
    for (name, value) in rate_headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

pub(super) fn unserved_refusal(unserved: Unserved) -> Refusal {
    match unserved {
        Unserved::NoUsableKey { model } => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider-unavailable",
            "Provider unavailable",
            format!("No key of the provider serving `{model}` (or its fallbacks) can take calls right now; nothing was charged."),
        )
        .field("model", model)
        .header(header::RETRY_AFTER, "30".into()),
        Unserved::UnknownFallback(model) => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "provider-unavailable",
            "Provider unavailable",
            format!("The model's provider failed and its fallback `{model}` is served by no provider; nothing was charged."),
        )
        .field("model", model),
        Unserved::Timeout(after) => Refusal::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            "Upstream timeout",
            format!(
                "The model provider did not answer within {} s; nothing was charged.",
                after.as_secs()
            ),
        ),
        Unserved::ProviderFailed { status, detail } => {
            tracing::warn!(detail, "the provider failed");
            upstream_error(
                &status.map_or_else(
                    || "the upstream could not be reached".to_owned(),
                    |s| format!("the upstream answered {s}"),
                ),
                status.map(|s| s.as_u16()),
            )
        }
        Unserved::Untranslatable(why) => bad_request(&format!(
            "The request cannot be sent to the model's provider: {why}."
        )),
        Unserved::Refused { answer } => upstream_error(
            &format!("the upstream refused the request ({})", answer.status),
            Some(answer.status.as_u16()),
        ),
    }
}

pub(super) fn upstream_error(message: &str, upstream_status: Option<u16>) -> Refusal {
    let refusal = Refusal::new(
        StatusCode::BAD_GATEWAY,
        "upstream-error",
        "Upstream error",
        format!("The model provider failed: {message}; nothing was charged."),
    );
    match upstream_status {
        Some(s) => refusal.field("upstream_status", s),
        None => refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_borrowed_from_the_body_unless_it_has_escapes() {
        let plain = br#"{"model":"sim-small","messages":[]}"#;
        let parsed = parse_request(plain).expect("a valid request");
        assert!(matches!(parsed.model, Some(Cow::Borrowed("sim-small"))));

        let escaped = br#"{"model":"sim\u002dsmall","messages":[{"role":"user","content":"hi"}]}"#;
        let parsed = parse_request(escaped).expect("a valid request");
        assert!(matches!(parsed.model, Some(Cow::Owned(ref m)) if m == "sim-small"));

        let spaced = b"{ \"model\" : \"m\" , \"messages\" :\n [ {\"role\": \"user\"} ] }";
        assert!(parse_request(spaced).is_ok());
        // Malformed inside the messages is still malformed JSON.
        let broken = br#"{"model":"m","messages":[{"role":}]}"#;
        let refusal = parse_request(broken).err().expect("refused");
        assert!(
            refusal.message.contains("not valid JSON"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_wherever_the_bad_byte_is() {
        for (body, at) in [
            (
                &b"{\"model\":\"m\",\"messages\":[{\"content\":\"\xff\"}]}"[..],
                37,
            ),
            (b"{\"model\":\"m\xc3\",\"messages\":[]}", 11),
            (b"\xef\xbb", 0),
        ] {
            let refusal = parse_request(body).err().expect("refused");
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
            assert_eq!(
                refusal.message,
                format!("The body is not valid JSON: it is not UTF-8 text (byte {at}).")
            );
        }
        // Text beyond ASCII is fine, in the model and in the messages.
        let accented = "{\"model\":\"modèle\",\"messages\":[{\"content\":\"héllo ✓\"}]}";
        let parsed = parse_request(accented.as_bytes()).expect("a valid request");
        assert!(matches!(parsed.model, Some(Cow::Borrowed("modèle"))));
    }

    #[test]
    fn a_missing_null_or_mistyped_model_is_refused_by_name() {
        for body in [
            &br#"{"messages":[]}"#[..],
            br#"{"model":null,"messages":[]}"#,
            br#"{"model":7,"messages":[]}"#,
            br#"{"model":"m","messages":{}}"#,
            br#"{"model":"m","messages":"hello"}"#,
            br#"{"model":"m","messages":null}"#,
            br#"{"model":"m"}"#,
        ] {
            let refusal = parse_request(body).err().expect("refused");
            assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
            assert!(
                refusal.message.contains("`model` (a string)"),
                "{}",
                refusal.message
            );
        }
        let refusal = parse_request(b"{\"model\":").err().expect("refused");
        assert!(
            refusal.message.contains("not valid JSON"),
            "{}",
            refusal.message
        );
    }
}
