//! What every call reads — its key, and its consumer's subscriptions with
//! their plans — kept in memory. Any management write (or renewal) moves the
//! epoch on and so drops everything cached before it: entries are never
//! stale longer than the write that changed them takes to answer. Statuses
//! that change with time (a key's expiry) are recomputed at each use.

// A fast hash: these maps are read on every call (seeded per process).
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use tollgate_api::money::parse_amount;
use tollgate_api::{Plan, Subscription};

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
}

fn raw_json(value: &impl serde::Serialize) -> StoreResult<Arc<RawValue>> {
    serde_json::value::to_raw_value(value)
        .map(Arc::from)
        .map_err(|e| crate::store::StoreError::Backend(e.into()))
}

pub type Covered = Arc<Vec<Arc<Coverage>>>;

#[derive(Default)]
pub struct HotCache {
    epoch: AtomicU64,
    keys: RwLock<HashMap<String, (u64, Arc<KeyCredential>)>>,
    subscriptions: RwLock<HashMap<String, (u64, Covered)>>,
    touched: Mutex<HashMap<String, DateTime<Utc>>>,
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

impl HotCache {
    /// Drops everything cached so far.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The stored credential for a key's lookup part, as last read. Its
    /// status and last use are the caller's to recompute ([`Self::last_used`]).
    pub async fn key(
        &self,
        store: &dyn Store,
        lookup: &str,
    ) -> StoreResult<Option<Arc<KeyCredential>>> {
        let epoch = self.epoch();
        if let Some(hit) = get(&self.keys, lookup, epoch) {
            return Ok(Some(hit));
        }
        let loaded = store.key_credential(lookup).await?.map(Arc::new);
        if let Some(c) = &loaded {
            put(&self.keys, lookup, epoch, c.clone());
        }
        Ok(loaded)
    }

    /// When the key was last used, if that is newer than the stored value.
    pub fn last_used(&self, key_id: &str) -> Option<DateTime<Utc>> {
        self.touched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .copied()
    }

    pub fn touched(&self, key_id: &str, at: DateTime<Utc>) {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if touched.len() >= CAPACITY {
            touched.clear();
        }
        touched.insert(key_id.to_owned(), at);
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
            covered.push(Arc::new(Coverage {
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
