use tollgate_api::{CreateTeam, Page, Team, UpdateTeam};

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn list_teams(
    console: ConsoleState<'_>,
    instance_id: String,
    cursor: Option<String>,
) -> CommandResult<Page<Team>> {
    Ok(console.list_teams(&instance_id, cursor).await?)
}

#[tauri::command]
pub async fn create_team(
    console: ConsoleState<'_>,
    instance_id: String,
    input: CreateTeam,
    idempotency_key: String,
) -> CommandResult<Team> {
    Ok(console
        .create_team(&instance_id, input, &idempotency_key)
        .await?)
}

/// `version` is the team's version as read; a stale one fails with `precondition_failed`.
#[tauri::command]
pub async fn update_team(
    console: ConsoleState<'_>,
    instance_id: String,
    team_id: String,
    patch: UpdateTeam,
    version: i64,
) -> CommandResult<Team> {
    Ok(console
        .update_team(&instance_id, &team_id, patch, version)
        .await?)
}

#[tauri::command]
pub async fn delete_team(
    console: ConsoleState<'_>,
    instance_id: String,
    team_id: String,
    version: i64,
) -> CommandResult<()> {
    Ok(console.delete_team(&instance_id, &team_id, version).await?)
}
