//! One node at a time runs the jobs (renewals, call-log pruning): the node
//! that holds a session-level advisory lock on a connection of its own. When
//! that node dies, its session ends, the lock is free, and another node,
//! trying every second, takes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::{Config, NoTls};

/// The advisory lock the jobs' leader holds ("leader").
const LEADER_LOCK: i64 = 0x6c65_6164_6572;
/// How often a node that does not lead tries to.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps trying to lead until the returned task is aborted; `leading` says
/// whether this node leads now.
pub(super) fn campaign(config: Config, leading: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = lead_once(&config, &leading).await {
                tracing::debug!(error = %e, "no leadership of the jobs for now");
            }
            leading.store(false, Ordering::Release);
            tokio::time::sleep(RETRY).await;
        }
    })
}

/// One connection: tries the lock; while it is held, waits for the
/// connection to end (the lock ends with it).
async fn lead_once(config: &Config, leading: &AtomicBool) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    let session = tokio::spawn(connection);
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
            .await?
            .try_get(0)?;
        if got {
            break;
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!("this node leads the jobs (renewals, call-log pruning)");
    leading.store(true, Ordering::Release);
    // Held for as long as the session lives; a ping notices a lost one.
    loop {
        tokio::time::sleep(RETRY).await;
        if session.is_finished() {
            break;
        }
        client.simple_query("SELECT 1").await?;
    }
    tracing::warn!("this node no longer leads the jobs: its database session ended");
    Ok(())
}
