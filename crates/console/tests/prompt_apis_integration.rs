//! The console's prompt-API studio against a real `tollgated` serving the
//! simulated provider (a test fixture): a definition checked by the shared
//! rules before it leaves the console, previewed, run with its answer
//! streamed piece by piece (and cancelled mid-stream), versioned with a
//! diff, taken through its lifecycle; and the consumer snippets executed
//! as they are (curl, Python, JavaScript) with a real consumer key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::{Gateway, console_with, input};
use tollgate_api::prompt_template::PreviewPiece;
use tollgate_api::{
    CreateConsumer, CreateConsumerKey, CreatePlan, CreatePromptApi, CreateProvider,
    CreateProviderKey, CreateSubscription, CreateTeam, OveragePolicy, PlanPeriod, PromptApiAction,
    PromptApiStatus, PromptDefinition, PromptParameters, PromptRun, PromptVariable, ProviderKind,
    ProviderModel, RateLimits,
};
use tollgate_console::prompt_studio::{DiffOp, KEY_VARIABLE};
use tollgate_console::{Console, ConsoleError, IpcError};

/// Paced: 300 ms between two streamed events, so a run can be cancelled
/// while it streams.
const PACED: &str = "sim-small-pace-300";

fn variable(name: &str, required: bool, default: Option<&str>, max: u32) -> PromptVariable {
    PromptVariable {
        name: name.into(),
        description: String::new(),
        required,
        default: default.map(Into::into),
        max_length: max,
    }
}

fn definition(template: &str) -> PromptDefinition {
    PromptDefinition {
        models: vec!["not-served".into(), "sim-small".into()],
        template: template.into(),
        variables: vec![
            variable("text", true, None, 200),
            variable("tone", false, Some("neutral"), 20),
        ],
        parameters: PromptParameters {
            temperature: Some(0.2),
            max_tokens: Some(64),
            ..Default::default()
        },
        input_description: "Any text".into(),
        output_description: "Its summary".into(),
    }
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The invalid fields of an error, as they cross IPC to the UI.
fn fields(e: ConsoleError) -> Vec<String> {
    let ipc = IpcError::from(e);
    assert_eq!(ipc.code, "validation", "{}", ipc.message);
    ipc.fields.into_iter().map(|f| f.field).collect()
}

/// Runs `definition` with `values`, collecting the streamed pieces.
async fn run(
    console: &Console,
    id: &str,
    run_id: &str,
    definition: PromptDefinition,
    values: BTreeMap<String, String>,
) -> (
    Vec<String>,
    Result<tollgate_api::PromptRunSummary, ConsoleError>,
) {
    let mut pieces = Vec::new();
    let result = console
        .run_prompt(
            id,
            run_id,
            PromptRun {
                definition,
                variables: values,
            },
            |text| pieces.push(text.to_owned()),
        )
        .await;
    (pieces, result)
}

/// A consumer subscribed to a plan that covers `slug`; answers its key.
async fn consumer_key(console: &Console, id: &str, slug: &str) -> String {
    let team = console
        .create_team(
            id,
            CreateTeam {
                name: "Apps".into(),
                description: String::new(),
            },
            "team-1",
        )
        .await
        .unwrap();
    let consumer = console
        .create_consumer(
            id,
            CreateConsumer {
                team_id: team.id,
                name: "Summarizer app".into(),
                contact: String::new(),
                metadata: BTreeMap::new(),
            },
            "consumer-1",
        )
        .await
        .unwrap();
    let plan = console
        .create_plan(
            id,
            CreatePlan {
                name: "Summaries".into(),
                currency: "USD".into(),
                price: "0".into(),
                period: PlanPeriod::Month,
                included_credits: "5".into(),
                overage: OveragePolicy::Block,
                approval_required: false,
                apis: vec![slug.into()],
                models: Vec::new(),
                rate_limits: RateLimits::default(),
            },
            "plan-1",
        )
        .await
        .unwrap();
    console
        .create_subscription(
            id,
            CreateSubscription {
                consumer_id: consumer.id.clone(),
                plan_id: plan.id,
                auto_renew: true,
            },
            "subscription-1",
        )
        .await
        .unwrap();
    console
        .create_consumer_key(
            id,
            &consumer.id,
            CreateConsumerKey {
                name: "snippets".into(),
                allowed_apis: Vec::new(),
                expires_at: None,
            },
            "key-1",
        )
        .await
        .unwrap()
        .secret
        .expect("a new key's secret")
}

/// Executes a snippet as a consumer would, its key in the environment.
fn execute(program: &str, args: &[&str], snippet: &str, key: &str) -> Output {
    Command::new(program)
        .args(args)
        .arg(snippet)
        .env(KEY_VARIABLE, key)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// Python with `requests`: the test environment's (tests/requirements.txt).
fn python() -> String {
    let venv = std::env::var("TOLLGATE_VENV").unwrap_or_else(|_| "/var/tmp/tollgate-venv".into());
    let bin = format!("{venv}/bin/python");
    if std::path::Path::new(&bin).exists() {
        bin
    } else {
        "python3".into()
    }
}

async fn sim_stats(sim: std::net::SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{sim}/sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prompt_api_studio_end_to_end() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start("prompt-apis-gw");
    let (console, _data, id) = console_with(&gw, "Prompts").await;
    // Nothing listens here: an answer from this instance can only come from
    // the console's own checks.
    let dead = console
        .add_instance(input("Dead", "http://127.0.0.1:9", Some(&gw.token)))
        .await
        .unwrap()
        .id;

    let provider = console
        .create_provider(
            &id,
            CreateProvider {
                name: "Sim".into(),
                kind: ProviderKind::OpenaiCompatible,
                base_url: format!("http://{sim}/v1"),
                currency: "USD".into(),
                models: [("sim-small", "1000", "2000"), (PACED, "1000", "2000")]
                    .into_iter()
                    .map(|(name, input, output)| ProviderModel {
                        name: name.into(),
                        input_price: input.into(),
                        output_price: output.into(),
                        fallback: None,
                    })
                    .collect(),
                timeout_secs: 30,
                enabled: true,
            },
            "provider-1",
        )
        .await
        .unwrap();
    console
        .add_provider_key(
            &id,
            &provider.id,
            CreateProviderKey {
                label: "main".into(),
                secret: "sim-key-prompts-0001".into(),
                priority: 0,
                expires_at: None,
            },
        )
        .await
        .unwrap();

    // Bad definitions are refused by the console with the shared rules,
    // every field named, before any request.
    let mut bad = definition("Summarize {{text");
    bad.parameters.temperature = Some(3.0);
    let refused = console
        .create_prompt_api(
            &dead,
            CreatePromptApi {
                slug: "Summarize It".into(),
                name: String::new(),
                description: String::new(),
                definition: bad,
            },
            "papi-bad",
        )
        .await
        .unwrap_err();
    assert_eq!(
        fields(refused),
        [
            "slug",
            "name",
            "definition.template",
            "definition.parameters.temperature"
        ]
    );
    let undeclared = console
        .create_prompt_api(
            &dead,
            CreatePromptApi {
                slug: "summarize".into(),
                name: "Summarize".into(),
                description: String::new(),
                definition: definition("{{text}} in a {{tone}} tone for {{audience}}"),
            },
            "papi-bad-2",
        )
        .await
        .unwrap_err();
    let message = undeclared.to_string();
    assert_eq!(fields(undeclared), ["definition.template"]);
    assert!(message.contains("{{audience}}"), "{message}");

    // Created as a draft with its first version.
    let v1 = definition("Summarize in a {{ tone }} tone: {{text}}");
    let api = console
        .create_prompt_api(
            &id,
            CreatePromptApi {
                slug: " summarize ".into(),
                name: "Summarize".into(),
                description: "Short summaries".into(),
                definition: v1.clone(),
            },
            "papi-1",
        )
        .await
        .unwrap();
    assert_eq!(api.slug, "summarize");
    assert_eq!(api.status, PromptApiStatus::Draft);
    assert_eq!((api.current_version, api.latest_version), (1, 1));
    let listed = console.list_prompt_apis(&id, None).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    // The gateway's own refusals come through: the slug is taken (409).
    let taken = console
        .create_prompt_api(
            &id,
            CreatePromptApi {
                slug: "summarize".into(),
                name: "Again".into(),
                description: String::new(),
                definition: v1.clone(),
            },
            "papi-2",
        )
        .await
        .unwrap_err();
    assert_eq!(taken.code(), "conflict", "{taken}");

    // The preview: the given value, the default, the missing.
    let preview = console.preview_prompt(&v1, &values(&[("text", "hello")]));
    assert!(preview.problems.is_empty(), "{:?}", preview.problems);
    assert_eq!(
        preview.pieces[1],
        PreviewPiece::Default {
            variable: "tone".into(),
            text: "neutral".into()
        }
    );
    assert_eq!(
        preview.pieces[3],
        PreviewPiece::Value {
            variable: "text".into(),
            text: "hello".into()
        }
    );
    let missing = console.preview_prompt(&v1, &BTreeMap::new());
    assert_eq!(
        missing.pieces[3],
        PreviewPiece::Missing {
            variable: "text".into()
        }
    );

    // A run: the first model is served by nobody, so its fallback answers,
    // streamed piece by piece; the summary says what it used and costs.
    let (pieces, summary) = run(
        &console,
        &id,
        "run-1",
        v1.clone(),
        values(&[("text", "the quick brown fox")]),
    )
    .await;
    let summary = summary.unwrap();
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");
    assert_eq!(
        pieces.concat(),
        "echo: Summarize in a neutral tone: the quick brown fox"
    );
    assert_eq!(
        (summary.provider_name.as_str(), summary.model.as_str()),
        ("Sim", "sim-small")
    );
    assert_eq!(summary.provider_id, provider.id);
    assert!(summary.prompt_tokens > 0 && summary.completion_tokens > 0);
    assert!(!summary.cut_short);
    // 1000 and 2000 USD a million tokens: 1000 and 2000 micro-USD a token.
    let cost = tollgate_api::money::parse_amount(&summary.cost).unwrap();
    assert_eq!(
        cost,
        i64::try_from(summary.prompt_tokens * 1000 + summary.completion_tokens * 2000).unwrap()
    );
    assert_eq!(summary.currency, "USD");

    // Bad test values are named, by variable, before anything is sent.
    let (pieces, refused) = run(
        &console,
        &dead,
        "run-2",
        v1.clone(),
        values(&[("tone", &"x".repeat(21)), ("who", "me")]),
    )
    .await;
    assert!(pieces.is_empty());
    assert_eq!(
        fields(refused.unwrap_err()),
        ["variables.who", "variables.text", "variables.tone"]
    );
    let (_, refused) = run(
        &console,
        &dead,
        "run-3",
        definition("{{text}} {{ghost}}"),
        values(&[("text", "x")]),
    )
    .await;
    assert_eq!(
        fields(refused.unwrap_err()),
        ["definition.variables.1.name", "definition.template"]
    );
    // A model no provider serves: the gateway's 404, passed through.
    let mut unserved = v1.clone();
    unserved.models = vec!["nope".into()];
    let (_, refused) = run(&console, &id, "run-4", unserved, values(&[("text", "x")])).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), "not_found", "{refused}");
    assert!(refused.to_string().contains("nope"), "{refused}");

    // Cancelled mid-stream: the run stops, and so does the provider's stream.
    let mut paced = v1.clone();
    paced.models = vec![PACED.into()];
    let long_text = "one two three four five six seven eight nine ten";
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let running = {
        let (console, id, seen) = (console.clone(), id.clone(), seen.clone());
        tokio::spawn(async move {
            console
                .run_prompt(
                    &id,
                    "run-paced",
                    PromptRun {
                        definition: paced,
                        variables: values(&[("text", long_text)]),
                    },
                    move |text| seen.lock().unwrap().push(text.to_owned()),
                )
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while seen.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the paced run streams");
    assert!(console.cancel_prompt_run("run-paced"));
    let cancelled = running.await.unwrap().unwrap_err();
    assert_eq!(cancelled.code(), "cancelled", "{cancelled}");
    assert!(seen.lock().unwrap().len() < 10, "stopped before its end");
    assert!(
        !console.cancel_prompt_run("run-paced"),
        "forgotten once ended"
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while sim_stats(sim).await["streams_aborted"] != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the provider's stream was dropped too");

    // A new version, guarded by the API's version; a stale one is refused.
    let mut v2 = v1.clone();
    v2.template = "Summarize in a {{ tone }} tone, in one sentence: {{text}}".into();
    v2.parameters.max_tokens = Some(32);
    let api = console
        .add_prompt_api_version(&id, &api.id, v2.clone(), api.version)
        .await
        .unwrap();
    assert_eq!((api.current_version, api.latest_version), (2, 2));
    let stale = console
        .add_prompt_api_version(&id, &api.id, v2.clone(), api.version - 1)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed", "{stale}");
    let mut invalid = v2.clone();
    invalid.variables[0].name = "9lives".into();
    assert_eq!(
        fields(
            console
                .add_prompt_api_version(&dead, &api.id, invalid, api.version)
                .await
                .unwrap_err()
        ),
        ["definition.variables.0.name", "definition.template"]
    );

    // The history, newest first, and the diff of its two versions.
    let versions = console
        .list_prompt_api_versions(&id, &api.id)
        .await
        .unwrap();
    let numbers: Vec<u32> = versions.iter().map(|v| v.number).collect();
    assert_eq!(numbers, [2, 1]);
    assert!(versions.iter().all(|v| !v.created_by.is_empty()));
    let diff = console.diff_prompt_definitions(&versions[1].definition, &versions[0].definition);
    let changed: Vec<(DiffOp, &str)> = diff
        .iter()
        .filter(|l| l.op != DiffOp::Equal)
        .map(|l| (l.op, l.text.as_str()))
        .collect();
    assert_eq!(
        changed,
        [
            (DiffOp::Delete, "max_tokens: 64"),
            (DiffOp::Insert, "max_tokens: 32"),
            (DiffOp::Delete, "  Summarize in a {{ tone }} tone: {{text}}"),
            (
                DiffOp::Insert,
                "  Summarize in a {{ tone }} tone, in one sentence: {{text}}"
            ),
        ]
    );

    // Published, then called by a consumer exactly as the snippets say.
    let api = console
        .change_prompt_api_lifecycle(&id, &api.id, PromptApiAction::Publish, api.version)
        .await
        .unwrap();
    assert_eq!(api.status, PromptApiStatus::Published);
    let snippets = console.prompt_api_snippets(&id, &api.id).await.unwrap();
    assert_eq!(snippets.url, format!("{}/apis/summarize", gw.base));
    let key = consumer_key(&console, &id, "summarize").await;
    for snippet in [&snippets.curl, &snippets.python, &snippets.javascript] {
        assert!(!snippet.contains(&key) && !snippet.contains(&gw.token));
    }
    let expected = "echo: Summarize in a neutral tone, in one sentence: …";
    let curl = execute("sh", &["-c"], &snippets.curl, &key);
    assert!(
        curl.status.success(),
        "{}{}",
        String::from_utf8_lossy(&curl.stdout),
        String::from_utf8_lossy(&curl.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], expected);
    let python = execute(&python(), &["-c"], &snippets.python, &key);
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&python.stdout).trim(), expected);
    let node = execute(
        "node",
        &["--input-type=module", "-e"],
        &snippets.javascript,
        &key,
    );
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&node.stdout).trim(), expected);
    // Without a key in the environment the gateway refuses, and curl says so.
    let keyless = execute("sh", &["-c"], &snippets.curl, "");
    assert!(!keyless.status.success() && !keyless.stdout.is_empty());

    // Rolled back to version 1: served again.
    let api = console
        .change_prompt_api_lifecycle(
            &id,
            &api.id,
            PromptApiAction::Rollback { version: 1 },
            api.version,
        )
        .await
        .unwrap();
    assert_eq!((api.current_version, api.latest_version), (1, 2));
    assert_eq!(api.current.template, v1.template);
    let curl = execute("sh", &["-c"], &snippets.curl, &key);
    let answer: serde_json::Value = serde_json::from_slice(&curl.stdout).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: Summarize in a neutral tone: …"
    );

    // Deprecated with a sunset in the future (a past one is refused first).
    let past = console
        .change_prompt_api_lifecycle(
            &dead,
            &api.id,
            PromptApiAction::Deprecate {
                sunset_at: Utc::now() - chrono::Duration::minutes(1),
            },
            api.version,
        )
        .await
        .unwrap_err();
    assert_eq!(fields(past), ["sunset_at"]);
    let sunset = Utc::now() + chrono::Duration::days(30);
    let api = console
        .change_prompt_api_lifecycle(
            &id,
            &api.id,
            PromptApiAction::Deprecate { sunset_at: sunset },
            api.version,
        )
        .await
        .unwrap();
    assert_eq!(api.status, PromptApiStatus::Deprecated);
    assert_eq!(
        api.sunset_at.map(|t| t.timestamp()),
        Some(sunset.timestamp())
    );
    assert!(
        execute("sh", &["-c"], &snippets.curl, &key)
            .status
            .success(),
        "a deprecated API is still served"
    );

    // Retired: no longer served, and it takes no new version.
    let api = console
        .change_prompt_api_lifecycle(&id, &api.id, PromptApiAction::Retire, api.version)
        .await
        .unwrap();
    assert_eq!(api.status, PromptApiStatus::Retired);
    let gone = execute("sh", &["-c"], &snippets.curl, &key);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stdout).contains("api-retired"),
        "{}",
        String::from_utf8_lossy(&gone.stdout)
    );
    let closed = console
        .add_prompt_api_version(&id, &api.id, v2, api.version)
        .await
        .unwrap_err();
    assert_eq!(closed.code(), "conflict", "{closed}");
    assert_eq!(
        console.get_prompt_api(&id, &api.id).await.unwrap().status,
        PromptApiStatus::Retired
    );
}
