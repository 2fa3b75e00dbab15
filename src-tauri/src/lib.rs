//! The Tollgate console's desktop shell: it opens the window, builds the
//! [`tollgate_console::Console`] and registers the commands. Logic lives in
//! `tollgate-console`; see `commands/` for the one-line delegations.

mod commands;

use std::sync::Arc;

use tauri::Manager;
use tollgate_console::client::ClientOptions;
use tollgate_console::vault::Vault;
use tollgate_console::{Console, cli};

/// Shows each newly raised alert as a desktop notification (the inbox keeps
/// them all; a notification that cannot be shown is only logged).
async fn notify_alerts(
    app: tauri::AppHandle,
    mut alerts: tokio::sync::broadcast::Receiver<tollgate_console::alerts::Alert>,
) {
    use tauri_plugin_notification::NotificationExt;
    loop {
        match alerts.recv().await {
            Ok(alert) => {
                let shown = app
                    .notification()
                    .builder()
                    .title(format!("Tollgate: {}", alert.title))
                    .body(&alert.detail)
                    .show();
                if let Err(e) = shown {
                    tracing::info!(error = %e, "an alert could not be shown as a notification");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(missed, "alerts raised faster than notified");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

pub fn run() {
    let args: Vec<String> = std::env::args().collect();
    if cli::wants_cli(&args) {
        std::process::exit(cli::run(args, cli::default_data_dir()));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .setup(|app| {
            let data_dir = cli::default_data_dir();
            let console = Console::open(&data_dir, Vault::default(), ClientOptions::default())?;
            tauri::async_runtime::spawn(Console::monitor_fleet(Arc::downgrade(&console)));
            tauri::async_runtime::spawn(Console::run_log_sync(Arc::downgrade(&console)));
            tauri::async_runtime::spawn(Console::run_alerts(Arc::downgrade(&console)));
            tauri::async_runtime::spawn(notify_alerts(
                app.handle().clone(),
                console.subscribe_alerts(),
            ));
            app.manage(console);
            Ok(())
        })
        // Every #[tauri::command] of commands/, listed by the build script.
        .invoke_handler(include!(concat!(env!("OUT_DIR"), "/handler.rs")))
        .run(tauri::generate_context!())
        .expect("error while running the Tollgate console");
}
