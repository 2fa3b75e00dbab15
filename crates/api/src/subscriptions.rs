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

impl SubscriptionStatus {
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
