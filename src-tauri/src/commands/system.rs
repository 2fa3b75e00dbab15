use tollgate_console::models::KeyringStatus;

use super::ConsoleState;

#[tauri::command]
pub async fn keyring_status(console: ConsoleState<'_>) -> Result<KeyringStatus, ()> {
    Ok(console.keyring_status().await)
}
