use tollgate_console::doctor::{AppliedFix, Diagnosis, DoctorStart, FixAction, FixOutcome};

use super::{CommandResult, ConsoleState};

/// Why a consumer's calls are refused: live from the instance, or from the cache when it is
/// unreachable.
#[tauri::command]
pub async fn diagnose(
    console: ConsoleState<'_>,
    instance_id: String,
    start: DoctorStart,
) -> CommandResult<Diagnosis> {
    Ok(console.diagnose(&instance_id, start).await?)
}

#[tauri::command]
pub async fn apply_fix(
    console: ConsoleState<'_>,
    instance_id: String,
    start: DoctorStart,
    action: FixAction,
    confirmed: bool,
) -> CommandResult<FixOutcome> {
    Ok(console
        .apply_fix(&instance_id, start, action, confirmed)
        .await?)
}

/// The fixes applied from this console to the instance, newest first.
#[tauri::command]
pub async fn list_doctor_fixes(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<Vec<AppliedFix>> {
    Ok(console.list_doctor_fixes(&instance_id)?)
}
