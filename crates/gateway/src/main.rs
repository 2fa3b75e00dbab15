use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tollgate_api::Scope;
use tollgate_gateway::config::{Database, LogFormat, ServeArgs, Settings};
use tollgate_gateway::{http, server, tokens};

// The request path allocates many small, short-lived buffers; mimalloc serves
// them several times faster than glibc's malloc under one busy core.
#[global_allocator]
static ALLOCATOR: tollgate_gateway::allocator::MiMalloc = tollgate_gateway::allocator::MiMalloc;

/// The Tollgate AI gateway.
#[derive(Parser)]
#[command(name = "tollgated", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Manage admin tokens directly in a data directory.
    AdminToken {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print the management API's OpenAPI document (with `--consumer`, the
    /// consumer-facing API's).
    Openapi {
        #[arg(long)]
        consumer: bool,
    },
}

/// Where the tokens are: the data directory's SQLite store, or the
/// PostgreSQL database of a multi-node deployment.
#[derive(clap::Args)]
struct StoreArgs {
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    data_dir: PathBuf,
    #[arg(long, env = "TOLLGATE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn tollgate_gateway::store::Store>> {
        let database = Database::from_url(self.database_url.clone(), None)?;
        server::open_store(&self.data_dir, &database, Default::default()).await
    }
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print its secret once on stdout.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        name: String,
        /// Comma-separated: read, write, billing, keys, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<Scope>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

fn main() -> ExitCode {
    match runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("tollgated: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// On one core, tokio's single-threaded scheduler: the multi-threaded one
/// would run one worker there and still pay for stealing work between
/// workers on every wake-up. On more cores, one worker per core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match Settings::load(&args) {
            Ok(settings) => {
                init_logging(settings.log_format);
                server::serve(settings).await
            }
            Err(e) => Err(e.into()),
        },
        Command::AdminToken { action } => token_command(action).await,
        Command::Openapi { consumer } => serde_json::to_string_pretty(&if consumer {
            tollgate_gateway::dataplane::openapi::document()
        } else {
            http::openapi()
        })
        .map(|doc| println!("{doc}"))
        .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgated: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn token_command(action: TokenAction) -> anyhow::Result<()> {
    match action {
        TokenAction::Create {
            store,
            name,
            scopes,
        } => {
            let name = name.trim();
            anyhow::ensure!(
                (1..=100).contains(&name.chars().count()),
                "--name must be 1 to 100 characters"
            );
            let store = store.open().await?;
            let minted = tokens::mint(name, scopes);
            store.insert_admin_token(minted.record.clone()).await?;
            eprintln!(
                "created admin token {} ({name}); its secret is shown once:",
                minted.record.id
            );
            println!("{}", minted.secret);
        }
        TokenAction::List { store } => {
            let store = store.open().await?;
            for t in store.list_admin_tokens().await? {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_owned(),
                };
                let used = t
                    .last_used_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{}\t{}\t{}\t{state}\tlast used {used}",
                    t.id,
                    t.name,
                    scopes.join(",")
                );
            }
        }
        TokenAction::Revoke { store, id } => {
            let store = store.open().await?;
            store
                .revoke_admin_token(&id, chrono::Utc::now())
                .await
                .map_err(|e| match e {
                    tollgate_gateway::store::StoreError::NotFound => {
                        anyhow::anyhow!("no admin token with id {id}")
                    }
                    other => other.into(),
                })?;
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
