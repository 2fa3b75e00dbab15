//! The console's provider and key-pool actions against a real `tollgated`:
//! every field checked before a request leaves the console, the gateway's own
//! refusals passed through by field, and key secrets that go in once and come
//! out nowhere (no answer, no file of the console).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, console_with, input};
use tollgate_api::{
    CreateProvider, CreateProviderKey, ProviderKeyStatus, ProviderKind, ProviderModel,
    UpdateProvider, UpdateProviderKey,
};
use tollgate_console::{ConsoleError, IpcError};

fn model(name: &str, input: &str, output: &str, fallback: Option<&str>) -> ProviderModel {
    ProviderModel {
        name: name.into(),
        input_price: input.into(),
        output_price: output.into(),
        fallback: fallback.map(Into::into),
    }
}

fn provider(name: &str, models: Vec<ProviderModel>) -> CreateProvider {
    CreateProvider {
        name: name.into(),
        kind: ProviderKind::OpenaiCompatible,
        base_url: "http://127.0.0.1:9/v1".into(),
        currency: "USD".into(),
        models,
        timeout_secs: 30,
        enabled: true,
    }
}

fn new_key(label: &str, secret: &str, priority: u32) -> CreateProviderKey {
    CreateProviderKey {
        label: label.into(),
        secret: secret.into(),
        priority,
        expires_at: None,
    }
}

fn status(to: ProviderKeyStatus, reason: Option<&str>) -> UpdateProviderKey {
    UpdateProviderKey {
        status: Some(to),
        reason: reason.map(Into::into),
        ..Default::default()
    }
}

/// The invalid fields of an error, as they cross IPC to the UI.
fn fields(e: ConsoleError) -> Vec<String> {
    let ipc = IpcError::from(e);
    assert_eq!(ipc.code, "validation", "{}", ipc.message);
    ipc.fields.into_iter().map(|f| f.field).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_and_key_pools_end_to_end() {
    let gw = Gateway::start("providers-gw");
    let (console, data, id) = console_with(&gw, "Providers").await;
    // Nothing listens here: an answer from this instance can only come from
    // the console's own checks.
    let dead = console
        .add_instance(input("Dead", "http://127.0.0.1:9", Some(&gw.token)))
        .await
        .unwrap()
        .id;

    // Bad input is refused by the console, field by field, before any request.
    let bad = CreateProvider {
        name: String::new(),
        base_url: "api.openai.test/v1".into(),
        currency: "dollars".into(),
        models: vec![
            model("gpt 4", "-1", "0.5", None),
            model("mini", "0.15", "abc", Some("mini")),
            model("mini", "0.15", "0.60", None),
        ],
        timeout_secs: 3601,
        ..provider("x", vec![])
    };
    assert_eq!(
        fields(
            console
                .create_provider(&dead, bad.clone(), "bad-1")
                .await
                .unwrap_err()
        ),
        [
            "name",
            "base_url",
            "currency",
            "models.0.name",
            "models.0.input_price",
            "models.1.output_price",
            "models.1.fallback",
            "models.2.name",
            "timeout_secs",
        ]
    );
    assert!(
        console
            .list_providers(&id, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A provider with two priced models, the second falling back to the first.
    let openai = console
        .create_provider(
            &id,
            CreateProvider {
                currency: "usd".into(),
                ..provider(
                    " OpenAI ",
                    vec![
                        model("gpt-4o", "2.50", "10", None),
                        model("gpt-4o-mini", "0.15", "0.60", Some("gpt-4o")),
                    ],
                )
            },
            "prov-1",
        )
        .await
        .unwrap();
    assert_eq!(
        (openai.name.as_str(), openai.currency.as_str()),
        ("OpenAI", "USD")
    );
    assert_eq!(openai.models[1].fallback.as_deref(), Some("gpt-4o"));
    assert_eq!((openai.keys_total, openai.keys_active), (0, 0));

    // The gateway's own refusals come through with their fields: a model
    // another provider serves (409), a well-formed but unknown currency (422).
    let taken = console
        .create_provider(
            &id,
            provider("Other", vec![model("gpt-4o", "1", "1", None)]),
            "prov-2",
        )
        .await
        .unwrap_err();
    assert_eq!(taken.code(), "conflict", "{taken}");
    let unknown = console
        .create_provider(
            &id,
            CreateProvider {
                currency: "XYZ".into(),
                ..provider("Other", vec![])
            },
            "prov-3",
        )
        .await
        .unwrap_err();
    assert_eq!(fields(unknown), ["currency"]);

    // Edits name only what changes, guarded by the version seen.
    let edited = console
        .update_provider(
            &id,
            &openai.id,
            UpdateProvider {
                timeout_secs: Some(90),
                ..Default::default()
            },
            openai.version,
        )
        .await
        .unwrap();
    assert_eq!(edited.timeout_secs, 90);
    assert_eq!(edited.models, openai.models);
    let stale = console
        .update_provider(
            &id,
            &openai.id,
            UpdateProvider {
                enabled: Some(false),
                ..Default::default()
            },
            openai.version,
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");
    assert_eq!(
        fields(
            console
                .update_provider(
                    &dead,
                    &openai.id,
                    UpdateProvider {
                        models: Some(vec![model("a", "1", "1", Some("a"))]),
                        ..Default::default()
                    },
                    edited.version,
                )
                .await
                .unwrap_err()
        ),
        ["models.0.fallback"]
    );

    // Keys: bad ones are refused without the secret in any message.
    let short = "sk-shrt";
    let refused = console
        .add_provider_key(&dead, &openai.id, new_key(" ", short, 1_000_001))
        .await
        .unwrap_err();
    assert!(!refused.to_string().contains(short), "{refused}");
    assert_eq!(fields(refused), ["label", "secret", "priority"]);
    let spaced = "sk-has a space-1234";
    let refused = console
        .add_provider_key(&dead, &openai.id, new_key("k", spaced, 1))
        .await
        .unwrap_err();
    assert!(!format!("{refused} {refused:?}").contains(spaced));

    let secrets = [
        "sk-live-primary-0000000000000000aaaa",
        "sk-live-backup-1111111111111111bbbb",
        "sk-live-spare-22222222222222222cccc",
    ];
    let mut answers = Vec::new();
    for (label, secret) in ["primary", "backup", "spare"].into_iter().zip(secrets) {
        let key = console
            .add_provider_key(&id, &openai.id, new_key(label, &format!(" {secret} "), 100))
            .await
            .unwrap();
        assert_eq!(key.last4, &secret[secret.len() - 4..]);
        assert_eq!(key.status, ProviderKeyStatus::Active);
        answers.push(serde_json::to_string(&key).unwrap());
    }
    let labels = |pool: &[tollgate_api::ProviderKey]| -> Vec<String> {
        pool.iter().map(|k| k.label.clone()).collect()
    };
    let pool = console.list_provider_keys(&id, &openai.id).await.unwrap();
    assert_eq!(labels(&pool), ["primary", "backup", "spare"]);
    answers.push(serde_json::to_string(&pool).unwrap());

    // Reorder: equal priorities are made explicit, so the order holds.
    let pool = console
        .move_provider_key(&id, &openai.id, &pool[2].id, true)
        .await
        .unwrap();
    assert_eq!(labels(&pool), ["primary", "spare", "backup"]);
    assert!(pool.windows(2).all(|w| w[0].priority < w[1].priority));
    let pool = console
        .move_provider_key(&id, &openai.id, &pool[0].id, false)
        .await
        .unwrap();
    assert_eq!(labels(&pool), ["spare", "primary", "backup"]);
    let unchanged = console
        .move_provider_key(&id, &openai.id, &pool[0].id, true)
        .await
        .unwrap();
    assert_eq!(unchanged, pool, "the first key cannot move up");

    // Disable with a reason, then enable again; each is in the history.
    let spare = &pool[0];
    let disabled = console
        .update_provider_key(
            &id,
            &spare.id,
            status(ProviderKeyStatus::Disabled, Some(" card expired ")),
            spare.version,
        )
        .await
        .unwrap();
    assert_eq!(disabled.status, ProviderKeyStatus::Disabled);
    assert_eq!(disabled.status_reason.as_deref(), Some("card expired"));
    let listed = console.get_provider(&id, &openai.id).await.unwrap();
    assert_eq!((listed.keys_total, listed.keys_active), (3, 2));
    let enable = status(ProviderKeyStatus::Active, None);
    let stale = console
        .update_provider_key(&id, &spare.id, enable.clone(), spare.version)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");
    let enabled = console
        .update_provider_key(&id, &spare.id, enable, disabled.version)
        .await
        .unwrap();
    assert_eq!(enabled.status, ProviderKeyStatus::Active);

    let events = console
        .list_provider_key_events(&id, &openai.id, Some(spare.id.clone()), None)
        .await
        .unwrap();
    let history: Vec<_> = events
        .iter()
        .map(|e| (e.from, e.to, e.reason.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (
                Some(ProviderKeyStatus::Disabled),
                ProviderKeyStatus::Active,
                "enabled by an admin"
            ),
            (
                Some(ProviderKeyStatus::Active),
                ProviderKeyStatus::Disabled,
                "card expired"
            ),
            (None, ProviderKeyStatus::Active, "added"),
        ],
        "newest first"
    );
    assert!(events.iter().all(|e| e.actor.starts_with("admin:")));
    assert!(events.iter().all(|e| e.key_id == spare.id));
    let all = console
        .list_provider_key_events(&id, &openai.id, None, Some(200))
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        3 + 2,
        "every key's changes: three added, one disabled and enabled"
    );
    assert_eq!(
        console
            .list_provider_key_events(&id, &openai.id, None, Some(0))
            .await
            .unwrap_err()
            .code(),
        "validation"
    );
    answers.push(serde_json::to_string(&all).unwrap());

    // Delete a key, then the provider with its version (a stale one is refused).
    let backup = &pool[2];
    console
        .delete_provider_key(&id, &backup.id, backup.version)
        .await
        .unwrap();
    let pool = console.list_provider_keys(&id, &openai.id).await.unwrap();
    assert_eq!(labels(&pool), ["spare", "primary"]);
    answers.push(serde_json::to_string(&pool).unwrap());
    let current = console.get_provider(&id, &openai.id).await.unwrap();
    let stale = console
        .delete_provider(&id, &openai.id, openai.version)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");
    console
        .delete_provider(&id, &openai.id, current.version)
        .await
        .unwrap();
    assert_eq!(
        console
            .list_provider_keys(&id, &openai.id)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
    assert!(
        console
            .list_providers(&id, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // No secret in any answer, nor in any file of the console's data directory.
    let files: Vec<Vec<u8>> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!files.is_empty());
    for secret in secrets.iter().chain([&short, &spaced]) {
        for answer in &answers {
            assert!(!answer.contains(secret), "{secret} in an answer");
        }
        for bytes in &files {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }
}

/// Testing a provider against the simulated provider (a test fixture): the
/// pool's first usable key asks for the model list; a misspelt model is
/// named, a refused key is reported and keeps its status, and no test counts
/// as a use of the key.
#[tokio::test(flavor = "multi_thread")]
async fn testing_a_provider_against_the_simulator() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start("providers-test-gw");
    let (console, _data, id) = console_with(&gw, "Sim").await;
    let sim_provider = console
        .create_provider(
            &id,
            CreateProvider {
                base_url: format!("http://{sim}/v1"),
                ..provider(
                    "Sim",
                    vec![
                        model("sim-small", "1", "2", None),
                        model("sim-smal", "1", "2", None),
                    ],
                )
            },
            "sim-1",
        )
        .await
        .unwrap();
    let pid = sim_provider.id.as_str();

    // Nothing to test with yet.
    let empty = console.test_provider(&id, pid).await.unwrap();
    assert!(!empty.ok);
    assert_eq!((empty.key_id, empty.status), (None, None));
    assert_eq!(empty.message, "the pool has no usable key");

    // A good key: the provider lists its models; the misspelt one is missing.
    let good = console
        .add_provider_key(&id, pid, new_key("good", "sim-key-good-0001", 100))
        .await
        .unwrap();
    assert_eq!(
        (good.requests, good.failures, good.tokens, good.last_used_at),
        (0, 0, 0, None),
        "a fresh key has no use"
    );
    let test = console.test_provider(&id, pid).await.unwrap();
    assert!(test.ok, "{test:?}");
    assert_eq!(test.key_id.as_deref(), Some(good.id.as_str()));
    assert_eq!(test.status, Some(200));
    for listed in ["sim-small", "sim-large"] {
        assert!(test.models.iter().any(|m| m == listed), "{test:?}");
    }
    assert_eq!(test.missing_models, ["sim-smal"]);

    // A refused key tried first: reported with the provider's status, and
    // left active (a test changes no status).
    let refused = console
        .add_provider_key(&id, pid, new_key("refused", "sim-key-fail-401", 1))
        .await
        .unwrap();
    let test = console.test_provider(&id, pid).await.unwrap();
    assert!(!test.ok, "{test:?}");
    assert_eq!(test.key_id.as_deref(), Some(refused.id.as_str()));
    assert_eq!(test.status, Some(401));
    assert!(test.message.contains("refused the key"), "{}", test.message);
    assert!(test.models.is_empty() && test.missing_models.is_empty());

    let pool = console.list_provider_keys(&id, pid).await.unwrap();
    let seen: Vec<_> = pool
        .iter()
        .map(|k| {
            (
                k.label.as_str(),
                k.status,
                k.requests,
                k.failures,
                k.tokens,
                k.last_used_at,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("refused", ProviderKeyStatus::Active, 0, 0, 0, None),
            ("good", ProviderKeyStatus::Active, 0, 0, 0, None),
        ]
    );
    let events = console
        .list_provider_key_events(&id, pid, None, None)
        .await
        .unwrap();
    assert!(
        events.iter().all(|e| e.reason == "added"),
        "a test records no status change: {events:?}"
    );

    // Ids go into the path encoded, as everywhere: an id is one segment.
    for unknown in ["prv_unknown", "../teams", "x/../../teams?limit=1"] {
        let e = console.test_provider(&id, unknown).await.unwrap_err();
        assert_eq!(e.code(), "not_found", "{unknown}: {e}");
    }
}
