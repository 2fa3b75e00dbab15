use tollgate_api::{
    Consumer, ConsumerKey, CreateConsumer, CreateConsumerKey, IssuedConsumerKey, Page,
    UpdateConsumer,
};

use super::{CommandResult, ConsoleState};

/// `teamId` null lists the consumers of every team.
#[tauri::command]
pub async fn list_consumers(
    console: ConsoleState<'_>,
    instance_id: String,
    team_id: Option<String>,
    cursor: Option<String>,
) -> CommandResult<Page<Consumer>> {
    Ok(console
        .list_consumers(&instance_id, team_id, cursor)
        .await?)
}

#[tauri::command]
pub async fn create_consumer(
    console: ConsoleState<'_>,
    instance_id: String,
    input: CreateConsumer,
    idempotency_key: String,
) -> CommandResult<Consumer> {
    Ok(console
        .create_consumer(&instance_id, input, &idempotency_key)
        .await?)
}

/// `version` is the consumer's version as read; a stale one fails with `precondition_failed`.
#[tauri::command]
pub async fn update_consumer(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
    patch: UpdateConsumer,
    version: i64,
) -> CommandResult<Consumer> {
    Ok(console
        .update_consumer(&instance_id, &consumer_id, patch, version)
        .await?)
}

#[tauri::command]
pub async fn list_consumer_keys(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
) -> CommandResult<Page<ConsumerKey>> {
    Ok(console
        .list_consumer_keys(&instance_id, &consumer_id)
        .await?)
}

/// The answer's `secret` is shown once: the gateway keeps only a hash.
#[tauri::command]
pub async fn create_consumer_key(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
    input: CreateConsumerKey,
    idempotency_key: String,
) -> CommandResult<IssuedConsumerKey> {
    Ok(console
        .create_consumer_key(&instance_id, &consumer_id, input, &idempotency_key)
        .await?)
}

/// Issues a replacement; the old key keeps working for `graceSeconds` (0 to 604800).
#[tauri::command]
pub async fn rotate_consumer_key(
    console: ConsoleState<'_>,
    instance_id: String,
    key_id: String,
    grace_seconds: u32,
) -> CommandResult<IssuedConsumerKey> {
    Ok(console
        .rotate_consumer_key(&instance_id, &key_id, grace_seconds)
        .await?)
}

#[tauri::command]
pub async fn revoke_consumer_key(
    console: ConsoleState<'_>,
    instance_id: String,
    key_id: String,
) -> CommandResult<ConsumerKey> {
    Ok(console.revoke_consumer_key(&instance_id, &key_id).await?)
}

/// Keys whose display prefix starts with `prefix` (`tg_ab12…`).
#[tauri::command]
pub async fn find_keys(
    console: ConsoleState<'_>,
    instance_id: String,
    prefix: String,
) -> CommandResult<Page<ConsumerKey>> {
    Ok(console.find_keys(&instance_id, &prefix).await?)
}
