//! Starting and stopping the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use tokio::net::TcpListener;

use crate::app::{App, app};
use crate::billing::Billing;
use crate::changes::ChangeFeed;
use crate::config::Database;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::dataplane::accounts::Accounts;
use crate::dataplane::ratelimit::RateLimiter;
use crate::dataplane::upstream::{Target, UpstreamClient, bearer};
use crate::dataplane::{DataPlane, DefaultUpstream, Pricing};
use crate::http::AppState;
use crate::instance::Instance;
use crate::metrics::Metrics;
use crate::payments::Processors;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{NodeRecord, Store};
use crate::tokens::{self, MintedToken};
use tollgate_api::Scope;

/// Name of the file, in the data directory, that receives the bootstrap token.
pub const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-admin-token";

/// Opens the store `database` names (the SQLite one lives in `data_dir`).
pub async fn open_store(
    data_dir: &Path,
    database: &Database,
    feed: Arc<ChangeFeed>,
) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    Ok(match database {
        Database::Sqlite => Arc::new(
            SqliteStore::open(data_dir, feed)
                .with_context(|| format!("opening the store in {}", data_dir.display()))?,
        ),
        Database::Postgres { url, pool_size } => Arc::new(
            PgStore::open(url, *pool_size, feed)
                .await
                .context("opening the PostgreSQL store")?,
        ),
    })
}

/// Writes the bootstrap token once, readable by its owner only.
fn write_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    Ok(())
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let feed = ChangeFeed::new();
    let store = open_store(&settings.data_dir, &settings.database, feed.clone()).await?;
    if matches!(settings.database, Database::Sqlite) {
        // A SQLite store serves one gateway process at a time: the leases of
        // the processes before this one (stopped, or killed) go back now.
        // (Not in `open_store`: an admin command opens the store too.)
        let reclaimed = store.reclaim_leases(Utc::now()).await?;
        if reclaimed > 0 {
            tracing::info!(reclaimed, "gave back the leases of an earlier process");
        }
    }
    // Before anything else: a node whose key cannot open the secrets the
    // others sealed must not start (its calls would fail later, one by one).
    let secrets = Arc::new(SecretBox::load(
        &settings.data_dir,
        settings.encryption_key_file.as_deref(),
    )?);
    let sample = store.key_check(secrets.sample()).await?;
    anyhow::ensure!(
        secrets.opens(&sample),
        "this node's encryption key is not the one the database's secrets were sealed with: \
         give every node the same key (TOLLGATE_ENCRYPTION_KEY or encryption_key_file)"
    );
    if let Some(minted) = bootstrap_if_empty(store.as_ref()).await? {
        let path: PathBuf = settings.data_dir.join(BOOTSTRAP_TOKEN_FILE);
        write_secret_file(&path, &minted.secret)?;
        tracing::warn!(path = %path.display(), token_id = %minted.record.id,
            "created the bootstrap admin token; it was written once to this file (mode 0600)");
        println!("bootstrap admin token written to {}", path.display());
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let bound = listener.local_addr()?;
    let metrics_listener = match settings.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the metrics address {address}"))?;
            // Before the line below: tests and scripts read both to learn
            // ports chosen by the system. Connections wait in the backlog
            // until the metrics server starts.
            println!(
                "tollgated metrics on http://{}/metrics",
                listener.local_addr()?
            );
            Some(listener)
        }
        None => None,
    };
    let instance = Instance {
        id: store.instance_id().await?,
        name: settings.instance_name.clone(),
        started_at: Utc::now(),
        started: Instant::now(),
        public_url: settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
        max_body_bytes: settings.max_body_bytes,
        body_timeout: settings.body_timeout,
    };
    let shutdown = shutdown_signal()?;
    // Registered before it says it listens: whoever lists the nodes then
    // finds this one.
    let node = NodeRecord {
        id: store.node_id().to_owned(),
        address: instance.public_url.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_at: instance.started_at,
        heartbeat_at: Utc::now(),
        leads_jobs: store.leads_jobs(),
        leases: 0,
    };
    store.heartbeat(&node).await?;
    tracing::info!(%bound, instance_id = %instance.id, "tollgated listening");
    // Scripts and tests read this line to learn the port when --listen used port 0.
    println!("tollgated listening on http://{bound}");
    let billing = Arc::new(
        Billing::new(
            store.clone(),
            secrets.clone(),
            settings.grace_days,
            Processors::builtin(),
        )
        .await?,
    );
    let renewals = tokio::spawn(run_renewals(billing.clone(), settings.renewal_interval));
    let upstream = match &settings.upstream_url {
        Some(url) => Some(DefaultUpstream {
            target: Target::new(url, "/chat/completions", UPSTREAM_TIMEOUT)
                .context("the upstream URL")?,
            authorization: settings
                .upstream_key
                .as_deref()
                .map(bearer)
                .transpose()
                .context("the upstream key")?,
        }),
        None => None,
    };
    let instance = Arc::new(instance);
    let metrics = Arc::new(Metrics::new().context("setting up the metrics")?);
    let data = Arc::new(DataPlane {
        store: store.clone(),
        secrets: secrets.clone(),
        instance: instance.clone(),
        billing: billing.clone(),
        hot: Default::default(),
        client: UpstreamClient::new().context("setting up the upstream client")?,
        routes: Default::default(),
        upstream,
        pricing: Pricing {
            per_request: settings.price_per_request,
            per_1k_tokens: settings.price_per_1k_tokens,
        },
        accounts: Accounts::new(store.clone(), metrics.clone()),
        limiter: RateLimiter::new(store.clone()),
        captures: Default::default(),
        metrics,
    });
    data.listen(&feed);
    let heartbeats = tokio::spawn(run_heartbeats(data.clone(), node));
    data.captures.set(
        &crate::http::logs::current_settings(store.as_ref())
            .await?
            .bodies,
    );
    let pruning = tokio::spawn(run_log_pruning(store.clone()));
    let metrics_server =
        metrics_listener.map(|listener| tokio::spawn(serve_metrics(listener, data.clone())));
    let app = app(AppState {
        store,
        secrets,
        instance,
        billing,
        data: data.clone(),
    });
    serve_connections(listener, app, settings.idle_timeout, shutdown).await;
    renewals.abort();
    pruning.abort();
    heartbeats.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    // Leases and rate-limit units go back, and settled calls still queued
    // are stored, before the process ends: tried for a while when the
    // database is away (the leader gives the leases back later anyway).
    let stored = tokio::time::timeout(DRAIN_TIMEOUT, async {
        data.accounts.give_back_all().await;
        data.limiter.give_back_all().await;
    })
    .await;
    if stored.is_err() {
        tracing::error!(
            "the database did not take the last usage window within {DRAIN_TIMEOUT:?}; its charges are lost"
        );
    }
    tracing::info!("tollgated stopped");
    Ok(())
}

/// How long the upstream may take to answer a call in full.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a graceful shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections and serves HTTP/1.1 on each (keep-alive, no Nagle
/// delay, closed after `idle_timeout` without a request) until `shutdown`
/// resolves; then stops accepting, lets requests in
/// flight finish (up to [`DRAIN_TIMEOUT`]) and returns. Written on hyper
/// directly rather than `axum::serve` to choose HTTP/1.1 only (no HTTP/2
/// preface sniffing on every connection) and set the socket options.
async fn serve_connections(
    listener: TcpListener,
    app: App,
    idle_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // No timer: with one, hyper arms a 30 s header-read timeout on every
    // request even when none is configured. Idle and slow-head connections
    // are closed by the watchdog below instead (see `http::activity`).
    http.keep_alive(true).writev(false);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (app, activity) = app.for_connection(peer.ip());
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), app));
        let serving = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        })
        .abort_handle();
        tokio::spawn(async move {
            if activity
                .idle_for(idle_timeout, || serving.is_finished())
                .await
            {
                // Dropping the connection's task closes it; nothing is in flight.
                serving.abort();
                tracing::debug!("closed a connection idle for {idle_timeout:?}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
    }
}

/// Serves `GET /metrics` without a token on the metrics address (an
/// address the operator keeps private: only the scraper reaches it);
/// anything else is 404.
async fn serve_metrics(listener: TcpListener, data: Arc<DataPlane>) {
    use axum::http::{Response, StatusCode, header};
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let data = data.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
            let data = data.clone();
            async move {
                let (status, kind, body) = if req.uri().path() != "/metrics" {
                    (
                        StatusCode::NOT_FOUND,
                        "text/plain",
                        "not found\n".to_owned(),
                    )
                } else {
                    match data.metrics_text().await {
                        Ok(text) => (StatusCode::OK, crate::metrics::CONTENT_TYPE, text),
                        Err(e) => {
                            tracing::error!(error = %e, "the metrics could not be read");
                            let text = "the metrics cannot be read right now\n".to_owned();
                            (StatusCode::SERVICE_UNAVAILABLE, "text/plain", text)
                        }
                    }
                };
                Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, kind)
                    .body(axum::body::Body::from(body))
            }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}

/// How often records past the log's retention are deleted.
const LOG_PRUNING_INTERVAL: Duration = Duration::from_secs(300);

/// The call log's retention: at start, then every few minutes.
async fn run_log_pruning(store: Arc<dyn crate::store::Store>) {
    let mut tick = tokio::time::interval(LOG_PRUNING_INTERVAL);
    loop {
        tick.tick().await;
        if !store.leads_jobs() {
            continue;
        }
        match crate::http::logs::prune(store.as_ref()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted call log records past their retention"),
            Err(e) => tracing::error!(error = %e, "pruning the call log failed"),
        }
    }
}

/// Says every 5 seconds that this node is alive (and whether it leads the
/// jobs): while it does, its leases are its own. The leader gives back the
/// leases of nodes silent for [`LEASES_RECLAIMED_AFTER`].
async fn run_heartbeats(data: Arc<DataPlane>, mut node: NodeRecord) {
    let store = data.store.clone();
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        node.heartbeat_at = Utc::now();
        node.leads_jobs = store.leads_jobs();
        match store.heartbeat(&node).await {
            Ok(()) => data.accounts.heartbeat_succeeded(),
            Err(e) => tracing::warn!(error = %e, "the node's heartbeat failed"),
        }
        if node.leads_jobs {
            match store
                .reclaim_leases(node.heartbeat_at - LEASES_RECLAIMED_AFTER)
                .await
            {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "gave back the leases of silent nodes"),
                Err(e) => tracing::warn!(error = %e, "giving back silent nodes' leases failed"),
            }
        }
    }
}

/// How often a node says it is alive.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A node silent this long is taken for dead and its leases are given back:
/// well past [`crate::dataplane::accounts::LEASES_TRUSTED_FOR`], after which
/// a node cut off from the database stops spending them itself.
const LEASES_RECLAIMED_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(20);

/// The renewal job: every `interval`, whatever is due (renewal charges,
/// expiries) is done.
async fn run_renewals(billing: Arc<Billing>, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        if !billing.leads_jobs() {
            continue;
        }
        let changed = billing.run_due(Utc::now()).await;
        if changed > 0 {
            tracing::info!(changed, "renewal job updated subscriptions");
        }
    }
}

/// Listens for SIGTERM and SIGINT from now on, ending at the first. It is
/// made before the gateway says it listens: a signal sent as soon as it
/// answers must stop it cleanly (settled usage stored), not kill it, as it
/// did when the handler was only installed once the accept loop first waited.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

/// Creates the bootstrap token when the store has no admin token at all.
pub async fn bootstrap_if_empty(
    store: &dyn Store,
) -> crate::store::StoreResult<Option<MintedToken>> {
    let minted = tokens::mint("bootstrap", Scope::ALL.to_vec());
    Ok(store
        .bootstrap_admin_token(minted.record.clone())
        .await?
        .then_some(minted))
}
