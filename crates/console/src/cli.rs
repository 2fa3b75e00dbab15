//! `tollgate instance …`: register gateways from scripts (the demo, installers)
//! without opening the window. The token is read from a file or an environment
//! variable, never from the command line, and goes to the keyring only.
//! `tollgate logs …`: sync an instance's call log into its cache headless
//! (from a script, or a test that kills it), and show the caches.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::Console;
use crate::client::ClientOptions;
use crate::error::ConsoleError;
use crate::logs::{LogSyncState, SyncOptions};
use crate::models::{Environment, InstanceInput};
use crate::sensitive::Sensitive;
use crate::vault::Vault;

#[derive(Parser)]
#[command(
    name = "tollgate",
    about = "Tollgate console (without arguments: open the window)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the instances the console knows.
    Instance {
        #[command(subcommand)]
        action: InstanceAction,
    },
    /// The call-log cache of each instance.
    Logs {
        #[command(subcommand)]
        action: LogsAction,
    },
    /// The 402 doctor, headless.
    Doctor {
        #[command(subcommand)]
        action: DoctorAction,
    },
}

#[derive(Subcommand)]
enum DoctorAction {
    /// Classify a raw HTTP response (status line, headers, a blank line,
    /// body) and print one JSON object: cause, origin, system, confidence,
    /// evidence, fix.
    Classify {
        /// The file holding the response (`-` reads standard input).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum LogsAction {
    /// Bring an instance's cache up to its gateway's log, printing progress.
    Sync {
        /// The instance's name (or id).
        #[arg(long)]
        instance: String,
        /// Records asked for per export request.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
        page_size: u32,
        /// Records stored per transaction.
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch_size: u64,
    },
    /// Each instance's cache: records, cursor, last sync, size.
    Status,
}

#[derive(Subcommand)]
enum InstanceAction {
    /// Add an instance, or update the one with the same name.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "dev", value_parser = ["prod", "staging", "dev"])]
        environment: String,
        /// File holding the admin token (e.g. the gateway's bootstrap-admin-token).
        #[arg(long, conflicts_with = "token_env")]
        token_file: Option<PathBuf>,
        /// Environment variable holding the admin token.
        #[arg(long)]
        token_env: Option<String>,
        /// PEM file of a custom CA certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Skip TLS verification (not recommended).
        #[arg(long)]
        insecure: bool,
        /// Also test the connection and fail when it does not work.
        #[arg(long)]
        check: bool,
    },
    /// List instances.
    List,
}

/// True when the arguments ask for the CLI rather than the window.
pub fn wants_cli(args: &[String]) -> bool {
    matches!(
        args.get(1).map(String::as_str),
        Some("instance" | "logs" | "doctor" | "help" | "--help" | "-h" | "--version")
    )
}

/// Runs the CLI; returns the process exit code.
pub fn run(args: Vec<String>, data_dir: PathBuf) -> i32 {
    run_with(args, data_dir, Vault::default())
}

/// [`run`] with the vault to use (tests keep their keyring entries apart).
pub fn run_with(args: Vec<String>, data_dir: PathBuf, vault: Vault) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // The classifier needs neither the data directory nor the keyring.
    if let Command::Doctor {
        action: DoctorAction::Classify { file },
    } = &cli.command
    {
        return doctor_classify(file);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: cannot start: {e}");
            return 1;
        }
    };
    match runtime.block_on(execute(cli, data_dir, vault)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tollgate: {e}");
            1
        }
    }
}

/// Prints the classification of the response in `file`: exit 0, or 2 with
/// the reason on standard error when the file is not a response.
fn doctor_classify(file: &std::path::Path) -> i32 {
    use std::io::Read;
    let mut bytes = Vec::new();
    let limit = crate::doctor::response::MAX_RESPONSE_BYTES as u64 + 1;
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    if let Err(e) = read {
        eprintln!("tollgate doctor: cannot read {}: {e}", file.display());
        return 2;
    }
    let Ok(text) = String::from_utf8(bytes) else {
        eprintln!("tollgate doctor: {} is not UTF-8 text", file.display());
        return 2;
    };
    match crate::doctor::classify_text(&text) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            eprintln!("tollgate doctor: {}: {e}", file.display());
            2
        }
    }
}

fn read_token(
    file: Option<PathBuf>,
    env: Option<String>,
) -> Result<Sensitive<String>, ConsoleError> {
    let raw = match (file, env) {
        (Some(path), _) => std::fs::read_to_string(&path).map_err(|e| {
            ConsoleError::validation("token_file", format!("cannot read {}: {e}", path.display()))
        })?,
        (None, Some(var)) => std::env::var(&var)
            .map_err(|_| ConsoleError::validation("token_env", format!("${var} is not set")))?,
        (None, None) => {
            return Err(ConsoleError::validation(
                "token",
                "give --token-file or --token-env",
            ));
        }
    };
    Ok(Sensitive::new(raw.trim().to_owned()))
}

async fn execute(cli: Cli, data_dir: PathBuf, vault: Vault) -> Result<(), ConsoleError> {
    let console = Console::open(&data_dir, vault, ClientOptions::default())?;
    match cli.command {
        Command::Logs {
            action:
                LogsAction::Sync {
                    instance,
                    page_size,
                    batch_size,
                },
        } => {
            let id = find_instance(&console, &instance)?;
            console.set_log_sync_options(SyncOptions {
                page_size,
                batch_size: batch_size as usize,
                ..SyncOptions::default()
            });
            let report = console
                .sync_logs(&id, |p| {
                    if p.state == LogSyncState::Running {
                        println!(
                            "synced {} last_seq {} head_seq {} behind {}",
                            p.synced, p.last_seq, p.head_seq, p.behind
                        );
                    }
                })
                .await?;
            println!(
                "done: {} new record(s), {} duplicate(s), {} conflict(s), {} out of order; \
                 last_seq {} head_seq {}",
                report.inserted,
                report.duplicates,
                report.conflicts,
                report.out_of_order,
                report.last_seq,
                report.head_seq
            );
        }
        Command::Logs {
            action: LogsAction::Status,
        } => {
            for i in console.log_caches().await? {
                println!(
                    "{}\trecords {}\tlast_seq {}\thead_seq {}\tbytes {}\tlast_sync {}\t{}",
                    i.instance_id,
                    i.records,
                    i.last_seq,
                    i.head_seq,
                    i.bytes,
                    i.last_sync_at.map_or("never".into(), |t| t.to_rfc3339()),
                    i.last_error.map(|e| e.message).unwrap_or_default()
                );
            }
        }
        // Answered before the runtime starts (`run_with`).
        Command::Doctor { .. } => {}
        Command::Instance {
            action: InstanceAction::List,
        } => {
            for i in console.list_instances()? {
                println!(
                    "{}\t{}\t{}\t{}",
                    i.id,
                    i.name,
                    i.environment.as_str(),
                    i.base_url
                );
            }
        }
        Command::Instance {
            action:
                InstanceAction::Add {
                    name,
                    url,
                    environment,
                    token_file,
                    token_env,
                    ca_file,
                    insecure,
                    check,
                },
        } => {
            let ca_cert_pem = match ca_file {
                Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                    ConsoleError::validation(
                        "ca_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?),
                None => None,
            };
            let input = InstanceInput {
                name: name.clone(),
                base_url: url,
                environment: Environment::parse(&environment).unwrap_or(Environment::Dev),
                color: None,
                ca_cert_pem,
                tls_verify: !insecure,
                admin_token: Some(read_token(token_file, token_env)?),
            };
            let existing = console
                .list_instances()?
                .into_iter()
                .find(|i| i.name.eq_ignore_ascii_case(name.trim()));
            let instance = match existing {
                Some(found) => console.update_instance(&found.id, input).await?,
                None => console.add_instance(input).await?,
            };
            if check {
                let report = console.test_connection(&instance.id).await?;
                if let Some(error) = report.error {
                    return Err(ConsoleError::Storage(format!(
                        "saved, but the connection test failed: {} ({})",
                        error.message, error.code
                    )));
                }
            }
            println!("{}", instance.id);
        }
    }
    Ok(())
}

/// The id of the instance named `name` (or with that id).
fn find_instance(console: &Console, name: &str) -> Result<String, ConsoleError> {
    console
        .list_instances()?
        .into_iter()
        .find(|i| i.id == name || i.name.eq_ignore_ascii_case(name.trim()))
        .map(|i| i.id)
        .ok_or_else(|| ConsoleError::InstanceNotFound(name.to_owned()))
}

/// Where the console keeps its database unless `TOLLGATE_CONSOLE_DATA_DIR`
/// says otherwise: `$XDG_DATA_HOME/dev.tollgate.console`
/// (`~/.local/share/dev.tollgate.console`).
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TOLLGATE_CONSOLE_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("dev.tollgate.console")
}
