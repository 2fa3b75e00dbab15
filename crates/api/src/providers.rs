//! Model providers the gateway forwards calls to, and each provider's pool of
//! API keys. Key secrets go in once (`CreateProviderKey::secret`) and never
//! come out: every answer shows only their last four characters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum ProviderKind {
    /// OpenAI's chat completions API and the servers that copy it (vLLM,
    /// Ollama, llama.cpp server, OpenRouter, DeepSeek, …).
    OpenaiCompatible,
    /// Anthropic's Messages API, translated to and from the OpenAI format.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenaiCompatible => "openai-compatible",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// A model a provider serves, with its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ProviderModel {
    /// The model's name, as consumers ask for it and as the provider knows
    /// it; unique across the gateway's providers.
    #[schema(schema_with = crate::schemas::model_name)]
    pub name: String,
    /// Price per million input (prompt) tokens, in the provider's currency.
    #[schema(schema_with = crate::schemas::price)]
    pub input_price: String,
    /// Price per million output (completion) tokens.
    #[schema(schema_with = crate::schemas::price)]
    pub output_price: String,
    /// Another model (of any provider) to try when every key of this one
    /// fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::model_name_optional)]
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Provider {
    /// `prv_<ulid>`.
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    /// Where its API lives, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// ISO 4217 code of the models' prices.
    pub currency: String,
    pub models: Vec<ProviderModel>,
    /// How long one upstream request may take, in seconds.
    pub timeout_secs: u32,
    /// A disabled provider serves no calls.
    pub enabled: bool,
    /// Keys in the pool, and how many of them are active.
    pub keys_total: u32,
    pub keys_active: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `POST /admin/v1/providers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateProvider {
    #[schema(schema_with = crate::schemas::name)]
    pub name: String,
    pub kind: ProviderKind,
    #[schema(schema_with = crate::schemas::base_url)]
    pub base_url: String,
    /// Defaults to `USD`.
    #[serde(default = "usd")]
    #[ts(optional, as = "Option<String>")]
    #[schema(schema_with = crate::schemas::currency)]
    pub currency: String,
    #[serde(default)]
    #[ts(optional, as = "Option<Vec<ProviderModel>>")]
    #[schema(max_items = 500)]
    pub models: Vec<ProviderModel>,
    /// Defaults to 60.
    #[serde(default = "default_timeout")]
    #[ts(optional, as = "Option<u32>")]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_secs: u32,
    #[serde(default = "yes")]
    #[ts(optional, as = "Option<bool>")]
    pub enabled: bool,
}

fn usd() -> String {
    "USD".to_owned()
}

fn default_timeout() -> u32 {
    60
}

fn yes() -> bool {
    true
}

/// Body of `PATCH /admin/v1/providers/{id}`: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdateProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::name_update)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub kind: Option<ProviderKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::base_url_update)]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::currency_update)]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_items = 500)]
    pub models: Option<Vec<ProviderModel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(minimum = 1, maximum = 3600)]
    pub timeout_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum ProviderKeyStatus {
    /// Used for calls, in priority order.
    Active,
    /// The provider said its credit or quota is used up (402, 429
    /// `insufficient_quota`, "credit balance is too low").
    Exhausted,
    /// Past its `expires_at`.
    Expired,
    /// The provider refused it (401).
    Invalid,
    /// Switched off by an admin.
    Disabled,
}

impl ProviderKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKeyStatus::Active => "active",
            ProviderKeyStatus::Exhausted => "exhausted",
            ProviderKeyStatus::Expired => "expired",
            ProviderKeyStatus::Invalid => "invalid",
            ProviderKeyStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "active" => ProviderKeyStatus::Active,
            "exhausted" => ProviderKeyStatus::Exhausted,
            "expired" => ProviderKeyStatus::Expired,
            "invalid" => ProviderKeyStatus::Invalid,
            "disabled" => ProviderKeyStatus::Disabled,
            _ => return None,
        })
    }
}

/// One key of a provider's pool, masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ProviderKey {
    /// `pkey_<ulid>`.
    pub id: String,
    pub provider_id: String,
    pub label: String,
    /// The secret's last four characters; the rest is never shown.
    pub last4: String,
    pub status: ProviderKeyStatus,
    /// Why the status last changed (an admin's reason or the provider's answer).
    #[ts(optional)]
    pub status_reason: Option<String>,
    pub status_changed_at: DateTime<Utc>,
    /// Lower numbers are tried first.
    pub priority: u32,
    #[ts(optional)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Calls sent with this key, those the provider failed, and the tokens used.
    #[ts(type = "number")]
    pub requests: i64,
    #[ts(type = "number")]
    pub failures: i64,
    #[ts(type = "number")]
    pub tokens: i64,
    #[ts(optional)]
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `POST /admin/v1/providers/{id}/keys`.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateProviderKey {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub label: String,
    /// The provider's API key; stored encrypted, never shown again.
    #[schema(min_length = 8, max_length = 4096, pattern = "^[!-~]+$")]
    pub secret: String,
    /// Defaults to 100.
    #[serde(default = "default_priority")]
    #[ts(optional, as = "Option<u32>")]
    #[schema(maximum = 1_000_000)]
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Never prints the secret.
impl std::fmt::Debug for CreateProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateProviderKey")
            .field("label", &self.label)
            .field("secret", &"<redacted>")
            .field("priority", &self.priority)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn default_priority() -> u32 {
    100
}

/// Body of `PATCH /admin/v1/provider-keys/{id}`. An admin may set `active`
/// (re-enabling an exhausted or invalid key) or `disabled`; the other
/// statuses are the gateway's findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdateProviderKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(maximum = 1_000_000)]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::admin_key_status)]
    pub status: Option<ProviderKeyStatus>,
    /// Recorded with a status change; only sent with `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::reason_update)]
    pub reason: Option<String>,
}

/// A change of a provider key's status, by an admin or by the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ProviderKeyEvent {
    pub key_id: String,
    pub provider_id: String,
    #[ts(optional)]
    pub from: Option<ProviderKeyStatus>,
    pub to: ProviderKeyStatus,
    pub reason: String,
    /// `admin:<token id>`, or `gateway` for what the gateway found itself.
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// The answer of `POST /admin/v1/providers/{id}/test`: whether the provider
/// answered its model list with the first usable key of its pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ProviderTest {
    pub ok: bool,
    /// The key tried, when the pool has a usable one.
    #[ts(optional)]
    pub key_id: Option<String>,
    /// The provider's HTTP status, when it answered.
    #[ts(optional)]
    pub status: Option<u16>,
    #[ts(type = "number")]
    pub latency_ms: u64,
    /// What the answer means, e.g. "the provider refused the key (401)".
    pub message: String,
    /// The models the provider listed, when it did.
    pub models: Vec<String>,
    /// Configured models the provider did not list (possibly misspelt).
    pub missing_models: Vec<String>,
}
