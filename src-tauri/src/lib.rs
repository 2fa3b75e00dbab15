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
        .invoke_handler(tauri::generate_handler![
            commands::system::keyring_status,
            commands::instances::list_instances,
            commands::instances::add_instance,
            commands::instances::update_instance,
            commands::instances::remove_instance,
            commands::instances::test_connection,
            commands::instances::probe_instance,
            commands::instances::current_instance,
            commands::instances::set_current_instance,
            commands::fleet::fleet_overview,
            commands::fleet::refresh_fleet,
            commands::teams::list_teams,
            commands::teams::create_team,
            commands::teams::update_team,
            commands::teams::delete_team,
            commands::audit::list_audit,
            commands::consumers::list_consumers,
            commands::consumers::create_consumer,
            commands::consumers::update_consumer,
            commands::consumers::list_consumer_keys,
            commands::consumers::create_consumer_key,
            commands::consumers::rotate_consumer_key,
            commands::consumers::revoke_consumer_key,
            commands::consumers::find_keys,
            commands::billing::list_plans,
            commands::billing::create_plan,
            commands::billing::list_subscriptions,
            commands::billing::create_subscription,
            commands::billing::subscription_action,
            commands::billing::change_subscription_plan,
            commands::billing::list_payment_methods,
            commands::billing::add_payment_method,
            commands::billing::set_default_payment_method,
            commands::billing::remove_payment_method,
            commands::billing::list_charges,
            commands::billing::list_wallets,
            commands::billing::list_ledger,
            commands::billing::create_ledger_entry,
            commands::billing::payment_settings,
            commands::billing::update_payment_settings,
            commands::billing::check_billing,
            commands::billing::update_plan,
            commands::billing::delete_plan,
            commands::providers::list_providers,
            commands::providers::create_provider,
            commands::providers::update_provider,
            commands::providers::delete_provider,
            commands::providers::test_provider,
            commands::providers::list_provider_keys,
            commands::providers::add_provider_key,
            commands::providers::update_provider_key,
            commands::providers::move_provider_key,
            commands::providers::delete_provider_key,
            commands::providers::list_provider_key_events,
            commands::prompt_apis::list_prompt_apis,
            commands::prompt_apis::get_prompt_api,
            commands::prompt_apis::create_prompt_api,
            commands::prompt_apis::list_prompt_api_versions,
            commands::prompt_apis::add_prompt_api_version,
            commands::prompt_apis::change_prompt_api_lifecycle,
            commands::prompt_apis::prompt_api_snippets,
            commands::prompt_apis::preview_prompt,
            commands::prompt_apis::diff_prompt_definitions,
            commands::prompt_apis::run_prompt,
            commands::prompt_apis::cancel_prompt_run,
            commands::alerts::list_alerts,
            commands::alerts::evaluate_alerts,
            commands::alerts::snooze_alert,
            commands::alerts::resolve_alert,
            commands::alerts::alert_rules,
            commands::alerts::set_alert_rules,
            commands::doctor::diagnose,
            commands::doctor::apply_fix,
            commands::doctor::list_doctor_fixes,
            commands::logs::sync_logs,
            commands::logs::cancel_log_sync,
            commands::logs::watch_log_sync,
            commands::logs::log_page,
            commands::logs::log_record,
            commands::logs::log_stats,
            commands::logs::log_caches,
            commands::logs::log_cache_info,
            commands::logs::set_log_retention,
            commands::logs::purge_log_cache,
            commands::logs::vacuum_log_cache,
            commands::logs::check_log_cache,
            commands::logs::rebuild_log_cache,
            commands::logs::log_sync_events,
            commands::logs::export_logs,
            commands::logs::list_saved_log_filters,
            commands::logs::save_log_filter,
            commands::logs::delete_saved_log_filter,
            commands::logs::log_export_dir,
            commands::logs::check_log_export_path,
            commands::logs::fleet_log_stats,
            commands::logs::fleet_log_series,
            commands::logs::fleet_log_breakdown,
            commands::logs::fleet_log_breakdown_series,
        ])
        .run(tauri::generate_context!())
        .expect("error while running the Tollgate console");
}
