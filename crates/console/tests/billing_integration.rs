//! The console's billing actions against a real `tollgated`: the journey of
//! issue 3's end-to-end test, through the console's client (no UI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, input, test_vault};
use tollgate_api::{
    AddPaymentMethod, CreateConsumer, CreateConsumerKey, CreateLedgerEntry, CreatePlan,
    CreateSubscription, CreateTeam, LedgerKind, OveragePolicy, PlanPeriod, RateLimits,
    SubscriptionStatus, UpdatePaymentSettings, UpdatePlan,
};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;

/// A team ("Acme of <name>") and a consumer in it, created through the console.
async fn team_and_consumer(console: &Console, id: &str, name: &str) -> tollgate_api::Consumer {
    let team = console
        .create_team(
            id,
            CreateTeam {
                name: format!("Acme of {name}"),
                description: String::new(),
            },
            &format!("team-{name}"),
        )
        .await
        .unwrap();
    console
        .create_consumer(
            id,
            CreateConsumer {
                team_id: team.id,
                name: name.into(),
                contact: "ops@acme.test".into(),
                metadata: Default::default(),
            },
            &format!("consumer-{name}"),
        )
        .await
        .unwrap()
}

/// A monthly plan covering `chat`, blocking when its credits run out.
fn monthly_plan(name: &str, currency: &str, price: &str) -> CreatePlan {
    CreatePlan {
        name: name.into(),
        currency: currency.into(),
        price: price.into(),
        period: PlanPeriod::Month,
        included_credits: "1".into(),
        overage: OveragePolicy::Block,
        approval_required: false,
        apis: vec!["chat".into()],
        models: vec![],
        rate_limits: Default::default(),
    }
}

fn card(number: &str) -> AddPaymentMethod {
    AddPaymentMethod {
        number: number.into(),
        exp_month: 12,
        exp_year: 2030,
        cvc: "123".into(),
        make_default: true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_plan_approval_key_top_up_and_cards() {
    let gw = Gateway::start("billing-gw");
    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Billing", &gw.base, Some(&gw.token)))
        .await
        .unwrap()
        .id;

    let consumer = team_and_consumer(&console, &id, "Chatbot").await;
    let plan = console
        .create_plan(
            &id,
            CreatePlan {
                included_credits: "5".into(),
                overage: OveragePolicy::ChargeWallet,
                approval_required: true,
                ..monthly_plan("Pro", "USD", "0")
            },
            "p1",
        )
        .await
        .unwrap();
    let sub = console
        .create_subscription(
            &id,
            CreateSubscription {
                consumer_id: consumer.id.clone(),
                plan_id: plan.id.clone(),
                auto_renew: true,
            },
            "s1",
        )
        .await
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::PendingApproval);
    let queue = console
        .list_subscriptions(&id, Some("pending_approval".into()), None, None)
        .await
        .unwrap();
    assert_eq!(queue.items[0].id, sub.id);
    assert_eq!(
        console
            .subscription_action(&id, &sub.id, "reject", " ")
            .await
            .unwrap_err()
            .code(),
        "validation"
    );
    assert_eq!(
        console
            .subscription_action(&id, &sub.id, "explode", "")
            .await
            .unwrap_err()
            .code(),
        "validation"
    );
    let approved = console
        .subscription_action(&id, &sub.id, "approve", "")
        .await
        .unwrap();
    assert_eq!(approved.status, SubscriptionStatus::Active);
    assert_eq!(
        console
            .change_subscription_plan(&id, &sub.id, "  ")
            .await
            .unwrap_err()
            .code(),
        "validation"
    );
    let refused = console
        .change_subscription_plan(&id, &sub.id, &sub.plan_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "conflict", "{refused:?}");

    let issued = console
        .create_consumer_key(
            &id,
            &consumer.id,
            CreateConsumerKey {
                name: "prod".into(),
                ..Default::default()
            },
            "k1",
        )
        .await
        .unwrap();
    let secret = issued.secret.clone().unwrap();
    assert!(secret.starts_with(&issued.key.display_prefix));
    let found = console
        .find_keys(&id, &issued.key.display_prefix)
        .await
        .unwrap();
    assert_eq!(found.items[0].id, issued.key.id);
    let rotated = console
        .rotate_consumer_key(&id, &issued.key.id, 3600)
        .await
        .unwrap();
    assert!(rotated.secret.is_some());
    let revoked = console
        .revoke_consumer_key(&id, &rotated.key.id)
        .await
        .unwrap();
    assert_eq!(revoked.status, tollgate_api::ConsumerKeyStatus::Revoked);

    let entry = CreateLedgerEntry {
        kind: LedgerKind::TopUp,
        amount: "20.00".into(),
        reason: String::new(),
    };
    console
        .create_ledger_entry(&id, &consumer.id, "USD", entry.clone(), "top-1")
        .await
        .unwrap();
    console
        .create_ledger_entry(&id, &consumer.id, "USD", entry, "top-1")
        .await
        .unwrap();
    let wallets = console.list_wallets(&id, &consumer.id).await.unwrap();
    assert_eq!(
        wallets[0].balance, "20.00",
        "a retried top-up moves money once"
    );
    assert_eq!(
        console
            .list_ledger(&id, &consumer.id, "USD", None)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let declined = console
        .add_payment_method(&id, &consumer.id, card("4000 0000 0000 0002"))
        .await
        .unwrap_err();
    assert_eq!(declined.code(), "card_error");
    assert!(
        declined.to_string().contains("generic_decline"),
        "{declined}"
    );
    assert!(!declined.to_string().contains("4000000000000002"));
    assert_eq!(
        console
            .add_payment_method(&id, &consumer.id, card("12ab"))
            .await
            .unwrap_err()
            .code(),
        "validation"
    );
    let good = console
        .add_payment_method(&id, &consumer.id, card("4242 4242 4242 4242"))
        .await
        .unwrap();
    assert_eq!(
        (good.brand.as_str(), good.last4.as_str(), good.is_default),
        ("visa", "4242", true)
    );
    let methods = console
        .list_payment_methods(&id, &consumer.id)
        .await
        .unwrap();
    assert_eq!(methods.len(), 1);
    console.remove_payment_method(&id, &good.id).await.unwrap();
    assert!(
        console
            .list_payment_methods(&id, &consumer.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        console
            .list_charges(&id, &consumer.id, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The console's own files never hold a key secret or a card number.
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [secret.as_str(), "4242424242424242"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_settings_and_the_billing_check() {
    let gw = Gateway::start("settings-gw");
    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Settings", &gw.base, Some(&gw.token)))
        .await
        .unwrap()
        .id;
    let plan = console
        .create_plan(&id, monthly_plan("Euro", "EUR", "9"), "p-eur")
        .await
        .unwrap();

    let before = console.payment_settings(&id).await.unwrap();
    assert!(console.check_billing(&id).await.unwrap().ok);

    // Bad input is refused by the console, naming each field; nothing changes.
    let bad = console
        .update_payment_settings(
            &id,
            UpdatePaymentSettings {
                processor: Some("paypal".into()),
                accepted_currencies: Some(vec!["usd".into(), "EURO".into()]),
                grace_days: Some(91),
                credentials: Some("two\nlines".into()),
                ..UpdatePaymentSettings::default()
            },
            before.version,
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "validation");
    let text = bad.to_string();
    for field in [
        "processor",
        "accepted_currencies.1",
        "grace_days",
        "credentials",
    ] {
        assert!(text.contains(field), "{field} missing from {text}");
    }
    assert!(
        !text.contains("accepted_currencies.0"),
        "usd is fine once upper-cased: {text}"
    );
    assert_eq!(console.payment_settings(&id).await.unwrap(), before);

    // A good change, with a processor secret that comes back only as its last 4.
    let secret = "sk_test_console_secret_9876";
    let saved = console
        .update_payment_settings(
            &id,
            UpdatePaymentSettings {
                accepted_currencies: Some(vec!["usd".into()]),
                grace_days: Some(5),
                credentials: Some(secret.into()),
                ..Default::default()
            },
            before.version,
        )
        .await
        .unwrap();
    assert_eq!(saved.accepted_currencies, vec!["USD".to_owned()]);
    assert_eq!(saved.grace_days, 5);
    assert!(saved.credentials_set);
    assert_eq!(saved.credentials_last4.as_deref(), Some("9876"));
    assert!(!format!("{saved:?}").contains(secret));

    // The plan priced in EUR can no longer bill: the check says so and how to fix it.
    let check = console.check_billing(&id).await.unwrap();
    assert!(!check.ok);
    let finding = check
        .findings
        .iter()
        .find(|f| f.code == "currency-not-accepted")
        .expect("the EUR plan is reported");
    assert_eq!(finding.target.as_deref(), Some(plan.id.as_str()));
    assert!(!finding.fix.is_empty());

    // A stale version is refused rather than overwriting the newer settings.
    let stale = console
        .update_payment_settings(
            &id,
            UpdatePaymentSettings {
                grace_days: Some(1),
                ..Default::default()
            },
            before.version,
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");
    assert_eq!(console.payment_settings(&id).await.unwrap().grace_days, 5);

    // Accepting EUR again clears the finding; removing the secret forgets it.
    let fixed = console
        .update_payment_settings(
            &id,
            UpdatePaymentSettings {
                accepted_currencies: Some(vec!["USD".into(), "EUR".into()]),
                credentials: Some(String::new()),
                ..Default::default()
            },
            saved.version,
        )
        .await
        .unwrap();
    assert!(!fixed.credentials_set);
    assert!(console.check_billing(&id).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn plans_are_edited_and_deleted_with_their_version() {
    let gw = Gateway::start("plans-gw");
    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let id = console
        .add_instance(input("Plans", &gw.base, Some(&gw.token)))
        .await
        .unwrap()
        .id;
    let new_plan = |name: &str| monthly_plan(name, "USD", "10");
    let plan = console
        .create_plan(&id, new_plan("Basic"), "pl-1")
        .await
        .unwrap();

    // Bad input is refused by the console, naming each field; nothing changes.
    let bad = console
        .update_plan(
            &id,
            &plan.id,
            UpdatePlan {
                name: Some("  ".into()),
                price: Some("ten".into()),
                included_credits: Some("-1".into()),
                apis: Some(vec![" ".into()]),
                rate_limits: Some(RateLimits {
                    requests_per_minute: Some(0),
                    tokens_per_minute: None,
                }),
                ..Default::default()
            },
            plan.version,
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), "validation");
    let text = bad.to_string();
    for field in [
        "name",
        "price",
        "included_credits",
        "apis",
        "rate_limits.requests_per_minute",
    ] {
        assert!(text.contains(field), "{field} missing from {text}");
    }
    let listed = console.list_plans(&id, None).await.unwrap();
    assert_eq!(listed.items[0], plan);

    // A good change keeps what it does not name (the currency never changes).
    let saved = console
        .update_plan(
            &id,
            &plan.id,
            UpdatePlan {
                name: Some(" Basic+ ".into()),
                price: Some("12.50".into()),
                rate_limits: Some(RateLimits {
                    requests_per_minute: Some(60),
                    tokens_per_minute: None,
                }),
                ..Default::default()
            },
            plan.version,
        )
        .await
        .unwrap();
    assert_eq!(saved.name, "Basic+");
    assert_eq!(saved.price, "12.50");
    assert_eq!(saved.currency, "USD");
    assert_eq!(saved.included_credits, plan.included_credits);
    assert_eq!(saved.rate_limits.requests_per_minute, Some(60));
    assert!(saved.version > plan.version);

    // The version seen before is stale now: neither edit nor delete goes through.
    let stale = console
        .update_plan(
            &id,
            &plan.id,
            UpdatePlan {
                price: Some("1".into()),
                ..Default::default()
            },
            plan.version,
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");
    let stale = console
        .delete_plan(&id, &plan.id, plan.version)
        .await
        .unwrap_err();
    assert_eq!(stale.code(), "precondition_failed");

    // A plan someone subscribes to cannot be deleted; an unused one can.
    let consumer = team_and_consumer(&console, &id, "C").await;
    console
        .create_subscription(
            &id,
            CreateSubscription {
                consumer_id: consumer.id,
                plan_id: saved.id.clone(),
                auto_renew: true,
            },
            "pl-s",
        )
        .await
        .unwrap();
    let used = console
        .delete_plan(&id, &saved.id, saved.version)
        .await
        .unwrap_err();
    assert_eq!(used.code(), "conflict", "{used}");
    let unused = console
        .create_plan(&id, new_plan("Spare"), "pl-2")
        .await
        .unwrap();
    console
        .delete_plan(&id, &unused.id, unused.version)
        .await
        .unwrap();
    let names: Vec<String> = console
        .list_plans(&id, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["Basic+".to_owned()]);
}
