//! Opening a PostgreSQL store: the URL, the first connection and start-up
//! (migrations under the advisory lock), each failure naming its part.

use std::str::FromStr;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Config, Connection, NoTls, Socket};

use super::{STARTUP_LOCK, migrations};

/// Why a PostgreSQL store could not be opened. The messages never hold the
/// URL's password.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database URL is not valid: {0}")]
    InvalidUrl(String),
    #[error("cannot reach PostgreSQL at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("PostgreSQL at {server} refused the login of user `{user}`: {reason}")]
    Login {
        server: String,
        user: String,
        reason: String,
    },
    #[error(
        "the database `{database}` does not exist on {server} (create it first: createdb {database})"
    )]
    NoDatabase { server: String, database: String },
    #[error(
        "the database's schema is at version {found}, newer than this binary's ({supported}): run the newer tollgated, or a database of this version"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("migrating the database failed: {0}")]
    Migration(String),
    #[error("creating the connection pool failed: {0}")]
    Pool(String),
    #[error("PostgreSQL at {server}: {reason}")]
    Other { server: String, reason: String },
}

pub(super) fn parse(url: &str) -> Result<Config, OpenError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(OpenError::InvalidUrl(
            "it must start with postgres:// (postgres://USER:PASSWORD@HOST:PORT/DATABASE)".into(),
        ));
    }
    let config = Config::from_str(url).map_err(|e| OpenError::InvalidUrl(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(OpenError::InvalidUrl("it names no host".into()));
    }
    if config.get_user().is_none() {
        return Err(OpenError::InvalidUrl("it names no user".into()));
    }
    if config.get_dbname().is_none() {
        return Err(OpenError::InvalidUrl("it names no database".into()));
    }
    Ok(config)
}

/// `host:port` of the URL, for messages.
fn server(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

pub(super) async fn first_connection(
    config: &Config,
) -> Result<(Client, Connection<Socket, NoTlsStream>), OpenError> {
    config
        .connect(NoTls)
        .await
        .map_err(|e| classify(config, &e))
}

/// What a failed connection says about its part: the network, the login, the
/// database's name.
fn classify(config: &Config, e: &tokio_postgres::Error) -> OpenError {
    let server = server(config);
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return OpenError::Login {
                server,
                user: config.get_user().unwrap_or_default().to_owned(),
                reason: db.message().to_owned(),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return OpenError::NoDatabase {
                server,
                database: config.get_dbname().unwrap_or_default().to_owned(),
            };
        }
        return OpenError::Other {
            server,
            reason: db.message().to_owned(),
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return OpenError::Unreachable {
                server,
                reason: io.to_string(),
            };
        }
        source = inner.source();
    }
    if e.is_closed() || e.to_string().contains("timed out") {
        return OpenError::Unreachable {
            server,
            reason: e.to_string(),
        };
    }
    OpenError::Other {
        server,
        reason: e.to_string(),
    }
}

/// Start-up under the advisory lock: refuses a newer schema, then applies
/// the migrations this binary has and the database lacks. Other nodes
/// starting at the same instant wait for the lock, then find nothing to do.
pub(super) async fn startup(client: &mut Client) -> Result<(), OpenError> {
    let failed = |e: tokio_postgres::Error| OpenError::Migration(e.to_string());
    client
        .execute("SELECT pg_advisory_lock($1)", &[&STARTUP_LOCK])
        .await
        .map_err(failed)?;
    let result = migrate(client).await;
    // The lock also ends with the connection, which the caller closes.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&STARTUP_LOCK])
        .await;
    result
}

async fn migrate(client: &mut Client) -> Result<(), OpenError> {
    let runner = migrations::runner();
    let supported = runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0);
    let history: Option<String> = client
        .query_one("SELECT to_regclass('refinery_schema_history')::text", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| OpenError::Migration(e.to_string()))?;
    if history.is_some() {
        let found: Option<i64> = client
            .query_one(
                "SELECT max(version)::bigint FROM refinery_schema_history",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| OpenError::Migration(e.to_string()))?;
        if let Some(found) = found
            && found > supported
        {
            return Err(OpenError::NewerSchema { found, supported });
        }
    }
    runner
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(client)
        .await
        .map_err(|e| OpenError::Migration(e.to_string()))?;
    Ok(())
}
