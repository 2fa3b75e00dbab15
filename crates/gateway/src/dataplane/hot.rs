//! What every call reads — its key, and its consumer's subscriptions with
//! their plans — kept in memory. Any management write (or renewal) moves the
//! epoch on and so drops everything cached before it: entries are never
//! stale longer than the write that changed them takes to answer. Statuses
//! that change with time (a key's expiry) are recomputed at each use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use tollgate_api::{Plan, Subscription};

use crate::store::{KeyCredential, Store, StoreResult, SubscriptionFilter};

/// Entries kept before the maps are cleared wholesale.
const CAPACITY: usize = 100_000;

pub type Covered = Arc<Vec<(Subscription, Plan)>>;

#[derive(Default)]
pub struct HotCache {
    epoch: AtomicU64,
    keys: RwLock<HashMap<String, (u64, KeyCredential)>>,
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

    pub async fn key(
        &self,
        store: &dyn Store,
        lookup: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<KeyCredential>> {
        let epoch = self.epoch();
        let mut found = match get(&self.keys, lookup, epoch) {
            Some(hit) => Some(hit),
            None => {
                let loaded = store.key_credential(lookup).await?;
                if let Some(c) = &loaded {
                    put(&self.keys, lookup, epoch, c.clone());
                }
                loaded
            }
        };
        if let Some(c) = &mut found {
            c.key.status = crate::consumer_keys::key_status(&c.key, now);
            if let Some(t) = self
                .touched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&c.key.id)
            {
                c.key.last_used_at = Some(*t);
            }
        }
        Ok(found)
    }

    /// Records a key's last use, so the cached copy does not ask again.
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
            covered.push((sub, plan));
        }
        let covered = Arc::new(covered);
        put(&self.subscriptions, consumer_id, epoch, covered.clone());
        Ok(covered)
    }
}
