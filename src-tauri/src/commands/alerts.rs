use chrono::{DateTime, Utc};
use tollgate_console::alerts::{Alert, AlertReport, AlertRules, Scope};

use super::{CommandResult, ConsoleState};

/// Alerts of one instance (or every instance), newest first; resolved ones only when asked.
#[tauri::command]
pub fn list_alerts(
    console: ConsoleState<'_>,
    instance_id: Option<String>,
    include_resolved: bool,
) -> CommandResult<Vec<Alert>> {
    Ok(console.list_alerts(instance_id.as_deref(), include_resolved)?)
}

/// Runs the instance's rules now (they also run in the background every 5 minutes).
#[tauri::command]
pub async fn evaluate_alerts(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<AlertReport> {
    Ok(console
        .evaluate_alerts(&instance_id, Utc::now(), Scope::All)
        .await?)
}

/// Hides an alert until `until` (an hour to 90 days ahead).
#[tauri::command]
pub fn snooze_alert(
    console: ConsoleState<'_>,
    alert_id: i64,
    until: DateTime<Utc>,
) -> CommandResult<Alert> {
    Ok(console.snooze_alert(alert_id, until, Utc::now())?)
}

#[tauri::command]
pub fn resolve_alert(console: ConsoleState<'_>, alert_id: i64) -> CommandResult<Alert> {
    Ok(console.resolve_alert(alert_id, Utc::now())?)
}

#[tauri::command]
pub fn alert_rules(console: ConsoleState<'_>, instance_id: String) -> CommandResult<AlertRules> {
    Ok(console.alert_rules(&instance_id)?)
}

#[tauri::command]
pub fn set_alert_rules(
    console: ConsoleState<'_>,
    instance_id: String,
    rules: AlertRules,
) -> CommandResult<AlertRules> {
    Ok(console.set_alert_rules(&instance_id, rules)?)
}
