//! The call log: one record per data-plane request, kept by the gateway and
//! read by the console's sync in `seq` order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// One data-plane request as the gateway logged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CallLog {
    /// Position in the log: increases with every record written, never
    /// reused; the sync's cursor.
    #[ts(type = "number")]
    pub seq: i64,
    /// The request id (`req_<ulid>`, time-ordered), also sent to the caller
    /// as `x-request-id`.
    pub id: String,
    /// When the request arrived.
    pub at: DateTime<Utc>,
    /// `chat`, `models`, `billing-status`, a prompt API's slug, or `other`.
    pub api: String,
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub consumer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub key_id: Option<String>,
    /// The consumer key's display prefix (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub key_prefix: Option<String>,
    /// The model that served the call (or that was asked for, when none did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub provider_id: Option<String>,
    /// The provider key's id and last four characters, e.g. `pkey_… (…9f3a)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub provider_key: Option<String>,
    pub status: u16,
    /// The problem's reason slug, for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub upstream_status: Option<u16>,
    /// From the request's arrival to the end of its answer (a stream's end).
    #[ts(type = "number")]
    pub latency_us: i64,
    /// Waiting for the provider's answer (its head, for a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub upstream_us: Option<i64>,
    /// Time to the first streamed token, for a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub ttft_us: Option<i64>,
    #[ts(type = "number")]
    pub tokens_in: i64,
    #[ts(type = "number")]
    pub tokens_out: i64,
    /// What the call was charged (decimal string), in `currency`.
    pub cost: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub user_agent: Option<String>,
    /// What went wrong, in a line (the problem's detail, or the upstream's failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
    /// The request body, when the log settings capture bodies for this API:
    /// cut at their size and with secrets (keys, tokens, card numbers) redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub request_body: Option<String>,
    /// The answer (a stream's text), captured like the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub response_body: Option<String>,
}

/// A page of the call log, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CallLogPage {
    pub items: Vec<CallLog>,
    /// Pass as `after` for the next page; absent when this page reached the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub next_after: Option<i64>,
    /// The newest record's `seq` when the page was read (0 for an empty
    /// log), so that a sync can show how far behind it is.
    #[ts(type = "number")]
    pub head_seq: i64,
}

/// Live figures of the call log over a time range (`GET /admin/v1/logs/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CallStats {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The width of each point of `series`.
    #[ts(type = "number")]
    pub bucket_seconds: i64,
    #[ts(type = "number")]
    pub requests: i64,
    /// Answers with a status of 400 or more.
    #[ts(type = "number")]
    pub errors: i64,
    #[ts(type = "number")]
    pub tokens_in: i64,
    #[ts(type = "number")]
    pub tokens_out: i64,
    /// Latency percentiles over the range, in microseconds (0 without calls).
    #[ts(type = "number")]
    pub latency_p50_us: i64,
    #[ts(type = "number")]
    pub latency_p95_us: i64,
    #[ts(type = "number")]
    pub latency_p99_us: i64,
    /// What the calls were charged, per currency.
    pub cost: Vec<CostTotal>,
    /// One point per bucket that had calls, oldest first; a call counts in
    /// the bucket it arrived in (the first, if it arrived before the range).
    pub series: Vec<StatsPoint>,
    /// Refusals by problem reason, most frequent first.
    pub by_reason: Vec<ReasonCount>,
    /// Calls per model, most frequent first.
    pub by_model: Vec<ModelUse>,
    /// The ten consumers with the most calls.
    pub top_consumers: Vec<ConsumerUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CostTotal {
    pub currency: String,
    /// Decimal string.
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct StatsPoint {
    pub at: DateTime<Utc>,
    #[ts(type = "number")]
    pub requests: i64,
    #[ts(type = "number")]
    pub errors: i64,
    /// 402 Payment Required answers.
    #[ts(type = "number")]
    pub payment_required: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ReasonCount {
    pub reason: String,
    pub status: u16,
    #[ts(type = "number")]
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ModelUse {
    pub model: String,
    #[ts(type = "number")]
    pub requests: i64,
    #[ts(type = "number")]
    pub tokens_in: i64,
    #[ts(type = "number")]
    pub tokens_out: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ConsumerUse {
    pub consumer_id: String,
    #[ts(type = "number")]
    pub requests: i64,
    #[ts(type = "number")]
    pub errors: i64,
}

/// Capture of request and response bodies for one API (off for all others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct BodyCapture {
    /// `chat` or a prompt API's slug.
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub api: String,
    /// Bytes kept of each body, 1–65536.
    #[schema(minimum = 1, maximum = 65536)]
    pub max_bytes: u32,
}

/// How long the call log keeps records, and which APIs' bodies it captures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogSettings {
    /// Records older than this are deleted (checked every few minutes).
    pub retention_days: u32,
    /// At most this many records are kept, oldest deleted first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub max_records: Option<u64>,
    pub bodies: Vec<BodyCapture>,
    /// Never saved yet: these are the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub updated_at: Option<DateTime<Utc>>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `PUT /admin/v1/logs/settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdateLogSettings {
    /// 1–3650.
    #[schema(minimum = 1, maximum = 3650)]
    pub retention_days: u32,
    /// 1000 or more; absent for no limit.
    #[serde(default)]
    #[ts(optional, type = "number")]
    #[schema(minimum = 1000)]
    pub max_records: Option<u64>,
    #[serde(default)]
    #[ts(optional, as = "Option<Vec<BodyCapture>>")]
    #[schema(max_items = 50)]
    pub bodies: Vec<BodyCapture>,
}
