//! Per-key state a node holds (a consumer's leases, a rate limit's units),
//! one async lock per key so that calls of different keys never wait on one
//! another and a key's store round trips happen one at a time. Keys with
//! nothing held are forgotten by the sweeps of their owners.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

// A fast hash: this map is read on every call (seeded per process).
use foldhash::HashMap;

pub type Cell<T> = Arc<tokio::sync::Mutex<T>>;

pub struct Cells<T> {
    map: Mutex<HashMap<String, Cell<T>>>,
}

impl<T> Default for Cells<T> {
    fn default() -> Self {
        Cells {
            map: Mutex::default(),
        }
    }
}

/// A std mutex's guard, through a poisoned lock (the state is kept whole
/// by each holder: a panic elsewhere does not make it wrong).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Default> Cells<T> {
    /// The key's cell, made empty when there is none.
    pub fn get(&self, key: &str) -> Cell<T> {
        let mut map = lock(&self.map);
        if let Some(cell) = map.get(key) {
            return cell.clone();
        }
        map.entry(key.to_owned()).or_default().clone()
    }
}

impl<T> Cells<T> {
    /// Every key and its cell, as they are now.
    pub fn all(&self) -> Vec<(String, Cell<T>)> {
        lock(&self.map)
            .iter()
            .map(|(key, cell)| (key.clone(), cell.clone()))
            .collect()
    }

    /// Forgets those of `keys` whose cell is `empty`, unless a call took
    /// it up meanwhile.
    pub fn forget(&self, keys: Vec<String>, empty: impl Fn(&T) -> bool) {
        if keys.is_empty() {
            return;
        }
        let mut map = lock(&self.map);
        for key in keys {
            if map.get(&key).is_some_and(|c| {
                Arc::strong_count(c) == 1 && c.try_lock().is_ok_and(|held| empty(&held))
            }) {
                map.remove(&key);
            }
        }
    }
}

/// `owner` every `period` (a late tick is not caught up) until it is
/// dropped: `while let Some(owner) = ticks.next().await { … }`.
pub struct Ticks<T> {
    tick: tokio::time::Interval,
    owner: Weak<T>,
}

impl<T> Ticks<T> {
    pub fn new(period: Duration, owner: Weak<T>) -> Self {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks { tick, owner }
    }

    pub async fn next(&mut self) -> Option<Arc<T>> {
        self.tick.tick().await;
        self.owner.upgrade()
    }
}
