//! Plans, wallets and their ledger. Amounts are decimal strings in the
//! currency of the plan or wallet (see [`crate::money`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum PlanPeriod {
    Month,
    Year,
    /// No renewal: a one-off or pay-as-you-go plan.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum OveragePolicy {
    /// Refuse calls once the period's credits are used (402 insufficient-funds).
    Block,
    /// Charge usage beyond the credits to the consumer's wallet.
    ChargeWallet,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub requests_per_minute: Option<u32>,
    /// A call takes its estimated tokens (prompt + `max_tokens`) when sent
    /// and is corrected to its usage when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub tokens_per_minute: Option<u32>,
}

/// From a JSON object only: serde's derived form would also take an array
/// (`[]` as "no limits"), which the OpenAPI document does not allow.
impl<'de> Deserialize<'de> for RateLimits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            requests_per_minute: Option<u32>,
            #[serde(default)]
            tokens_per_minute: Option<u32>,
        }
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of rate limits")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
                Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        let f = d.deserialize_map(ObjectOnly)?;
        Ok(RateLimits {
            requests_per_minute: f.requests_per_minute,
            tokens_per_minute: f.tokens_per_minute,
        })
    }
}

/// What a consumer can subscribe to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Plan {
    /// `plan_<ulid>`.
    pub id: String,
    pub name: String,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// Price per period, e.g. `"49.00"`; may be `"0"`.
    pub price: String,
    pub period: PlanPeriod,
    /// Usage included per period, in the plan's currency.
    pub included_credits: String,
    pub overage: OveragePolicy,
    pub approval_required: bool,
    /// API slugs covered; empty covers none.
    pub apis: Vec<String>,
    /// Model names covered; empty means every model of the covered APIs.
    pub models: Vec<String>,
    pub rate_limits: RateLimits,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `POST /admin/v1/plans`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreatePlan {
    #[schema(schema_with = crate::schemas::name)]
    pub name: String,
    #[schema(schema_with = crate::schemas::currency)]
    pub currency: String,
    #[schema(schema_with = crate::schemas::amount)]
    pub price: String,
    pub period: PlanPeriod,
    #[serde(default = "zero")]
    #[ts(optional, as = "Option<String>")]
    #[schema(schema_with = crate::schemas::amount)]
    pub included_credits: String,
    pub overage: OveragePolicy,
    #[serde(default)]
    #[ts(optional, as = "Option<bool>")]
    pub approval_required: bool,
    #[serde(default)]
    #[ts(optional, as = "Option<Vec<String>>")]
    #[schema(schema_with = crate::schemas::slugs)]
    pub apis: Vec<String>,
    #[serde(default)]
    #[ts(optional, as = "Option<Vec<String>>")]
    #[schema(schema_with = crate::schemas::plan_models)]
    pub models: Vec<String>,
    #[serde(default)]
    #[ts(optional, as = "Option<RateLimits>")]
    pub rate_limits: RateLimits,
}

fn zero() -> String {
    "0".to_owned()
}

/// Body of `PATCH /admin/v1/plans/{id}`: only the given fields change. The
/// currency of a plan never changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdatePlan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::name_update)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::amount_update)]
    pub price: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub period: Option<PlanPeriod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::amount_update)]
    pub included_credits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub overage: Option<OveragePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub approval_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::slugs_update)]
    pub apis: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::plan_models_update)]
    pub models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub rate_limits: Option<RateLimits>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum LedgerKind {
    /// Money paid in (positive).
    TopUp,
    /// Money spent on calls (negative).
    Usage,
    /// Money given back (positive).
    Refund,
    /// A correction by an admin (either sign), with a reason.
    Adjustment,
    /// Free credit (positive).
    Grant,
}

/// One append-only entry of a wallet's ledger. The balance is their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LedgerEntry {
    /// `led_<ulid>`.
    pub id: String,
    pub consumer_id: String,
    pub currency: String,
    pub kind: LedgerKind,
    /// Signed decimal, e.g. `"-0.0042"` for usage.
    pub amount: String,
    /// The balance right after this entry.
    pub balance_after: String,
    pub reason: String,
    /// The idempotency key the write came with.
    pub idempotency_key: String,
    /// Who wrote it: an admin token id, or `gateway` for usage.
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /admin/v1/consumers/{id}/wallets/{currency}/entries`;
/// needs an `Idempotency-Key` header.
///
/// Its schema is written by hand ([`crate::schemas::ledger_write`]): which
/// amounts and reasons are valid depends on the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateLedgerEntry {
    /// `top_up`, `refund`, `adjustment` or `grant` (usage is written by the gateway).
    pub kind: LedgerKind,
    /// Positive for top-ups, refunds and grants; either sign for adjustments.
    pub amount: String,
    /// Required for adjustments and refunds.
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    pub reason: String,
}

impl utoipa::PartialSchema for CreateLedgerEntry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::schemas::ledger_write().into()
    }
}

impl ToSchema for CreateLedgerEntry {}

/// A consumer's balance in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Wallet {
    pub consumer_id: String,
    pub currency: String,
    /// The sum of the ledger.
    pub balance: String,
    /// Held for calls in flight (settled when they finish).
    pub reserved: String,
    /// `balance - reserved`: what new calls may spend.
    pub available: String,
    #[ts(type = "number")]
    pub entries: i64,
    #[ts(optional)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The gateway's payment settings. Credentials are never shown: only whether
/// they are set, and their last 4 characters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PaymentSettings {
    /// `test` (the built-in processor with Stripe's test cards) or `none`
    /// (no card payments: priced plans cannot renew).
    pub processor: String,
    pub credentials_set: bool,
    #[ts(optional)]
    pub credentials_last4: Option<String>,
    /// Stripe's publishable key (`pk_…`), given to the card pages' Stripe.js.
    #[ts(optional)]
    pub publishable_key: Option<String>,
    /// Whether Stripe's webhook signing secret (`whsec_…`) is set.
    pub webhook_secret_set: bool,
    /// Stripe's API base URL when it is not `https://api.stripe.com` (a
    /// Stripe-compatible server, such as the tests' fixture).
    #[ts(optional)]
    pub api_base_url: Option<String>,
    /// Currencies plans may be priced in (ISO 4217).
    pub accepted_currencies: Vec<String>,
    /// Days a past-due subscription keeps its status before it expires.
    pub grace_days: u32,
    #[ts(optional)]
    pub updated_at: Option<DateTime<Utc>>,
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `PUT /admin/v1/billing/settings`: only the given fields change.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdatePaymentSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = "^(test|none)$")]
    pub processor: Option<String>,
    /// The processor's secret (Stripe's secret key, `sk_…` or `rk_…`); `""`
    /// removes it. Stored encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_length = 4096, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub credentials: Option<String>,
    /// Stripe's publishable key, `pk_test_…` or `pk_live_…`; `""` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_length = 255, pattern = "^(|pk_(test|live)_[A-Za-z0-9_]+)$")]
    pub publishable_key: Option<String>,
    /// Stripe's webhook signing secret, `whsec_…`; `""` removes it. Stored
    /// encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_length = 255, pattern = "^(|whsec_[A-Za-z0-9_]+)$")]
    pub webhook_secret: Option<String>,
    /// Stripe's API base URL (`http://` or `https://`); `""` means Stripe's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        max_length = 2048,
        pattern = r"^(|https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?)$"
    )]
    pub api_base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(schema_with = crate::schemas::currencies_update)]
    pub accepted_currencies: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(maximum = 90)]
    pub grace_days: Option<u32>,
}

impl std::fmt::Debug for UpdatePaymentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdatePaymentSettings")
            .field("processor", &self.processor)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("publishable_key", &self.publishable_key)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("api_base_url", &self.api_base_url)
            .field("accepted_currencies", &self.accepted_currencies)
            .field("grace_days", &self.grace_days)
            .finish()
    }
}

/// What `POST /admin/v1/billing/settings/test` found: whether the
/// processor's credentials work, said for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ProcessorTest {
    pub ok: bool,
    /// The processor tested.
    pub processor: String,
    /// `connected`, `no-processor`, `credentials-missing`,
    /// `credentials-refused`, `credentials-unreadable`, `unreachable`,
    /// `processor-error` (Stripe answered with another error) or
    /// `not-stripe` (the base URL answers something else).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Severity {
    /// Consumers are refused or charged wrongly because of it.
    Error,
    /// Works, but probably not as intended.
    Warning,
}

/// One misconfiguration found by `POST /admin/v1/billing/check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct BillingFinding {
    /// Stable code, e.g. `currency-not-accepted`.
    pub code: String,
    pub severity: Severity,
    pub message: String,
    /// The id of what is misconfigured (a plan, …), when there is one.
    #[ts(optional)]
    pub target: Option<String>,
    /// What to change.
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct BillingCheck {
    /// No finding of severity `error`.
    pub ok: bool,
    pub findings: Vec<BillingFinding>,
    /// Calls answered `503 billing-unavailable` since the gateway started.
    #[ts(type = "number")]
    pub billing_unavailable_count: u64,
    #[ts(optional)]
    pub billing_unavailable_last: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_come_from_an_object_only() {
        let limits: RateLimits = serde_json::from_str(r#"{"requests_per_minute": 5}"#).unwrap();
        assert_eq!(limits.requests_per_minute, Some(5));
        assert_eq!(
            serde_json::from_str::<RateLimits>("{}").unwrap(),
            RateLimits::default()
        );
        for bad in ["[]", "[5, 6]", "null", "5"] {
            assert!(serde_json::from_str::<RateLimits>(bad).is_err(), "{bad}");
        }
    }
}
