//! Payment settings (credentials sealed at rest), the billing check, and the
//! 503 `billing-unavailable` answer when the gateway's own settings are broken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, client, fields, pluck};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn codes(check: &Value) -> Vec<&str> {
    pluck(&check["findings"], "code")
}

#[tokio::test]
async fn credentials_are_sealed_and_settings_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gw = Gateway::start_in(&dir);
    let initial = gw
        .send(
            "GET",
            "/admin/v1/billing/settings",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (
            initial["processor"].as_str(),
            initial["credentials_set"].as_bool(),
            initial["grace_days"].as_u64()
        ),
        (Some("test"), Some(false), Some(3))
    );

    let secret = "sk_test_51TollgateSecretValue9876";
    let saved = gw
        .send_with(
            &gw.token,
            "PUT",
            "/admin/v1/billing/settings",
            json!({"credentials": secret, "grace_days": 5}),
            &[("If-Match", "\"0\"")],
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (
            saved["credentials_set"].as_bool(),
            saved["credentials_last4"].as_str(),
            saved["version"].as_i64()
        ),
        (Some(true), Some("9876"), Some(1))
    );
    assert!(!saved.to_string().contains(secret));
    gw.send_with(
        &gw.token,
        "PUT",
        "/admin/v1/billing/settings",
        json!({"grace_days": 1}),
        &[("If-Match", "\"0\"")],
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    let bad = gw
        .send(
            "PUT",
            "/admin/v1/billing/settings",
            json!({"processor": "stripe", "grace_days": 91, "accepted_currencies": ["usd"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    let fields = fields(&bad);
    assert_eq!(
        fields,
        vec!["processor", "accepted_currencies.0", "grace_days"]
    );

    let check = gw
        .send(
            "POST",
            "/admin/v1/billing/check",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert!(!codes(&check).contains(&"credentials-unreadable"));
    assert!(
        !common::stored_holds(&dir, secret.as_bytes()),
        "credentials in clear"
    );
    drop(gw);

    // The same key file after a restart: readable.
    let gw = Gateway::start_in(&dir);
    let check = gw
        .send(
            "POST",
            "/admin/v1/billing/check",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert!(!codes(&check).contains(&"credentials-unreadable"));
    drop(gw);
    // Another key cannot open what this one sealed: the gateway refuses to
    // start, saying so, rather than failing calls later.
    let other_key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let mut command = std::process::Command::new(common::BIN);
    if let Some(url) = common::database_url(&dir) {
        command.env("TOLLGATE_DATABASE_URL", url);
    }
    let out = command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("TOLLGATE_ENCRYPTION_KEY", other_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("encryption key is not the one"), "{err}");
    assert!(!err.contains(other_key), "the key leaked: {err}");

    // A database from before the key check (no sample kept): the gateway
    // starts with the other key, and the check flags the credentials it
    // cannot open.
    let forget = "DELETE FROM meta WHERE key = 'key_check'";
    match common::database_url(&dir) {
        Some(url) => {
            tollgate_test_postgres::psql(&url, forget);
        }
        None => {
            rusqlite::Connection::open(dir.join("tollgate.db"))
                .unwrap()
                .execute(forget, [])
                .unwrap();
        }
    }
    let gw = Gateway::spawn_env(&dir, &[], &[("TOLLGATE_ENCRYPTION_KEY", other_key)]);
    let check = gw
        .send(
            "POST",
            "/admin/v1/billing/check",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert!(codes(&check).contains(&"credentials-unreadable"));
    assert_eq!(check["ok"], false);
}

#[tokio::test]
async fn the_check_finds_misconfigurations_and_broken_settings_answer_503() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start_with(&format!(
        "upstream_url = \"http://{sim}/v1\"\nprice_per_request = \"0.01\"\n"
    ));
    let team = gw
        .send(
            "POST",
            "/admin/v1/teams",
            json!({"name": "T"}),
            StatusCode::CREATED,
        )
        .await;
    let consumer = gw
        .send(
            "POST",
            "/admin/v1/consumers",
            json!({"team_id": team["id"], "name": "C"}),
            StatusCode::CREATED,
        )
        .await;
    let cid = consumer["id"].as_str().unwrap();
    let key = gw
        .send(
            "POST",
            &format!("/admin/v1/consumers/{cid}/keys"),
            json!({"name": "k"}),
            StatusCode::CREATED,
        )
        .await;
    let key = key["secret"].as_str().unwrap().to_owned();
    let euro = gw
        .send(
            "POST",
            "/admin/v1/plans",
            json!({"name": "Euro", "currency": "EUR", "price": "0", "period": "month",
        "overage": "charge_wallet", "apis": ["chat"]}),
            StatusCode::CREATED,
        )
        .await;
    gw.send(
        "POST",
        "/admin/v1/plans",
        json!({"name": "Nothing", "currency": "USD", "price": "10", "period": "month",
        "overage": "block", "apis": ["chat"]}),
        StatusCode::CREATED,
    )
    .await;
    gw.send(
        "POST",
        "/admin/v1/subscriptions",
        json!({"consumer_id": cid, "plan_id": euro["id"]}),
        StatusCode::CREATED,
    )
    .await;
    gw.send_with(
        &gw.token,
        "POST",
        &format!("/admin/v1/consumers/{cid}/wallets/EUR/entries"),
        json!({"kind": "top_up", "amount": "1"}),
        &[("Idempotency-Key", "t1")],
        StatusCode::CREATED,
    )
    .await;

    let call = || {
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);

    gw.send(
        "PUT",
        "/admin/v1/billing/settings",
        json!({"accepted_currencies": ["USD"], "processor": "none"}),
        StatusCode::OK,
    )
    .await;
    let check = gw
        .send(
            "POST",
            "/admin/v1/billing/check",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        codes(&check),
        vec![
            "currency-not-accepted",
            "processor-missing",
            "plan-grants-nothing"
        ]
    );
    assert_eq!(check["findings"][0]["target"], euro["id"]);
    assert!(
        check["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("accepted currencies")
    );
    assert_eq!(check["ok"], false);

    let resp = call().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "60");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], "billing-unavailable");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("admins have been alerted")
    );
    let check = gw
        .send(
            "POST",
            "/admin/v1/billing/check",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(check["billing_unavailable_count"], 1);
    assert!(check["billing_unavailable_last"].is_string());
    let wallets = gw
        .send(
            "GET",
            &format!("/admin/v1/consumers/{cid}/wallets"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        wallets[0]["balance"], "0.99",
        "the refused call cost nothing"
    );
}
