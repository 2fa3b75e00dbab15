//! What every store must do, written once and run against each backend
//! (SQLite in a temporary directory, PostgreSQL on a throwaway server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tollgate_api::{
    LedgerKind, OveragePolicy, PlanPeriod, ProviderKeyStatus, ProviderKind, ProviderModel,
};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{
    AuditContext, BillingStore, CallRecord, ConsumerStore, KeyActor, LogFilter, LogStore,
    NewCharge, NewConsumer, NewLedgerEntry, NewProviderKey, NewTeam, PlanSpec, ProviderKeyChange,
    ProviderSpec, ProviderStore, StoreError, SubscriptionStore, TeamStore, UsageBatch,
};
use super::{Grant, LeaseAsk, PeriodUsage, Pot, SystemStore};
use tollgate_api::CallLog;
use tollgate_api::money::format_amount;

/// What the call log's conformance needs of a store.
pub(crate) trait LogsStore: BillingStore + LogStore {}
impl<T: BillingStore + LogStore> LogsStore for T {}

/// What the billing conformance needs of a store (all of it, once the
/// PostgreSQL store is whole).
pub(crate) trait Store: BillingStore + ConsumerStore + TeamStore {}
impl<T: BillingStore + ConsumerStore + TeamStore> Store for T {}
use crate::changes::ChangeFeed;
use crate::ids;

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
            idempotency_key: "renewal:period-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(declined.status, tollgate_api::ChargeStatus::Failed);
    // A failed attempt does not count: the period can still be paid, once.
    let paid = |key: &str| NewCharge {
        consumer_id: consumer.id.clone(),
        payment_method_id: Some(first.id.clone()),
        subscription_id: Some(sub.id.clone()),
        amount_micros: 9_000_000,
        currency: "USD".into(),
        failure: None,
        processor_charge_id: Some("ch_1".into()),
        idempotency_key: key.into(),
    };
    store.record_charge(paid("renewal:period-1")).await.unwrap();
    assert!(matches!(
        store.record_charge(paid("renewal:period-1")).await,
        Err(StoreError::Conflict(ref m)) if m.contains("charged already")
    ));
    store.record_charge(paid("renewal:period-2")).await.unwrap();
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
    assert_eq!(charges.len(), 3);
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

/// A consumer with a subscription on `plan_spec(name)` (5.00 included),
/// and `balance` in its USD wallet.
async fn lease_fixture<S: Store + SubscriptionStore>(
    store: &S,
    name: &str,
    balance: i64,
) -> (String, String) {
    let plan = store.create_plan(plan_spec(name), &ctx()).await.unwrap();
    let team = store
        .create_team(
            NewTeam {
                name: name.into(),
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
                name: "Leaser".into(),
                contact: String::new(),
                metadata: Default::default(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    store
        .append_ledger(
            entry(&consumer.id, LedgerKind::TopUp, balance, "fund"),
            None,
        )
        .await
        .unwrap();
    let state = crate::lifecycle::State {
        status: tollgate_api::SubscriptionStatus::Active,
        period_start: None,
        period_end: None,
        auto_renew: false,
        past_due_since: None,
        reason: None,
    };
    let sub = store
        .create_subscription(&consumer.id, &plan.id, state, &ctx())
        .await
        .unwrap();
    (consumer.id, sub.id)
}

fn ask(need: i64, want: i64, partial: bool) -> LeaseAsk {
    LeaseAsk {
        need,
        want,
        partial,
        included: 5_000_000,
    }
}

async fn balance_and_reserved(store: &impl BillingStore, consumer: &str) -> (String, String) {
    let w = store.wallets(consumer).await.unwrap().remove(0);
    (w.balance, w.reserved)
}

/// Leases on wallets and included credits, from two nodes: grants within
/// what no node holds (a quarter at most, whole calls), an admin's debit
/// kept off what is set aside, usage paid from the lease and never below
/// it, leases given back, and a silent node's leases reclaimed.
pub(crate) async fn leases_keep_within_their_pots<S: Store + SubscriptionStore + SystemStore>(
    nodes: [&S; 2],
) {
    let [a, b] = nodes;
    let (consumer, sub) = lease_fixture(a, "Lease", 10_000_000).await;
    let wallet = Pot::Wallet {
        consumer_id: consumer.clone(),
        currency: "USD".into(),
    };
    let grant = a
        .lease(&wallet, ask(1_000_000, 50_000_000, false))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 2_000_000,
            available: 8_000_000
        }
    );
    let grant = b
        .lease(&wallet, ask(1_000_000, 50_000_000, false))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 2_000_000,
            available: 6_000_000
        }
    );
    assert_eq!(
        balance_and_reserved(a, &consumer).await,
        ("10.00".into(), "4.00".into())
    );
    // The admin cannot take what is set aside.
    let debit = a
        .append_ledger(
            entry(&consumer, LedgerKind::Adjustment, -7_000_000, "too-much"),
            None,
        )
        .await;
    assert!(
        matches!(debit, Err(StoreError::Conflict(ref m)) if m.contains("set aside") && m.contains("6.00")),
        "{debit:?}"
    );
    a.append_ledger(
        entry(&consumer, LedgerKind::Adjustment, -6_000_000, "rest"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        a.lease(&wallet, ask(1_000_000, 50_000_000, false))
            .await
            .unwrap(),
        Grant {
            granted: 0,
            available: 0
        }
    );
    // Node a spends 1.50 of its 2.00 and gives back 0.50.
    let usage = |amount: i64, key: &str| NewLedgerEntry {
        kind: LedgerKind::Usage,
        ..entry(&consumer, LedgerKind::Usage, -amount, key)
    };
    a.settle_calls(UsageBatch {
        wallet_entries: vec![usage(1_500_000, "usage:a1")],
        returns: vec![(wallet.clone(), 500_000)],
        ..UsageBatch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        balance_and_reserved(a, &consumer).await,
        ("2.50".into(), "2.00".into())
    );
    // The same window written again (a retry) is a replay: nothing moves.
    a.settle_calls(UsageBatch {
        wallet_entries: vec![usage(1_500_000, "usage:a1")],
        ..UsageBatch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        balance_and_reserved(a, &consumer).await,
        ("2.50".into(), "2.00".into())
    );
    // Node b spends more than it holds: paid from what no node holds (0.50),
    // and the rest is not charged.
    b.settle_calls(UsageBatch {
        wallet_entries: vec![usage(3_000_000, "usage:b1")],
        ..UsageBatch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        balance_and_reserved(a, &consumer).await,
        ("0.00".into(), "0.00".into())
    );

    // Included credits: 5.00 a period.
    let credits = Pot::Credits {
        subscription_id: sub.clone(),
        period_start: "2026-01-01T00:00:00+00:00".into(),
    };
    let grant = a
        .lease(&credits, ask(500_000, 50_000_000, false))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 1_000_000,
            available: 4_000_000
        }
    );
    // More than is left: nothing, or all of it for a partial request.
    let grant = b
        .lease(&credits, ask(10_000_000, 50_000_000, false))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 0,
            available: 4_000_000
        }
    );
    let grant = b
        .lease(&credits, ask(10_000_000, 50_000_000, true))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 4_000_000,
            available: 0
        }
    );
    b.settle_calls(UsageBatch {
        periods: vec![PeriodUsage {
            subscription_id: sub.clone(),
            period_start: "2026-01-01T00:00:00+00:00".into(),
            credits_micros: 3_000_000,
            leased_micros: 3_000_000,
            calls: 3,
        }],
        returns: vec![(credits.clone(), 1_000_000)],
        ..UsageBatch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        a.period_usage(&sub, "2026-01-01T00:00:00+00:00")
            .await
            .unwrap(),
        3_000_000
    );
    // 5.00 − 3.00 used − 1.00 node a holds.
    let grant = b
        .lease(&credits, ask(2_000_000, 2_000_000, false))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 0,
            available: 1_000_000
        }
    );
    // Node a never said it was alive: node b reclaims its lease.
    b.heartbeat(&crate::store::NodeRecord {
        id: b.node_id().to_owned(),
        address: "http://b".into(),
        version: "test".into(),
        started_at: chrono::Utc::now(),
        heartbeat_at: chrono::Utc::now(),
        leads_jobs: true,
        leases: 0,
    })
    .await
    .unwrap();
    assert_eq!(b.reclaim_leases(chrono::Utc::now()).await.unwrap(), 1);
    let grant = b
        .lease(&credits, ask(2_000_000, 2_000_000, false))
        .await
        .unwrap();
    assert_eq!(
        grant,
        Grant {
            granted: 2_000_000,
            available: 0
        }
    );
    let listed = a.nodes().await.unwrap();
    let node_b = listed.iter().find(|n| n.id == b.node_id()).unwrap();
    assert_eq!(node_b.leases, 1);

    // Two nodes leasing at once never set aside more than the balance.
    let (consumer, _) = lease_fixture(a, "Race", 5_000_000).await;
    let wallet = Pot::Wallet {
        consumer_id: consumer.clone(),
        currency: "USD".into(),
    };
    let asks = (0..100).map(|i| {
        let (node, wallet) = (nodes[i % 2], wallet.clone());
        async move {
            node.lease(&wallet, ask(100_000, 1_000_000, false))
                .await
                .unwrap()
                .granted
        }
    });
    let granted: i64 = futures_util::future::join_all(asks).await.into_iter().sum();
    assert_eq!(granted, 5_000_000);
    assert_eq!(
        balance_and_reserved(a, &consumer).await,
        ("5.00".into(), "5.00".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_on_sqlite_from_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let one = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    let two = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    leases_keep_within_their_pots([&one, &two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_on_postgres_from_two_nodes() {
    let url = tollgate_test_postgres::database();
    let one = PgStore::open(&url, 8, ChangeFeed::new()).await.unwrap();
    let two = PgStore::open(&url, 8, ChangeFeed::new()).await.unwrap();
    leases_keep_within_their_pots([&one, &two]).await;
}

/// Two nodes taking from one rate-limit bucket at once never get more than
/// it holds (a minute's allowance, plus what came back meanwhile), each
/// ask gets at most a quarter, and units given back can be taken again.
pub(crate) async fn rate_allowances_are_shared_between_nodes<S: Store>(nodes: [&S; 2]) {
    let key = format!("c-{}:p:tokens", ids::new_id("t"));
    let started = std::time::Instant::now();
    let asks = (0..200).map(|i| {
        let (node, key) = (nodes[i % 2], key.clone());
        async move { node.take_allowance(&key, 1_000, 10).await.unwrap() }
    });
    let grants = futures_util::future::join_all(asks).await;
    let refill = started.elapsed().as_micros() as u64 * 1_000 / 60_000_000 + 1;
    let granted: u64 = grants.iter().map(|g| u64::from(g.granted)).sum();
    // Asks of ten leave fewer than ten behind.
    assert!(
        (991..=1_000 + refill).contains(&granted),
        "{granted} granted, {refill} came back meanwhile"
    );
    assert!(grants.iter().all(|g| g.granted <= 250), "{grants:?}");
    let refused = grants
        .iter()
        .find(|g| g.granted == 0)
        .expect("some asks were refused");
    // Fewer than ten units were left: ten come back within 600 ms.
    assert!((1..=600_000).contains(&refused.wait_micros), "{refused:?}");

    // What a node gives back, the other can take.
    nodes[0].return_allowance(&key, 1_000, 100).await.unwrap();
    let again = nodes[1].take_allowance(&key, 1_000, 100).await.unwrap();
    assert!(again.granted >= 100, "{again:?}");
    // A node whose calls used more than they took owes it to the bucket.
    nodes[1].return_allowance(&key, 1_000, -500).await.unwrap();
    let owed = nodes[0].take_allowance(&key, 1_000, 10).await.unwrap();
    assert_eq!(owed.granted, 0, "{owed:?}");
    assert!(owed.wait_micros > 25_000_000, "{owed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_allowances_on_sqlite_from_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let one = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    let two = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
    rate_allowances_are_shared_between_nodes([&one, &two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_allowances_on_postgres_from_two_nodes() {
    let url = tollgate_test_postgres::database();
    let one = PgStore::open(&url, 8, ChangeFeed::new()).await.unwrap();
    let two = PgStore::open(&url, 8, ChangeFeed::new()).await.unwrap();
    rate_allowances_are_shared_between_nodes([&one, &two]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_recording_one_periods_charge_at_once_record_it_once() {
    let url = tollgate_test_postgres::database();
    let nodes = [
        PgStore::open(&url, 4, ChangeFeed::new()).await.unwrap(),
        PgStore::open(&url, 4, ChangeFeed::new()).await.unwrap(),
    ];
    let plan = nodes[0]
        .create_plan(plan_spec("Once"), &ctx())
        .await
        .unwrap();
    let team = nodes[0]
        .create_team(
            NewTeam {
                name: "Once".into(),
                description: String::new(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let consumer = nodes[0]
        .create_consumer(
            NewConsumer {
                team_id: team.id,
                name: "Once".into(),
                contact: String::new(),
                metadata: Default::default(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let state = crate::lifecycle::State {
        status: tollgate_api::SubscriptionStatus::Active,
        period_start: None,
        period_end: None,
        auto_renew: true,
        past_due_since: None,
        reason: None,
    };
    let sub = nodes[0]
        .create_subscription(&consumer.id, &plan.id, state, &ctx())
        .await
        .unwrap();
    for period in 0..20 {
        let charge = || NewCharge {
            consumer_id: consumer.id.clone(),
            payment_method_id: None,
            subscription_id: Some(sub.id.clone()),
            amount_micros: 1_000_000,
            currency: "USD".into(),
            failure: None,
            processor_charge_id: Some(format!("ch_{period}")),
            idempotency_key: format!("renewal:{}:{period}", sub.id),
        };
        let (a, b) = tokio::join!(
            nodes[0].record_charge(charge()),
            nodes[1].record_charge(charge())
        );
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "period {period}: {a:?} {b:?}"
        );
    }
    let (charges, _) = nodes[1].charges(&consumer.id, None, 100).await.unwrap();
    assert_eq!(charges.len(), 20);
}

pub(crate) fn record(id: usize, at_us: i64) -> CallRecord {
    CallRecord {
        id: format!("req_{id:08}"),
        at_us,
        api: "chat".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        ..CallRecord::default()
    }
}

/// On PostgreSQL the call log lives in weekly partitions: blocks of weeks
/// without one wait in the default partition and move into theirs when
/// pruning makes it; retention drops the partitions of weeks it has passed
/// whole and trims the rest; new records land in their week's partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_log_on_postgres_is_kept_in_weeks_that_retention_drops_whole() {
    const DAY: i64 = 86_400_000_000;
    let url = tollgate_test_postgres::database();
    let store = PgStore::open(&url, 4, ChangeFeed::new()).await.unwrap();
    let now = chrono::Utc::now().timestamp_micros();
    // 100 records each, ended 30, 20 and 9 days ago and an hour ago.
    let ages = [30 * DAY, 20 * DAY, 9 * DAY, DAY / 24];
    let calls: Vec<_> = (0..400).map(|i| record(i, now - ages[i / 100])).collect();
    store
        .settle_calls(UsageBatch {
            calls: std::sync::Arc::new(calls),
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    let partitions = || {
        tollgate_test_postgres::psql(
            &url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'call_log_blocks'::regclass ORDER BY 1",
        )
    };
    let in_default = || {
        tollgate_test_postgres::psql(
            &url,
            "SELECT coalesce(sum(records), 0) FROM call_log_blocks_default",
        )
    };
    assert_eq!(partitions(), "call_log_blocks_default", "no week made yet");
    assert_eq!(in_default(), "400");

    // Retention of 14 days: the records of 30 and 20 days ago go.
    let cutoff = now - 14 * DAY;
    assert_eq!(store.prune_call_logs(cutoff, None).await.unwrap(), 200);
    assert_eq!(in_default(), "0", "the rest moved into their weeks");
    let weeks: Vec<String> = partitions()
        .lines()
        .filter(|n| *n != "call_log_blocks_default")
        .map(str::to_owned)
        .collect();
    let week = 7 * DAY;
    let first_day = |name: &str| {
        let day =
            chrono::NaiveDate::parse_from_str(&name["call_log_blocks_".len()..], "%Y%m%d").unwrap();
        day.and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    // Every week kept ends after the cutoff; this week and the next are made.
    assert!(
        weeks.iter().all(|w| first_day(w) + week > cutoff),
        "{weeks:?}"
    );
    let this_week = now.div_euclid(week) * week;
    for start in [this_week, this_week + week] {
        assert!(weeks.iter().any(|w| first_day(w) == start), "{weeks:?}");
    }
    let (left, _) = store.call_logs(LogFilter::default(), 1_000).await.unwrap();
    assert_eq!(left.len(), 200);

    // Retention of a day: the week holding the records of 9 days ago is
    // dropped whole once it has ended before the cutoff.
    let cutoff = now - DAY;
    let nine_days_ago = (now - 9 * DAY).div_euclid(week) * week;
    assert_eq!(store.prune_call_logs(cutoff, None).await.unwrap(), 100);
    let weeks = partitions();
    if nine_days_ago + week <= cutoff {
        assert!(
            !weeks
                .lines()
                .any(|w| w != "call_log_blocks_default" && first_day(w) == nine_days_ago),
            "{weeks}"
        );
    }
    // New records land in this week's partition, not the default.
    store
        .settle_calls(UsageBatch {
            calls: std::sync::Arc::new(vec![record(1_000, now)]),
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    assert_eq!(in_default(), "0");
    let (left, _) = store.call_logs(LogFilter::default(), 1_000).await.unwrap();
    assert_eq!(left.len(), 101);
}

/// A record reads back as written, in pages and in the export.
pub(crate) async fn a_record_reads_back_as_written_in_pages_and_exports(store: &impl LogsStore) {
    let mut full = record(7, 1_764_000_000_123_456);
    full.consumer_id = Some("con_1".into());
    full.team_id = Some("team_1".into());
    full.key_prefix = Some("tg_abcdefgh".into());
    full.model = Some("m".into());
    full.provider_key = Some("pkey_1 (…9f3a)".into());
    full.client_ip = Some("127.0.0.1".into());
    full.user_agent = Some("ua/1".into());
    full.latency_us = 1_500;
    full.upstream_us = Some(1_000);
    full.cost_micros = 1_234_567;
    full.currency = Some("USD".into());
    full.upstream_status = Some(200);
    full.request_body = Some("{\"a\":\"ünïcode\"}".into());
    store
        .settle_calls(UsageBatch {
            calls: std::sync::Arc::new(vec![full.clone()]),
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    let (logs, head) = store.call_logs(LogFilter::default(), 10).await.unwrap();
    let log = &logs[0];
    assert_eq!((log.seq, head), (1, 1));
    assert_eq!(log.id, "req_00000007");
    assert_eq!(log.at.timestamp_micros(), 1_764_000_000_123_456);
    assert_eq!(log.cost, "1.234567");
    assert_eq!(log.latency_us, 1_500);
    assert_eq!(log.provider_key.as_deref(), Some("pkey_1 (…9f3a)"));
    assert_eq!(log.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(log.request_body, full.request_body);
    assert_eq!(log.ttft_us, None);
    let (lines, _) = store.export_lines(0, 10).await.unwrap();
    let exported: CallLog = serde_json::from_str(&lines[0].1).unwrap();
    assert_eq!(&exported, log);
    // Time filters select by when calls ended (arrival + latency).
    let ended = |from: i64, to: i64| LogFilter {
        from_us: Some(from),
        to_us: Some(to),
        ..LogFilter::default()
    };
    let end = 1_764_000_000_123_456 + 1_500;
    assert_eq!(
        store
            .call_logs(ended(end, end + 1), 10)
            .await
            .unwrap()
            .0
            .len(),
        1
    );
    assert!(
        store
            .call_logs(ended(end + 1, end + 9), 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

/// 1,700 varied records in windows of 700 (so blocks of 512 and less,
/// and a cursor that falls inside a block).
async fn varied(store: &impl LogsStore) -> Vec<CallRecord> {
    let t0 = 1_764_000_000_000_000i64;
    let calls: Vec<CallRecord> = (0..1_700)
        .map(|i| {
            let mut r = record(i, t0 + i as i64 * 1_000_000);
            r.status = [200, 200, 402, 401, 429, 502][i % 6];
            r.consumer_id = (i % 7 != 0).then(|| format!("con_{}", i % 5).into());
            r.model = (i % 3 != 0).then(|| ["m1", "m2"][i % 2].to_owned());
            r.reason = (r.status != 200).then(|| format!("reason-{}", r.status).into());
            r.currency = (r.status == 200).then(|| ["USD", "EUR"][i % 2].to_owned());
            r.cost_micros = if r.status == 200 { i as i64 * 7 } else { 0 };
            r.latency_us = 1_000 + (i as i64 * 7_919) % 90_000;
            r.tokens_in = i as i64 % 13;
            r.tokens_out = i as i64 % 29;
            if i % 4 == 0 {
                r.api = "summarize".into();
            }
            r
        })
        .collect();
    for window in calls.chunks(700) {
        store
            .settle_calls(UsageBatch {
                calls: std::sync::Arc::new(window.to_vec()),
                ..UsageBatch::default()
            })
            .await
            .unwrap();
    }
    calls
}

/// Filtered pages and figures read across blocks as a scan would.
pub(crate) async fn filtered_pages_and_figures_read_across_blocks_as_a_scan_would(
    store: &impl LogsStore,
) {
    let calls = varied(store).await;
    let end = |r: &CallRecord| r.at_us + r.latency_us;
    let (from, to) = (end(&calls[333]), end(&calls[1_444]));
    let filters = [
        LogFilter::default(),
        LogFilter {
            consumer_id: Some("con_2".into()),
            status_class: Some(4),
            ..LogFilter::default()
        },
        LogFilter {
            model: Some("m1".into()),
            api: Some("summarize".into()),
            from_us: Some(from),
            to_us: Some(to),
            ..LogFilter::default()
        },
        LogFilter {
            reason: Some("reason-402".into()),
            after: 600,
            ..LogFilter::default()
        },
    ];
    for filter in filters {
        let want: Vec<String> = calls
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                (*i as i64 + 1) > filter.after
                    && filter
                        .consumer_id
                        .as_ref()
                        .is_none_or(|c| r.consumer_id.as_deref() == Some(c.as_str()))
                    && filter.status_class.is_none_or(|c| r.status / 100 == c)
                    && filter
                        .model
                        .as_ref()
                        .is_none_or(|m| r.model.as_ref() == Some(m))
                    && filter.api.as_ref().is_none_or(|a| r.api == *a)
                    && filter
                        .reason
                        .as_ref()
                        .is_none_or(|x| r.reason.as_deref() == Some(x.as_str()))
                    && filter.from_us.is_none_or(|f| end(r) >= f)
                    && filter.to_us.is_none_or(|t| end(r) < t)
            })
            .map(|(_, r)| r.id.clone())
            .collect();
        // Page by page, 37 at a time, each from the last one's cursor.
        let mut got: Vec<String> = Vec::new();
        let mut page = filter.clone();
        loop {
            let (logs, head) = store.call_logs(page.clone(), 37).await.unwrap();
            assert_eq!(head, 1_700);
            got.extend(logs.iter().map(|l| l.id.clone()));
            match logs.last() {
                Some(last) if logs.len() == 37 => page.after = last.seq,
                _ => break,
            }
        }
        assert_eq!(got, want, "{filter:?}");
    }
    // The export from a cursor inside a block.
    let (lines, _) = store.export_lines(1_000, 50).await.unwrap();
    let seqs: Vec<i64> = lines.iter().map(|l| l.0).collect();
    assert_eq!(seqs, (1_001..=1_050).collect::<Vec<_>>());

    // Figures: the same as counting the records by hand.
    let stats = store.call_stats(from, to, 60_000_000).await.unwrap();
    let inside: Vec<&CallRecord> = calls
        .iter()
        .filter(|r| end(r) >= from && end(r) < to)
        .collect();
    assert_eq!(stats.requests, inside.len() as i64);
    assert_eq!(
        stats.errors,
        inside.iter().filter(|r| r.status >= 400).count() as i64
    );
    assert_eq!(
        stats.tokens_in,
        inside.iter().map(|r| r.tokens_in).sum::<i64>()
    );
    let mut latencies: Vec<i64> = inside.iter().map(|r| r.latency_us).collect();
    latencies.sort_unstable();
    let rank = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    assert_eq!(
        (
            stats.latency_p50_us,
            stats.latency_p95_us,
            stats.latency_p99_us
        ),
        (rank(0.5), rank(0.95), rank(0.99))
    );
    let usd: i64 = inside
        .iter()
        .filter(|r| r.currency.as_deref() == Some("USD"))
        .map(|r| r.cost_micros)
        .sum();
    assert_eq!(stats.cost[1].currency, "USD");
    assert_eq!(stats.cost[1].amount, format_amount(usd, 2));
    assert_eq!(
        stats.series.iter().map(|p| p.requests).sum::<i64>(),
        stats.requests
    );
    assert_eq!(
        stats.series.iter().map(|p| p.payment_required).sum::<i64>(),
        inside.iter().filter(|r| r.status == 402).count() as i64
    );
    // Most requests first, ties by name.
    let counts: Vec<(String, i64)> = stats
        .top_consumers
        .iter()
        .map(|c| (c.consumer_id.clone(), c.requests))
        .collect();
    let mut sorted = counts.clone();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(counts, sorted);
    assert_eq!(counts.len(), 5);
    let by_reason: Vec<(String, u16)> = stats
        .by_reason
        .iter()
        .map(|r| (r.reason.clone(), r.status))
        .collect();
    assert!(by_reason.contains(&("reason-502".into(), 502)));
    assert_eq!(stats.by_model.len(), 2);
}

/// Pruning deletes the old records, then the surplus; seqs keep growing.
pub(crate) async fn pruning_deletes_the_old_then_the_surplus_and_seqs_keep_growing(
    store: &impl LogsStore,
) {
    // 3,000 records a day old, then 2,500 of now.
    let (old, new) = (1_000_000_000_000i64, 2_000_000_000_000i64);
    let calls: Vec<_> = (0..5_500)
        .map(|i| record(i, if i < 3_000 { old } else { new }))
        .collect();
    store
        .settle_calls(UsageBatch {
            calls: std::sync::Arc::new(calls.clone()),
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    let (_, head) = store.call_logs(LogFilter::default(), 1).await.unwrap();
    assert_eq!(head, 5_500);

    assert_eq!(store.prune_call_logs(old + 1, None).await.unwrap(), 3_000);
    assert_eq!(
        store.prune_call_logs(old + 1, Some(2_000)).await.unwrap(),
        500
    );
    let (left, _) = store.call_logs(LogFilter::default(), 5_000).await.unwrap();
    assert_eq!(left.len(), 2_000);
    assert_eq!(left[0].seq, 3_501, "the newest are kept");
    assert_eq!(left[0].id, calls[3_500].id);

    // Everything pruned: new records still never reuse a seq.
    assert_eq!(store.prune_call_logs(new + 1, None).await.unwrap(), 2_000);
    store
        .settle_calls(UsageBatch {
            calls: std::sync::Arc::new(vec![record(9_999, new)]),
            ..UsageBatch::default()
        })
        .await
        .unwrap();
    let (newest, head) = store
        .call_logs(
            LogFilter {
                after: 5_500,
                ..LogFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].id, "req_00009999");
    assert_eq!((newest[0].seq, head), (5_501, 5_501));
}

/// Runs the call log's conformance on a fresh store of each kind.
macro_rules! on_both_stores {
    ($($test:ident),*) => {$(
        mod $test {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(dir.path(), ChangeFeed::new()).unwrap();
                super::$test(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                let url = tollgate_test_postgres::database();
                let store = PgStore::open(&url, 4, ChangeFeed::new()).await.unwrap();
                super::$test(&store).await;
            }
        }
    )*};
}

on_both_stores!(
    a_record_reads_back_as_written_in_pages_and_exports,
    filtered_pages_and_figures_read_across_blocks_as_a_scan_would,
    pruning_deletes_the_old_then_the_surplus_and_seqs_keep_growing
);
