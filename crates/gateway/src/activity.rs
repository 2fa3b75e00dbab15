//! Closing connections that do nothing: a client that opens a connection and
//! sends no complete request (or trickles one in, the "slowloris" attack),
//! or a keep-alive connection left idle, is closed after the idle timeout.
//!
//! hyper's own `header_read_timeout` does this with a timer armed,
//! registered and cancelled on every request: about 1,650 of the 32,000
//! user-space instructions a refusal cost (`scripts/bench-instructions.sh`).
//! Here each request only bumps two counters, and one coarse watchdog per
//! connection looks at them a few times per timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

/// What the server answers any request with: a body whose end is counted.
pub type Answer = axum::http::Response<TrackedBody>;

/// What one connection is doing.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests whose head was read, ever.
    started: AtomicU64,
    /// Requests not finished yet: their answer's body is still being sent.
    in_flight: AtomicUsize,
}

/// Held from a request's head to the end of its answer's body.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves to `true` once the connection has had no request in flight
    /// and no new one for `timeout` (give or take a quarter of it), or to
    /// `false` when `ended()` says the connection is gone. It runs in a task
    /// of its own rather than beside the connection's future, so that a
    /// connection's many wake-ups do not poll it.
    pub async fn idle_for(&self, timeout: Duration, ended: impl Fn() -> bool) -> bool {
        let step = (timeout / 4).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.started.load(Ordering::Relaxed);
        let mut idle = Duration::ZERO;
        loop {
            tick.tick().await;
            if ended() {
                return false;
            }
            let started = self.started.load(Ordering::Relaxed);
            if started == seen && self.in_flight.load(Ordering::Relaxed) == 0 {
                idle += step;
                if idle >= timeout {
                    return true;
                }
            } else {
                seen = started;
                idle = Duration::ZERO;
            }
        }
    }
}

/// An answer's body that keeps its request counted as in flight until the
/// body has been sent (a streamed answer is activity too).
pub struct TrackedBody {
    inner: Body,
    _in_flight: Option<InFlight>,
}

impl TrackedBody {
    pub fn new(inner: Body, in_flight: Option<InFlight>) -> Self {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_without_requests_in_flight_or_new_ones() {
        let activity = Arc::new(Activity::default());
        let timeout = Duration::from_secs(30);

        // A request in flight for two minutes keeps the connection.
        let request = activity.begin();
        let idle = activity.idle_for(timeout, || false);
        let idle = tokio::time::timeout(Duration::from_secs(120), idle);
        assert!(idle.await.is_err(), "closed while a request was in flight");

        // Once it is answered, the connection is idle after the timeout.
        drop(request);
        let started = tokio::time::Instant::now();
        assert!(activity.idle_for(timeout, || false).await);
        let waited = started.elapsed();
        assert!(
            waited >= timeout && waited <= timeout + timeout / 4,
            "{waited:?}"
        );

        // New requests, even short ones, count as activity.
        let busy = {
            let activity = activity.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(activity.begin());
                }
            })
        };
        let idle = activity.idle_for(timeout, || false);
        let idle = tokio::time::timeout(Duration::from_secs(90), idle);
        assert!(idle.await.is_err(), "closed while requests kept coming");
        busy.abort();

        // A connection that ended stops its watchdog at the next look.
        let started = tokio::time::Instant::now();
        assert!(!activity.idle_for(timeout, || true).await);
        assert!(started.elapsed() <= timeout / 4);
    }
}
