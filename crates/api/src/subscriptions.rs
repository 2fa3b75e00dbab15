//! Subscriptions (consumer × plan), payment methods and charges.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// `pending_approval → active → past_due → expired`; also `rejected`,
/// `canceled` and `suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum SubscriptionStatus {
    /// Waiting in the approval queue (the plan requires approval).
    PendingApproval,
    Active,
    /// The renewal charge failed; calls are refused (402) until it is paid or
    /// the grace period ends.
    PastDue,
    /// The period ended without renewal, or the grace period ran out.
    Expired,
    Rejected,
    Canceled,
    Suspended,
}

/// Failure codes that mean the card itself cannot pay (rather than a
/// decline worth retrying): refusals say `payment-method-invalid` for them.
pub const CARD_INVALID_CODES: [&str; 4] = [
    "expired_card",
    "incorrect_number",
    "no_payment_method",
    "invalid_expiry_year",
];

impl SubscriptionStatus {
    /// Which of a consumer's subscriptions pays for a call, best first: the
    /// one that can pay, then the one closest to paying. The gateway picks
    /// by it; the console's 402 doctor reasons with the same order.
    pub fn cover_rank(self) -> u8 {
        match self {
            SubscriptionStatus::Active => 0,
            SubscriptionStatus::PastDue => 1,
            SubscriptionStatus::Suspended => 2,
            SubscriptionStatus::PendingApproval => 3,
            SubscriptionStatus::Expired => 4,
            SubscriptionStatus::Canceled => 5,
            SubscriptionStatus::Rejected => 6,
        }
    }

    pub const ALL: [SubscriptionStatus; 7] = [
        SubscriptionStatus::PendingApproval,
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Expired,
        SubscriptionStatus::Rejected,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::PendingApproval => "pending_approval",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Expired => "expired",
            SubscriptionStatus::Rejected => "rejected",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Suspended => "suspended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Subscription {
    /// `sub_<ulid>`.
    pub id: String,
    pub consumer_id: String,
    pub plan_id: String,
    pub status: SubscriptionStatus,
    /// Why it is in this status (a rejection reason, a decline, …).
    #[ts(optional)]
    pub status_reason: Option<String>,
    #[ts(optional)]
    pub current_period_start: Option<DateTime<Utc>>,
    /// When the period ends; absent for plans without a period.
    #[ts(optional)]
    pub current_period_end: Option<DateTime<Utc>>,
    pub auto_renew: bool,
    #[ts(optional)]
    pub past_due_since: Option<DateTime<Utc>>,
    /// For `past_due`: when it expires unless paid.
    #[ts(optional)]
    pub grace_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub version: i64,
}

/// `GET /admin/v1/subscriptions/{id}/usage`: what the current period's
/// included credits paid for so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct SubscriptionUsage {
    pub subscription_id: String,
    #[ts(optional)]
    pub period_start: Option<DateTime<Utc>>,
    #[ts(optional)]
    pub period_end: Option<DateTime<Utc>>,
    pub currency: String,
    /// The plan's included credits per period (decimal).
    pub credits_included: String,
    /// Spent from them in this period (decimal).
    pub credits_used: String,
    /// What is left of them (decimal, never below zero).
    pub credits_left: String,
}

/// Body of `POST /admin/v1/subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateSubscription {
    #[schema(pattern = "^con_[0-9A-Za-z]{26}$")]
    pub consumer_id: String,
    #[schema(pattern = "^plan_[0-9A-Za-z]{26}$")]
    pub plan_id: String,
    #[serde(default = "yes")]
    #[ts(optional, as = "Option<bool>")]
    pub auto_renew: bool,
}

fn yes() -> bool {
    true
}

/// Body of the subscription actions (`approve`, `reject`, `cancel`, `suspend`,
/// `resume`, `renew`); a reason is required to reject, cancel or suspend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct SubscriptionAction {
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub reason: String,
}

/// Body of `POST /admin/v1/subscriptions/{id}/change-plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ChangePlan {
    /// The plan to move to (`plan_<ulid>`).
    #[schema(pattern = "^plan_[0-9A-Za-z]{26}$")]
    pub plan_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum PaymentMethodStatus {
    Active,
    /// Its last charge failed (see `last_failure`).
    Failed,
    /// Past its expiry date.
    Expired,
}

/// A card on file: what the processor's token stands for. Never the number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PaymentMethod {
    /// `pm_<ulid>`.
    pub id: String,
    pub consumer_id: String,
    pub processor: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub status: PaymentMethodStatus,
    pub is_default: bool,
    /// The processor's code for the last failed charge, e.g. `card_declined`.
    #[ts(optional)]
    pub last_failure_code: Option<String>,
    /// e.g. `insufficient_funds`.
    #[ts(optional)]
    pub last_decline_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /admin/v1/consumers/{id}/payment-methods`. The card goes to
/// the processor once, for a token; it is never stored or logged.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct AddPaymentMethod {
    pub number: String,
    #[schema(minimum = 1, maximum = 12)]
    pub exp_month: u32,
    pub exp_year: i32,
    pub cvc: String,
    #[serde(default)]
    #[ts(optional, as = "Option<bool>")]
    pub make_default: bool,
}

impl std::fmt::Debug for AddPaymentMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddPaymentMethod(<card redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum ChargeStatus {
    Succeeded,
    Failed,
}

/// One attempt to charge a payment method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Charge {
    /// `chg_<ulid>`.
    pub id: String,
    pub consumer_id: String,
    #[ts(optional)]
    pub payment_method_id: Option<String>,
    #[ts(optional)]
    pub subscription_id: Option<String>,
    pub amount: String,
    pub currency: String,
    pub status: ChargeStatus,
    #[ts(optional)]
    pub failure_code: Option<String>,
    #[ts(optional)]
    pub decline_code: Option<String>,
    #[ts(optional)]
    pub failure_message: Option<String>,
    #[ts(optional)]
    pub processor_charge_id: Option<String>,
    pub created_at: DateTime<Utc>,
}
