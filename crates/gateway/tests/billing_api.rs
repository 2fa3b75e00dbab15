//! Plans, wallets and the ledger through the management API of a real `tollgated`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, client, expect, fields, pluck};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn plans_are_validated_versioned_and_need_the_billing_scope() {
    let gw = Gateway::start();
    let http = client();
    let post = |token: &str, body: Value| {
        http.post(gw.url("/admin/v1/plans"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let pro = json!({"name": "Pro", "currency": "USD", "price": "49.00", "period": "month", "included_credits": "20",
        "overage": "charge_wallet", "approval_required": true, "apis": ["chat"], "models": ["gpt-4o-mini"],
        "rate_limits": {"requests_per_minute": 600}});

    let writer = gw.create_token("writer", "read,write");
    let refused = expect(
        post(&writer, pro.clone()).await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("`billing`"));

    let plan = expect(
        post(&gw.token, pro.clone()).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (plan["price"].as_str(), plan["included_credits"].as_str()),
        (Some("49.00"), Some("20.00"))
    );
    assert_eq!(plan["rate_limits"]["requests_per_minute"], 600);
    assert!(plan["rate_limits"].get("tokens_per_minute").is_none());
    expect(
        post(&gw.token, pro.clone()).await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;

    let bad = json!({"name": "", "currency": "usd", "price": "-1", "period": "month", "included_credits": "1e3",
        "overage": "block", "apis": ["Chat API"], "rate_limits": {"requests_per_minute": 0}});
    let problem = expect(
        post(&gw.token, bad).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        fields(&problem),
        vec![
            "name",
            "currency",
            "price",
            "included_credits",
            "apis.0",
            "rate_limits.requests_per_minute"
        ]
    );
    let too_fine = json!({"name": "Fine", "currency": "USD", "price": "9.999", "period": "none", "overage": "block"});
    assert_eq!(
        fields(
            &expect(
                post(&gw.token, too_fine).await.unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY
            )
            .await
        ),
        vec!["price"]
    );
    let yen = json!({"name": "Yen", "currency": "JPY", "price": "500.5", "period": "month", "overage": "block"});
    assert_eq!(
        fields(
            &expect(
                post(&gw.token, yen).await.unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY
            )
            .await
        ),
        vec!["price"]
    );
    // A plan in a currency without minor units is shown as `"500.00"` and
    // still takes an edit that leaves its price alone.
    let yen = json!({"name": "Yen", "currency": "JPY", "price": "500", "period": "month", "overage": "block"});
    let yen = expect(post(&gw.token, yen).await.unwrap(), StatusCode::CREATED).await;
    let yen_url = gw.url(&format!("/admin/v1/plans/{}", yen["id"].as_str().unwrap()));
    let patch_yen = |body: Value| {
        http.patch(&yen_url)
            .bearer_auth(&gw.token)
            .json(&body)
            .send()
    };
    let renamed = expect(
        patch_yen(json!({"name": "Yen monthly"})).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&renamed["name"], &renamed["price"]),
        (&json!("Yen monthly"), &yen["price"])
    );
    // A body is an object: serde would read `[]` as a plan change that
    // changes nothing.
    let refused = expect(patch_yen(json!([])).await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("JSON object"),
        "{refused}"
    );
    let free = json!({"name": "Free", "currency": "EUR", "price": "0", "period": "none", "overage": "block"});
    let free = expect(post(&gw.token, free).await.unwrap(), StatusCode::CREATED).await;
    assert_eq!(
        (free["price"].as_str(), free["approval_required"].as_bool()),
        (Some("0.00"), Some(false))
    );

    let url = gw.url(&format!("/admin/v1/plans/{}", plan["id"].as_str().unwrap()));
    let patch = |etag: &'static str, body: Value| {
        http.patch(&url)
            .bearer_auth(&gw.token)
            .header("If-Match", etag)
            .json(&body)
            .send()
    };
    let updated = expect(
        patch("\"1\"", json!({"price": "59"})).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            updated["price"].as_str(),
            updated["version"].as_i64(),
            updated["currency"].as_str()
        ),
        (Some("59.00"), Some(2), Some("USD"))
    );
    expect(
        patch("\"1\"", json!({"price": "69"})).await.unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    let immutable = expect(
        patch("\"2\"", json!({"currency": "EUR"})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&immutable), vec!["currency"]);
    expect(
        patch("\"2\"", json!({"price": "abc"})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let listed = expect(
        http.get(gw.url("/admin/v1/plans"))
            .bearer_auth(&writer)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    let deleted = http
        .delete(&url)
        .bearer_auth(&gw.token)
        .header("If-Match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_ledger_is_idempotent_append_only_and_sums_to_the_balance() {
    let gw = Gateway::start();
    let http = client();
    let team = expect(
        http.post(gw.url("/admin/v1/teams"))
            .bearer_auth(&gw.token)
            .json(&json!({"name": "T"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let consumer = expect(
        http.post(gw.url("/admin/v1/consumers"))
            .bearer_auth(&gw.token)
            .json(&json!({"team_id": team["id"], "name": "App"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let cid = consumer["id"].as_str().unwrap().to_owned();
    let entries = gw.url(&format!("/admin/v1/consumers/{cid}/wallets/USD/entries"));
    let write = |token: &str, key: Option<&str>, body: Value| {
        let mut req = http.post(&entries).bearer_auth(token).json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send()
    };

    let top_up = expect(
        write(
            &gw.token,
            Some("t-1"),
            json!({"kind": "top_up", "amount": "10.00"}),
        )
        .await
        .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (top_up["amount"].as_str(), top_up["balance_after"].as_str()),
        (Some("10.00"), Some("10.00"))
    );
    // The same write again, by the same token (answer replayed) or another (the ledger's own key), moves no money.
    let replay = write(
        &gw.token,
        Some("t-1"),
        json!({"kind": "top_up", "amount": "10.00"}),
    )
    .await
    .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let other_token = gw.create_token("billing-bot", "read,billing");
    let again = expect(
        write(
            &other_token,
            Some("t-1"),
            json!({"kind": "top_up", "amount": "10.00"}),
        )
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["id"], top_up["id"]);
    // The same key for a different entry is refused by the answer cache and by the ledger itself.
    expect(
        write(
            &other_token,
            Some("t-1"),
            json!({"kind": "top_up", "amount": "99.00"}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let third = gw.create_token("third", "billing");
    let reused = expect(
        write(
            &third,
            Some("t-1"),
            json!({"kind": "top_up", "amount": "99.00"}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        reused["type"]
            .as_str()
            .unwrap()
            .ends_with("/problems/idempotency-key-reused")
    );

    let missing_key = expect(
        write(&gw.token, None, json!({"kind": "top_up", "amount": "1"}))
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&missing_key), vec!["Idempotency-Key"]);
    let bad = expect(
        write(
            &gw.token,
            Some("b-1"),
            json!({"kind": "adjustment", "amount": "0.001"}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), vec!["amount", "reason"]);
    let usage = expect(
        write(
            &gw.token,
            Some("b-2"),
            json!({"kind": "usage", "amount": "-1"}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&usage), vec!["kind"]);
    expect(
        write(
            &gw.token,
            Some("b-3"),
            json!({"kind": "grant", "amount": "-5"}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let overdraw = expect(
        write(
            &gw.token,
            Some("b-4"),
            json!({"kind": "adjustment", "amount": "-10.01", "reason": "typo"}),
        )
        .await
        .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(overdraw["detail"].as_str().unwrap().contains("below zero"));
    let bad_currency = http
        .post(gw.url(&format!("/admin/v1/consumers/{cid}/wallets/usd/entries")))
        .bearer_auth(&gw.token)
        .header("Idempotency-Key", "c-1")
        .json(&json!({"kind": "top_up", "amount": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        fields(&expect(bad_currency, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["currency"]
    );

    expect(
        write(
            &gw.token,
            Some("g-1"),
            json!({"kind": "grant", "amount": "2.5", "reason": "welcome"}),
        )
        .await
        .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    expect(
        write(
            &gw.token,
            Some("a-1"),
            json!({"kind": "adjustment", "amount": "-0.25", "reason": "correction"}),
        )
        .await
        .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    expect(
        write(
            &gw.token,
            Some("r-1"),
            json!({"kind": "refund", "amount": "1.10", "reason": "outage credit"}),
        )
        .await
        .unwrap(),
        StatusCode::CREATED,
    )
    .await;

    let wallets = expect(
        http.get(gw.url(&format!("/admin/v1/consumers/{cid}/wallets")))
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(wallets[0]["balance"], "13.35");
    assert_eq!(wallets[0]["available"], "13.35");
    assert_eq!(wallets[0]["entries"], 4);
    let ledger = expect(
        http.get(&entries)
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let items = ledger["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec!["refund", "adjustment", "grant", "top_up"],
        "newest first"
    );
    let sum: i64 = items
        .iter()
        .map(|e| tollgate_api::money::parse_amount(e["amount"].as_str().unwrap()).unwrap())
        .sum();
    assert_eq!(
        sum,
        tollgate_api::money::parse_amount("13.35").unwrap(),
        "the ledger sums to the balance"
    );
    assert_eq!(items[0]["balance_after"], "13.35");
    let info = expect(
        http.get(gw.url("/admin/v1/info"))
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        items[0]["actor"], info["token"]["id"],
        "each entry names the admin token that wrote it"
    );

    // Money history is kept: the consumer cannot be deleted, only suspended.
    let refused = expect(
        http.delete(gw.url(&format!("/admin/v1/consumers/{cid}")))
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("suspend"));
    let audit = expect(
        http.get(gw.url("/admin/v1/audit"))
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let actions: Vec<&str> = pluck(&audit["items"], "action");
    assert_eq!(
        &actions[..4],
        &[
            "wallet.refund",
            "wallet.adjustment",
            "wallet.grant",
            "wallet.top_up"
        ]
    );
}
