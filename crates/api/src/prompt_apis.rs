//! Prompt-encapsulated APIs: a prompt template with typed variables, a model
//! (or a fallback chain) and parameters, published at `POST /apis/{slug}`.
//! Definitions are immutable versions; the API serves its current one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A `{{name}}` of the template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptVariable {
    /// Letters, digits and `_`, starting with a letter.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,63}$")]
    pub name: String,
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(max_length = 2000)]
    pub description: String,
    #[serde(default)]
    #[ts(optional, as = "Option<bool>")]
    pub required: bool,
    /// Used when the caller gives no value (only for optional variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub default: Option<String>,
    /// The longest value accepted, in characters.
    #[schema(minimum = 1, maximum = 100_000)]
    pub max_length: u32,
}

/// Model parameters sent with every call of the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(minimum = 0, maximum = 1)]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_tokens: Option<u32>,
}

/// What a version of a prompt API does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptDefinition {
    /// The model to call, then its fallbacks in order.
    #[schema(schema_with = crate::schemas::prompt_models)]
    pub models: Vec<String>,
    /// The prompt, with `{{variable}}` placeholders. It is the system
    /// message when the caller sends messages, the user message otherwise.
    #[schema(schema_with = crate::schemas::template)]
    pub template: String,
    #[serde(default)]
    #[ts(optional, as = "Option<Vec<PromptVariable>>")]
    #[schema(max_items = 50)]
    pub variables: Vec<PromptVariable>,
    #[serde(default)]
    #[ts(optional, as = "Option<PromptParameters>")]
    pub parameters: PromptParameters,
    /// What callers send and get back, in words (shown in the OpenAPI
    /// document and the console).
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(max_length = 2000)]
    pub input_description: String,
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(max_length = 2000)]
    pub output_description: String,
}

/// One immutable version of a prompt API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptApiVersion {
    pub number: u32,
    pub definition: PromptDefinition,
    pub created_at: DateTime<Utc>,
    /// The admin token that created it.
    pub created_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum PromptApiStatus {
    /// Not served yet.
    Draft,
    Published,
    /// Served with `Deprecation` and `Sunset` headers.
    Deprecated,
    /// Answered with 410 Gone.
    Retired,
}

impl PromptApiStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptApiStatus::Draft => "draft",
            PromptApiStatus::Published => "published",
            PromptApiStatus::Deprecated => "deprecated",
            PromptApiStatus::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "draft" => PromptApiStatus::Draft,
            "published" => PromptApiStatus::Published,
            "deprecated" => PromptApiStatus::Deprecated,
            "retired" => PromptApiStatus::Retired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptApi {
    /// `papi_<ulid>`.
    pub id: String,
    /// Where it is served: `POST /apis/{slug}`; also the API name plans cover.
    pub slug: String,
    pub name: String,
    pub description: String,
    pub status: PromptApiStatus,
    /// The version served (the newest unless rolled back).
    pub current_version: u32,
    pub latest_version: u32,
    /// The definition of the current version.
    pub current: PromptDefinition,
    #[ts(optional)]
    pub deprecated_at: Option<DateTime<Utc>>,
    /// When a deprecated API is retired (its `Sunset` header).
    #[ts(optional)]
    pub sunset_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `POST /admin/v1/prompt-apis`: a draft with its first version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreatePromptApi {
    #[schema(schema_with = crate::schemas::prompt_api_slug)]
    pub slug: String,
    #[schema(schema_with = crate::schemas::name)]
    pub name: String,
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(schema_with = crate::schemas::description)]
    pub description: String,
    pub definition: PromptDefinition,
}

/// Body of `POST /admin/v1/prompt-apis/{id}/lifecycle`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(tag = "action", rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum PromptApiAction {
    Publish,
    /// Keeps serving, announcing the date it stops.
    Deprecate {
        sunset_at: DateTime<Utc>,
    },
    Retire,
    /// Serves an earlier version again.
    Rollback {
        #[schema(minimum = 1)]
        version: u32,
    },
}

/// Body of `POST /admin/v1/prompt-apis/run`: a definition, saved or not,
/// run once with test values, as the studio does before publishing. The
/// answer is a server-sent event stream: the provider's chat completion
/// chunks (OpenAI format, `data: {…}` then `data: [DONE]`), then one
/// `event: summary` whose data is a [`PromptRunSummary`]. A run is charged to
/// no consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptRun {
    pub definition: PromptDefinition,
    /// Test values by variable name; an absent optional variable takes its
    /// default.
    #[serde(default)]
    #[ts(optional, as = "Option<std::collections::BTreeMap<String, String>>")]
    pub variables: std::collections::BTreeMap<String, String>,
}

/// What a run used and what a consumer would have been charged for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptRunSummary {
    /// The provider (`prv_…`) and model that served the run (a fallback
    /// when the first model failed).
    pub provider_id: String,
    pub provider_name: String,
    pub model: String,
    #[ts(type = "number")]
    pub prompt_tokens: u64,
    #[ts(type = "number")]
    pub completion_tokens: u64,
    /// False when the provider reported no usage and the gateway counted.
    pub usage_reported: bool,
    /// Decimal string, in `currency`: the model's price plus the gateway's
    /// per-request price.
    pub cost: String,
    pub currency: String,
    /// The stream ended early (the provider broke off or went quiet).
    pub cut_short: bool,
}
