use std::collections::BTreeMap;

use tauri::ipc::Channel;
use tollgate_api::{
    CreatePromptApi, Page, PromptApi, PromptApiAction, PromptApiVersion, PromptDefinition,
    PromptRun, PromptRunSummary,
};
use tollgate_console::prompt_apis::PromptRunEvent;
use tollgate_console::prompt_studio::{DiffLine, PromptPreview, PromptSnippets};

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn list_prompt_apis(
    console: ConsoleState<'_>,
    instance_id: String,
    cursor: Option<String>,
) -> CommandResult<Page<PromptApi>> {
    Ok(console.list_prompt_apis(&instance_id, cursor).await?)
}

#[tauri::command]
pub async fn get_prompt_api(
    console: ConsoleState<'_>,
    instance_id: String,
    api_id: String,
) -> CommandResult<PromptApi> {
    Ok(console.get_prompt_api(&instance_id, &api_id).await?)
}

/// A draft with its first version; a taken slug fails with `conflict`.
#[tauri::command]
pub async fn create_prompt_api(
    console: ConsoleState<'_>,
    instance_id: String,
    input: CreatePromptApi,
    idempotency_key: String,
) -> CommandResult<PromptApi> {
    Ok(console
        .create_prompt_api(&instance_id, input, &idempotency_key)
        .await?)
}

/// Every version, newest first.
#[tauri::command]
pub async fn list_prompt_api_versions(
    console: ConsoleState<'_>,
    instance_id: String,
    api_id: String,
) -> CommandResult<Vec<PromptApiVersion>> {
    Ok(console
        .list_prompt_api_versions(&instance_id, &api_id)
        .await?)
}

/// A new version, served from now on; guarded by the API's `version` as read.
#[tauri::command]
pub async fn add_prompt_api_version(
    console: ConsoleState<'_>,
    instance_id: String,
    api_id: String,
    definition: PromptDefinition,
    version: i64,
) -> CommandResult<PromptApi> {
    Ok(console
        .add_prompt_api_version(&instance_id, &api_id, definition, version)
        .await?)
}

/// Publish, deprecate (sunset in the future), retire, or roll back; guarded by the API's
/// `version`.
#[tauri::command]
pub async fn change_prompt_api_lifecycle(
    console: ConsoleState<'_>,
    instance_id: String,
    api_id: String,
    action: PromptApiAction,
    version: i64,
) -> CommandResult<PromptApi> {
    Ok(console
        .change_prompt_api_lifecycle(&instance_id, &api_id, action, version)
        .await?)
}

/// curl, Python and JavaScript calls of the API against the gateway's public URL; no key
/// inside.
#[tauri::command]
pub async fn prompt_api_snippets(
    console: ConsoleState<'_>,
    instance_id: String,
    api_id: String,
) -> CommandResult<PromptSnippets> {
    Ok(console.prompt_api_snippets(&instance_id, &api_id).await?)
}

/// Needs no gateway: the preview is computed by the console.
#[tauri::command]
pub fn preview_prompt(
    console: ConsoleState<'_>,
    definition: PromptDefinition,
    values: BTreeMap<String, String>,
) -> PromptPreview {
    console.preview_prompt(&definition, &values)
}

/// The line diff from one definition to another.
#[tauri::command]
pub fn diff_prompt_definitions(
    console: ConsoleState<'_>,
    old: PromptDefinition,
    new: PromptDefinition,
) -> Vec<DiffLine> {
    console.diff_prompt_definitions(&old, &new)
}

/// Streams the answer's text to `on_event` as it arrives; answers the summary.
#[tauri::command]
pub async fn run_prompt(
    console: ConsoleState<'_>,
    instance_id: String,
    run_id: String,
    run: PromptRun,
    on_event: Channel<PromptRunEvent>,
) -> CommandResult<PromptRunSummary> {
    Ok(console
        .run_prompt(&instance_id, &run_id, run, |text| {
            // The studio may have gone; the run still ends normally.
            let _ = on_event.send(PromptRunEvent::Delta {
                text: text.to_owned(),
            });
        })
        .await?)
}

/// False when the run had already ended.
#[tauri::command]
pub fn cancel_prompt_run(console: ConsoleState<'_>, run_id: String) -> bool {
    console.cancel_prompt_run(&run_id)
}
