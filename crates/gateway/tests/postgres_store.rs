//! The PostgreSQL store on a real server (a throwaway cluster the test
//! harness starts): start-up by several nodes at once on an empty database,
//! a newer schema refused, each bad URL named by its part, and the system
//! and team stores as the SQLite store answers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tollgate_api::{ConsumerStatus, PromptApiStatus, PromptDefinition, Scope};
use tollgate_gateway::changes::{Change, ChangeFeed, ChangeListener};
use tollgate_gateway::store::postgres::{OpenError, PgStore};
use tollgate_gateway::store::{
    AuditContext, ConsumerPatch, ConsumerStore, IdempotencyBegin, NewConsumer, NewConsumerKey,
    NewTeam, PromptApiChange, PromptApiStore, StoreError, StoredResponse, SystemStore, TeamPatch,
    TeamStore,
};
use tollgate_gateway::tokens;
use tollgate_test_postgres::{database, psql};

async fn open(url: &str) -> PgStore {
    PgStore::open(url, 4, ChangeFeed::new())
        .await
        .expect("opening the store")
}

fn ctx() -> AuditContext {
    AuditContext {
        token_id: "tok_test".into(),
        request_id: "req_test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once_on_an_empty_database_migrate_it_once_and_mint_one_token() {
    let url = database();
    let opened = futures_util::future::join_all((0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { open(&url).await })
    }))
    .await;
    let stores: Vec<PgStore> = opened.into_iter().map(Result::unwrap).collect();
    let minted =
        futures_util::future::join_all(stores.iter().map(|s| {
            s.bootstrap_admin_token(tokens::mint("bootstrap", Scope::ALL.to_vec()).record)
        }))
        .await;
    let minted: Vec<bool> = minted.into_iter().map(Result::unwrap).collect();
    assert_eq!(minted.iter().filter(|m| **m).count(), 1, "{minted:?}");
    assert_eq!(stores[3].list_admin_tokens().await.unwrap().len(), 1);
    let ids = futures_util::future::join_all(stores.iter().map(|s| s.instance_id())).await;
    let first = ids[0].as_ref().unwrap();
    assert!(
        ids.iter().all(|id| id.as_ref().unwrap() == first),
        "{ids:?}"
    );
    assert_eq!(
        psql(&url, "SELECT count(*) FROM refinery_schema_history"),
        psql(&url, "SELECT max(version) FROM refinery_schema_history"),
    );
    // Once more on the migrated database: nothing to do, nothing minted.
    let again = open(&url).await;
    assert!(
        !again
            .bootstrap_admin_token(tokens::mint("bootstrap", Scope::ALL.to_vec()).record)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_database_newer_than_the_binary_is_refused() {
    let url = database();
    drop(open(&url).await);
    psql(
        &url,
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (999, 'from_the_future', now()::text, '0')",
    );
    let err = PgStore::open(&url, 4, ChangeFeed::new())
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(err, OpenError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

#[tokio::test]
async fn each_bad_database_url_names_the_part_that_failed() {
    let url = database();
    let (base, _) = url.rsplit_once('/').unwrap();
    let port = base.rsplit_once(':').unwrap().1.to_owned();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases = [
        ("mysql://u@127.0.0.1/x".to_owned(), "not valid"),
        (
            "postgres://tollgate@127.0.0.1:notaport/x".to_owned(),
            "not valid",
        ),
        ("postgres://127.0.0.1:5432".to_owned(), "names no"),
        (
            format!("postgres://tollgate:s3cret-pw@127.0.0.1:{closed}/x"),
            &format!("cannot reach PostgreSQL at 127.0.0.1:{closed}"),
        ),
        (
            format!("postgres://nobody:s3cret-pw@127.0.0.1:{port}/postgres"),
            "refused the login of user `nobody`",
        ),
        (
            format!("postgres://tollgate:s3cret-pw@127.0.0.1:{port}/no_such_db"),
            "the database `no_such_db` does not exist",
        ),
    ];
    for (url, expected) in cases {
        let err = PgStore::open(&url, 4, ChangeFeed::new())
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} should fail"));
        let message = err.to_string();
        assert!(message.contains(expected), "{url}: {message}");
        assert!(
            !message.contains("s3cret-pw"),
            "the password leaked: {message}"
        );
    }
}

#[tokio::test]
async fn teams_audit_and_idempotency_as_the_sqlite_store_answers_them() {
    let url = database();
    let store = open(&url).await;
    let team = store
        .create_team(
            NewTeam {
                name: "Acme".into(),
                description: "d".into(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(team.version, 1);
    let dup = store
        .create_team(
            NewTeam {
                name: "ACME".into(),
                description: String::new(),
            },
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::Conflict(ref m) if m.contains("`ACME` already exists")),
        "{dup}"
    );
    let stale = store
        .update_team(
            &team.id,
            TeamPatch {
                name: Some("B".into()),
                ..Default::default()
            },
            Some(7),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale, StoreError::VersionMismatch { current: 1 }),
        "{stale}"
    );
    let renamed = store
        .update_team(
            &team.id,
            TeamPatch {
                name: Some("Beta".into()),
                ..Default::default()
            },
            Some(1),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("Beta", 2));
    for i in 0..5 {
        store
            .create_team(
                NewTeam {
                    name: format!("t{i}"),
                    description: String::new(),
                },
                &ctx(),
            )
            .await
            .unwrap();
    }
    let (first, next) = store.list_teams(0, 4).await.unwrap();
    assert_eq!(first.len(), 4);
    let (rest, end) = store.list_teams(next.unwrap(), 4).await.unwrap();
    assert_eq!((rest.len(), end), (2, None));
    store.delete_team(&team.id, Some(2), &ctx()).await.unwrap();
    assert!(matches!(
        store.team(&team.id).await,
        Err(StoreError::NotFound)
    ));

    let (entries, _) = store
        .list_audit(std::slice::from_ref(&team.id), None, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["team.delete", "team.update", "team.create"]);

    // Two nodes with one Idempotency-Key at once: one runs the request.
    let other = open(&url).await;
    let (a, b) = tokio::join!(
        store.idempotency_begin("tok", "key-1", b"fp"),
        other.idempotency_begin("tok", "key-1", b"fp")
    );
    let started = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|o| matches!(o, IdempotencyBegin::Started))
        .count();
    assert_eq!(started, 1);
    assert!(matches!(
        other
            .idempotency_begin("tok", "key-1", b"other")
            .await
            .unwrap(),
        IdempotencyBegin::Mismatch
    ));
    store
        .idempotency_complete(
            "tok",
            "key-1",
            StoredResponse {
                status: 201,
                headers: vec![("etag".into(), "\"1\"".into())],
                body: b"{}".to_vec(),
            },
        )
        .await
        .unwrap();
    let IdempotencyBegin::Replay(replayed) = other
        .idempotency_begin("tok", "key-1", b"fp")
        .await
        .unwrap()
    else {
        panic!("the stored answer is replayed");
    };
    assert_eq!(
        (replayed.status, replayed.body.as_slice()),
        (201, b"{}".as_slice())
    );
}

/// Records every change the store publishes.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<Change>>);

impl ChangeListener for Heard {
    fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

fn new_key(consumer_id: &str, lookup: &str) -> NewConsumerKey {
    NewConsumerKey {
        consumer_id: consumer_id.into(),
        name: "k".into(),
        lookup: lookup.into(),
        secret_hash: vec![7; 32],
        display_prefix: format!("tg_{lookup}"),
        allowed_apis: vec!["chat".into()],
        expires_at: None,
    }
}

#[tokio::test]
async fn consumers_and_keys_publish_their_changes_after_commit() {
    let feed = ChangeFeed::new();
    let heard = Arc::new(Heard::default());
    feed.subscribe(heard.clone());
    let store = PgStore::open(&database(), 4, feed).await.unwrap();
    let team = store
        .create_team(
            NewTeam {
                name: "T".into(),
                description: String::new(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let new = |name: &str| NewConsumer {
        team_id: team.id.clone(),
        name: name.into(),
        contact: "c@example.com".into(),
        metadata: [("tier".to_owned(), "gold".to_owned())].into(),
    };
    let consumer = store.create_consumer(new("Ann"), &ctx()).await.unwrap();
    assert_eq!(consumer.metadata["tier"], "gold");
    assert!(matches!(
        store.create_consumer(new("ann"), &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
    let orphan = NewConsumer {
        team_id: "team_missing".into(),
        ..new("Bob")
    };
    assert!(matches!(
        store.create_consumer(orphan, &ctx()).await,
        Err(StoreError::Conflict(ref m)) if m == "no such team"
    ));
    let suspended = store
        .update_consumer(
            &consumer.id,
            ConsumerPatch {
                status: Some(ConsumerStatus::Suspended),
                ..Default::default()
            },
            Some(1),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(suspended.status, ConsumerStatus::Suspended);

    let key = store
        .create_consumer_key(new_key(&consumer.id, "aaaa"), &ctx())
        .await
        .unwrap();
    let successor = store
        .rotate_consumer_key(
            &key.id,
            new_key(&consumer.id, "bbbb"),
            chrono::Utc::now() + chrono::Duration::hours(1),
            &ctx(),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_consumer_key(
                &key.id,
                new_key(&consumer.id, "cccc"),
                chrono::Utc::now(),
                &ctx()
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let credential = store.key_credential("aaaa").await.unwrap().unwrap();
    assert_eq!(
        credential.key.replaced_by.as_deref(),
        Some(successor.id.as_str())
    );
    assert_eq!(credential.consumer_status, ConsumerStatus::Suspended);
    assert_eq!(credential.team_id, team.id);
    assert!(store.key_credential("zzzz").await.unwrap().is_none());
    let revoked = store
        .revoke_consumer_key(&successor.id, &ctx())
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    let (by_prefix, _) = store
        .list_consumer_keys(None, Some("tg_bb".into()), 0, 10)
        .await
        .unwrap();
    assert_eq!(by_prefix.len(), 1);
    // `_` is a LIKE wildcard: a prefix must not match by it.
    let (none, _) = store
        .list_consumer_keys(None, Some("tgxbb".into()), 0, 10)
        .await
        .unwrap();
    assert!(none.is_empty());

    let key_change = |k: &str| Change::Key {
        key_id: k.into(),
        consumer_id: consumer.id.clone(),
    };
    assert_eq!(
        *heard.0.lock().unwrap(),
        [
            Change::Consumer {
                consumer_id: consumer.id.clone()
            },
            key_change(&key.id),
            key_change(&key.id),
            key_change(&successor.id),
            key_change(&successor.id),
        ]
    );
}

#[tokio::test]
async fn prompt_apis_keep_immutable_versions() {
    let url = database();
    let store = open(&url).await;
    let definition = |template: &str| -> PromptDefinition {
        serde_json::from_value(serde_json::json!({
            "models": ["sim-small"], "template": template,
            "variables": [{"name": "text", "required": true, "max_length": 2000}]
        }))
        .unwrap()
    };
    let api = store
        .create_prompt_api(
            "summarize",
            "Summarize",
            "d",
            definition("Sum up {{text}}"),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(
        (api.current_version, api.latest_version, api.version),
        (1, 1, 1)
    );
    assert!(matches!(
        store
            .create_prompt_api("summarize", "Again", "", definition("x {{text}}"), &ctx())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let v2 = store
        .add_prompt_api_version(&api.id, definition("Shorter: {{text}}"), Some(1), &ctx())
        .await
        .unwrap();
    assert_eq!((v2.current_version, v2.latest_version), (2, 2));
    assert_eq!(v2.current.template, "Shorter: {{text}}");
    let sunset = chrono::Utc::now() + chrono::Duration::days(30);
    let deprecated = store
        .change_prompt_api(
            &api.id,
            PromptApiChange {
                status: PromptApiStatus::Deprecated,
                current_version: 1,
                deprecated_at: Some(chrono::Utc::now()),
                sunset_at: Some(sunset),
                action: "prompt_api.deprecate",
            },
            Some(2),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(deprecated.status, PromptApiStatus::Deprecated);
    assert_eq!(
        (deprecated.current_version, deprecated.latest_version),
        (1, 2)
    );
    assert_eq!(deprecated.current.template, "Sum up {{text}}");
    let by_slug = store.prompt_api_by_slug("summarize").await.unwrap();
    assert_eq!(by_slug.id, api.id);
    let versions: Vec<u32> = store
        .prompt_api_versions(&api.id)
        .await
        .unwrap()
        .iter()
        .map(|v| v.number)
        .collect();
    assert_eq!(versions, [2, 1]);
    // The database itself refuses to change a version.
    let out = std::process::Command::new(tollgate_test_postgres::bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            &url,
            "-c",
            "UPDATE prompt_api_versions SET definition = '{}'",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("immutable"));
}

/// Waits (polling, bounded) until `heard` holds `want`.
async fn heard_within(heard: &Heard, want: &Change, bound: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + bound;
    while std::time::Instant::now() < deadline {
        if heard.0.lock().unwrap().contains(want) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_reaches_the_others_and_a_lost_listener_drops_every_cache() {
    // A server of its own: the test restarts it.
    let mut server = tollgate_test_postgres::PgServer::start();
    let url = server.url("postgres");
    let (feed_a, feed_b) = (ChangeFeed::new(), ChangeFeed::new());
    let (heard_a, heard_b) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    feed_a.subscribe(heard_a.clone());
    feed_b.subscribe(heard_b.clone());
    let a = PgStore::open(&url, 4, feed_a).await.unwrap();
    let b = PgStore::open(&url, 4, feed_b).await.unwrap();
    let team = a
        .create_team(
            NewTeam {
                name: "T".into(),
                description: String::new(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let consumer = a
        .create_consumer(
            NewConsumer {
                team_id: team.id,
                name: "C".into(),
                contact: String::new(),
                metadata: Default::default(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let key = a
        .create_consumer_key(new_key(&consumer.id, "nnnn"), &ctx())
        .await
        .unwrap();
    let change = Change::Key {
        key_id: key.id.clone(),
        consumer_id: consumer.id.clone(),
    };
    assert!(heard_within(&heard_b, &change, std::time::Duration::from_secs(5)).await);
    // The writer heard its own change once, from its own commit.
    assert_eq!(
        heard_a
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| **c == change)
            .count(),
        1
    );
    // Nothing is sent for a write that rolls back.
    assert!(
        a.create_consumer_key(new_key("con_missing", "mmmm"), &ctx())
            .await
            .is_err()
    );

    // The database restarts: B listens again and drops every cache.
    server.restart();
    tokio::time::timeout(std::time::Duration::from_secs(20), b.listening(2))
        .await
        .expect("B listens again within 20 s of the restart");
    assert!(heard_b.0.lock().unwrap().contains(&Change::Everything));
    let before = heard_b
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|c| **c == change)
        .count();
    let revoked = loop {
        // The pool's connections died with the server: the first use may fail.
        match a.revoke_consumer_key(&key.id, &ctx()).await {
            Ok(k) => break k,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    assert!(revoked.revoked_at.is_some());
    assert!(
        heard_within_count(&heard_b, &change, before + 1).await,
        "the revocation after the restart reached B"
    );
    assert!(
        !heard_b
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, Change::Key { key_id, .. } if key_id != &key.id))
    );
}

/// Waits (polling, 5 s at most) until `heard` holds `want` `times` times.
async fn heard_within_count(heard: &Heard, want: &Change, times: usize) -> bool {
    for _ in 0..500 {
        if heard
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == want)
            .count()
            >= times
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// Polls (5 s at most) until exactly one of `stores` leads the jobs; which.
async fn leader_among(stores: &[&PgStore]) -> Option<usize> {
    for _ in 0..500 {
        let leading: Vec<usize> = (0..stores.len())
            .filter(|i| stores[*i].leads_jobs())
            .collect();
        if leading.len() == 1 {
            return Some(leading[0]);
        }
        assert!(leading.len() < 2, "two nodes lead the jobs at once");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_leads_the_jobs_and_another_takes_over_when_it_dies() {
    let url = database();
    let mut stores = vec![open(&url).await, open(&url).await, open(&url).await];
    let first = {
        let refs: Vec<&PgStore> = stores.iter().collect();
        leader_among(&refs).await.expect("a leader within 5 s")
    };
    // Still exactly one a moment later.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let refs: Vec<&PgStore> = stores.iter().collect();
    assert_eq!(leader_among(&refs).await, Some(first));
    // The leader dies (its session ends): another takes over.
    drop(stores.remove(first));
    let started = std::time::Instant::now();
    let refs: Vec<&PgStore> = stores.iter().collect();
    assert!(
        leader_among(&refs).await.is_some(),
        "no new leader within 5 s"
    );
    println!("a new leader after {:?}", started.elapsed());
}
