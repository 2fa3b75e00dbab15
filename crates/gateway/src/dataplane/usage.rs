//! Group commit of settled calls: the request path hands each charge to one
//! writer task, which sums everything that arrives within a short window and
//! stores the sums in one transaction: one usage row per subscription period
//! and one `usage` ledger entry per wallet — and appends the window's call
//! log records in the same transaction. The in-memory balances
//! ([`super::accounts`]) are already up to date, so a call never waits for
//! the disk. `flush` ends the window at once and waits until everything
//! handed over before it is stored: admin reads call it first, and shutdown
//! calls it last. A crash can lose at most one window of charges. Call log
//! records take a cheaper way than charges: a list the writer swaps out once
//! per window ([`Records`]).

// A fast hash: every settled call is added to these maps (seeded per process).
use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tollgate_api::LedgerKind;

use crate::metrics::Metrics;
use crate::store::{
    CallRecord, NewLedgerEntry, PeriodUsage, Pot, ProviderKeyUse, Store, UsageBatch,
};

/// How long the writer gathers calls before it writes them.
const WINDOW: Duration = Duration::from_millis(50);
/// Calls summed into one transaction at most, should a flood outpace the
/// window (charges and log records each).
const MAX_CALLS: usize = 100_000;
/// The first pause before a failed write is tried again, doubled each time
/// up to the last.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// One finished call's charge: `credits` from its period's included credits
/// (`leased_credits` of them from the node's lease on them), `wallet` from
/// its consumer's wallet (micro-units, from the node's lease on it).
#[derive(Debug, Clone)]
pub struct SettledCall {
    pub consumer_id: String,
    pub currency: String,
    pub subscription_id: String,
    pub period_start: String,
    pub credits: i64,
    pub leased_credits: i64,
    pub wallet: i64,
    pub request_id: String,
}

enum Message {
    Call(SettledCall),
    GiveBack(Pot, i64),
    KeyUse(ProviderKeyUse),
    Flush(oneshot::Sender<()>),
}

/// Call log records waiting for the writer. Every request leaves one, so
/// they are pushed onto a list under a lock held for the push alone (the
/// writer swaps the whole list out once per window) rather than sent as a
/// channel message each.
#[derive(Default)]
struct Records {
    list: Mutex<Vec<CallRecord>>,
    /// Told when a record lands on an empty list: a window has to start.
    arrived: Notify,
}

impl Records {
    fn list(&self) -> MutexGuard<'_, Vec<CallRecord>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::UnboundedSender<Message>,
    flush_requested: Arc<Notify>,
    records: Arc<Records>,
    unsettled: Arc<Unsettled>,
}

/// What this node's calls spent that the database does not have yet:
/// `GET /v1/billing/status` counts it rather than waiting for a window.
/// Keyed by consumer (or subscription) first, so that adding to an amount
/// already there allocates nothing.
#[derive(Default)]
struct Unsettled {
    /// consumer id → currency → amount.
    wallets: Mutex<HashMap<String, HashMap<String, i64>>>,
    /// subscription id → period start → credits.
    credits: Mutex<HashMap<String, HashMap<String, i64>>>,
}

fn add(map: &Mutex<HashMap<String, HashMap<String, i64>>>, outer: &str, inner: &str, amount: i64) {
    if amount == 0 {
        return;
    }
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    let inners = match map.get_mut(outer) {
        Some(inners) => inners,
        None => map.entry(outer.to_owned()).or_default(),
    };
    match inners.get_mut(inner) {
        Some(sum) => *sum += amount,
        None => {
            inners.insert(inner.to_owned(), amount);
        }
    }
    if inners.get(inner) == Some(&0) {
        inners.remove(inner);
        if inners.is_empty() {
            map.remove(outer);
        }
    }
}

fn get(map: &Mutex<HashMap<String, HashMap<String, i64>>>, outer: &str, inner: &str) -> i64 {
    let map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.get(outer)
        .and_then(|inners| inners.get(inner))
        .copied()
        .unwrap_or(0)
}

impl UsageWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let flush_requested = Arc::new(Notify::new());
        let records = Arc::new(Records::default());
        let unsettled = Arc::new(Unsettled::default());
        tokio::spawn(run(
            store,
            metrics,
            rx,
            flush_requested.clone(),
            records.clone(),
            unsettled.clone(),
        ));
        UsageWriter {
            tx,
            flush_requested,
            records,
            unsettled,
        }
    }

    pub fn record(&self, call: SettledCall) {
        let u = &self.unsettled;
        add(&u.wallets, &call.consumer_id, &call.currency, call.wallet);
        add(
            &u.credits,
            &call.subscription_id,
            &call.period_start,
            call.credits,
        );
        if self.tx.send(Message::Call(call)).is_err() {
            tracing::error!("the usage writer has stopped; a call's charge is lost");
        }
    }

    /// What this node's calls spent from a wallet that is not stored yet.
    pub fn unsettled_wallet(&self, consumer_id: &str, currency: &str) -> i64 {
        get(&self.unsettled.wallets, consumer_id, currency)
    }

    /// The credits of a period this node's calls used that are not stored yet.
    pub fn unsettled_credits(&self, subscription_id: &str, period_start: &str) -> i64 {
        get(&self.unsettled.credits, subscription_id, period_start)
    }

    /// Gives back `amount` of the node's lease on `pot` (with the next
    /// window, after the calls settled before it).
    pub fn give_back(&self, pot: Pot, amount: i64) {
        if self.tx.send(Message::GiveBack(pot, amount)).is_err() {
            tracing::error!("the usage writer has stopped; a lease is not given back");
        }
    }

    /// Counts a provider key's use (stored with the next window).
    pub fn record_key_use(&self, key_use: ProviderKeyUse) {
        if self.tx.send(Message::KeyUse(key_use)).is_err() {
            tracing::error!("the usage writer has stopped; a provider key's use is lost");
        }
    }

    /// Appends a request to the call log (stored with the next window).
    pub fn log(&self, record: Box<CallRecord>) {
        if self.tx.is_closed() {
            tracing::error!("the usage writer has stopped; a call log record is lost");
            return;
        }
        let first = {
            let mut list = self.records.list();
            list.push(*record);
            list.len() == 1
        };
        if first {
            self.records.arrived.notify_one();
        }
    }

    /// Returns once every call recorded before it is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            self.flush_requested.notify_one();
            let _ = wait.await;
        }
    }
}

/// An amount spent from what two names identify (a wallet: consumer and
/// currency; a period: subscription and start).
type Spent = (String, String, i64);

/// The sums of one window.
#[derive(Default)]
struct Window {
    periods: HashMap<(String, String), PeriodUsage>,
    wallets: HashMap<(String, String), WalletUsage>,
    keys: HashMap<String, ProviderKeyUse>,
    returns: HashMap<Pot, i64>,
    calls: Vec<CallRecord>,
}

struct WalletUsage {
    amount: i64,
    calls: u64,
    first_request: String,
    last_request: String,
}

impl Window {
    fn add(&mut self, call: SettledCall) {
        let period = self
            .periods
            .entry((call.subscription_id.clone(), call.period_start.clone()))
            .or_insert_with(|| PeriodUsage {
                subscription_id: call.subscription_id,
                period_start: call.period_start,
                credits_micros: 0,
                leased_micros: 0,
                calls: 0,
            });
        period.credits_micros += call.credits;
        period.leased_micros += call.leased_credits;
        period.calls += 1;
        if call.wallet > 0 {
            let wallet = self
                .wallets
                .entry((call.consumer_id, call.currency))
                .or_insert_with(|| WalletUsage {
                    amount: 0,
                    calls: 0,
                    first_request: call.request_id.clone(),
                    last_request: String::new(),
                });
            wallet.amount += call.wallet;
            wallet.calls += 1;
            wallet.last_request = call.request_id;
        }
    }

    fn add_key_use(&mut self, used: ProviderKeyUse) {
        let sum = self
            .keys
            .entry(used.key_id.clone())
            .or_insert_with(|| ProviderKeyUse {
                requests: 0,
                failures: 0,
                tokens: 0,
                ..used.clone()
            });
        sum.requests += used.requests;
        sum.failures += used.failures;
        sum.tokens += used.tokens;
        sum.at = sum.at.max(used.at);
    }

    /// What the window spends: `(consumer, currency, amount)` of wallets and
    /// `(subscription, period, credits)` of periods.
    fn sums(&self) -> (Vec<Spent>, Vec<Spent>) {
        let wallets = self
            .wallets
            .iter()
            .map(|((consumer, currency), w)| (consumer.clone(), currency.clone(), w.amount))
            .collect();
        let credits = self
            .periods
            .values()
            .map(|p| {
                let (sub, period) = (p.subscription_id.clone(), p.period_start.clone());
                (sub, period, p.credits_micros)
            })
            .collect();
        (wallets, credits)
    }

    fn into_batch(self) -> UsageBatch {
        let wallet_entries = self
            .wallets
            .into_iter()
            .map(|((consumer_id, currency), w)| NewLedgerEntry {
                consumer_id,
                currency,
                kind: LedgerKind::Usage,
                amount_micros: -w.amount,
                reason: if w.calls == 1 {
                    format!("1 call ({})", w.first_request)
                } else {
                    format!(
                        "{} calls ({} … {})",
                        w.calls, w.first_request, w.last_request
                    )
                },
                // A request id belongs to one window only, so a retried
                // write of this window replays instead of charging twice.
                idempotency_key: format!("usage:{}", w.first_request),
                actor: "gateway".into(),
            })
            .collect();
        UsageBatch {
            periods: self.periods.into_values().collect(),
            wallet_entries,
            key_uses: self.keys.into_values().collect(),
            returns: self.returns.into_iter().collect(),
            calls: std::sync::Arc::new(self.calls),
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    flush_requested: Arc<Notify>,
    records: Arc<Records>,
    unsettled: Arc<Unsettled>,
) {
    // Records in the last window: the list the request path fills next is
    // sized from it, rather than grown (and copied) from nothing.
    let mut last_records = 0;
    loop {
        // A window starts with its first message or its first record.
        let first = tokio::select! {
            message = rx.recv() => match message {
                Some(message) => Some(message),
                None => break,
            },
            () = records.arrived.notified() => None,
        };
        if !matches!(first, Some(Message::Flush(_))) {
            tokio::select! {
                () = tokio::time::sleep(WINDOW) => {}
                () = flush_requested.notified() => {}
            }
        }
        let mut window = Window::default();
        let mut flushes = Vec::new();
        let mut next = first;
        let mut calls = 0;
        loop {
            match next.take() {
                Some(Message::Call(c)) => {
                    window.add(c);
                    calls += 1;
                }
                Some(Message::KeyUse(k)) => window.add_key_use(k),
                Some(Message::GiveBack(pot, amount)) => {
                    *window.returns.entry(pot).or_default() += amount;
                }
                Some(Message::Flush(f)) => flushes.push(f),
                None => {}
            }
            if calls >= MAX_CALLS {
                break;
            }
            match rx.try_recv() {
                Ok(message) => next = Some(message),
                Err(_) => break,
            }
        }
        // Taken after the messages: a flush covers every record logged
        // before it was asked for.
        // Room for half as many again: a window a little busier than the
        // last one does not copy the whole list to grow it.
        window.calls = take_records(&records, last_records + last_records / 2, MAX_CALLS);
        last_records = window.calls.len();
        for record in &window.calls {
            metrics.call(record);
        }
        // When the oldest call of the window was answered.
        let oldest_us = window.calls.iter().map(|r| r.at_us + r.latency_us).min();
        if !window.periods.is_empty()
            || !window.keys.is_empty()
            || !window.returns.is_empty()
            || !window.calls.is_empty()
        {
            let (wallets, credits) = window.sums();
            let began = std::time::Instant::now();
            write(store.as_ref(), &metrics, window.into_batch()).await;
            let lag = oldest_us.map_or(Duration::ZERO, |at| {
                let waited = chrono::Utc::now().timestamp_micros() - at;
                Duration::from_micros(waited.max(0).unsigned_abs())
            });
            metrics.window_stored(lag, began.elapsed());
            // Stored: no longer unsettled.
            for (consumer, currency, amount) in wallets {
                add(&unsettled.wallets, &consumer, &currency, -amount);
            }
            for (sub, period, amount) in credits {
                add(&unsettled.credits, &sub, &period, -amount);
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
    // Every writer handle is gone: store the records still waiting.
    loop {
        let window = Window {
            calls: take_records(&records, 0, MAX_CALLS),
            ..Window::default()
        };
        if window.calls.is_empty() {
            break;
        }
        write(store.as_ref(), &metrics, window.into_batch()).await;
    }
}

/// The oldest records logged so far, at most `limit`, their bodies
/// redacted. The request path goes on with a list of `capacity` (or with
/// the records past the limit, and the next window starts at once).
fn take_records(records: &Records, capacity: usize, limit: usize) -> Vec<CallRecord> {
    let mut taken = {
        let mut list = records.list();
        if list.len() > limit {
            let rest = list.split_off(limit);
            records.arrived.notify_one();
            std::mem::replace(&mut *list, rest)
        } else {
            std::mem::replace(&mut *list, Vec::with_capacity(capacity))
        }
    };
    for record in &mut taken {
        // Off the request path: bodies lose their secrets here, before
        // anything is written.
        let limit = record.body_limit;
        for body in [&mut record.request_body, &mut record.response_body]
            .into_iter()
            .flatten()
        {
            let clean = tollgate_api::redact::redact(body);
            *body = super::clip_body(clean.as_bytes(), limit);
        }
    }
    taken
}

/// Stores a window's batch, trying again until the store takes it: charges
/// are never dropped while the database is away (a restart, a failover);
/// the node meanwhile spends only what its leases hold. A failed
/// transaction changes nothing, so retrying the whole batch is exact.
async fn write(store: &dyn Store, metrics: &Metrics, batch: UsageBatch) {
    let count = batch.periods.iter().map(|p| p.calls).sum::<i64>();
    let mut pause = RETRY_FIRST;
    for attempt in 1u32.. {
        match store.settle_calls(batch.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, attempt, count, "storing settled calls failed; retrying");
                metrics.window_retried();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(consumer: &str, sub: &str, credits: i64, wallet: i64, request: &str) -> SettledCall {
        SettledCall {
            consumer_id: consumer.into(),
            currency: "USD".into(),
            subscription_id: sub.into(),
            period_start: "p1".into(),
            credits,
            leased_credits: credits,
            wallet,
            request_id: request.into(),
        }
    }

    fn record(n: usize, body: Option<&str>) -> Box<CallRecord> {
        Box::new(CallRecord {
            id: format!("req_{n:06}"),
            at_us: 1_764_000_000_000_000 + n as i64,
            api: "chat".into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            status: 402,
            request_body: body.map(str::to_owned),
            body_limit: 4096,
            ..CallRecord::default()
        })
    }

    async fn stored_ids(store: &dyn Store) -> Vec<String> {
        let (logs, _) = store
            .call_logs(crate::store::LogFilter::default(), 1000)
            .await
            .expect("the log reads");
        logs.into_iter().map(|l| l.id).collect()
    }

    /// A writer over a fresh store (the directory lives as long as the store is used).
    fn writer() -> (tempfile::TempDir, Arc<dyn Store>, UsageWriter) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(dir.path(), Default::default())
                .expect("the store opens"),
        );
        let writer = UsageWriter::start(store.clone(), Arc::new(Metrics::new().unwrap()));
        (dir, store, writer)
    }

    /// Waits (up to 10 s, without a flush) until `count` records are stored.
    async fn stored_eventually(store: &dyn Store, count: usize) {
        for _ in 0..500 {
            if stored_ids(store).await.len() == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{count} records were not stored");
    }

    #[tokio::test]
    async fn a_flush_stores_every_record_logged_before_it_and_redacts_bodies() {
        let (_dir, store, writer) = writer();
        for n in 0..300 {
            writer.log(record(n, None));
        }
        writer.log(record(
            300,
            Some(r#"{"api_key":"sk-live-0123456789abcdef0123"}"#),
        ));
        writer.flush().await;
        let ids = stored_ids(store.as_ref()).await;
        assert_eq!(ids.len(), 301);
        assert_eq!(ids.first().map(String::as_str), Some("req_000000"));
        assert_eq!(ids.last().map(String::as_str), Some("req_000300"));
        let (logs, _) = store
            .call_logs(crate::store::LogFilter::default(), 1000)
            .await
            .expect("the log reads");
        let body = logs[300]
            .request_body
            .as_deref()
            .expect("the body was captured");
        assert!(!body.contains("sk-live-0123456789abcdef0123"), "{body}");

        // Records logged after a flush wait for the next window, which the
        // first of them starts.
        writer.log(record(301, None));
        writer.log(record(302, None));
        stored_eventually(store.as_ref(), 303).await;
    }

    #[tokio::test]
    async fn a_flood_of_records_is_taken_a_limited_batch_at_a_time_oldest_first() {
        let records = Records::default();
        for n in 0..25 {
            records.list().push(*record(n, None));
        }
        let first = take_records(&records, 0, 10);
        // What is left starts the next window at once.
        let next_window = records.arrived.notified();
        assert!(
            tokio::time::timeout(Duration::ZERO, next_window)
                .await
                .is_ok()
        );
        let ids: Vec<_> = first.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.first(), Some(&"req_000000"));
        assert_eq!(ids.len(), 10);
        assert_eq!(records.list().len(), 15);
        assert_eq!(take_records(&records, 0, 10)[0].id, "req_000010");
        let last = take_records(&records, 32, 10);
        assert_eq!(last.len(), 5);
        assert_eq!(last[4].id, "req_000024");
        assert!(records.list().is_empty());
        assert!(records.list().capacity() >= 32);
    }

    #[tokio::test]
    async fn records_logged_just_before_the_writer_stops_are_stored() {
        let (_dir, store, writer) = writer();
        writer.log(record(1, None));
        writer.log(record(2, None));
        drop(writer);
        stored_eventually(store.as_ref(), 2).await;
    }

    #[test]
    fn a_window_sums_per_period_and_per_wallet() {
        let mut window = Window::default();
        window.add(call("c1", "s1", 10, 0, "req_a"));
        window.add(call("c1", "s1", 5, 7, "req_b"));
        window.add(call("c1", "s1", 0, 3, "req_c"));
        window.add(call("c2", "s2", 1, 0, "req_d"));
        let mut batch = window.into_batch();
        batch
            .periods
            .sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        let periods: Vec<_> = batch
            .periods
            .iter()
            .map(|p| (p.subscription_id.as_str(), p.credits_micros, p.calls))
            .collect();
        assert_eq!(periods, vec![("s1", 15, 3), ("s2", 1, 1)]);
        // Only c1 paid from its wallet: one entry for both of its paying calls.
        assert_eq!(batch.wallet_entries.len(), 1);
        let entry = &batch.wallet_entries[0];
        assert_eq!(entry.consumer_id, "c1");
        assert_eq!(entry.amount_micros, -10);
        assert_eq!(entry.kind, LedgerKind::Usage);
        assert_eq!(entry.reason, "2 calls (req_b … req_c)");
        assert_eq!(entry.idempotency_key, "usage:req_b");
    }
}
