//! Streamed chat completions: the upstream's server-sent events relayed to
//! the client as they come, the usage read on the way, and the call settled
//! when the stream ends — or, when the client goes away first, at what was
//! streamed until then (dropping the stream also drops the upstream
//! request, which stops it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use eventsource_stream::{Event, Eventsource};
use futures_util::StreamExt;
use http_body_util::BodyStream;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::anthropic::{StreamTranslator, Translated};
use super::hold::Hold;
use super::routes::ModelRoute;
use super::{Call, DataPlane};
use crate::store::CallRecord;
use crate::store::ProviderKeyUse;

/// The request body sent upstream for a streamed call: asks for the usage
/// chunk (the gateway bills from it). Returns whether the client asked for
/// it too, so that it is relayed only then.
pub fn with_usage_requested(body: &[u8]) -> Option<(Bytes, bool)> {
    let mut request: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let options = request
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    let options = options.as_object_mut()?;
    let asked = options.get("include_usage") == Some(&Value::Bool(true));
    options.insert("include_usage".into(), Value::Bool(true));
    Some((Bytes::from(serde_json::to_vec(&request).ok()?), asked))
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<ChunkUsage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

/// What a streamed call used, as settled (also told to an admin's test run).
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The upstream reported the usage (else it was estimated).
    pub usage_reported: bool,
    /// Micro-units of the serving model's currency.
    pub cost: i64,
    /// The stream did not reach its end.
    pub cut_short: bool,
}

/// Settles a streamed call once: at its usage when the stream ended, or at
/// an estimate of what was streamed when it was cut short.
pub struct Settlement {
    data: Arc<DataPlane>,
    /// What the consumer's call holds; nothing for an admin's test run.
    hold: Option<Hold>,
    request_id: String,
    price: Arc<ModelRoute>,
    /// The pool key the stream came through.
    key_id: String,
    /// Prompt tokens estimated from the request, for a stream without usage.
    prompt_estimate: u64,
    streamed_chars: u64,
    usage: Option<(u64, u64)>,
    /// The upstream's stream reached its end (`[DONE]`, `message_stop`).
    completed: bool,
    finished: bool,
    report: Option<oneshot::Sender<Tally>>,
    /// The call's log record, written when the stream ends.
    log: Option<Box<CallRecord>>,
    started: Instant,
    first_token: Option<Instant>,
    /// Why the upstream's stream ended early, when it did.
    upstream_failure: Option<&'static str>,
    /// The streamed text kept for the call log, up to its limit.
    captured: Option<(String, usize)>,
}

impl Settlement {
    /// Settles what the call holds, and logs it, when the stream ends.
    pub fn new(
        data: Arc<DataPlane>,
        hold: Hold,
        call: &mut Call,
        served: (Arc<ModelRoute>, String),
        prompt_estimate: u64,
    ) -> Self {
        let mut settlement = Self::unbilled(data, served, prompt_estimate);
        settlement.hold = Some(hold);
        settlement.request_id = call.request_id.clone();
        settlement.log = call.log.take();
        settlement.started = call.started;
        settlement.captured = call
            .capture
            .map(|max| (String::new(), (max + super::CAPTURE_MARGIN) as usize));
        if let (Some(max), Some(log)) = (call.capture, settlement.log.as_deref_mut()) {
            log.body_limit = max;
        }
        settlement
    }

    /// Charges no one; the tally is told through the receiver when the
    /// stream ends.
    pub fn reporting(
        data: Arc<DataPlane>,
        served: (Arc<ModelRoute>, String),
        prompt_estimate: u64,
    ) -> (Self, oneshot::Receiver<Tally>) {
        let (tx, rx) = oneshot::channel();
        let mut settlement = Self::unbilled(data, served, prompt_estimate);
        settlement.report = Some(tx);
        (settlement, rx)
    }

    fn unbilled(
        data: Arc<DataPlane>,
        (price, key_id): (Arc<ModelRoute>, String),
        prompt_estimate: u64,
    ) -> Self {
        Settlement {
            data,
            hold: None,
            request_id: String::new(),
            price,
            key_id,
            prompt_estimate,
            streamed_chars: 0,
            usage: None,
            completed: false,
            finished: false,
            report: None,
            log: None,
            started: Instant::now(),
            first_token: None,
            upstream_failure: None,
            captured: None,
        }
    }

    /// Text relayed to the client.
    fn streamed(&mut self, text: &str) {
        if self.first_token.is_none() && !text.is_empty() {
            self.first_token = Some(Instant::now());
        }
        self.streamed_chars += text.chars().count() as u64;
        if let Some((kept, max)) = &mut self.captured {
            for c in text.chars() {
                if kept.len() + c.len_utf8() > *max {
                    break;
                }
                kept.push(c);
            }
        }
    }

    /// (prompt, completion) tokens: the upstream's count, else an estimate
    /// (~4 characters a token of what was streamed).
    fn tokens(&self) -> (u64, u64) {
        self.usage
            .unwrap_or((self.prompt_estimate, self.streamed_chars.div_ceil(4)))
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let (prompt, completion) = self.tokens();
        let cost = self.data.pricing.per_request + self.price.cost(prompt, completion);
        self.data.accounts.usage.record_key_use(ProviderKeyUse {
            key_id: std::mem::take(&mut self.key_id),
            requests: 0,
            failures: 0,
            tokens: i64::try_from(prompt + completion).unwrap_or(i64::MAX),
            at: chrono::Utc::now(),
        });
        if let Some(mut log) = self.log.take() {
            let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            log.status = 200;
            log.latency_us = micros(self.started.elapsed());
            log.ttft_us = self.first_token.map(|t| micros(t - self.started));
            log.tokens_in = i64::try_from(prompt).unwrap_or(i64::MAX);
            log.tokens_out = i64::try_from(completion).unwrap_or(i64::MAX);
            log.cost_micros = cost;
            log.response_body = self.captured.take().map(|(kept, _)| kept);
            if !self.completed {
                log.error = Some(
                    self.upstream_failure
                        .unwrap_or("the client went away before the stream ended")
                        .to_owned(),
                );
            }
            self.data.accounts.usage.log(log);
        }
        if let Some(report) = self.report.take() {
            // The run's client may be gone; then no one wants the tally.
            let _ = report.send(Tally {
                prompt_tokens: prompt,
                completion_tokens: completion,
                usage_reported: self.usage.is_some(),
                cost,
                cut_short: !self.completed,
            });
        }
        let Some(hold) = self.hold.take() else {
            return;
        };
        let (data, request_id) = (self.data.clone(), std::mem::take(&mut self.request_id));
        // Drop cannot wait: the settlement runs as a task of its own.
        tokio::spawn(async move {
            hold.settle(&data, cost, prompt + completion, &request_id)
                .await;
        });
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The upstream's event format.
pub enum Dialect {
    /// Chat completion chunks, relayed as they are.
    OpenAi,
    /// Messages API events, translated into chat completion chunks.
    Anthropic(Box<StreamTranslator>),
}

/// What one upstream event becomes for the client.
enum Step {
    Send(Bytes),
    Skip,
    End(Option<Bytes>),
    Fail(String),
}

fn data_event(json: &str) -> String {
    format!("data: {json}\n\n")
}

/// Relays a chat completion chunk as it came, reading its usage and text.
fn openai_step(event: &Event, settlement: &mut Settlement, relay_usage: bool) -> Step {
    if event.data == "[DONE]" {
        settlement.completed = true;
    } else if let Ok(chunk) = serde_json::from_str::<Chunk>(&event.data) {
        for choice in &chunk.choices {
            if let Some(text) = choice.delta.as_ref().and_then(|d| d.content.as_ref()) {
                settlement.streamed(text);
            }
        }
        if let Some(usage) = &chunk.usage {
            settlement.usage = Some((
                usage.prompt_tokens.unwrap_or(0),
                usage.completion_tokens.unwrap_or(0),
            ));
            // The usage chunk the gateway asked for on its own behalf.
            if !relay_usage && chunk.choices.is_empty() {
                return Step::Skip;
            }
        }
    }
    let mut out = String::with_capacity(event.data.len() + 32);
    if !event.event.is_empty() && event.event != "message" {
        out.push_str("event: ");
        out.push_str(&event.event);
        out.push('\n');
    }
    for line in event.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Step::Send(Bytes::from(out))
}

/// Translates a Messages event into chat completion chunks.
fn anthropic_step(
    translator: &mut StreamTranslator,
    event: &Event,
    settlement: &mut Settlement,
    relay_usage: bool,
) -> Step {
    match translator.translate(&event.event, &event.data) {
        Translated::Chunks(chunks) if chunks.is_empty() => Step::Skip,
        Translated::Chunks(chunks) => {
            let mut out = String::new();
            for chunk in chunks {
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
                    settlement.streamed(text);
                }
                out.push_str(&data_event(&chunk.to_string()));
            }
            Step::Send(Bytes::from(out))
        }
        Translated::Done(prompt, completion) => {
            settlement.usage = Some((prompt, completion));
            settlement.completed = true;
            let mut out = String::new();
            if relay_usage {
                out.push_str(&data_event(&translator.usage_chunk().to_string()));
            }
            out.push_str(&data_event("[DONE]"));
            Step::End(Some(Bytes::from(out)))
        }
        Translated::Failed(message) => Step::Fail(message),
    }
}

/// The client's body: the upstream's events, each relayed (or translated)
/// whole as it arrives. `idle` ends a stream whose upstream goes quiet for
/// that long.
pub fn relay(
    upstream: Incoming,
    settlement: Settlement,
    relay_usage: bool,
    idle: Duration,
    dialect: Dialect,
) -> Body {
    Body::from_stream(relayed(upstream, settlement, relay_usage, idle, dialect))
}

/// The events of [`relay`]; an error item ends the stream.
pub fn relayed(
    upstream: Incoming,
    settlement: Settlement,
    relay_usage: bool,
    idle: Duration,
    dialect: Dialect,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let events = BodyStream::new(upstream)
        .filter_map(|frame| async move {
            match frame {
                Ok(frame) => frame.into_data().ok().map(Ok),
                Err(e) => Some(Err(e)),
            }
        })
        .eventsource();
    futures_util::stream::unfold(
        (Box::pin(events), settlement, dialect, false),
        move |(mut events, mut settlement, mut dialect, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let event = match tokio::time::timeout(idle, events.next()).await {
                    Ok(Some(Ok(event))) => event,
                    Ok(Some(Err(e))) => {
                        tracing::warn!(error = %e, "the upstream's stream broke off");
                        settlement.upstream_failure = Some("the provider's stream broke off");
                        settlement.finish();
                        let broken = std::io::Error::other("the upstream's stream broke off");
                        return Some((Err(broken), (events, settlement, dialect, true)));
                    }
                    Ok(None) => {
                        if !settlement.completed {
                            settlement.upstream_failure =
                                Some("the provider's stream ended before it was done");
                        }
                        settlement.finish();
                        return None;
                    }
                    Err(_) => {
                        tracing::warn!("the upstream's stream went quiet; ended");
                        settlement.upstream_failure = Some("the provider's stream went quiet");
                        settlement.finish();
                        return None;
                    }
                };
                let step = match &mut dialect {
                    Dialect::OpenAi => openai_step(&event, &mut settlement, relay_usage),
                    Dialect::Anthropic(t) => {
                        anthropic_step(t, &event, &mut settlement, relay_usage)
                    }
                };
                match step {
                    Step::Skip => continue,
                    Step::Send(bytes) => {
                        return Some((Ok(bytes), (events, settlement, dialect, false)));
                    }
                    Step::End(last) => {
                        settlement.finish();
                        return last.map(|bytes| (Ok(bytes), (events, settlement, dialect, true)));
                    }
                    Step::Fail(message) => {
                        tracing::warn!(message, "the provider's stream reported an error");
                        settlement.upstream_failure =
                            Some("the provider's stream reported an error");
                        settlement.finish();
                        let failed = std::io::Error::other("the provider's stream failed");
                        return Some((Err(failed), (events, settlement, dialect, true)));
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_chunk_is_asked_for_and_the_clients_wish_kept() {
        let (body, asked) =
            with_usage_requested(br#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        assert!(!asked);
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["model"], "m");

        let (_, asked) = with_usage_requested(
            br#"{"stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
        )
        .unwrap();
        assert!(asked);
        assert!(with_usage_requested(br#"{"stream_options":3}"#).is_none());
    }
}
