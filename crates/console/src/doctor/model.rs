//! What the doctor is asked, and what it answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::classify::{Classification, Origin};

/// Where a diagnosis starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum DoctorStart {
    /// A consumer (`con_<ulid>`).
    Consumer { consumer_id: String },
    /// A consumer key's display prefix (`tg_1a2b3c4d…`).
    KeyPrefix { prefix: String },
    /// A request id from the call log (`req_<ulid>`).
    RequestId { request_id: String },
    /// A pasted HTTP response: status line, headers, a blank line, body.
    Response { text: String },
}

/// What the doctor found wrong: Tollgate's own causes, each with its fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum DoctorCause {
    SubscriptionExpired,
    SubscriptionPastDue,
    SubscriptionPendingApproval,
    SubscriptionSuspended,
    NotSubscribed,
    InsufficientFunds,
    PaymentMethodInvalid,
    /// A 429 from the plan's rate limit, taken for a payment problem.
    RateLimited,
    /// The provider refused the gateway's key as spent (its 402 / 429
    /// `insufficient_quota` / "credit balance is too low").
    ProviderKeyExhausted,
    /// The gateway's payment settings (processor, credentials, currencies).
    PaymentSettingsBroken,
    ModelWithoutPrice,
    PlanGrantsNoCredits,
    CurrencyMismatch,
    ApiNotCovered,
    ConsumerSuspended,
    InvalidCredentials,
    /// Another system's answer (a pasted response), classified.
    Foreign,
    /// Nothing would refuse the consumer's next call now.
    NoProblemFound,
    Unknown,
}

impl DoctorCause {
    pub fn as_str(self) -> &'static str {
        match self {
            DoctorCause::SubscriptionExpired => "subscription-expired",
            DoctorCause::SubscriptionPastDue => "subscription-past-due",
            DoctorCause::SubscriptionPendingApproval => "subscription-pending-approval",
            DoctorCause::SubscriptionSuspended => "subscription-suspended",
            DoctorCause::NotSubscribed => "not-subscribed",
            DoctorCause::InsufficientFunds => "insufficient-funds",
            DoctorCause::PaymentMethodInvalid => "payment-method-invalid",
            DoctorCause::RateLimited => "rate-limited",
            DoctorCause::ProviderKeyExhausted => "provider-key-exhausted",
            DoctorCause::PaymentSettingsBroken => "payment-settings-broken",
            DoctorCause::ModelWithoutPrice => "model-without-price",
            DoctorCause::PlanGrantsNoCredits => "plan-grants-no-credits",
            DoctorCause::CurrencyMismatch => "currency-mismatch",
            DoctorCause::ApiNotCovered => "api-not-covered",
            DoctorCause::ConsumerSuspended => "consumer-suspended",
            DoctorCause::InvalidCredentials => "invalid-credentials",
            DoctorCause::Foreign => "foreign",
            DoctorCause::NoProblemFound => "no-problem-found",
            DoctorCause::Unknown => "unknown",
        }
    }

    /// Whether this finding would refuse calls (rather than warn).
    pub fn refuses(self) -> bool {
        !matches!(
            self,
            DoctorCause::NoProblemFound | DoctorCause::ModelWithoutPrice | DoctorCause::Unknown
        )
    }
}

/// Where a piece of evidence was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum EvidenceSource {
    /// The instance's management API, just now.
    Live,
    /// The console's copy of the call log.
    Cache,
    /// The response the admin pasted.
    Response,
}

/// One fact, with when it happened (from the audit log, the ledger, a
/// charge, a record) when it has a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct DoctorEvidence {
    #[ts(optional)]
    pub at: Option<DateTime<Utc>>,
    pub source: EvidenceSource,
    pub what: String,
}

/// Which screen holds a setting to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum SettingScreen {
    Billing,
    Plans,
    Providers,
    Consumers,
}

/// A fix the console can apply in one step (after the admin confirms it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum FixAction {
    /// Renew an expired subscription now (charges the default card).
    RenewSubscription {
        subscription_id: String,
    },
    /// Charge a past-due subscription's renewal again.
    RetryCharge {
        subscription_id: String,
    },
    ApproveSubscription {
        subscription_id: String,
    },
    ResumeSubscription {
        subscription_id: String,
    },
    /// Credit the consumer's wallet (`amount` a decimal, e.g. `"25.00"`).
    TopUpWallet {
        consumer_id: String,
        currency: String,
        amount: String,
    },
    /// Make another card the default, then charge the past-due renewal with it.
    SetDefaultPaymentMethod {
        payment_method_id: String,
        #[ts(optional)]
        then_retry_subscription_id: Option<String>,
    },
    /// Put a provider key the provider refused back in its pool.
    ReEnableProviderKey {
        provider_id: String,
        key_id: String,
        #[ts(type = "number")]
        version: i64,
    },
    /// Nothing to apply here: the setting to change is on another screen.
    OpenSetting {
        screen: SettingScreen,
        #[ts(optional)]
        target: Option<String>,
    },
}

impl FixAction {
    /// Whether applying it changes the instance (rather than opening a screen).
    pub fn applies(&self) -> bool {
        !matches!(self, FixAction::OpenSetting { .. })
    }

    /// What the confirmation asks, in words.
    pub fn describe(&self) -> String {
        match self {
            FixAction::RenewSubscription { subscription_id } => {
                format!("Renew the subscription {subscription_id} now (charges the default card)")
            }
            FixAction::RetryCharge { subscription_id } => {
                format!("Charge the renewal of {subscription_id} again")
            }
            FixAction::ApproveSubscription { subscription_id } => {
                format!("Approve the subscription {subscription_id}")
            }
            FixAction::ResumeSubscription { subscription_id } => {
                format!("Resume the subscription {subscription_id}")
            }
            FixAction::TopUpWallet {
                currency, amount, ..
            } => format!("Top up the {currency} wallet by {amount} {currency}"),
            FixAction::SetDefaultPaymentMethod {
                payment_method_id,
                then_retry_subscription_id,
            } => match then_retry_subscription_id {
                Some(sub) => format!(
                    "Make {payment_method_id} the default card and charge the renewal of {sub} with it"
                ),
                None => format!("Make {payment_method_id} the default card"),
            },
            FixAction::ReEnableProviderKey { key_id, .. } => {
                format!("Put the provider key {key_id} back in its pool")
            }
            FixAction::OpenSetting { screen, .. } => {
                format!("Open the {screen:?} screen").to_lowercase()
            }
        }
    }
}

/// One thing found wrong (or right), with its evidence and its fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Finding {
    pub cause: DoctorCause,
    pub origin: Origin,
    /// One line: what is wrong.
    pub title: String,
    pub evidence: Vec<DoctorEvidence>,
    /// What to do, in a sentence.
    pub fix: String,
    /// The one-step fix, when there is one.
    #[ts(optional)]
    pub action: Option<FixAction>,
}

/// The doctor's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Diagnosis {
    pub instance_id: String,
    /// Where the evidence came from: `live` from the instance, or `cache`
    /// when it could not be reached (then `offline_reason` says why).
    pub source: EvidenceSource,
    #[ts(optional)]
    pub offline_reason: Option<String>,
    #[ts(optional)]
    pub consumer_id: Option<String>,
    #[ts(optional)]
    pub consumer_name: Option<String>,
    /// The refusal the doctor started from (a record or a pasted
    /// response), classified.
    #[ts(optional)]
    pub refusal: Option<Classification>,
    /// The cause first, then anything else found.
    pub findings: Vec<Finding>,
    pub diagnosed_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub elapsed_ms: u64,
}

impl Diagnosis {
    /// The cause: the first finding.
    pub fn cause(&self) -> DoctorCause {
        self.findings
            .first()
            .map_or(DoctorCause::Unknown, |f| f.cause)
    }
}

/// What applying a fix did, and the re-check that followed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FixOutcome {
    /// What was done, in words.
    pub applied: String,
    /// The cause before the fix.
    pub before: DoctorCause,
    /// The diagnosis made again right after.
    pub recheck: Diagnosis,
    /// The cause fixed is gone.
    pub resolved: bool,
}
