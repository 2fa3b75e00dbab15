use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum ConsumerStatus {
    Active,
    /// Every call is refused with 403 `consumer-suspended`.
    Suspended,
}

/// A customer application that calls the data plane; belongs to a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Consumer {
    /// `con_<ulid>`.
    pub id: String,
    pub team_id: String,
    pub name: String,
    /// Who to reach about this consumer (e-mail or free text).
    pub contact: String,
    pub metadata: BTreeMap<String, String>,
    pub status: ConsumerStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `POST /admin/v1/consumers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateConsumer {
    #[schema(pattern = "^team_[0-9A-Za-z]{26}$")]
    pub team_id: String,
    /// 1–100 characters, unique within the team.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub contact: String,
    /// Up to 20 entries; keys 1–40 characters, values up to 500.
    #[serde(default)]
    #[ts(optional, as = "Option<BTreeMap<String, String>>")]
    #[schema(schema_with = crate::schemas::metadata)]
    pub metadata: BTreeMap<String, String>,
}

/// Body of `PATCH /admin/v1/consumers/{id}`: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdateConsumer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::metadata_update)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<ConsumerStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum ConsumerKeyStatus {
    Active,
    /// Replaced by a rotation; still accepted until `grace_until`.
    Rotating,
    Expired,
    Revoked,
}

/// A consumer's API key. The secret is never part of it: it is shown once,
/// in [`IssuedConsumerKey`], and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ConsumerKey {
    /// `key_<ulid>`.
    pub id: String,
    pub consumer_id: String,
    pub name: String,
    /// The first characters of the secret (`tg_ab12cd34`), enough to recognise it.
    pub display_prefix: String,
    /// API slugs this key may call; empty means every API its plans cover.
    pub allowed_apis: Vec<String>,
    pub status: ConsumerKeyStatus,
    #[ts(optional)]
    pub expires_at: Option<DateTime<Utc>>,
    /// After a rotation: the old key works until then.
    #[ts(optional)]
    pub grace_until: Option<DateTime<Utc>>,
    /// After a rotation: the key that replaces this one.
    #[ts(optional)]
    pub replaced_by: Option<String>,
    #[ts(optional)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[ts(optional)]
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /admin/v1/consumers/{id}/keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateConsumerKey {
    /// 1–100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    #[serde(default)]
    #[ts(optional, as = "Option<Vec<String>>")]
    #[schema(schema_with = crate::schemas::slugs)]
    pub allowed_apis: Vec<String>,
    /// Must be in the future.
    #[serde(default)]
    #[ts(optional)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of `POST /admin/v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct RotateConsumerKey {
    /// How long the old key keeps working: 0 (at once) to 604800 (7 days).
    #[ts(type = "number")]
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_seconds: u32,
}

/// A newly issued key: the only answer that ever carries the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct IssuedConsumerKey {
    pub key: ConsumerKey,
    /// `tg_…`: in the first answer only. A replay of the request (same
    /// `Idempotency-Key`) answers without it: the gateway keeps only a hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub secret: Option<String>,
}
