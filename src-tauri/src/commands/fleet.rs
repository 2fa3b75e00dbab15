use tollgate_console::models::FleetEntry;

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn fleet_overview(console: ConsoleState<'_>) -> CommandResult<Vec<FleetEntry>> {
    Ok(console.fleet_overview()?)
}

/// Marks every instance due; the backend re-checks within about a second.
#[tauri::command]
pub async fn refresh_fleet(console: ConsoleState<'_>) -> CommandResult<()> {
    console.refresh_fleet();
    Ok(())
}
