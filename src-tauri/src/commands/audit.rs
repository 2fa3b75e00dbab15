use tollgate_api::{AuditEntry, Page};

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn list_audit(
    console: ConsoleState<'_>,
    instance_id: String,
    cursor: Option<String>,
) -> CommandResult<Page<AuditEntry>> {
    Ok(console.list_audit(&instance_id, cursor).await?)
}
