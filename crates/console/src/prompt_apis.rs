//! The prompt APIs of an instance: list, create, new versions, lifecycle,
//! and test runs streamed from the gateway. Each method is one admin
//! action. Definitions are checked here first with the gateway's own rules
//! (`tollgate_api::prompt_template`, shared), so the studio learns of every
//! bad field without a round trip; the gateway checks again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::Notify;
use tollgate_api::prompt_template;
use tollgate_api::{
    CreatePromptApi, FieldError, Page, PromptApi, PromptApiAction, PromptApiVersion,
    PromptDefinition, PromptRun, PromptRunSummary,
};
use ts_rs::TS;

use crate::Console;
use crate::billing::{PAGE, with_cursor};
use crate::client::{GatewayClient, GatewayError, encode};
use crate::error::ConsoleError;
use crate::prompt_studio::{self, DiffLine, PromptPreview, PromptSnippets, in_definition};
use crate::validate;

const NAME_MAX: usize = 100;
const SLUG_MAX: usize = 64;
const DESCRIPTION_MAX: usize = 2_000;
/// API names the gateway uses itself.
const RESERVED_SLUGS: [&str; 3] = ["chat", "models", "openapi.json"];
/// The longest a test run may take in all.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest a run's stream may stay silent.
const RUN_IDLE: Duration = Duration::from_secs(120);
const RUN_PATH: &str = "/admin/v1/prompt-apis/run";

fn api_path(api_id: &str) -> String {
    format!("/admin/v1/prompt-apis/{}", encode(api_id))
}

/// What a run sends the studio while it streams.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum PromptRunEvent {
    /// Text of the answer, as it arrives.
    Delta { text: String },
}

/// The runs in progress, by the id the studio gave each, so that one can
/// be cancelled.
#[derive(Default)]
pub(crate) struct Runs(Mutex<HashMap<String, Arc<Notify>>>);

impl Runs {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A registered run; dropping it forgets the run.
struct RunGuard<'a> {
    runs: &'a Runs,
    id: String,
    cancel: Arc<Notify>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.runs.map().remove(&self.id);
    }
}

impl Console {
    pub async fn list_prompt_apis(
        &self,
        id: &str,
        cursor: Option<String>,
    ) -> Result<Page<PromptApi>, ConsoleError> {
        let path = format!("/admin/v1/prompt-apis?limit={PAGE}");
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    pub async fn get_prompt_api(&self, id: &str, api_id: &str) -> Result<PromptApi, ConsoleError> {
        Ok(self.client(id).await?.get_json(&api_path(api_id)).await?)
    }

    /// Creates a draft prompt API with its first version.
    pub async fn create_prompt_api(
        &self,
        id: &str,
        input: CreatePromptApi,
        idempotency_key: &str,
    ) -> Result<PromptApi, ConsoleError> {
        let input = checked_create(input)?;
        Ok(self
            .client(id)
            .await?
            .post_json("/admin/v1/prompt-apis", &input, Some(idempotency_key))
            .await?)
    }

    /// Every version of an API, newest first.
    pub async fn list_prompt_api_versions(
        &self,
        id: &str,
        api_id: &str,
    ) -> Result<Vec<PromptApiVersion>, ConsoleError> {
        let path = format!("{}/versions", api_path(api_id));
        Ok(self.client(id).await?.get_json(&path).await?)
    }

    /// Saves a new version, which becomes the one served, guarded by the
    /// API's version the admin saw.
    pub async fn add_prompt_api_version(
        &self,
        id: &str,
        api_id: &str,
        definition: PromptDefinition,
        version: i64,
    ) -> Result<PromptApi, ConsoleError> {
        let definition = checked_definition(definition)?;
        let path = format!("{}/versions", api_path(api_id));
        Ok(self
            .client(id)
            .await?
            .post_versioned(&path, &definition, version)
            .await?)
    }

    /// Publishes, deprecates (with a sunset in the future), retires, or
    /// rolls back to an earlier version; guarded by the version seen.
    pub async fn change_prompt_api_lifecycle(
        &self,
        id: &str,
        api_id: &str,
        action: PromptApiAction,
        version: i64,
    ) -> Result<PromptApi, ConsoleError> {
        match &action {
            PromptApiAction::Deprecate { sunset_at } if *sunset_at <= Utc::now() => {
                return Err(ConsoleError::validation(
                    "sunset_at",
                    "must be in the future",
                ));
            }
            PromptApiAction::Rollback { version: 0 } => {
                return Err(ConsoleError::validation(
                    "version",
                    "must be a version of this API",
                ));
            }
            _ => {}
        }
        let path = format!("{}/lifecycle", api_path(api_id));
        Ok(self
            .client(id)
            .await?
            .post_versioned(&path, &action, version)
            .await?)
    }

    /// How consumers call the API: curl, Python and JavaScript, against
    /// the gateway's consumer-facing URL, with the current definition's
    /// variables. The key is read from an environment variable: no
    /// snippet holds one.
    pub async fn prompt_api_snippets(
        &self,
        id: &str,
        api_id: &str,
    ) -> Result<PromptSnippets, ConsoleError> {
        let client = self.client(id).await?;
        let info = client.info().await?.info;
        let api: PromptApi = client.get_json(&api_path(api_id)).await?;
        Ok(prompt_studio::snippets(
            &info.public_url,
            &api.slug,
            &api.current,
        ))
    }

    /// Runs a definition, saved or not, once with test values on the
    /// instance: each piece of the answer goes to `on_text` as it arrives;
    /// the summary (serving model, tokens, cost) is the result. The studio
    /// names the run `run_id`, so that [`Console::cancel_prompt_run`] can
    /// stop it.
    pub async fn run_prompt(
        &self,
        id: &str,
        run_id: &str,
        run: PromptRun,
        on_text: impl FnMut(&str) + Send,
    ) -> Result<PromptRunSummary, ConsoleError> {
        let run = checked_run(run)?;
        let guard = self.register_run(run_id)?;
        let client = tokio::select! {
            _ = guard.cancel.notified() => return Err(ConsoleError::Cancelled),
            c = self.client(id) => c?,
        };
        let response = tokio::select! {
            _ = guard.cancel.notified() => return Err(ConsoleError::Cancelled),
            r = client.post_event_stream(RUN_PATH, &run, RUN_TIMEOUT) => r?,
        };
        tokio::select! {
            _ = guard.cancel.notified() => Err(ConsoleError::Cancelled),
            r = read_run(&client, response, on_text) => Ok(r?),
        }
    }

    /// The prompt a definition renders to with test values, piece by
    /// piece, and what saving it would be refused for (no gateway needed).
    pub fn preview_prompt(
        &self,
        definition: &PromptDefinition,
        values: &BTreeMap<String, String>,
    ) -> PromptPreview {
        prompt_studio::preview(definition, values)
    }

    /// The line diff between two definitions (two versions, or a version
    /// and the editor's text).
    pub fn diff_prompt_definitions(
        &self,
        old: &PromptDefinition,
        new: &PromptDefinition,
    ) -> Vec<DiffLine> {
        prompt_studio::diff(old, new)
    }

    /// Stops a run in progress (its connection is dropped; the gateway
    /// charges nobody for a run). False when no such run is going on.
    pub fn cancel_prompt_run(&self, run_id: &str) -> bool {
        match self.runs.map().get(run_id) {
            Some(cancel) => {
                cancel.notify_one();
                true
            }
            None => false,
        }
    }

    fn register_run(&self, run_id: &str) -> Result<RunGuard<'_>, ConsoleError> {
        let cancel = Arc::new(Notify::new());
        let mut runs = self.runs.map();
        if run_id.is_empty() || runs.contains_key(run_id) {
            return Err(ConsoleError::validation(
                "run_id",
                "must name a run not already going on",
            ));
        }
        runs.insert(run_id.to_owned(), cancel.clone());
        Ok(RunGuard {
            runs: &self.runs,
            id: run_id.to_owned(),
            cancel,
        })
    }
}

/// Reads a run's event stream to its summary.
async fn read_run(
    client: &GatewayClient,
    response: reqwest::Response,
    mut on_text: impl FnMut(&str),
) -> Result<PromptRunSummary, GatewayError> {
    let limit = client.max_response_bytes();
    let mut events = response.bytes_stream().eventsource();
    let mut stream = RunStream::default();
    loop {
        let event = match tokio::time::timeout(RUN_IDLE, events.next()).await {
            Err(_) => return Err(GatewayError::Timeout(RUN_IDLE.as_secs())),
            Ok(None) => return stream.end(),
            Ok(Some(Err(EventStreamError::Transport(e)))) => return Err(client.classify(e)),
            Ok(Some(Err(e))) => return Err(GatewayError::MalformedResponse(e.to_string())),
            Ok(Some(Ok(event))) => event,
        };
        if event.data.len() > limit {
            return Err(GatewayError::ResponseTooLarge(limit));
        }
        if let Some(text) = stream.event(&event.event, &event.data)? {
            on_text(&text);
        }
        if let Some(summary) = stream.summary.take() {
            return Ok(summary);
        }
    }
}

/// What a run's stream has said so far: OpenAI chat-completion chunks,
/// `[DONE]`, then one `summary` event.
#[derive(Debug, Default)]
struct RunStream {
    summary: Option<PromptRunSummary>,
}

impl RunStream {
    /// Takes one event; answers the text it adds to the answer, if any.
    fn event(&mut self, kind: &str, data: &str) -> Result<Option<String>, GatewayError> {
        let malformed = |e: serde_json::Error| GatewayError::MalformedResponse(e.to_string());
        match kind {
            "summary" => {
                self.summary = Some(serde_json::from_str(data).map_err(malformed)?);
                Ok(None)
            }
            "" | "message" if data.trim() == "[DONE]" => Ok(None),
            "" | "message" => {
                let chunk: serde_json::Value = serde_json::from_str(data).map_err(malformed)?;
                Ok(chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(|c| c.as_str())
                    .filter(|text| !text.is_empty())
                    .map(str::to_owned))
            }
            // Events this console does not know (a newer gateway's) are skipped.
            _ => Ok(None),
        }
    }

    fn end(self) -> Result<PromptRunSummary, GatewayError> {
        self.summary.ok_or_else(|| {
            GatewayError::MalformedResponse("the run's stream ended before its summary".into())
        })
    }
}

/// A definition as the console sends it: model names and variable names
/// trimmed, empty defaults dropped, descriptions trimmed.
fn normalised(mut d: PromptDefinition) -> PromptDefinition {
    for model in &mut d.models {
        *model = model.trim().to_owned();
    }
    for v in &mut d.variables {
        v.name = v.name.trim().to_owned();
        v.description = v.description.trim().to_owned();
        v.default = v.default.take().filter(|d| !d.is_empty());
    }
    d.input_description = d.input_description.trim().to_owned();
    d.output_description = d.output_description.trim().to_owned();
    d
}

/// Every problem of a definition, under `definition.<field>`.
fn definition_errors(d: &PromptDefinition) -> Vec<FieldError> {
    let mut errors = Vec::new();
    prompt_template::check(d, &mut errors);
    in_definition(errors)
}

fn checked_definition(d: PromptDefinition) -> Result<PromptDefinition, ConsoleError> {
    let d = normalised(d);
    let errors = definition_errors(&d);
    validate::outcome(d, errors)
}

/// Lowercase letters, digits and inner `-`; not a name the gateway uses.
fn slug(value: &mut String, errors: &mut Vec<FieldError>) {
    *value = value.trim().to_owned();
    let shaped = !value.is_empty()
        && value.len() <= SLUG_MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !shaped {
        errors.push(FieldError::new(
            "slug",
            format!("must be 1 to {SLUG_MAX} lowercase letters, digits and inner `-`"),
        ));
    } else if RESERVED_SLUGS.contains(&value.as_str()) {
        errors.push(FieldError::new("slug", "is a name the gateway uses itself"));
    }
}

fn checked_create(mut input: CreatePromptApi) -> Result<CreatePromptApi, ConsoleError> {
    let mut errors = Vec::new();
    slug(&mut input.slug, &mut errors);
    validate::name("name", &mut input.name, NAME_MAX, &mut errors);
    validate::text(
        "description",
        &mut input.description,
        DESCRIPTION_MAX,
        &mut errors,
    );
    input.definition = normalised(input.definition);
    errors.extend(definition_errors(&input.definition));
    validate::outcome(input, errors)
}

/// A run's definition must be one the gateway would save, and its test
/// values fill it: each invalid one is named `variables.<name>`.
fn checked_run(run: PromptRun) -> Result<PromptRun, ConsoleError> {
    let definition = normalised(run.definition);
    let mut errors = definition_errors(&definition);
    let given: serde_json::Map<String, serde_json::Value> = run
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    if errors.is_empty()
        && let Err(mut bad) = prompt_template::render(&definition, &given)
    {
        errors.append(&mut bad);
    }
    validate::outcome(
        PromptRun {
            definition,
            variables: run.variables,
        },
        errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_api::{PromptParameters, PromptVariable};

    fn fields_of(e: ConsoleError) -> Vec<String> {
        match e {
            ConsoleError::Validation(list) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("not a validation error: {other}"),
        }
    }

    fn variable(name: &str, required: bool, default: Option<&str>, max: u32) -> PromptVariable {
        PromptVariable {
            name: name.into(),
            description: String::new(),
            required,
            default: default.map(Into::into),
            max_length: max,
        }
    }

    fn definition() -> PromptDefinition {
        PromptDefinition {
            models: vec![" sim-small ".into()],
            template: "Summarize in a {{tone}} tone: {{text}}".into(),
            variables: vec![
                variable(" text ", true, None, 50),
                variable("tone", false, Some(""), 10),
            ],
            parameters: PromptParameters::default(),
            input_description: " text ".into(),
            output_description: String::new(),
        }
    }

    #[test]
    fn a_new_api_is_checked_field_by_field_and_normalised() {
        let mut bad_definition = definition();
        bad_definition.template = "Hi {{name}} {{text}}".into();
        bad_definition.parameters.top_p = Some(2.0);
        let bad = CreatePromptApi {
            slug: "Summarize!".into(),
            name: " ".into(),
            description: "x".repeat(DESCRIPTION_MAX + 1),
            definition: bad_definition,
        };
        assert_eq!(
            fields_of(checked_create(bad).unwrap_err()),
            [
                "slug",
                "name",
                "description",
                "definition.variables.1.name",
                "definition.template",
                "definition.parameters.top_p",
            ]
        );
        for reserved in ["chat", "-x", "x-", &"a".repeat(SLUG_MAX + 1)] {
            let mut errors = Vec::new();
            slug(&mut reserved.to_owned(), &mut errors);
            assert_eq!(errors.len(), 1, "{reserved}");
        }
        let good = checked_create(CreatePromptApi {
            slug: " summarize ".into(),
            name: " Summarize ".into(),
            description: String::new(),
            definition: definition(),
        })
        .unwrap();
        assert_eq!(
            (good.slug.as_str(), good.name.as_str()),
            ("summarize", "Summarize")
        );
        assert_eq!(good.definition.models, ["sim-small"]);
        assert_eq!(good.definition.variables[0].name, "text");
        assert_eq!(
            good.definition.variables[1].default, None,
            "an empty default is none"
        );
        assert_eq!(good.definition.input_description, "text");
    }

    #[test]
    fn a_run_names_each_bad_test_value() {
        let run = |values: &[(&str, &str)]| {
            checked_run(PromptRun {
                definition: definition(),
                variables: values
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            })
        };
        assert_eq!(
            fields_of(run(&[("tone", "far too long a tone"), ("who", "x")]).unwrap_err()),
            ["variables.who", "variables.text", "variables.tone"]
        );
        assert!(run(&[("text", "hello")]).is_ok());
        // A definition that would not be saved is not run either.
        let mut broken = definition();
        broken.template = "{{text".into();
        let e = checked_run(PromptRun {
            definition: broken,
            variables: BTreeMap::new(),
        })
        .unwrap_err();
        assert_eq!(fields_of(e), ["definition.template"]);
    }

    #[test]
    fn a_run_stream_gives_text_then_its_summary() {
        let mut stream = RunStream::default();
        let chunk = |text: &str| {
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]}).to_string()
        };
        let mut text = String::new();
        for (kind, data) in [
            (
                "message",
                serde_json::json!({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
                    .to_string(),
            ),
            ("message", chunk("echo:")),
            ("", chunk(" hi")),
            (
                "message",
                serde_json::json!({"choices": [], "usage": {"prompt_tokens": 3}}).to_string(),
            ),
            ("message", "[DONE]".to_owned()),
            ("ping", "whatever".to_owned()),
        ] {
            if let Some(t) = stream.event(kind, &data).unwrap() {
                text.push_str(&t);
            }
        }
        assert_eq!(text, "echo: hi");
        assert!(stream.summary.is_none());
        let summary = serde_json::json!({
            "provider_id": "prov_1", "provider_name": "Sim", "model": "sim-small",
            "prompt_tokens": 3, "completion_tokens": 2, "usage_reported": true,
            "cost": "0.000011", "currency": "USD", "cut_short": false,
        });
        stream.event("summary", &summary.to_string()).unwrap();
        let summary = stream.end().unwrap();
        assert_eq!(
            (summary.model.as_str(), summary.completion_tokens),
            ("sim-small", 2)
        );

        assert!(matches!(
            RunStream::default().event("message", "{not json"),
            Err(GatewayError::MalformedResponse(_))
        ));
        assert!(matches!(
            RunStream::default().end(),
            Err(GatewayError::MalformedResponse(_))
        ));
    }
}
