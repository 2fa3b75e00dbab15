//! Prevention on a real gateway with the console's real database: each rule
//! raises its alert once (the clock is the test's, moved forward), never
//! again for the same situation; snooze and resolve hold; a misconfiguration
//! made from the console is linted at once and cleared when fixed; new
//! alerts reach the notification channel. Calls go to the simulated provider
//! (a test fixture).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use common::admin::{
    admin, metered_plan, provider_with_key, simulated_provider, subscribed_consumer,
};
use common::{Gateway, console_with};
use serde_json::{Value, json};
use tollgate_api::{Severity, UpdatePlan};
use tollgate_console::alerts::{AlertRule, AlertRules, AlertState, Scope};

async fn chat(gw: &Gateway, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(key)
        .json(&json!({"model": "sim-small", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn rules_of(alerts: &[tollgate_console::alerts::Alert]) -> Vec<AlertRule> {
    let mut r: Vec<AlertRule> = alerts.iter().map(|a| a.rule).collect();
    r.sort_by_key(|r| r.as_str());
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_raises_once_and_snooze_resolve_and_lint_hold() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sim = format!("http://{sim}");
    let gw = Gateway::start("alerts-gw");
    simulated_provider(
        &gw,
        &sim,
        "Sim",
        "USD",
        json!([{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]),
    )
    .await;
    let team = admin(&gw, "POST", "/admin/v1/teams", json!({"name": "Watch"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (console, _data, id) = console_with(&gw, "Watched").await;
    let mut notified = console.subscribe_alerts();

    // A yearly subscription that will not renew. Every date below is taken
    // from its period end, so the test holds on any day of the year.
    let priced = admin(
        &gw,
        "POST",
        "/admin/v1/plans",
        json!({"name": "Pro", "currency": "USD", "price": "9.00", "period": "year",
               "overage": "block", "included_credits": "5", "apis": ["chat"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lapsing = admin(
        &gw,
        "POST",
        "/admin/v1/consumers",
        json!({"team_id": team, "name": "Lapsing"}),
    )
    .await;
    let lapsing = lapsing["id"].as_str().unwrap().to_owned();
    admin(
        &gw,
        "POST",
        &format!("/admin/v1/consumers/{lapsing}/payment-methods"),
        json!({"number": "4242424242424242", "exp_month": 12, "exp_year": 2099,
               "cvc": "123", "make_default": true}),
    )
    .await;
    let sub = admin(
        &gw,
        "POST",
        "/admin/v1/subscriptions",
        json!({"consumer_id": lapsing, "plan_id": priced, "auto_renew": false}),
    )
    .await;
    assert_eq!(sub["status"], "active", "{sub}");
    let now = Utc::now();
    let period_end: DateTime<Utc> = sub["current_period_end"].as_str().unwrap().parse().unwrap();
    // The default card expires with the month holding `period_end - 3 days`:
    // its last moment is after `period_end - 3 days` and at most 31 days
    // later, so a moment inside both the subscription's 7-day and the card's
    // 30-day windows always exists (`later`), a year from now.
    let card_month = period_end - Duration::days(3);
    let card = admin(
        &gw,
        "POST",
        &format!("/admin/v1/consumers/{lapsing}/payment-methods"),
        json!({"number": "4242424242424242", "exp_month": card_month.month(),
               "exp_year": card_month.year(), "cvc": "123", "make_default": true}),
    )
    .await;
    let card_end = NaiveDate::from_ymd_opt(card_month.year(), card_month.month(), 1)
        .unwrap()
        .checked_add_months(Months::new(1))
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert!(card_end > period_end - Duration::days(3), "{card}");

    // A renewal that failed: the first charge of a card without funds.
    let poor = admin(
        &gw,
        "POST",
        "/admin/v1/consumers",
        json!({"team_id": team, "name": "Poor"}),
    )
    .await;
    let poor = poor["id"].as_str().unwrap().to_owned();
    admin(
        &gw,
        "POST",
        &format!("/admin/v1/consumers/{poor}/payment-methods"),
        json!({"number": "4000000000009995", "exp_month": 12, "exp_year": 2031, "cvc": "123", "make_default": true}),
    )
    .await;
    admin(
        &gw,
        "POST",
        "/admin/v1/subscriptions",
        json!({"consumer_id": poor, "plan_id": priced}),
    )
    .await;

    // A wallet that pays for calls, low and burning fast.
    let metered = metered_plan(&gw, "Metered", "USD").await;
    let (spender, spender_key) =
        subscribed_consumer(&gw, &team, "Spender", &metered, "USD", "0.20").await;
    assert_eq!(chat(&gw, &spender_key).await, 200);

    // A provider key refused as spent.
    provider_with_key(
        &gw,
        &sim,
        "Spent",
        "USD",
        json!([{"name": "sim-large", "input_price": "1", "output_price": "1"}]),
        "sim-key-fail-402",
    )
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&spender_key)
        .json(&json!({"model": "sim-large", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);

    // Now: the failed renewal, the low and fast-burning wallet, the spent
    // key (and the lint: its provider has no usable key left).
    let first = console.evaluate_alerts(&id, now, Scope::All).await.unwrap();
    assert_eq!(
        rules_of(&first.raised),
        vec![
            AlertRule::BalanceRunOut,
            AlertRule::ConfigLint,
            AlertRule::LowBalance,
            AlertRule::ProviderKeyExhausted,
            AlertRule::RenewalFailed,
        ],
        "{:#?}",
        first.raised
    );
    let failed = first
        .raised
        .iter()
        .find(|a| a.rule == AlertRule::RenewalFailed)
        .unwrap();
    assert_eq!(failed.consumer_id.as_deref(), Some(poor.as_str()));
    assert_eq!(failed.severity, Severity::Error);
    assert!(
        failed.title.contains("insufficient_funds"),
        "{}",
        failed.title
    );
    let low = first
        .raised
        .iter()
        .find(|a| a.rule == AlertRule::LowBalance)
        .unwrap();
    assert_eq!(low.consumer_id.as_deref(), Some(spender.as_str()));
    // Each new alert was announced once.
    let mut heard = Vec::new();
    while let Ok(a) = notified.try_recv() {
        heard.push(a.id);
    }
    let mut raised_ids: Vec<i64> = first.raised.iter().map(|a| a.id).collect();
    raised_ids.sort();
    heard.sort();
    assert_eq!(heard, raised_ids);

    // Evaluated again, the same situations raise nothing.
    let again = console
        .evaluate_alerts(&id, now + Duration::minutes(5), Scope::All)
        .await
        .unwrap();
    assert!(again.raised.is_empty(), "{:#?}", again.raised);
    assert!(notified.try_recv().is_err());

    // Near the period's end (the test's clock): the subscription ends within
    // 7 days and will not renew, the card expires within 30 — raised once each.
    let later =
        (period_end - Duration::days(7)).max(card_end - Duration::days(30)) + Duration::hours(1);
    assert!(later + Duration::hours(5) < period_end.min(card_end));
    let moved = console
        .evaluate_alerts(&id, later, Scope::All)
        .await
        .unwrap();
    assert_eq!(
        rules_of(&moved.raised),
        vec![AlertRule::CardExpiring, AlertRule::SubscriptionExpiring],
        "{:#?}",
        moved.raised
    );
    let expiring = moved
        .raised
        .iter()
        .find(|a| a.rule == AlertRule::SubscriptionExpiring)
        .unwrap();
    assert!(
        expiring.detail.contains("auto-renew is off"),
        "{}",
        expiring.detail
    );
    let repeated = console
        .evaluate_alerts(&id, later + Duration::hours(1), Scope::All)
        .await
        .unwrap();
    assert!(repeated.raised.is_empty(), "{:#?}", repeated.raised);

    // Snoozed, it stays quiet until its time, then opens once more.
    let card = moved
        .raised
        .iter()
        .find(|a| a.rule == AlertRule::CardExpiring)
        .unwrap();
    let snoozed = console
        .snooze_alert(card.id, later + Duration::hours(2), later)
        .unwrap();
    assert_eq!(snoozed.state, AlertState::Snoozed);
    let quiet = console
        .evaluate_alerts(&id, later + Duration::hours(1), Scope::All)
        .await
        .unwrap();
    assert!(quiet.raised.is_empty());
    let woke = console
        .evaluate_alerts(&id, later + Duration::hours(3), Scope::All)
        .await
        .unwrap();
    assert_eq!(
        woke.raised.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![card.id]
    );
    let after = console
        .evaluate_alerts(&id, later + Duration::hours(4), Scope::All)
        .await
        .unwrap();
    assert!(after.raised.is_empty());
    // A snooze too short or too long is refused.
    assert_eq!(
        console
            .snooze_alert(card.id, later + Duration::minutes(5), later)
            .unwrap_err()
            .code(),
        "validation"
    );

    // Resolved, it is not raised again while the situation lasts.
    let resolved = console.resolve_alert(card.id, later).unwrap();
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(
        resolved.resolution.as_deref(),
        Some("resolved by the admin")
    );
    let still = console
        .evaluate_alerts(&id, later + Duration::hours(5), Scope::All)
        .await
        .unwrap();
    assert!(still.raised.is_empty());
    let open = console.list_alerts(Some(&id), false).unwrap();
    assert!(open.iter().all(|a| a.state != AlertState::Resolved));
    assert!(!open.iter().any(|a| a.id == card.id));
    assert!(
        console
            .list_alerts(None, true)
            .unwrap()
            .iter()
            .any(|a| a.id == card.id)
    );

    // A change made from the console that breaks the plans is linted at once…
    while notified.try_recv().is_ok() {}
    let plan: tollgate_api::Plan = serde_json::from_value(
        admin(
            &gw,
            "GET",
            &format!("/admin/v1/plans/{metered}"),
            Value::Null,
        )
        .await,
    )
    .unwrap();
    let broken = console
        .update_plan(
            &id,
            &metered,
            UpdatePlan {
                overage: Some(tollgate_api::OveragePolicy::Block),
                ..Default::default()
            },
            plan.version,
        )
        .await
        .unwrap();
    let lint: Vec<_> = console
        .list_alerts(Some(&id), false)
        .unwrap()
        .into_iter()
        .filter(|a| {
            a.rule == AlertRule::ConfigLint && a.target.as_deref() == Some(metered.as_str())
        })
        .collect();
    assert_eq!(lint.len(), 1, "{lint:#?}");
    assert!(
        lint[0].title.contains("includes no credits"),
        "{}",
        lint[0].title
    );
    assert_eq!(lint[0].target.as_deref(), Some(metered.as_str()));
    assert_eq!(notified.try_recv().unwrap().id, lint[0].id);
    // …and cleared when the change is undone.
    console
        .update_plan(
            &id,
            &metered,
            UpdatePlan {
                overage: Some(tollgate_api::OveragePolicy::ChargeWallet),
                ..Default::default()
            },
            broken.version,
        )
        .await
        .unwrap();
    let lint = console
        .list_alerts(Some(&id), true)
        .unwrap()
        .into_iter()
        .find(|a| a.rule == AlertRule::ConfigLint && a.target.as_deref() == Some(metered.as_str()))
        .unwrap();
    assert_eq!(lint.state, AlertState::Resolved);
    assert_eq!(
        lint.resolution.as_deref(),
        Some("cleared: the situation is gone")
    );

    // Rules turned off raise nothing; bad rules are refused with the field.
    let off = AlertRules {
        low_balance: String::new(),
        run_out_days: 0,
        ..AlertRules::default()
    };
    assert_eq!(console.set_alert_rules(&id, off.clone()).unwrap(), off);
    let bad = AlertRules {
        low_balance: "-1".into(),
        card_expiring_days: 1000,
        ..AlertRules::default()
    };
    let err = console.set_alert_rules(&id, bad).unwrap_err().to_string();
    assert!(
        err.contains("low_balance") && err.contains("card_expiring_days"),
        "{err}"
    );
    assert_eq!(console.alert_rules(&id).unwrap(), off);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rising_402_rate_is_raised_from_the_cache() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start("alerts-402");
    simulated_provider(
        &gw,
        &format!("http://{sim}"),
        "Sim",
        "USD",
        json!([{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]),
    )
    .await;
    let team = admin(&gw, "POST", "/admin/v1/teams", json!({"name": "Rate"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let metered = metered_plan(&gw, "Metered", "USD").await;
    let (_, key) = subscribed_consumer(&gw, &team, "Broke", &metered, "USD", "0").await;
    for _ in 0..6 {
        assert_eq!(chat(&gw, &key).await, 402);
    }
    let (console, _data, id) = console_with(&gw, "Rate").await;
    let mut synced = 0;
    for _ in 0..100 {
        synced += console.sync_logs(&id, |_| {}).await.unwrap().inserted;
        if synced >= 6 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let report = console
        .evaluate_alerts(&id, Utc::now(), Scope::All)
        .await
        .unwrap();
    let rising: Vec<_> = report
        .raised
        .iter()
        .filter(|a| a.rule == AlertRule::Rising402)
        .collect();
    assert_eq!(rising.len(), 1, "{:#?}", report.raised);
    assert!(rising[0].title.contains("6 of 6"), "{}", rising[0].title);
    let again = console
        .evaluate_alerts(&id, Utc::now(), Scope::All)
        .await
        .unwrap();
    assert!(!again.raised.iter().any(|a| a.rule == AlertRule::Rising402));
}
