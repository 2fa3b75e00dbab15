//! What every store must do, written once and run against each backend
//! (SQLite in a temporary directory, PostgreSQL on a throwaway server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_api::{ProviderKeyStatus, ProviderKind, ProviderModel};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    AuditContext, KeyActor, NewProviderKey, ProviderKeyChange, ProviderSpec, ProviderStore,
    StoreError,
};
use crate::changes::ChangeFeed;

fn ctx() -> AuditContext {
    AuditContext {
        token_id: "tok_test".into(),
        request_id: "req_test".into(),
    }
}

fn spec(name: &str, models: &[&str]) -> ProviderSpec {
    ProviderSpec {
        name: name.into(),
        kind: ProviderKind::OpenaiCompatible,
        base_url: "http://127.0.0.1:9/v1".into(),
        currency: "USD".into(),
        models: models
            .iter()
            .map(|m| ProviderModel {
                name: (*m).into(),
                input_price: "1.00".into(),
                output_price: "2.00".into(),
                fallback: None,
            })
            .collect(),
        timeout_secs: 30,
        enabled: true,
    }
}

fn new_key(label: &str, priority: u32) -> NewProviderKey {
    NewProviderKey {
        label: label.into(),
        secret_sealed: vec![1, 2, 3],
        last4: "wxyz".into(),
        priority,
        expires_at: None,
    }
}

/// Providers, their key pools and the status history, as every store
/// must keep them.
pub(crate) async fn providers_keys_and_their_status_history(store: &impl ProviderStore) {
    let first = store
        .create_provider(spec("First", &["m-1", "m-2"]), &ctx())
        .await
        .unwrap();
    assert_eq!(first.models.len(), 2);
    assert_eq!((first.keys_total, first.keys_active), (0, 0));

    // Names and model names belong to one provider each.
    for (name, models, clash) in [
        ("first", vec!["m-3"], "provider named"),
        (
            "Second",
            vec!["m-2"],
            "`m-2` is already served by the provider `First`",
        ),
    ] {
        match store.create_provider(spec(name, &models), &ctx()).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains(clash), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    // A provider may keep its own models when it is updated.
    let first = store
        .update_provider(
            &first.id,
            spec("First", &["m-1", "m-2", "m-3"]),
            Some(1),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(first.version, 2);
    assert!(matches!(
        store
            .update_provider(&first.id, spec("First", &[]), Some(1), &ctx())
            .await,
        Err(StoreError::VersionMismatch { current: 2 })
    ));

    let low = store
        .create_provider_key(&first.id, new_key("backup", 200), &ctx())
        .await
        .unwrap();
    let high = store
        .create_provider_key(&first.id, new_key("main", 10), &ctx())
        .await
        .unwrap();
    let order: Vec<_> = store
        .provider_keys(&first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.label)
        .collect();
    assert_eq!(order, ["main", "backup"]);

    // The gateway's finding, then an admin's re-enabling, are both recorded.
    assert!(
        store
            .set_provider_key_status(
                &high.id,
                ProviderKeyStatus::Exhausted,
                "402 from the provider",
                KeyActor::Gateway
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_provider_key_status(
                &high.id,
                ProviderKeyStatus::Exhausted,
                "again",
                KeyActor::Gateway
            )
            .await
            .unwrap(),
        "an unchanged status is not recorded twice"
    );
    let provider = store.provider(&first.id).await.unwrap();
    assert_eq!((provider.keys_total, provider.keys_active), (2, 1));
    let current = store.provider_key(&high.id).await.unwrap();
    let change = ProviderKeyChange {
        status: Some((ProviderKeyStatus::Active, "topped up".into())),
        priority: Some(5),
        ..Default::default()
    };
    let updated = store
        .update_provider_key(&high.id, change, Some(current.version), &ctx())
        .await
        .unwrap();
    assert_eq!(
        (updated.status, updated.priority),
        (ProviderKeyStatus::Active, 5)
    );
    let events = store
        .provider_key_events(&first.id, Some(&high.id), 10)
        .await
        .unwrap();
    let steps: Vec<_> = events
        .iter()
        .map(|e| (e.from, e.to, e.actor.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (
                Some(ProviderKeyStatus::Exhausted),
                ProviderKeyStatus::Active,
                "admin:tok_test",
                "topped up"
            ),
            (
                Some(ProviderKeyStatus::Active),
                ProviderKeyStatus::Exhausted,
                "gateway",
                "402 from the provider"
            ),
            (None, ProviderKeyStatus::Active, "admin:tok_test", "added"),
        ]
    );

    // The data plane sees enabled providers with their sealed keys.
    let table = store.routing_table().await.unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].1.len(), 2);
    assert_eq!(table[0].1[0].secret_sealed, vec![1, 2, 3]);

    // Deleting the provider deletes its keys, not their history.
    store
        .delete_provider(&first.id, None, &ctx())
        .await
        .unwrap();
    assert!(matches!(
        store.provider_key(&low.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .provider_key_events(&first.id, None, 10)
            .await
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn providers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    providers_keys_and_their_status_history(&store).await;
}

#[tokio::test]
async fn providers_on_postgres() {
    let url = tollgate_test_postgres::database();
    let store = PgStore::open(&url, 4, ChangeFeed::new()).await.unwrap();
    providers_keys_and_their_status_history(&store).await;
}
