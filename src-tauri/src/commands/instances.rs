use tollgate_api::NodeInfo;
use tollgate_console::models::{ConnectionReport, Instance, InstanceInput};

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn list_instances(console: ConsoleState<'_>) -> CommandResult<Vec<Instance>> {
    Ok(console.list_instances()?)
}

#[tauri::command]
pub async fn add_instance(
    console: ConsoleState<'_>,
    input: InstanceInput,
) -> CommandResult<Instance> {
    Ok(console.add_instance(input).await?)
}

/// An absent or empty `admin_token` keeps the stored token.
#[tauri::command]
pub async fn update_instance(
    console: ConsoleState<'_>,
    id: String,
    input: InstanceInput,
) -> CommandResult<Instance> {
    Ok(console.update_instance(&id, input).await?)
}

#[tauri::command]
pub async fn remove_instance(console: ConsoleState<'_>, id: String) -> CommandResult<()> {
    Ok(console.remove_instance(&id).await?)
}

#[tauri::command]
pub async fn test_connection(
    console: ConsoleState<'_>,
    id: String,
) -> CommandResult<ConnectionReport> {
    Ok(console.test_connection(&id).await?)
}

/// The nodes serving an instance and their health.
#[tauri::command]
pub async fn instance_nodes(console: ConsoleState<'_>, id: String) -> CommandResult<Vec<NodeInfo>> {
    Ok(console.instance_nodes(&id).await?)
}

/// Tests the add / edit form before saving; `existingId` lends the stored token on edit.
#[tauri::command]
pub async fn probe_instance(
    console: ConsoleState<'_>,
    input: InstanceInput,
    existing_id: Option<String>,
) -> CommandResult<ConnectionReport> {
    Ok(console.probe(input, existing_id.as_deref()).await?)
}

#[tauri::command]
pub async fn current_instance(console: ConsoleState<'_>) -> CommandResult<Option<String>> {
    Ok(console.current_instance()?)
}

#[tauri::command]
pub async fn set_current_instance(console: ConsoleState<'_>, id: String) -> CommandResult<()> {
    Ok(console.set_current_instance(&id)?)
}
