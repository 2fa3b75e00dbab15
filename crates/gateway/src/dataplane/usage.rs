//! Group commit of settled calls: the request path hands each charge to one
//! writer task, which stores everything queued in a single transaction. The
//! in-memory balances ([`super::accounts`]) are already up to date, so the
//! call never waits for the disk. `flush` waits until everything handed over
//! before it is stored: admin reads call it first, and shutdown calls it last.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{SettledCall, Store};

const MAX_BATCH: usize = 2048;
const ATTEMPTS: u32 = 5;

enum Message {
    Call(SettledCall),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::UnboundedSender<Message>,
}

impl UsageWriter {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        UsageWriter { tx }
    }

    pub fn record(&self, call: SettledCall) {
        if self.tx.send(Message::Call(call)).is_err() {
            tracing::error!("the usage writer has stopped; a call's charge is lost");
        }
    }

    /// Returns once every call recorded before it is stored.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(first) = rx.recv().await {
        let mut calls = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Call(c) => calls.push(c),
                Message::Flush(f) => flushes.push(f),
            }
            if calls.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !calls.is_empty() {
            write(store.as_ref(), calls).await;
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

async fn write(store: &dyn Store, calls: Vec<SettledCall>) {
    let count = calls.len();
    for attempt in 1..=ATTEMPTS {
        match store.settle_calls(calls.clone()).await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, count, "storing settled calls failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => {
                tracing::error!(error = %e, count, "settled calls could not be stored; their charges are lost")
            }
        }
    }
}
