//! `GET /v1/billing/status`: what a consumer's own key may see of its
//! standing — the key, each subscription with its period's credits, each
//! wallet and the default card. Amounts are decimal strings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ConsumerKeyStatus, PaymentMethodStatus, SubscriptionStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BillingStatus {
    pub consumer_id: String,
    pub key: KeyStanding,
    /// Every subscription of the consumer, newest last.
    pub subscriptions: Vec<SubscriptionStanding>,
    /// One per currency the consumer has a wallet in.
    pub wallets: Vec<WalletStanding>,
    /// The default card, when there is one.
    pub payment_method: Option<CardStanding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyStanding {
    pub id: String,
    /// The key's first characters, as the console shows it.
    pub prefix: String,
    pub status: ConsumerKeyStatus,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionStanding {
    pub id: String,
    pub status: SubscriptionStatus,
    pub plan: PlanSummary,
    pub current_period_end: Option<DateTime<Utc>>,
    /// Until when a past-due subscription keeps working.
    pub grace_until: Option<DateTime<Utc>>,
    /// The plan's credits per period, and how much of them this period used
    /// (calls settled a moment ago included).
    pub credits_included: String,
    pub credits_used: String,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanSummary {
    pub id: String,
    pub name: String,
    /// The APIs the plan covers (`chat`, prompt API slugs).
    pub apis: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WalletStanding {
    pub currency: String,
    /// What the ledger holds, calls settled a moment ago included.
    pub balance: String,
    /// Held for calls in flight.
    pub reserved: String,
    /// `balance - reserved`: what new calls may spend.
    pub available: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardStanding {
    pub brand: String,
    pub last4: String,
    /// `MM/YYYY`.
    pub expiry: String,
    pub status: PaymentMethodStatus,
    /// The processor's decline code of the card's last failed charge.
    pub decline_code: Option<String>,
}
