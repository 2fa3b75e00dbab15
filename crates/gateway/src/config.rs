//! Settings of `tollgated serve`. Precedence: command-line flag, then
//! environment variable (`TOLLGATE_*`), then the TOML file (`--config`), then
//! the default. Unknown keys in the file are an error, not silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML settings file.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding the database and the bootstrap token file.
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "TOLLGATE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Display name of this instance.
    #[arg(long = "name", env = "TOLLGATE_INSTANCE_NAME")]
    pub instance_name: Option<String>,
    /// Public base URL, used in problem `type` URIs (default: http://<listen>).
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format.
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// OpenAI-compatible upstream, e.g. http://127.0.0.1:9000/v1.
    #[arg(long, env = "TOLLGATE_UPSTREAM_URL")]
    pub upstream_url: Option<String>,
    /// PostgreSQL database shared by every node, e.g.
    /// postgres://tollgate:PASSWORD@db:5432/tollgate (default: the embedded
    /// SQLite store in the data directory).
    #[arg(long, env = "TOLLGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A second address serving only `GET /metrics`, without a token (keep
    /// it private to the scraper); without it `/metrics` needs an admin token.
    #[arg(long, env = "TOLLGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    instance_name: Option<String>,
    public_url: Option<String>,
    log_format: Option<LogFormat>,
    max_body_bytes: Option<usize>,
    grace_days: Option<u32>,
    renewal_interval_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    upstream_url: Option<String>,
    price_per_request: Option<String>,
    price_per_1k_tokens: Option<String>,
    encryption_key_file: Option<PathBuf>,
    database_url: Option<String>,
    database_pool_size: Option<usize>,
    metrics_listen: Option<SocketAddr>,
}

/// Where the gateway keeps its state.
#[derive(Clone)]
pub enum Database {
    /// The embedded SQLite store in the data directory (one node).
    Sqlite,
    /// A PostgreSQL database any number of nodes share.
    Postgres { url: String, pool_size: usize },
}

/// Never shows the URL: it may hold a password.
impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite => f.write_str("Sqlite"),
            Database::Postgres { pool_size, .. } => f
                .debug_struct("Postgres")
                .field("pool_size", pool_size)
                .finish_non_exhaustive(),
        }
    }
}

impl Database {
    /// `url` (flag, environment or file) checked as a PostgreSQL URL.
    pub fn from_url(url: Option<String>, pool_size: Option<usize>) -> Result<Self, ConfigError> {
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
            return Ok(Database::Sqlite);
        };
        crate::store::postgres::check_url(&url).map_err(|e| ConfigError::Invalid {
            key: "database_url",
            message: e.to_string(),
        })?;
        let pool_size = pool_size.unwrap_or(crate::store::postgres::DEFAULT_POOL_SIZE);
        if !(1..=1000).contains(&pool_size) {
            return Err(ConfigError::Invalid {
                key: "database_pool_size",
                message: "must be 1 to 1000".into(),
            });
        }
        Ok(Database::Postgres { url, pool_size })
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where state is kept: SQLite in `data_dir`, or a shared PostgreSQL.
    pub database: Database,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Where `/metrics` is served without a token, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    pub instance_name: String,
    /// Without a trailing slash; `None` means "derive from the bound address".
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    /// Days a past-due subscription keeps working before it expires.
    pub grace_days: u32,
    /// How often the renewal job runs.
    pub renewal_interval: std::time::Duration,
    /// A connection without a request in flight for this long is closed
    /// (idle keep-alive, or a client too slow to send a request's head).
    pub idle_timeout: std::time::Duration,
    /// A data-plane request's body must have arrived this long after its
    /// head (nginx's `client_body_timeout` is 60 s).
    pub body_timeout: std::time::Duration,
    /// Base URL of the OpenAI-compatible upstream (ends in `/v1`).
    pub upstream_url: Option<String>,
    /// `Authorization` for the upstream; from `TOLLGATE_UPSTREAM_KEY` only,
    /// never from the settings file.
    pub upstream_key: Option<String>,
    /// Micro-units of the plan's currency per call, and per 1000 tokens.
    pub price_per_request: i64,
    pub price_per_1k_tokens: i64,
    /// Where the key for secrets at rest is; see `crypto`.
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Settings {
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .ok_or(ConfigError::Invalid {
                key: "data_dir",
                message: "is required (--data-dir, TOLLGATE_DATA_DIR or data_dir in the file)"
                    .into(),
            })?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let metrics_listen = args.metrics_listen.or(file.metrics_listen);
        if metrics_listen.is_some_and(|m| m == listen && m.port() != 0) {
            return Err(ConfigError::Invalid {
                key: "metrics_listen",
                message: "must differ from listen (the metrics address serves /metrics only)"
                    .into(),
            });
        }
        let instance_name = args
            .instance_name
            .clone()
            .or(file.instance_name)
            .unwrap_or_else(|| "tollgate".to_owned());
        if instance_name.trim().is_empty() || instance_name.chars().count() > 100 {
            return Err(ConfigError::Invalid {
                key: "instance_name",
                message: "must be 1 to 100 characters".into(),
            });
        }
        let public_url = match args.public_url.clone().or(file.public_url) {
            Some(raw) => Some(validate_public_url(&raw)?),
            None => None,
        };
        let max_body_bytes = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
        if !(1024..=64 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::Invalid {
                key: "max_body_bytes",
                message: "must be between 1024 and 67108864".into(),
            });
        }
        let grace_days = file.grace_days.unwrap_or(3);
        if grace_days > 90 {
            return Err(ConfigError::Invalid {
                key: "grace_days",
                message: "must be 0 to 90".into(),
            });
        }
        let renewal_secs = file.renewal_interval_secs.unwrap_or(60);
        if !(1..=86_400).contains(&renewal_secs) {
            return Err(ConfigError::Invalid {
                key: "renewal_interval_secs",
                message: "must be 1 to 86400".into(),
            });
        }
        let idle_secs = file.idle_timeout_secs.unwrap_or(30);
        if !(1..=3600).contains(&idle_secs) {
            return Err(ConfigError::Invalid {
                key: "idle_timeout_secs",
                message: "must be 1 to 3600".into(),
            });
        }
        let body_secs = file.body_timeout_secs.unwrap_or(60);
        if !(1..=3600).contains(&body_secs) {
            return Err(ConfigError::Invalid {
                key: "body_timeout_secs",
                message: "must be 1 to 3600".into(),
            });
        }
        let upstream_url = match args.upstream_url.clone().or(file.upstream_url) {
            Some(raw) => Some(validate_url("upstream_url", &raw)?),
            None => None,
        };
        let price = |key: &'static str, raw: Option<String>| -> Result<i64, ConfigError> {
            let raw = raw.unwrap_or_else(|| "0".into());
            match tollgate_api::money::parse_amount(&raw) {
                Ok(m) if m >= 0 => Ok(m),
                Ok(_) => Err(ConfigError::Invalid {
                    key,
                    message: "must not be negative".into(),
                }),
                Err(message) => Err(ConfigError::Invalid { key, message }),
            }
        };
        Ok(Settings {
            database: Database::from_url(
                args.database_url.clone().or(file.database_url),
                file.database_pool_size,
            )?,
            encryption_key_file: file.encryption_key_file,
            price_per_request: price("price_per_request", file.price_per_request)?,
            price_per_1k_tokens: price("price_per_1k_tokens", file.price_per_1k_tokens)?,
            upstream_url,
            upstream_key: std::env::var("TOLLGATE_UPSTREAM_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            grace_days,
            renewal_interval: std::time::Duration::from_secs(renewal_secs),
            idle_timeout: std::time::Duration::from_secs(idle_secs),
            body_timeout: std::time::Duration::from_secs(body_secs),
            data_dir,
            listen,
            metrics_listen,
            instance_name,
            public_url,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Pretty),
            max_body_bytes,
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn validate_public_url(raw: &str) -> Result<String, ConfigError> {
    validate_url("public_url", raw)
}

fn validate_url(key: &'static str, raw: &str) -> Result<String, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { key, message };
    let url = url::Url::parse(raw).map_err(|e| invalid(format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(format!(
            "`{raw}` must be an http(s) URL with a host"
        )));
    }
    // The parsed form: percent-encoded, so it can be written into JSON and
    // headers as it is.
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            config: None,
            data_dir: None,
            listen: None,
            metrics_listen: None,
            instance_name: None,
            public_url: None,
            log_format: None,
            upstream_url: None,
            database_url: None,
        }
    }

    #[test]
    fn a_database_url_is_checked_and_never_shown() {
        let with = |url: &str| ServeArgs {
            data_dir: Some("/tmp/x".into()),
            database_url: Some(url.into()),
            ..args()
        };
        let settings =
            Settings::load(&with("postgres://tollgate:s3cret@db:5432/tollgate")).unwrap();
        assert!(matches!(
            settings.database,
            Database::Postgres { pool_size: 16, .. }
        ));
        assert!(!format!("{settings:?}").contains("s3cret"));
        for (bad, why) in [
            ("mysql://u@db/x", "must start with postgres://"),
            ("postgres://db:5432", "names no"),
            ("postgres://u@db:notaport/x", "not valid"),
        ] {
            let err = Settings::load(&with(bad)).unwrap_err().to_string();
            assert!(err.starts_with("invalid setting `database_url`"), "{err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "data_dir = \"/tmp/x\"\ndatabase_url = \"postgres://u@db/x\"\ndatabase_pool_size = 0\n",
        )
        .unwrap();
        let err = Settings::load(&ServeArgs {
            config: Some(file),
            ..args()
        })
        .unwrap_err();
        assert!(err.to_string().contains("database_pool_size"), "{err}");
        assert!(matches!(
            Settings::load(&ServeArgs {
                data_dir: Some("/tmp/x".into()),
                ..args()
            })
            .unwrap()
            .database,
            Database::Sqlite
        ));
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\ninstance_name = \"file\"\nlisten = \"127.0.0.1:9\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.instance_name = Some("flag".into());
        let s = Settings::load(&a).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s.instance_name, "flag");
        assert_eq!(s.listen.port(), 9);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "data_dir = \"/x\"\nlisten_addr = \"oops\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let err = Settings::load(&a).unwrap_err().to_string();
        assert!(err.contains("listen_addr"), "{err}");

        let mut a = args();
        a.data_dir = Some("/x".into());
        a.public_url = Some("ftp://example".into());
        assert!(
            Settings::load(&a)
                .unwrap_err()
                .to_string()
                .contains("public_url")
        );

        assert!(
            Settings::load(&args())
                .unwrap_err()
                .to_string()
                .contains("data_dir")
        );
    }

    #[test]
    fn the_public_url_is_kept_in_its_encoded_form() {
        // Problem bodies write it into JSON unescaped: no quote or backslash may remain.
        let mut a = args();
        a.data_dir = Some("/x".into());
        a.public_url = Some("http://Gateway.example/a\"b\\c/".into());
        let url = Settings::load(&a).unwrap().public_url.unwrap();
        assert_eq!(url, "http://gateway.example/a%22b/c");
    }
}
