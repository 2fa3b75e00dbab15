//! What every call reads — its key, and its consumer's subscriptions with
//! their plans — kept in memory. A change of any of them on the change feed
//! (whoever made it: an admin, a renewal) moves the epoch on and so drops
//! everything cached before it: entries are never stale longer than the
//! write that changed them takes to answer. Statuses that change with time
//! (a key's expiry) are recomputed at each use.

// A fast hash: these maps are read on every call (seeded per process).
use foldhash::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use tollgate_api::money::parse_amount;
use tollgate_api::{Plan, PromptApi, Subscription};

use crate::changes::{Change, ChangeListener};
use crate::store::{KeyCredential, Store, StoreResult, SubscriptionFilter};

/// Entries kept before the maps are cleared wholesale.
const CAPACITY: usize = 100_000;

/// A subscription of a consumer with its plan, and what the data plane
/// derives from them once rather than per call.
#[derive(Debug)]
pub struct Coverage {
    pub sub: Subscription,
    pub plan: Plan,
    /// The key of the current period's usage row (its start, RFC 3339).
    pub period: String,
    /// The plan's included credits per period, in micro-units.
    pub included: i64,
    /// `{"id", "name"}` of the plan, as refusals show it.
    pub plan_ref: Arc<RawValue>,
    /// The subscription's id and the plan's currency as JSON strings.
    pub subscription_id_json: Arc<RawValue>,
    pub currency_json: Arc<RawValue>,
    /// The subscription's id as the `x-tollgate-subscription` header of answers.
    pub subscription_header: HeaderValue,
}

fn raw_json(value: &impl serde::Serialize) -> StoreResult<Arc<RawValue>> {
    serde_json::value::to_raw_value(value)
        .map(Arc::from)
        .map_err(|e| crate::store::StoreError::Backend(e.into()))
}

pub type Covered = Arc<Vec<Arc<Coverage>>>;

/// A key's stored credential and when its last use was last recorded.
#[derive(Debug)]
pub struct HotKey {
    pub credential: KeyCredential,
    /// Who is calling, as every call log record of this key names it.
    pub logged: LoggedCaller,
    /// Unix seconds of the last use written to the store (or read from it).
    last_recorded: AtomicI64,
}

/// A key's ids, shared by its calls' log records rather than copied into each.
#[derive(Debug)]
pub struct LoggedCaller {
    pub team_id: Arc<str>,
    pub consumer_id: Arc<str>,
    pub key_id: Arc<str>,
    pub key_prefix: Arc<str>,
}

impl HotKey {
    fn new(credential: KeyCredential) -> Self {
        let recorded = credential
            .key
            .last_used_at
            .map_or(i64::MIN, |t| t.timestamp());
        let logged = LoggedCaller {
            team_id: credential.team_id.as_str().into(),
            consumer_id: credential.key.consumer_id.as_str().into(),
            key_id: credential.key.id.as_str().into(),
            key_prefix: credential.key.display_prefix.as_str().into(),
        };
        HotKey {
            credential,
            logged,
            last_recorded: AtomicI64::new(recorded),
        }
    }

    /// Whether this use should be written to the store: the last one written
    /// is more than `interval_secs` old. Only one of the calls racing for a
    /// key's update is told yes.
    pub fn claim_touch(&self, now: DateTime<Utc>, interval_secs: i64) -> bool {
        let now = now.timestamp();
        let last = self.last_recorded.load(Ordering::Relaxed);
        now.saturating_sub(last) > interval_secs
            && self
                .last_recorded
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The lookup part of every stored key, read at a key epoch.
struct KnownKeys {
    epoch: u64,
    lookups: foldhash::HashSet<Box<str>>,
}

/// Store lookups of unknown keys allowed per second.
const UNKNOWN_LOOKUPS_PER_SECOND: u32 = 50;

/// A count per second: [`Budget::allow`] says yes
/// [`UNKNOWN_LOOKUPS_PER_SECOND`] times a second.
#[derive(Default)]
struct Budget(std::sync::Mutex<(u64, u32)>);

impl Budget {
    fn allow(&self) -> bool {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 != second {
            *state = (second, 0);
        }
        state.1 += 1;
        state.1 <= UNKNOWN_LOOKUPS_PER_SECOND
    }
}

#[derive(Default)]
pub struct HotCache {
    epoch: AtomicU64,
    /// Moves on with changes to keys only: the index of known keys is read
    /// again after one.
    key_epoch: AtomicU64,
    /// Every key's lookup part, so that a made-up key is refused without
    /// asking the store (a flood of them would otherwise cost a query each).
    known: RwLock<Option<Arc<KnownKeys>>>,
    /// One reading of the index at a time.
    reading_known: tokio::sync::Mutex<()>,
    /// Store lookups of keys the index does not know, this second.
    unknown_lookups: Budget,
    keys: RwLock<HashMap<String, (u64, Arc<HotKey>)>>,
    subscriptions: RwLock<HashMap<String, (u64, Covered)>>,
    prompt_apis: RwLock<HashMap<String, (u64, Arc<PromptApi>)>>,
}

fn get<T: Clone>(map: &RwLock<HashMap<String, (u64, T)>>, key: &str, epoch: u64) -> Option<T> {
    let map = map.read().unwrap_or_else(|p| p.into_inner());
    map.get(key)
        .filter(|(e, _)| *e == epoch)
        .map(|(_, v)| v.clone())
}

fn put<T>(map: &RwLock<HashMap<String, (u64, T)>>, key: &str, epoch: u64, value: T) {
    let mut map = map.write().unwrap_or_else(|p| p.into_inner());
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(key.to_owned(), (epoch, value));
}

impl ChangeListener for HotCache {
    fn changed(&self, change: &Change) {
        match change {
            Change::Key { .. } | Change::Everything => {
                self.key_epoch.fetch_add(1, Ordering::AcqRel);
                self.invalidate();
            }
            Change::Consumer { .. }
            | Change::Subscription { .. }
            | Change::Plan { .. }
            | Change::PromptApi { .. } => self.invalidate(),
            // Read from the store at each use, or held elsewhere.
            Change::PaymentMethods { .. }
            | Change::Wallet { .. }
            | Change::Credits { .. }
            | Change::PaymentSettings
            | Change::Provider { .. }
            | Change::LogSettings { .. } => {}
        }
    }
}

impl HotCache {
    /// Drops everything cached so far.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The stored credential for a key's lookup part, as last read. Its
    /// status is the caller's to recompute.
    pub async fn key(&self, store: &dyn Store, lookup: &str) -> StoreResult<Option<Arc<HotKey>>> {
        let epoch = self.epoch();
        if let Some(hit) = get(&self.keys, lookup, epoch) {
            return Ok(Some(hit));
        }
        // A key the index does not know is looked up only while few such
        // lookups were made this second: a key created a moment ago on
        // another node (whose change is still on its way) is found, and a
        // flood of made-up keys does not cost a query each.
        if !self.known(store).await?.lookups.contains(lookup) && !self.unknown_lookups.allow() {
            return Ok(None);
        }
        let loaded = store
            .key_credential(lookup)
            .await?
            .map(|c| Arc::new(HotKey::new(c)));
        if let Some(c) = &loaded {
            put(&self.keys, lookup, epoch, c.clone());
        }
        Ok(loaded)
    }

    /// The index of every key's lookup part, read again after a change to
    /// keys (by one caller; the others wait for it).
    async fn known(&self, store: &dyn Store) -> StoreResult<Arc<KnownKeys>> {
        let current = || {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            let epoch = self.key_epoch.load(Ordering::Acquire);
            known.clone().filter(|k| k.epoch == epoch)
        };
        if let Some(known) = current() {
            return Ok(known);
        }
        let _reading = self.reading_known.lock().await;
        if let Some(known) = current() {
            return Ok(known);
        }
        // The epoch before the read: a key created meanwhile moves it on,
        // and the index is read again.
        let epoch = self.key_epoch.load(Ordering::Acquire);
        let lookups = store.key_lookups().await?;
        let known = Arc::new(KnownKeys {
            epoch,
            lookups: lookups.into_iter().map(String::into_boxed_str).collect(),
        });
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = Some(known.clone());
        Ok(known)
    }

    /// The prompt API served at `slug` (any status), as last read; unknown
    /// slugs are not remembered, so made-up names cannot fill the cache.
    pub async fn prompt_api(&self, store: &dyn Store, slug: &str) -> StoreResult<Arc<PromptApi>> {
        let epoch = self.epoch();
        if let Some(hit) = get(&self.prompt_apis, slug, epoch) {
            return Ok(hit);
        }
        let api = Arc::new(store.prompt_api_by_slug(slug).await?);
        put(&self.prompt_apis, slug, epoch, api.clone());
        Ok(api)
    }

    /// The consumer's subscriptions with their plans.
    pub async fn subscriptions(
        &self,
        store: &dyn Store,
        consumer_id: &str,
    ) -> StoreResult<Covered> {
        let epoch = self.epoch();
        if let Some(hit) = get(&self.subscriptions, consumer_id, epoch) {
            return Ok(hit);
        }
        let filter = SubscriptionFilter {
            consumer_id: Some(consumer_id.to_owned()),
            ..Default::default()
        };
        let (subs, _) = store.list_subscriptions(filter, 0, 200).await?;
        let mut covered = Vec::with_capacity(subs.len());
        for sub in subs {
            let plan = store.plan(&sub.plan_id).await?;
            let period = period_key(&sub);
            let included = parse_amount(&plan.included_credits).unwrap_or(0);
            // Ids are the gateway's own (`sub_` and a ULID): always a valid header.
            let subscription_header = HeaderValue::from_str(&sub.id)
                .map_err(|e| crate::store::StoreError::Backend(e.into()))?;
            covered.push(Arc::new(Coverage {
                subscription_header,
                plan_ref: raw_json(&serde_json::json!({"id": plan.id, "name": plan.name}))?,
                subscription_id_json: raw_json(&sub.id)?,
                currency_json: raw_json(&plan.currency)?,
                sub,
                plan,
                period,
                included,
            }));
        }
        let covered = Arc::new(covered);
        put(&self.subscriptions, consumer_id, epoch, covered.clone());
        Ok(covered)
    }
}

/// The key of a subscription's current period in the usage table.
pub fn period_key(sub: &Subscription) -> String {
    sub.current_period_start
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "none".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_api::{ConsumerKey, ConsumerStatus};

    fn hot_key(last_used_at: Option<DateTime<Utc>>) -> HotKey {
        let key: ConsumerKey = serde_json::from_value(serde_json::json!({
            "id": "key_1", "consumer_id": "con_1", "name": "k", "display_prefix": "tg_abcd",
            "allowed_apis": [], "status": "active", "created_at": "2026-01-01T00:00:00Z",
            "last_used_at": last_used_at,
        }))
        .unwrap();
        HotKey::new(KeyCredential {
            key,
            secret_hash: vec![0; 32],
            consumer_status: ConsumerStatus::Active,
            team_id: "tea_1".into(),
        })
    }

    #[test]
    fn unknown_keys_are_looked_up_a_few_times_a_second_at_most() {
        let budget = Budget::default();
        let allowed = (0..10 * UNKNOWN_LOOKUPS_PER_SECOND)
            .filter(|_| budget.allow())
            .count();
        // Within one second, or spread over two if the clock ticked meanwhile.
        let limit = UNKNOWN_LOOKUPS_PER_SECOND as usize;
        assert!((limit..=2 * limit).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_use_is_recorded_at_most_once_per_interval() {
        let now: DateTime<Utc> = "2026-05-01T12:00:00Z".parse().unwrap();
        let never_used = hot_key(None);
        assert!(never_used.claim_touch(now, 60));
        // A second call in the same minute is not written again.
        assert!(!never_used.claim_touch(now + chrono::Duration::seconds(30), 60));
        assert!(never_used.claim_touch(now + chrono::Duration::seconds(61), 60));

        let recently = hot_key(Some(now - chrono::Duration::seconds(10)));
        assert!(!recently.claim_touch(now, 60));
        let long_ago = hot_key(Some(now - chrono::Duration::hours(2)));
        assert!(long_ago.claim_touch(now, 60));
    }
}
