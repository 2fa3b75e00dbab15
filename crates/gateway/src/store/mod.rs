//! The gateway's storage, behind one narrow async interface so that a
//! PostgreSQL backend can be added for multi-node deployments. SQLite
//! ([`sqlite::SqliteStore`]) is the default.

#[cfg(test)]
mod conformance;
pub(crate) mod log_block;
pub(crate) mod log_stats;
pub mod postgres;
pub(crate) mod rules;
pub(crate) mod spelling;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use tollgate_api::{
    AuditEntry, Consumer, ConsumerKey, ConsumerStatus, LedgerEntry, LedgerKind, OveragePolicy,
    Plan, PlanPeriod, PromptApi, PromptApiStatus, PromptApiVersion, PromptDefinition, Provider,
    ProviderKey, ProviderKeyEvent, ProviderKeyStatus, ProviderKind, ProviderModel, RateLimits,
    Team, Wallet,
};

use crate::changes::Change;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the message names it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// `If-Match` named another version than the stored one.
    /// An idempotency key was used before for a different write.
    #[error("idempotency key reused for a different write")]
    IdempotencyMismatch,
    #[error("version mismatch (current {current})")]
    VersionMismatch { current: i64 },
    #[error("schema of the database is newer than this binary or could not be migrated: {0}")]
    Migration(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

/// Who made a write and in which request: recorded in the audit log in the
/// same transaction as the write itself.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub token_id: String,
    pub request_id: String,
}

pub use crate::tokens::AdminTokenRecord;

#[derive(Debug, Clone)]
pub struct NewTeam {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Default)]
pub struct TeamPatch {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A stored answer to a POST that carried an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub enum IdempotencyBegin {
    /// First use of the key: the caller runs the request, then completes or abandons.
    Started,
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
    /// The key was used for this request: replay its answer.
    Replay(StoredResponse),
}

/// Everything the gateway stores. Each domain has its own small trait, so a
/// backend (SQLite today, PostgreSQL later) implements them one by one.
pub trait Store:
    SystemStore
    + TeamStore
    + ConsumerStore
    + BillingStore
    + SubscriptionStore
    + ProviderStore
    + PromptApiStore
    + LogStore
{
}

impl<T> Store for T where
    T: SystemStore
        + TeamStore
        + ConsumerStore
        + BillingStore
        + SubscriptionStore
        + ProviderStore
        + PromptApiStore
        + LogStore
{
}

/// A node's database connections: at most `max`, `open` of them now,
/// `idle` of those, and `waiting` tasks wanting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max: usize,
    pub open: usize,
    pub idle: usize,
    pub waiting: usize,
}

/// Instance facts, admin tokens, the audit log and idempotency records.
#[async_trait]
pub trait SystemStore: Send + Sync + 'static {
    async fn ping(&self) -> StoreResult<()>;
    /// Whether this node runs the jobs (renewals, call-log pruning): one node
    /// of those sharing a database at a time; the only node of a SQLite store.
    fn leads_jobs(&self) -> bool;
    /// The instance id, created on first call.
    async fn instance_id(&self) -> StoreResult<String>;
    /// This node's id among those sharing the store.
    fn node_id(&self) -> &str;
    /// This node's database connections, as they are now.
    fn pool_status(&self) -> PoolStatus;
    /// Records that `node` is alive (its first call registers it); nodes
    /// not heard from for a day are forgotten.
    async fn heartbeat(&self, node: &NodeRecord) -> StoreResult<()>;
    /// Every node heard from in the last day, the newest start first.
    async fn nodes(&self) -> StoreResult<Vec<NodeRecord>>;
    /// The sample sealed with the encryption key every node must share:
    /// `sealed` is stored if there is none yet; the stored one is answered.
    async fn key_check(&self, sealed: String) -> StoreResult<String>;

    /// Inserts `token` when there is no admin token at all (the bootstrap
    /// token); answers whether it did. Nodes starting at once on an empty
    /// store: exactly one inserts.
    async fn bootstrap_admin_token(&self, token: AdminTokenRecord) -> StoreResult<bool>;
    async fn insert_admin_token(&self, token: AdminTokenRecord) -> StoreResult<()>;
    async fn admin_token(&self, id: &str) -> StoreResult<Option<AdminTokenRecord>>;
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRecord>>;
    async fn revoke_admin_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    async fn touch_admin_token(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Audit entries newest first, strictly before the `before` position;
    /// only those about one of `targets` when any are given.
    async fn list_audit(
        &self,
        targets: &[String],
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<AuditEntry>, Option<i64>)>;

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &[u8],
    ) -> StoreResult<IdempotencyBegin>;
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        response: StoredResponse,
    ) -> StoreResult<()>;
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait TeamStore: Send + Sync + 'static {
    async fn create_team(&self, new: NewTeam, audit: &AuditContext) -> StoreResult<Team>;
    async fn team(&self, id: &str) -> StoreResult<Team>;
    /// Teams in creation order after the `after` position; returns the page and
    /// the position of its last row when more rows may follow.
    async fn list_teams(&self, after: i64, limit: u32) -> StoreResult<(Vec<Team>, Option<i64>)>;
    async fn update_team(
        &self,
        id: &str,
        patch: TeamPatch,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<Team>;
    /// Refused with a conflict while the team has consumers.
    async fn delete_team(
        &self,
        id: &str,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<()>;
}

#[derive(Debug, Clone)]
pub struct NewConsumer {
    pub team_id: String,
    pub name: String,
    pub contact: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerPatch {
    pub name: Option<String>,
    pub contact: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub status: Option<ConsumerStatus>,
}

/// A consumer key as stored: the hash of the secret, never the secret.
#[derive(Debug, Clone)]
pub struct NewConsumerKey {
    pub consumer_id: String,
    pub name: String,
    pub lookup: String,
    pub secret_hash: Vec<u8>,
    pub display_prefix: String,
    pub allowed_apis: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the data plane needs to authenticate a key.
#[derive(Debug, Clone)]
pub struct KeyCredential {
    pub key: ConsumerKey,
    pub secret_hash: Vec<u8>,
    pub consumer_status: ConsumerStatus,
    pub team_id: String,
}

#[async_trait]
pub trait ConsumerStore: Send + Sync + 'static {
    async fn create_consumer(
        &self,
        new: NewConsumer,
        audit: &AuditContext,
    ) -> StoreResult<Consumer>;
    async fn consumer(&self, id: &str) -> StoreResult<Consumer>;
    /// Consumers in creation order, optionally of one team.
    async fn list_consumers(
        &self,
        team_id: Option<String>,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Consumer>, Option<i64>)>;
    async fn update_consumer(
        &self,
        id: &str,
        patch: ConsumerPatch,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<Consumer>;
    async fn delete_consumer(
        &self,
        id: &str,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<()>;

    async fn create_consumer_key(
        &self,
        new: NewConsumerKey,
        audit: &AuditContext,
    ) -> StoreResult<ConsumerKey>;
    /// Issues `new` as the successor of `old_id`, which keeps working until `grace_until`.
    async fn rotate_consumer_key(
        &self,
        old_id: &str,
        new: NewConsumerKey,
        grace_until: DateTime<Utc>,
        audit: &AuditContext,
    ) -> StoreResult<ConsumerKey>;
    async fn revoke_consumer_key(&self, id: &str, audit: &AuditContext)
    -> StoreResult<ConsumerKey>;
    async fn consumer_key(&self, id: &str) -> StoreResult<ConsumerKey>;
    /// Keys of a consumer, or keys whose display prefix starts with `prefix`.
    async fn list_consumer_keys(
        &self,
        consumer_id: Option<String>,
        prefix: Option<String>,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<ConsumerKey>, Option<i64>)>;
    /// Finds a key by the lookup part of a presented secret.
    async fn key_credential(&self, lookup: &str) -> StoreResult<Option<KeyCredential>>;
    /// The lookup part of every key (revoked and expired ones too).
    async fn key_lookups(&self) -> StoreResult<Vec<String>>;
    async fn touch_consumer_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

/// A plan as the store takes it: amounts already in micro-units.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    pub name: String,
    pub currency: String,
    pub price_micros: i64,
    pub period: PlanPeriod,
    pub included_micros: i64,
    pub overage: OveragePolicy,
    pub approval_required: bool,
    pub apis: Vec<String>,
    pub models: Vec<String>,
    pub rate_limits: RateLimits,
}

/// Settled calls summed over one write window of the usage writer: credits
/// used per subscription period, and one usage entry per wallet.
#[derive(Debug, Clone, Default)]
pub struct UsageBatch {
    pub periods: Vec<PeriodUsage>,
    pub wallet_entries: Vec<NewLedgerEntry>,
    pub key_uses: Vec<ProviderKeyUse>,
    /// Leases this node gives back (what it set aside and did not spend).
    pub returns: Vec<(Pot, i64)>,
    /// Call log records, appended in order (shared: a retried batch is
    /// cloned, its records are not).
    pub calls: std::sync::Arc<Vec<CallRecord>>,
}

/// One step of a batch's money, in the order [`UsageBatch::settlements`] gives.
pub(crate) enum Settlement<'a> {
    Period(&'a PeriodUsage),
    Usage(&'a NewLedgerEntry),
    Return(&'a Pot, i64),
}

impl UsageBatch {
    /// The batch's money moves, ordered by the pot they touch (credits, then
    /// wallets, each by its key) so that every node's batches lock rows in
    /// the same order and never wait for each other in a circle.
    pub(crate) fn settlements(&self) -> Vec<Settlement<'_>> {
        let mut steps: Vec<(Pot, Settlement<'_>)> = self
            .periods
            .iter()
            .map(|p| (p.pot(), Settlement::Period(p)))
            .chain(self.wallet_entries.iter().map(|e| {
                let pot = Pot::Wallet {
                    consumer_id: e.consumer_id.clone(),
                    currency: e.currency.clone(),
                };
                (pot, Settlement::Usage(e))
            }))
            .chain(
                self.returns
                    .iter()
                    .map(|(pot, amount)| (pot.clone(), Settlement::Return(pot, *amount))),
            )
            .collect();
        // Stable: a pot's usage comes before what is given back of it.
        steps.sort_by(|(a, _), (b, _)| a.cmp(b));
        steps.into_iter().map(|(_, step)| step).collect()
    }
}

/// One data-plane request for the call log (see `tollgate_api::CallLog`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub at_us: i64,
    // The texts most records repeat are shared, not copied per call: the
    // request path fills a record without allocating for them.
    pub api: Cow<'static, str>,
    pub method: Cow<'static, str>,
    pub path: Cow<'static, str>,
    pub team_id: Option<Arc<str>>,
    pub consumer_id: Option<Arc<str>>,
    pub key_id: Option<Arc<str>>,
    pub key_prefix: Option<Arc<str>>,
    pub model: Option<String>,
    pub provider_id: Option<String>,
    pub provider_key: Option<String>,
    pub status: u16,
    pub reason: Option<Cow<'static, str>>,
    pub upstream_status: Option<u16>,
    pub latency_us: i64,
    pub upstream_us: Option<i64>,
    pub ttft_us: Option<i64>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
    pub currency: Option<String>,
    /// Shared by the calls of one connection.
    pub client_ip: Option<std::sync::Arc<str>>,
    pub user_agent: Option<String>,
    pub error: Option<String>,
    /// Captured bodies; redacted, then cut to `body_limit` bytes, before
    /// they are written.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// Not stored: the bytes a captured body keeps.
    pub body_limit: u32,
}

/// Which call log records to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Records after this `seq`.
    pub after: i64,
    pub consumer_id: Option<String>,
    pub status_class: Option<u16>,
    pub reason: Option<String>,
    pub api: Option<String>,
    pub model: Option<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Up to `limit` records matching `filter`, in `seq` order, with the
    /// log's newest `seq`.
    async fn call_logs(
        &self,
        filter: LogFilter,
        limit: u32,
    ) -> StoreResult<(Vec<tollgate_api::CallLog>, i64)>;
    /// Up to `limit` records after `after`, each as its JSON line (a
    /// `CallLog`), with the log's newest `seq`.
    async fn export_lines(&self, after: i64, limit: u32) -> StoreResult<(Vec<(i64, String)>, i64)>;
    /// Figures of the calls that arrived in `[from_us, to_us)`, with a
    /// series in buckets of `bucket_us`.
    async fn call_stats(
        &self,
        from_us: i64,
        to_us: i64,
        bucket_us: i64,
    ) -> StoreResult<tollgate_api::CallStats>;
    /// The saved log settings, if ever saved.
    async fn log_settings(&self) -> StoreResult<Option<tollgate_api::LogSettings>>;
    async fn save_log_settings(
        &self,
        update: tollgate_api::UpdateLogSettings,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<tollgate_api::LogSettings>;
    /// Deletes records that arrived before `before_us`, then the oldest
    /// beyond `max_records`, a batch at a time; returns how many.
    async fn prune_call_logs(&self, before_us: i64, max_records: Option<u64>) -> StoreResult<u64>;
}

/// What a provider key was used for: calls sent with it, those that failed,
/// the tokens they used, and when it was last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKeyUse {
    pub key_id: String,
    pub requests: i64,
    pub failures: i64,
    pub tokens: i64,
    pub at: DateTime<Utc>,
}

/// Included credits used by `calls` calls of one subscription period, of
/// which `leased_micros` came from this node's lease on them (the rest is a
/// blocking plan's last call running past its credits).
#[derive(Debug, Clone)]
pub struct PeriodUsage {
    pub subscription_id: String,
    pub period_start: String,
    pub credits_micros: i64,
    pub leased_micros: i64,
    pub calls: i64,
}

impl PeriodUsage {
    pub fn pot(&self) -> Pot {
        Pot::Credits {
            subscription_id: self.subscription_id.clone(),
            period_start: self.period_start.clone(),
        }
    }
}

/// What a node leases from: a subscription period's included credits, or a
/// consumer's wallet in one currency (ordered so: see
/// [`UsageBatch::settlements`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pot {
    Credits {
        subscription_id: String,
        period_start: String,
    },
    Wallet {
        consumer_id: String,
        currency: String,
    },
}

impl Pot {
    /// `(kind, holder, part)` as the `leases` table keys it.
    pub fn key(&self) -> (&'static str, &str, &str) {
        match self {
            Pot::Wallet {
                consumer_id,
                currency,
            } => ("wallet", consumer_id, currency),
            Pot::Credits {
                subscription_id,
                period_start,
            } => ("credits", subscription_id, period_start),
        }
    }

    /// The pot of a `leases` row.
    pub fn from_key(kind: &str, holder: String, part: String) -> Option<Pot> {
        match kind {
            "wallet" => Some(Pot::Wallet {
                consumer_id: holder,
                currency: part,
            }),
            "credits" => Some(Pot::Credits {
                subscription_id: holder,
                period_start: part,
            }),
            _ => None,
        }
    }

    /// The change other nodes hear when something of this pot is given back.
    pub fn freed(&self) -> Change {
        match self {
            Pot::Wallet {
                consumer_id,
                currency,
            } => Change::Wallet {
                consumer_id: consumer_id.clone(),
                currency: currency.clone(),
            },
            Pot::Credits {
                subscription_id, ..
            } => Change::Credits {
                subscription_id: subscription_id.clone(),
            },
        }
    }
}

/// A node's request for a lease: `need` (what the call at hand needs: less
/// is granted as nothing, unless `partial`), `want` (what the node would
/// like to hold), and for credits the plan's `included` per period.
#[derive(Debug, Clone, Copy)]
pub struct LeaseAsk {
    pub need: i64,
    pub want: i64,
    pub partial: bool,
    pub included: i64,
}

/// What a lease request got: `granted` (added to the node's lease) and
/// `available`, what is left in the pot that no node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted: i64,
    pub available: i64,
}

/// What taking units of a rate limit's allowance got: `granted` units (none
/// when refused), `remaining` in the bucket after them, and when refused
/// the `wait` (µs) until the units asked for are there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowanceGrant {
    pub granted: u32,
    pub remaining: u32,
    pub wait_micros: i64,
}

/// Payment settings as stored: credentials sealed.
#[derive(Debug, Clone)]
pub struct StoredPaymentSettings {
    pub processor: String,
    pub credentials_sealed: Option<Vec<u8>>,
    pub credentials_last4: Option<String>,
    pub publishable_key: Option<String>,
    pub webhook_secret_sealed: Option<Vec<u8>>,
    pub api_base_url: Option<String>,
    pub accepted_currencies: Vec<String>,
    pub grace_days: u32,
    pub updated_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// A ledger write. `idempotency_key` is unique per wallet: writing the same
/// entry again returns the first one.
#[derive(Debug, Clone)]
pub struct NewLedgerEntry {
    pub consumer_id: String,
    pub currency: String,
    pub kind: LedgerKind,
    pub amount_micros: i64,
    pub reason: String,
    pub idempotency_key: String,
    pub actor: String,
}

#[async_trait]
pub trait BillingStore: Send + Sync + 'static {
    async fn create_plan(&self, spec: PlanSpec, audit: &AuditContext) -> StoreResult<Plan>;
    async fn plan(&self, id: &str) -> StoreResult<Plan>;
    async fn list_plans(&self, after: i64, limit: u32) -> StoreResult<(Vec<Plan>, Option<i64>)>;
    /// Replaces the plan's fields (the currency never changes).
    async fn update_plan(
        &self,
        id: &str,
        spec: PlanSpec,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<Plan>;
    async fn delete_plan(
        &self,
        id: &str,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<()>;

    async fn wallets(&self, consumer_id: &str) -> StoreResult<Vec<Wallet>>;
    /// Appends an entry and moves the balance with it, atomically. Returns the
    /// entry and whether it was already there (a replay). Refuses an entry
    /// that would take the balance below zero, except usage.
    async fn append_ledger(
        &self,
        entry: NewLedgerEntry,
        audit: Option<&AuditContext>,
    ) -> StoreResult<(LedgerEntry, bool)>;
    /// Included credits used in a subscription's period (keyed by its start).
    async fn period_usage(&self, subscription_id: &str, period_start: &str) -> StoreResult<i64>;
    /// [`BillingStore::period_usage`] of several `(subscription id, period
    /// start)` pairs, in one read, in their order.
    async fn period_usages(&self, periods: Vec<(String, String)>) -> StoreResult<Vec<i64>>;
    /// Records a batch of settled calls (credits used from their periods, and
    /// the wallet entries for the rest), all in one transaction. Replaying a
    /// batch adds its credits again but not its (idempotent) wallet entries.
    async fn settle_calls(&self, batch: UsageBatch) -> StoreResult<()>;
    /// Sets aside part of `pot` for this node (see [`rules::lease_grant`]).
    /// The database keeps every pot's leases within it.
    async fn lease(&self, pot: &Pot, ask: LeaseAsk) -> StoreResult<Grant>;
    /// Gives back the leases of nodes whose last heartbeat is older than
    /// `heartbeat_before` (dead nodes): how many were given back.
    async fn reclaim_leases(&self, heartbeat_before: DateTime<Utc>) -> StoreResult<u64>;
    /// Takes at least `need` units of the rate-limit bucket `key` for this
    /// node (see [`rules::allowance_grant`]), by the database's clock.
    async fn take_allowance(
        &self,
        key: &str,
        per_minute: u32,
        need: u32,
    ) -> StoreResult<AllowanceGrant>;
    /// Gives back `units` of the bucket `key` taken and not used (negative:
    /// charges units used beyond what was taken).
    async fn return_allowance(&self, key: &str, per_minute: u32, units: i64) -> StoreResult<()>;
    /// The payment settings row, if ever saved.
    async fn payment_settings(&self) -> StoreResult<Option<StoredPaymentSettings>>;
    async fn save_payment_settings(
        &self,
        settings: StoredPaymentSettings,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<StoredPaymentSettings>;
    /// Entries of one wallet, newest first.
    async fn list_ledger(
        &self,
        consumer_id: &str,
        currency: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<LedgerEntry>, Option<i64>)>;
}

/// Which subscriptions to list.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    pub status: Option<tollgate_api::SubscriptionStatus>,
    pub consumer_id: Option<String>,
    pub plan_id: Option<String>,
}

/// A node as registered: `heartbeat_at` and `leads_jobs` are its last report.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub leads_jobs: bool,
    /// The leases it holds (read with the node; ignored when it reports).
    pub leases: i64,
}

/// How long a node stays listed without a heartbeat.
pub(crate) const NODE_FORGOTTEN_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// A second succeeded charge of a subscription with the same key.
pub(crate) const CHARGED_ALREADY: &str = "this subscription's period is charged already";

/// A charge attempt to record.
#[derive(Debug, Clone)]
pub struct NewCharge {
    pub consumer_id: String,
    pub payment_method_id: Option<String>,
    pub subscription_id: Option<String>,
    pub amount_micros: i64,
    pub currency: String,
    /// `None` when it succeeded.
    pub failure: Option<crate::payments::CardError>,
    pub processor_charge_id: Option<String>,
    /// The key the processor was given (`renewal:{subscription}:{period}`):
    /// the store refuses a second succeeded charge of a subscription with
    /// the same key (`Conflict`), so no period is charged twice, whichever
    /// node runs the charge.
    pub idempotency_key: String,
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    async fn create_subscription(
        &self,
        consumer_id: &str,
        plan_id: &str,
        state: crate::lifecycle::State,
        audit: &AuditContext,
    ) -> StoreResult<tollgate_api::Subscription>;
    async fn subscription(&self, id: &str) -> StoreResult<tollgate_api::Subscription>;
    async fn list_subscriptions(
        &self,
        filter: SubscriptionFilter,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<tollgate_api::Subscription>, Option<i64>)>;
    /// Subscriptions that may have something due: active or past due.
    async fn live_subscription_ids(&self) -> StoreResult<Vec<String>>;
    /// Writes a new lifecycle state if the subscription is still at
    /// `expected_version`; audited as `action` (`None` for the renewal job).
    async fn save_subscription(
        &self,
        id: &str,
        state: crate::lifecycle::State,
        expected_version: i64,
        action: &str,
        audit: Option<&AuditContext>,
    ) -> StoreResult<tollgate_api::Subscription>;
    /// Moves a subscription to `plan_id` with its new lifecycle state, if it
    /// is still at `expected_version`; audited as `subscription.change_plan`.
    async fn change_subscription_plan(
        &self,
        id: &str,
        plan_id: &str,
        state: crate::lifecycle::State,
        expected_version: i64,
        audit: &AuditContext,
    ) -> StoreResult<tollgate_api::Subscription>;

    async fn add_payment_method(
        &self,
        consumer_id: &str,
        processor: &str,
        card: crate::payments::CardToken,
        make_default: bool,
        audit: &AuditContext,
    ) -> StoreResult<tollgate_api::PaymentMethod>;
    async fn payment_methods(
        &self,
        consumer_id: &str,
    ) -> StoreResult<Vec<tollgate_api::PaymentMethod>>;
    /// The default card on file and its processor token.
    async fn default_payment_method(
        &self,
        consumer_id: &str,
    ) -> StoreResult<Option<(tollgate_api::PaymentMethod, crate::payments::CardToken)>>;
    async fn set_default_payment_method(
        &self,
        id: &str,
        audit: &AuditContext,
    ) -> StoreResult<tollgate_api::PaymentMethod>;
    async fn remove_payment_method(&self, id: &str, audit: &AuditContext) -> StoreResult<()>;
    /// Records a charge attempt and marks the card failed or healthy with it.
    async fn record_charge(&self, charge: NewCharge) -> StoreResult<tollgate_api::Charge>;
    /// The succeeded charge of a subscription made with `idempotency_key`
    /// (its period's renewal), if there is one.
    async fn succeeded_charge(
        &self,
        subscription_id: &str,
        idempotency_key: &str,
    ) -> StoreResult<Option<tollgate_api::Charge>>;
    async fn charges(
        &self,
        consumer_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<(Vec<tollgate_api::Charge>, Option<i64>)>;
}

/// A provider as validated, ready to store.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub currency: String,
    pub models: Vec<ProviderModel>,
    pub timeout_secs: u32,
    pub enabled: bool,
}

/// A new pool key, its secret already sealed.
#[derive(Clone)]
pub struct NewProviderKey {
    pub label: String,
    pub secret_sealed: Vec<u8>,
    pub last4: String,
    pub priority: u32,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What an admin changes on a pool key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProviderKeyChange {
    pub label: Option<String>,
    pub priority: Option<u32>,
    pub status: Option<(ProviderKeyStatus, String)>,
}

/// A pool key with its sealed secret, for the data plane only.
#[derive(Clone)]
pub struct SealedProviderKey {
    pub key: ProviderKey,
    pub secret_sealed: Vec<u8>,
}

/// Who changed a key's status: an admin's write, or the gateway itself.
#[derive(Debug, Clone)]
pub enum KeyActor<'a> {
    Admin(&'a AuditContext),
    Gateway,
}

#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    /// Fails with `Conflict` when the name, or one of its model names, is
    /// another provider's.
    async fn create_provider(
        &self,
        spec: ProviderSpec,
        audit: &AuditContext,
    ) -> StoreResult<Provider>;
    async fn provider(&self, id: &str) -> StoreResult<Provider>;
    async fn list_providers(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<Provider>, Option<i64>)>;
    async fn update_provider(
        &self,
        id: &str,
        spec: ProviderSpec,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<Provider>;
    /// Deletes the provider and its keys.
    async fn delete_provider(
        &self,
        id: &str,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<()>;
    async fn create_provider_key(
        &self,
        provider_id: &str,
        new: NewProviderKey,
        audit: &AuditContext,
    ) -> StoreResult<ProviderKey>;
    /// A provider's keys in the order they are tried (priority, then age).
    async fn provider_keys(&self, provider_id: &str) -> StoreResult<Vec<ProviderKey>>;
    async fn provider_key(&self, id: &str) -> StoreResult<ProviderKey>;
    async fn update_provider_key(
        &self,
        id: &str,
        change: ProviderKeyChange,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<ProviderKey>;
    async fn delete_provider_key(
        &self,
        id: &str,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<()>;
    /// Sets a key's status (no version check: the gateway's own findings
    /// win over a concurrent edit) and records the change; does nothing when
    /// the status is already `status`. Returns whether it changed.
    async fn set_provider_key_status(
        &self,
        id: &str,
        status: ProviderKeyStatus,
        reason: &str,
        actor: KeyActor<'_>,
    ) -> StoreResult<bool>;
    /// Status changes, newest first: of one key, or of every key of a provider.
    async fn provider_key_events(
        &self,
        provider_id: &str,
        key_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ProviderKeyEvent>>;
    /// A provider's keys with their sealed secrets, in pool order.
    async fn sealed_provider_keys(&self, provider_id: &str) -> StoreResult<Vec<SealedProviderKey>>;
    /// Every enabled provider with its keys (sealed), for the data plane.
    async fn routing_table(&self) -> StoreResult<Vec<(Provider, Vec<SealedProviderKey>)>>;
}

/// A lifecycle change of a prompt API, checked by the caller.
#[derive(Debug, Clone)]
pub struct PromptApiChange {
    pub status: PromptApiStatus,
    pub current_version: u32,
    pub deprecated_at: Option<DateTime<Utc>>,
    pub sunset_at: Option<DateTime<Utc>>,
    /// The audit action: `prompt_api.publish`, `prompt_api.rollback`, …
    pub action: &'static str,
}

#[async_trait]
pub trait PromptApiStore: Send + Sync + 'static {
    /// A draft with version 1. `Conflict` when the slug is taken.
    async fn create_prompt_api(
        &self,
        slug: &str,
        name: &str,
        description: &str,
        definition: PromptDefinition,
        audit: &AuditContext,
    ) -> StoreResult<PromptApi>;
    async fn prompt_api(&self, id: &str) -> StoreResult<PromptApi>;
    async fn prompt_api_by_slug(&self, slug: &str) -> StoreResult<PromptApi>;
    async fn list_prompt_apis(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<(Vec<PromptApi>, Option<i64>)>;
    /// Adds the next version and makes it current.
    async fn add_prompt_api_version(
        &self,
        id: &str,
        definition: PromptDefinition,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<PromptApi>;
    async fn prompt_api_versions(&self, id: &str) -> StoreResult<Vec<PromptApiVersion>>;
    async fn change_prompt_api(
        &self,
        id: &str,
        change: PromptApiChange,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> StoreResult<PromptApi>;
}

/// What a versioned write's own part returns: its result and the action it
/// records in the audit log (some depend on what changed).
pub(crate) type Audited<R> = (R, Cow<'static, str>);

/// Anything written under `If-Match`: it has a version.
pub(crate) trait Versioned {
    fn version(&self) -> i64;
}

/// A singleton (settings) is its version: 0 before it is first saved.
impl Versioned for i64 {
    fn version(&self) -> i64 {
        *self
    }
}

macro_rules! versioned {
    ($($t:ty),*) => {$(impl Versioned for $t {
        fn version(&self) -> i64 {
            self.version
        }
    })*};
}
versioned!(
    Team,
    tollgate_api::Consumer,
    tollgate_api::Plan,
    tollgate_api::PromptApi,
    tollgate_api::Provider,
    tollgate_api::ProviderKey,
    tollgate_api::Subscription
);

/// Turns `limit + 1` rows (each with its position) into a page and the
/// position to continue after, when more rows follow.
pub(crate) fn split_page<T>(mut rows: Vec<(T, i64)>, limit: u32) -> (Vec<T>, Option<i64>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|(_, seq)| *seq)
    } else {
        None
    };
    (rows.into_iter().map(|(item, _)| item).collect(), next)
}

/// `If-Match` semantics shared by every resource.
pub(crate) fn check_version(current: i64, expected: Option<i64>) -> StoreResult<()> {
    match expected {
        Some(v) if v != current => Err(StoreError::VersionMismatch { current }),
        _ => Ok(()),
    }
}
