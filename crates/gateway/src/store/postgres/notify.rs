//! The change feed across nodes: each transaction's changes are sent with
//! PostgreSQL's NOTIFY from inside the transaction (delivered to listeners
//! when, and only if, it commits), and every node LISTENs on one connection
//! of its own and publishes what other nodes changed on its local feed. A
//! node that loses that connection reconnects and publishes
//! [`Change::Everything`]: it cannot know what it missed.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::backend;
use crate::changes::{Change, ChangeFeed};
use crate::store::StoreResult;

/// The channel every node listens on.
const CHANNEL: &str = "tollgate_changes";
/// NOTIFY refuses payloads of 8000 bytes or more: larger batches are sent
/// as "everything changed".
const PAYLOAD_MAX: usize = 7_900;

#[derive(Serialize, Deserialize)]
struct Notice<'a> {
    /// The node that wrote (which published the changes itself already).
    node: &'a str,
    changes: Vec<Change>,
}

/// Sends `changes` to the other nodes when `tx` commits.
pub(super) async fn send(tx: &Transaction<'_>, node: &str, changes: &[Change]) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut payload = serde_json::to_string(&Notice {
        node,
        changes: changes.to_vec(),
    })
    .map_err(|e| crate::store::StoreError::Backend(e.into()))?;
    if payload.len() >= PAYLOAD_MAX {
        payload = serde_json::to_string(&Notice {
            node,
            changes: vec![Change::Everything],
        })
        .map_err(|e| crate::store::StoreError::Backend(e.into()))?;
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map_err(backend)?;
    Ok(())
}

/// Listens for the other nodes' changes until the returned task is aborted,
/// reconnecting (within a second or two) whenever the connection is lost.
/// `ready` hears each time the node listens again.
pub(super) fn listen(
    config: Config,
    node: String,
    feed: Arc<ChangeFeed>,
    ready: tokio::sync::watch::Sender<u64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut connected_before = false;
        loop {
            match listen_once(&config, &node, &feed, &ready, connected_before).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for other nodes' changes failed; retrying")
                }
            }
            connected_before = true;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })
}

/// One connection's life: LISTEN, then publish each notice until it ends.
async fn listen_once(
    config: &Config,
    node: &str,
    feed: &ChangeFeed,
    ready: &tokio::sync::watch::Sender<u64>,
    reconnected: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            if sender.send(message).is_err() {
                break;
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if reconnected {
        // Whatever changed while no one listened is unknown.
        feed.publish(&[Change::Everything]);
    }
    ready.send_modify(|n| *n += 1);
    while let Some(message) = messages.recv().await {
        match message {
            Ok(AsyncMessage::Notification(n)) => {
                match serde_json::from_str::<Notice<'_>>(n.payload()) {
                    Ok(notice) if notice.node != node => feed.publish(&notice.changes),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "an unreadable change notice: dropping every cache");
                        feed.publish(&[Change::Everything]);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                driver.abort();
                return Err(e);
            }
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}
