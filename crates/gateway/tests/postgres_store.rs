//! The PostgreSQL store on a real server (a throwaway cluster the test
//! harness starts): start-up by several nodes at once on an empty database,
//! a newer schema refused, each bad URL named by its part, and the system
//! and team stores as the SQLite store answers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_api::Scope;
use tollgate_gateway::changes::ChangeFeed;
use tollgate_gateway::store::postgres::{OpenError, PgStore};
use tollgate_gateway::store::{
    AuditContext, IdempotencyBegin, NewTeam, StoreError, StoredResponse, SystemStore, TeamPatch,
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
