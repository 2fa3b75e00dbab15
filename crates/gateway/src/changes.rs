//! The change feed: every write that alters what the data plane reads is
//! published here as a typed [`Change`], by the store, with the transaction
//! that made it — whoever caused it (an admin, a renewal, the key pool).
//! Caches subscribe ([`ChangeFeed::subscribe`]) and drop what a change makes
//! stale; nothing else invalidates them. The store publishes a transaction's
//! changes once it has committed and before its write returns, so a cache is
//! never stale longer than the write that changed it takes to answer.
//!
//! This is the one seam a store shared by several nodes carries across them:
//! the PostgreSQL store sends each transaction's changes to the other nodes
//! (`store::postgres::notify`), which publish them on their own feeds.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tollgate_api::BodyCapture;

/// What changed, as the caches that hold it need to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A consumer key was created, rotated, revoked or changed.
    Key { key_id: String, consumer_id: String },
    /// A consumer's own record (its status: suspended, deleted).
    Consumer { consumer_id: String },
    /// One of a consumer's subscriptions: created, charged, renewed, expired,
    /// moved to another plan, approved, suspended.
    Subscription {
        subscription_id: String,
        consumer_id: String,
    },
    /// A consumer's payment methods (added, removed, a new default).
    PaymentMethods { consumer_id: String },
    /// A plan's terms (and so every subscription on it).
    Plan { plan_id: String },
    /// A wallet's balance moved outside the data plane's own usage (a top-up,
    /// an adjustment).
    Wallet {
        consumer_id: String,
        currency: String,
    },
    /// A subscription period's included credits were given back by a node
    /// (others may lease them).
    Credits { subscription_id: String },
    /// The gateway's payment settings.
    PaymentSettings,
    /// A provider, its models and prices, or its keys (and their status).
    Provider { provider_id: String },
    /// A prompt API: a new version, published, deprecated, retired.
    PromptApi { slug: String },
    /// The call log's settings; the bodies captured travel with the change.
    LogSettings { bodies: Vec<BodyCapture> },
    /// Anything may have changed (a node that lost the database's
    /// notifications for a while cannot know what it missed): drop every cache.
    Everything,
}

/// Something that holds what changes describe.
pub trait ChangeListener: Send + Sync {
    fn changed(&self, change: &Change);
}

/// Where changes are published and heard.
#[derive(Default)]
pub struct ChangeFeed {
    listeners: RwLock<Vec<Arc<dyn ChangeListener>>>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl ChangeFeed {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `listener` hears every change published from now on.
    pub fn subscribe(&self, listener: Arc<dyn ChangeListener>) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
    }

    /// Tells every listener of `changes`, in order. Called by the store once
    /// the transaction that made them has committed.
    pub fn publish(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let listeners = self.listeners.read().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            tracing::debug!(?change, "change");
            for listener in listeners.iter() {
                listener.changed(change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Heard(Mutex<Vec<Change>>);

    impl ChangeListener for Heard {
        fn changed(&self, change: &Change) {
            self.0.lock().unwrap().push(change.clone());
        }
    }

    #[test]
    fn every_listener_hears_every_change_in_order() {
        let feed = ChangeFeed::new();
        let (a, b) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
        feed.publish(&[Change::PaymentSettings]); // before anyone listens
        feed.subscribe(a.clone());
        feed.subscribe(b.clone());
        let changes = [
            Change::Plan {
                plan_id: "pln_1".into(),
            },
            Change::PromptApi {
                slug: "greet".into(),
            },
        ];
        feed.publish(&changes);
        assert_eq!(*a.0.lock().unwrap(), changes);
        assert_eq!(*b.0.lock().unwrap(), changes);
    }

    #[test]
    fn changes_are_typed_on_the_wire() {
        let change = Change::Wallet {
            consumer_id: "con_1".into(),
            currency: "USD".into(),
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"wallet","consumer_id":"con_1","currency":"USD"}"#
        );
        assert_eq!(serde_json::from_str::<Change>(&text).unwrap(), change);
    }
}
