use tollgate_api::{
    CreateProvider, CreateProviderKey, Page, Provider, ProviderKey, ProviderKeyEvent, ProviderTest,
    UpdateProvider, UpdateProviderKey,
};

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn list_providers(
    console: ConsoleState<'_>,
    instance_id: String,
    cursor: Option<String>,
) -> CommandResult<Page<Provider>> {
    Ok(console.list_providers(&instance_id, cursor).await?)
}

/// A model another provider already serves fails with `conflict`.
#[tauri::command]
pub async fn create_provider(
    console: ConsoleState<'_>,
    instance_id: String,
    input: CreateProvider,
    idempotency_key: String,
) -> CommandResult<Provider> {
    Ok(console
        .create_provider(&instance_id, input, &idempotency_key)
        .await?)
}

/// Guarded by the `version` the admin saw; a stale one fails with `precondition_failed`.
#[tauri::command]
pub async fn update_provider(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
    update: UpdateProvider,
    version: i64,
) -> CommandResult<Provider> {
    Ok(console
        .update_provider(&instance_id, &provider_id, update, version)
        .await?)
}

/// Deletes the provider and every key of its pool.
#[tauri::command]
pub async fn delete_provider(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
    version: i64,
) -> CommandResult<()> {
    Ok(console
        .delete_provider(&instance_id, &provider_id, version)
        .await?)
}

/// Asks the provider for its model list with the pool's first usable key.
#[tauri::command]
pub async fn test_provider(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
) -> CommandResult<ProviderTest> {
    Ok(console.test_provider(&instance_id, &provider_id).await?)
}

/// The pool in the order its keys are tried, each with its use (requests, failures, tokens).
#[tauri::command]
pub async fn list_provider_keys(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
) -> CommandResult<Vec<ProviderKey>> {
    Ok(console
        .list_provider_keys(&instance_id, &provider_id)
        .await?)
}

/// The secret passes through to the gateway; only its last 4 come back.
#[tauri::command]
pub async fn add_provider_key(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
    input: CreateProviderKey,
) -> CommandResult<ProviderKey> {
    Ok(console
        .add_provider_key(&instance_id, &provider_id, input)
        .await?)
}

/// An admin may set `active` or `disabled`; a `reason` goes with a status change.
#[tauri::command]
pub async fn update_provider_key(
    console: ConsoleState<'_>,
    instance_id: String,
    key_id: String,
    update: UpdateProviderKey,
    version: i64,
) -> CommandResult<ProviderKey> {
    Ok(console
        .update_provider_key(&instance_id, &key_id, update, version)
        .await?)
}

#[tauri::command]
pub async fn move_provider_key(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
    key_id: String,
    up: bool,
) -> CommandResult<Vec<ProviderKey>> {
    Ok(console
        .move_provider_key(&instance_id, &provider_id, &key_id, up)
        .await?)
}

#[tauri::command]
pub async fn delete_provider_key(
    console: ConsoleState<'_>,
    instance_id: String,
    key_id: String,
    version: i64,
) -> CommandResult<()> {
    Ok(console
        .delete_provider_key(&instance_id, &key_id, version)
        .await?)
}

/// Status changes of the pool's keys, newest first; `keyId` null means every key.
#[tauri::command]
pub async fn list_provider_key_events(
    console: ConsoleState<'_>,
    instance_id: String,
    provider_id: String,
    key_id: Option<String>,
    limit: Option<u32>,
) -> CommandResult<Vec<ProviderKeyEvent>> {
    Ok(console
        .list_provider_key_events(&instance_id, &provider_id, key_id, limit)
        .await?)
}
