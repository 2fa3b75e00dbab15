//! The evidence the doctor reasons over: read live from the instance's
//! management API (in parallel), or from the call-log cache when the
//! instance cannot be reached.

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde_json::json;
use tollgate_api::money::parse_amount;
use tollgate_api::{
    AuditEntry, BillingCheck, CallLog, Charge, Consumer, ConsumerKey, LedgerEntry, LedgerKind,
    Page, PaymentMethod, Plan, Provider, ProviderKey, Subscription, SubscriptionStatus,
    SubscriptionUsage, Wallet,
};

use super::classify::{Classification, classify};
use super::model::EvidenceSource;
use super::response::RawResponse;
use crate::client::{GatewayClient, GatewayError, encode};

/// How far back the burn rate looks.
pub const BURN_WINDOW_DAYS: i64 = 7;
/// The consumer's most recent cached records the doctor reads.
pub const RECENT_RECORDS: u32 = 50;
const AUDIT_TARGETS_MAX: usize = 20;

/// A subscription with its plan and, while it runs, its period's usage.
#[derive(Debug, Clone)]
pub struct SubscriptionFacts {
    pub sub: Subscription,
    pub plan: Option<Plan>,
    pub usage: Option<SubscriptionUsage>,
}

/// What a wallet spent on calls over the burn window.
#[derive(Debug, Clone, PartialEq)]
pub struct Burn {
    pub currency: String,
    /// Micro-units spent on usage in the window (positive).
    pub spent_micros: i64,
    /// Usage entries in the window (about one per call).
    pub usage_entries: i64,
    /// Days the window covers (at most [`BURN_WINDOW_DAYS`], less for a
    /// wallet younger than that), never below one hour.
    pub days: f64,
    pub last_usage_at: Option<DateTime<Utc>>,
    pub last_top_up: Option<LedgerEntry>,
}

impl Burn {
    pub fn per_day_micros(&self) -> i64 {
        (self.spent_micros as f64 / self.days).round() as i64
    }

    /// What one usage entry (about one call) cost on average.
    pub fn typical_micros(&self) -> i64 {
        if self.usage_entries == 0 {
            0
        } else {
            self.spent_micros / self.usage_entries
        }
    }
}

/// A refusal the doctor starts from: a cached record or a pasted response.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub source: EvidenceSource,
    pub at: Option<DateTime<Utc>>,
    pub status: u16,
    /// Tollgate's reason slug, when it is Tollgate's answer.
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub model: Option<String>,
    pub api: Option<String>,
    pub upstream_status: Option<u16>,
    pub classification: Classification,
}

impl Refusal {
    /// A call-log record as the answer it was: Tollgate's problem shape with
    /// its reason, so the classifier reads it as it would the response.
    pub fn from_record(record: &CallLog) -> Refusal {
        let body = match &record.reason {
            Some(reason) => json!({
                "type": format!("/problems/{reason}"),
                "reason": reason,
                "status": record.status,
                "detail": record.error.clone().unwrap_or_default(),
                "request_id": record.id,
            })
            .to_string(),
            None => String::new(),
        };
        let classification = classify(&RawResponse::from_parts(record.status, Vec::new(), body));
        Refusal {
            source: EvidenceSource::Cache,
            at: Some(record.at),
            status: record.status,
            reason: record.reason.clone(),
            request_id: Some(record.id.clone()),
            model: record.model.clone(),
            api: Some(record.api.clone()),
            upstream_status: record.upstream_status,
            classification,
        }
    }

    pub fn from_response(response: &RawResponse) -> Refusal {
        let classification = classify(response);
        let tollgate = classification.system == super::classify::System::Tollgate;
        Refusal {
            source: EvidenceSource::Response,
            at: None,
            status: response.status,
            reason: tollgate
                .then(|| response.text_at(&["reason"]).map(str::to_owned))
                .flatten(),
            request_id: response
                .text_at(&["request_id"])
                .map(str::to_owned)
                .or_else(|| response.header("x-request-id").map(str::to_owned)),
            model: response.text_at(&["model"]).map(str::to_owned),
            api: response.text_at(&["api"]).map(str::to_owned),
            upstream_status: None,
            classification,
        }
    }
}

/// Everything the rules read. Lists are empty when unknown (offline).
#[derive(Debug, Clone)]
pub struct Facts {
    pub source: EvidenceSource,
    pub now: DateTime<Utc>,
    pub consumer: Option<Consumer>,
    /// The key the doctor started from, when it started from one.
    pub key: Option<ConsumerKey>,
    pub subscriptions: Vec<SubscriptionFacts>,
    pub payment_methods: Vec<PaymentMethod>,
    pub wallets: Vec<Wallet>,
    pub burns: Vec<Burn>,
    /// Newest first.
    pub charges: Vec<Charge>,
    pub check: Option<BillingCheck>,
    pub providers: Vec<(Provider, Vec<ProviderKey>)>,
    /// About the consumer, its subscriptions and cards; newest first.
    pub audit: Vec<AuditEntry>,
    /// The consumer's most recent cached records, newest first.
    pub records: Vec<CallLog>,
    pub refusal: Option<Refusal>,
}

impl Facts {
    pub fn empty(source: EvidenceSource, now: DateTime<Utc>) -> Facts {
        Facts {
            source,
            now,
            consumer: None,
            key: None,
            subscriptions: Vec::new(),
            payment_methods: Vec::new(),
            wallets: Vec::new(),
            burns: Vec::new(),
            charges: Vec::new(),
            check: None,
            providers: Vec::new(),
            audit: Vec::new(),
            records: Vec::new(),
            refusal: None,
        }
    }

    /// The latest audit entry about `target` with that action.
    pub fn audited(&self, target: &str, action: &str) -> Option<&AuditEntry> {
        self.audit
            .iter()
            .find(|e| e.target == target && e.action == action)
    }
}

/// Whether an error means the instance could not be reached at all (as
/// opposed to answering with a refusal).
pub fn unreachable(e: &GatewayError) -> bool {
    matches!(
        e,
        GatewayError::Dns(_)
            | GatewayError::ConnectionRefused(_)
            | GatewayError::Tls { .. }
            | GatewayError::Timeout(_)
            | GatewayError::Network(_)
    )
}

pub(crate) async fn get<T: DeserializeOwned>(
    client: &GatewayClient,
    path: String,
) -> Result<T, GatewayError> {
    client.get_json(&path).await
}

/// Reads every fact about one consumer from the instance, as much as
/// possible at once. A part that fails (other than the consumer itself) is
/// left out rather than failing the diagnosis.
pub async fn gather_live(
    client: &GatewayClient,
    consumer_id: &str,
    facts: &mut Facts,
) -> Result<(), GatewayError> {
    let c = encode(consumer_id);
    let empty = json!({});
    let (consumer, subs, methods, wallets, charges, check, providers) = tokio::join!(
        get::<Consumer>(client, format!("/admin/v1/consumers/{c}")),
        get::<Page<Subscription>>(
            client,
            format!("/admin/v1/subscriptions?consumer_id={c}&limit=50")
        ),
        get::<Vec<PaymentMethod>>(client, format!("/admin/v1/consumers/{c}/payment-methods")),
        get::<Vec<Wallet>>(client, format!("/admin/v1/consumers/{c}/wallets")),
        get::<Page<Charge>>(client, format!("/admin/v1/consumers/{c}/charges?limit=20")),
        client.post_json::<BillingCheck>("/admin/v1/billing/check", &empty, None),
        get::<Page<Provider>>(client, "/admin/v1/providers?limit=100".to_owned()),
    );
    facts.consumer = Some(consumer?);
    let subs = subs?.items;
    facts.payment_methods = methods.unwrap_or_default();
    facts.wallets = wallets.unwrap_or_default();
    facts.charges = charges.map(|p| p.items).unwrap_or_default();
    facts.check = check.ok();
    let providers = providers.map(|p| p.items).unwrap_or_default();

    let plans = join_all(
        subs.iter()
            .map(|s| get::<Plan>(client, format!("/admin/v1/plans/{}", encode(&s.plan_id)))),
    );
    let usages = join_all(subs.iter().map(|s| async move {
        if s.status == SubscriptionStatus::Active {
            get::<SubscriptionUsage>(
                client,
                format!("/admin/v1/subscriptions/{}/usage", encode(&s.id)),
            )
            .await
            .ok()
        } else {
            None
        }
    }));
    let keys = join_all(providers.iter().map(|p| {
        get::<Vec<ProviderKey>>(
            client,
            format!("/admin/v1/providers/{}/keys", encode(&p.id)),
        )
    }));
    let mut targets: Vec<String> = vec![consumer_id.to_owned()];
    targets.extend(subs.iter().map(|s| s.id.clone()));
    targets.extend(facts.payment_methods.iter().map(|m| m.id.clone()));
    targets.truncate(AUDIT_TARGETS_MAX);
    let audit_path = format!(
        "/admin/v1/audit?limit=100&targets={}",
        encode(&targets.join(","))
    );
    let audit = get::<Page<AuditEntry>>(client, audit_path);
    let burns = burns(client, consumer_id, &facts.wallets, facts.now);
    let (plans, usages, keys, audit, burns) = tokio::join!(plans, usages, keys, audit, burns);
    facts.subscriptions = subs
        .into_iter()
        .zip(plans)
        .zip(usages)
        .map(|((sub, plan), usage)| SubscriptionFacts {
            sub,
            plan: plan.ok(),
            usage,
        })
        .collect();
    facts.providers = providers
        .into_iter()
        .zip(keys)
        .map(|(p, k)| (p, k.unwrap_or_default()))
        .collect();
    facts.audit = audit.map(|p| p.items).unwrap_or_default();
    facts.burns = burns;
    Ok(())
}

/// The gateway-wide facts alone (its billing check, its providers and their
/// keys): for an answer that names no consumer.
pub async fn gather_gateway(client: &GatewayClient, facts: &mut Facts) -> Result<(), GatewayError> {
    let empty = json!({});
    let (check, providers) = tokio::join!(
        client.post_json::<BillingCheck>("/admin/v1/billing/check", &empty, None),
        get::<Page<Provider>>(client, "/admin/v1/providers?limit=100".to_owned()),
    );
    facts.check = Some(check?);
    let providers = providers?.items;
    let keys = join_all(providers.iter().map(|p| {
        get::<Vec<ProviderKey>>(
            client,
            format!("/admin/v1/providers/{}/keys", encode(&p.id)),
        )
    }))
    .await;
    facts.providers = providers
        .into_iter()
        .zip(keys)
        .map(|(p, k)| (p, k.unwrap_or_default()))
        .collect();
    Ok(())
}

/// Each wallet's burn over the last [`BURN_WINDOW_DAYS`], its ledger read
/// in parallel (a ledger that cannot be read counts as no spending).
pub(crate) async fn burns(
    client: &GatewayClient,
    consumer_id: &str,
    wallets: &[Wallet],
    now: DateTime<Utc>,
) -> Vec<Burn> {
    let c = encode(consumer_id);
    let since = now - Duration::days(BURN_WINDOW_DAYS);
    let ledgers = join_all(wallets.iter().map(|w| {
        get::<Page<LedgerEntry>>(
            client,
            format!(
                "/admin/v1/consumers/{c}/wallets/{}/entries?limit=200",
                encode(&w.currency)
            ),
        )
    }))
    .await;
    wallets
        .iter()
        .zip(ledgers)
        .map(|(w, entries)| burn_of(w, &entries.map(|p| p.items).unwrap_or_default(), since, now))
        .collect()
}

/// What a wallet spent on usage since `since`, from its ledger (newest
/// first), and its last top-up.
pub fn burn_of(
    wallet: &Wallet,
    entries: &[LedgerEntry],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Burn {
    let mut spent = 0i64;
    let mut usage_entries = 0i64;
    let mut oldest = now;
    for e in entries.iter().filter(|e| e.created_at >= since) {
        oldest = oldest.min(e.created_at);
        if e.kind == LedgerKind::Usage {
            spent += -parse_amount(&e.amount).unwrap_or(0);
            usage_entries += 1;
        }
    }
    // A wallet younger than the window burns over the time it has existed.
    let covered = if entries.iter().any(|e| e.created_at < since) {
        Duration::days(BURN_WINDOW_DAYS)
    } else {
        now - oldest
    };
    let days = (covered.num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
    Burn {
        currency: wallet.currency.clone(),
        spent_micros: spent.max(0),
        usage_entries,
        days,
        last_usage_at: entries
            .iter()
            .find(|e| e.kind == LedgerKind::Usage)
            .map(|e| e.created_at),
        last_top_up: entries
            .iter()
            .find(|e| e.kind == LedgerKind::TopUp)
            .cloned(),
    }
}
