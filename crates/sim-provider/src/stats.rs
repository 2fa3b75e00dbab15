//! Counters that tests read through `GET /sim/stats` to prove what reached the
//! provider: how many requests, with which keys, and how each stream ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

#[derive(Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_aborted: AtomicU64,
    streams_cut: AtomicU64,
    /// Requests per API key ("" when none was sent). It doubles as the
    /// counter of `sim-key-flaky-<n>` keys, so a reset re-arms them too.
    by_key: Mutex<HashMap<String, u64>>,
}

impl Stats {
    fn by_key(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A panic elsewhere must not take the fixture's counters down with it.
        self.by_key.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one API request made with `key`; returns how many requests that
    /// key has made so far, this one included.
    pub(crate) fn count_request(&self, key: &str) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut by_key = self.by_key();
        // Look up before inserting so the common case allocates nothing.
        if let Some(seen) = by_key.get_mut(key) {
            *seen += 1;
            return *seen;
        }
        by_key.insert(key.to_owned(), 1);
        1
    }

    fn snapshot(&self) -> Value {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "requests": load(&self.requests),
            "streams_started": load(&self.streams_started),
            "streams_completed": load(&self.streams_completed),
            "streams_aborted": load(&self.streams_aborted),
            "streams_cut": load(&self.streams_cut),
            "by_key": *self.by_key(),
        })
    }

    fn reset(&self) {
        for counter in [
            &self.requests,
            &self.streams_started,
            &self.streams_completed,
            &self.streams_aborted,
            &self.streams_cut,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.by_key().clear();
    }
}

/// How a stream ended, from the provider's side.
#[derive(Clone, Copy)]
pub(crate) enum StreamEnd {
    /// Every event was handed to the connection.
    Completed,
    /// `sim-cut-<n>`: the simulator broke the stream off on purpose.
    Cut,
}

/// Lives inside a streamed body: counts the stream as started when created
/// and, if dropped before [`StreamGuard::end`] was called, as aborted — the
/// body is only dropped early when the client went away.
pub(crate) struct StreamGuard {
    stats: Arc<Stats>,
    ended: bool,
}

impl StreamGuard {
    pub(crate) fn start(stats: Arc<Stats>) -> Self {
        stats.streams_started.fetch_add(1, Ordering::Relaxed);
        StreamGuard {
            stats,
            ended: false,
        }
    }

    pub(crate) fn end(&mut self, end: StreamEnd) {
        if self.ended {
            return;
        }
        self.ended = true;
        let counter = match end {
            StreamEnd::Completed => &self.stats.streams_completed,
            StreamEnd::Cut => &self.stats.streams_cut,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.stats.streams_aborted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `GET /sim/stats`.
pub(crate) async fn show(State(stats): State<Arc<Stats>>) -> Json<Value> {
    Json(stats.snapshot())
}

/// `POST /sim/reset`.
pub(crate) async fn reset(State(stats): State<Arc<Stats>>) -> StatusCode {
    stats.reset();
    StatusCode::NO_CONTENT
}
