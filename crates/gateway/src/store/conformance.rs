//! What every store must do, written once and run against each backend
//! (SQLite in a temporary directory, PostgreSQL on a throwaway server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_api::{
    LedgerKind, OveragePolicy, PlanPeriod, ProviderKeyStatus, ProviderKind, ProviderModel,
};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    AuditContext, BillingStore, ConsumerStore, KeyActor, NewCharge, NewConsumer, NewLedgerEntry,
    NewProviderKey, NewTeam, PlanSpec, ProviderKeyChange, ProviderSpec, ProviderStore, StoreError,
    SubscriptionStore, TeamStore,
};

/// What the billing conformance needs of a store (all of it, once the
/// PostgreSQL store is whole).
pub(crate) trait Store: BillingStore + ConsumerStore + TeamStore {}
impl<T: BillingStore + ConsumerStore + TeamStore> Store for T {}
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

fn plan_spec(name: &str) -> PlanSpec {
    PlanSpec {
        name: name.into(),
        currency: "USD".into(),
        price_micros: 9_000_000,
        period: PlanPeriod::Month,
        included_micros: 5_000_000,
        overage: OveragePolicy::ChargeWallet,
        approval_required: false,
        apis: vec!["chat".into()],
        models: vec![],
        rate_limits: Default::default(),
    }
}

fn entry(consumer_id: &str, kind: LedgerKind, micros: i64, key: &str) -> NewLedgerEntry {
    NewLedgerEntry {
        consumer_id: consumer_id.into(),
        currency: "USD".into(),
        kind,
        amount_micros: micros,
        reason: "test".into(),
        idempotency_key: key.into(),
        actor: "admin:tok_test".into(),
    }
}

/// Plans, and a wallet's ledger: replays, refusals, and the balance equal to
/// the entries' sum with `writers` writing at once (two connections, or two
/// nodes on one database).
pub(crate) async fn plans_and_the_ledger<S: Store>(writers: [&S; 2]) {
    let store = writers[0];
    let plan = store.create_plan(plan_spec("Pro"), &ctx()).await.unwrap();
    assert_eq!(
        (plan.price.as_str(), plan.included_credits.as_str()),
        ("9.00", "5.00")
    );
    assert!(matches!(
        store.create_plan(plan_spec("pro"), &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
    let edited = store
        .update_plan(
            &plan.id,
            PlanSpec {
                price_micros: 12_500_000,
                ..plan_spec("Pro")
            },
            Some(1),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!((edited.price.as_str(), edited.version), ("12.50", 2));

    let team = store
        .create_team(
            NewTeam {
                name: "Money".into(),
                description: String::new(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let consumer = store
        .create_consumer(
            NewConsumer {
                team_id: team.id,
                name: "Payer".into(),
                contact: String::new(),
                metadata: Default::default(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let c = consumer.id.as_str();
    let (top_up, replayed) = store
        .append_ledger(entry(c, LedgerKind::TopUp, 10_000_000, "k1"), Some(&ctx()))
        .await
        .unwrap();
    assert!(!replayed);
    assert_eq!(top_up.balance_after, "10.00");
    let (again, replayed) = store
        .append_ledger(entry(c, LedgerKind::TopUp, 10_000_000, "k1"), Some(&ctx()))
        .await
        .unwrap();
    assert!(replayed);
    assert_eq!(again.id, top_up.id);
    assert!(matches!(
        store
            .append_ledger(entry(c, LedgerKind::TopUp, 1, "k1"), None)
            .await,
        Err(StoreError::IdempotencyMismatch)
    ));
    assert!(matches!(
        store.append_ledger(entry(c, LedgerKind::Adjustment, -10_000_001, "k2"), None).await,
        Err(StoreError::Conflict(ref m)) if m.contains("below zero")
    ));
    assert!(matches!(
        store
            .append_ledger(entry("con_missing", LedgerKind::TopUp, 1, "k3"), None)
            .await,
        Err(StoreError::NotFound)
    ));

    // 2 × 25 writers at once: 1.00 in and 0.40 out each.
    let writes = (0..50).map(|i| {
        let writer = writers[i % 2];
        async move {
            writer
                .append_ledger(
                    entry(c, LedgerKind::TopUp, 1_000_000, &format!("in-{i}")),
                    None,
                )
                .await
                .unwrap();
            writer
                .append_ledger(
                    entry(c, LedgerKind::Adjustment, -400_000, &format!("out-{i}")),
                    None,
                )
                .await
                .unwrap();
        }
    });
    futures_util::future::join_all(writes).await;
    let wallets = store.wallets(c).await.unwrap();
    assert_eq!(wallets[0].balance, "40.00");
    assert_eq!(wallets[0].entries, 101);
    // Each entry's balance_after is the previous one's plus its amount.
    let mut entries = Vec::new();
    let mut before = None;
    loop {
        let (page, next) = store.list_ledger(c, "USD", before, 30).await.unwrap();
        entries.extend(page);
        if next.is_none() {
            break;
        }
        before = next;
    }
    assert_eq!(entries.len(), 101);
    let micros = |s: &str| tollgate_api::money::parse_amount(s).unwrap();
    for pair in entries.windows(2) {
        assert_eq!(
            micros(&pair[0].balance_after),
            micros(&pair[1].balance_after) + micros(&pair[0].amount),
            "{pair:?}"
        );
    }
    let sum: i64 = entries.iter().map(|e| micros(&e.amount)).sum();
    assert_eq!(sum, 40_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plans_and_the_ledger_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    plans_and_the_ledger([&store, &store]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plans_and_the_ledger_on_postgres_from_two_nodes() {
    let url = tollgate_test_postgres::database();
    let one = PgStore::open(&url, 8, ChangeFeed::new()).await.unwrap();
    let two = PgStore::open(&url, 8, ChangeFeed::new()).await.unwrap();
    plans_and_the_ledger([&one, &two]).await;
}

fn card(last4: &str) -> crate::payments::CardToken {
    crate::payments::CardToken {
        token: format!("tok_{last4}"),
        brand: "visa".into(),
        last4: last4.into(),
        exp_month: 12,
        exp_year: 2099,
    }
}

/// Subscriptions under `If-Match`, cards with one default, and charges that
/// mark their card.
pub(crate) async fn subscriptions_cards_and_charges<S: Store + SubscriptionStore>(store: &S) {
    let plan = store.create_plan(plan_spec("Sub"), &ctx()).await.unwrap();
    let team = store
        .create_team(
            NewTeam {
                name: "Subs".into(),
                description: String::new(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let consumer = store
        .create_consumer(
            NewConsumer {
                team_id: team.id,
                name: "Sub".into(),
                contact: String::new(),
                metadata: Default::default(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2027-02-28T23:59:30Z")
        .unwrap()
        .to_utc();
    let state = crate::lifecycle::State {
        status: tollgate_api::SubscriptionStatus::Active,
        period_start: Some(start),
        period_end: Some(start + chrono::Duration::days(31)),
        auto_renew: true,
        past_due_since: None,
        reason: None,
    };
    let sub = store
        .create_subscription(&consumer.id, &plan.id, state.clone(), &ctx())
        .await
        .unwrap();
    assert_eq!(sub.current_period_start, Some(start));
    assert!(matches!(
        store
            .create_subscription("con_missing", &plan.id, state.clone(), &ctx())
            .await,
        Err(StoreError::NotFound)
    ));
    let lapsed = crate::lifecycle::State {
        status: tollgate_api::SubscriptionStatus::PastDue,
        past_due_since: Some(start),
        ..state.clone()
    };
    let saved = store
        .save_subscription(&sub.id, lapsed.clone(), 1, "subscription.renew", None)
        .await
        .unwrap();
    assert_eq!(
        (saved.status, saved.version),
        (tollgate_api::SubscriptionStatus::PastDue, 2)
    );
    assert!(matches!(
        store
            .save_subscription(&sub.id, lapsed, 1, "subscription.renew", None)
            .await,
        Err(StoreError::VersionMismatch { current: 2 })
    ));
    assert_eq!(
        store.live_subscription_ids().await.unwrap(),
        vec![sub.id.clone()]
    );

    let first = store
        .add_payment_method(&consumer.id, "test", card("4242"), false, &ctx())
        .await
        .unwrap();
    assert!(first.is_default, "the first card is the default");
    let second = store
        .add_payment_method(&consumer.id, "test", card("5555"), false, &ctx())
        .await
        .unwrap();
    assert!(!second.is_default);
    store
        .set_default_payment_method(&second.id, &ctx())
        .await
        .unwrap();
    let (default, token) = store
        .default_payment_method(&consumer.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (default.id.as_str(), token.token.as_str()),
        (second.id.as_str(), "tok_5555")
    );
    let declined = store
        .record_charge(NewCharge {
            consumer_id: consumer.id.clone(),
            payment_method_id: Some(second.id.clone()),
            subscription_id: Some(sub.id.clone()),
            amount_micros: 9_000_000,
            currency: "USD".into(),
            failure: Some(crate::payments::CardError {
                code: "card_declined".into(),
                decline_code: Some("insufficient_funds".into()),
                message: "declined".into(),
            }),
            processor_charge_id: None,
        })
        .await
        .unwrap();
    assert_eq!(declined.status, tollgate_api::ChargeStatus::Failed);
    let methods = store.payment_methods(&consumer.id).await.unwrap();
    let failed = methods.iter().find(|m| m.id == second.id).unwrap();
    assert_eq!(failed.status, tollgate_api::PaymentMethodStatus::Failed);
    assert_eq!(
        failed.last_decline_code.as_deref(),
        Some("insufficient_funds")
    );
    store
        .remove_payment_method(&second.id, &ctx())
        .await
        .unwrap();
    assert!(
        store
            .default_payment_method(&consumer.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.payment_methods(&consumer.id).await.unwrap().len(), 1);
    let (charges, _) = store.charges(&consumer.id, None, 10).await.unwrap();
    assert_eq!(charges.len(), 1);
}

#[tokio::test]
async fn subscriptions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    subscriptions_cards_and_charges(&store).await;
}

#[tokio::test]
async fn subscriptions_on_postgres() {
    let url = tollgate_test_postgres::database();
    let store = PgStore::open(&url, 4, ChangeFeed::new()).await.unwrap();
    subscriptions_cards_and_charges(&store).await;
}
