//! The gateway's management API as the integration tests drive it to set
//! up traffic (providers of the simulated upstream, consumers on metered
//! plans) and to read back what the gateway itself says.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tollgate_api::{CallLog, CallStats};

use super::Gateway;

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// One admin call, which must succeed; answers its JSON body.
pub async fn admin(gw: &Gateway, method: &str, path: &str, body: Value) -> Value {
    let mut req = http()
        .request(method.parse().unwrap(), format!("{}{path}", gw.base))
        .bearer_auth(&gw.token)
        .header("Idempotency-Key", ulid::Ulid::new().to_string());
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {body}");
    body
}

/// A provider of the simulated upstream (a test fixture) at `sim`, with
/// `models` priced in `currency` and one good key.
pub async fn simulated_provider(
    gw: &Gateway,
    sim: &str,
    name: &str,
    currency: &str,
    models: Value,
) {
    provider_with_key(gw, sim, name, currency, models, "sim-key-good-0042").await;
}

/// A provider at `sim` with one key whose `secret` tells the simulated
/// upstream how to answer (`sim-key-fail-402`: as a spent account); answers
/// the key as the gateway shows it.
pub async fn provider_with_key(
    gw: &Gateway,
    sim: &str,
    name: &str,
    currency: &str,
    models: Value,
    secret: &str,
) -> Value {
    let p = admin(
        gw,
        "POST",
        "/admin/v1/providers",
        json!({"name": name, "kind": "openai-compatible", "base_url": format!("{sim}/v1"),
               "currency": currency, "models": models}),
    )
    .await;
    admin(
        gw,
        "POST",
        &format!("/admin/v1/providers/{}/keys", p["id"].as_str().unwrap()),
        json!({"label": name.to_lowercase(), "secret": secret}),
    )
    .await
}

/// A plan for `chat` whose overage is charged to the wallet; answers its id.
pub async fn metered_plan(gw: &Gateway, name: &str, currency: &str) -> String {
    admin(
        gw,
        "POST",
        "/admin/v1/plans",
        json!({"name": name, "currency": currency, "price": "0", "period": "month",
               "overage": "charge_wallet", "apis": ["chat"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A consumer of `team` with a key, subscribed to `plan`, its `currency`
/// wallet topped up by `top_up` (none for "0"); answers (id, key).
pub async fn subscribed_consumer(
    gw: &Gateway,
    team: &str,
    name: &str,
    plan: &str,
    currency: &str,
    top_up: &str,
) -> (String, String) {
    let c = admin(
        gw,
        "POST",
        "/admin/v1/consumers",
        json!({"team_id": team, "name": name}),
    )
    .await;
    let cid = c["id"].as_str().unwrap().to_owned();
    let key = admin(
        gw,
        "POST",
        &format!("/admin/v1/consumers/{cid}/keys"),
        json!({"name": "k"}),
    )
    .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(
        gw,
        "POST",
        "/admin/v1/subscriptions",
        json!({"consumer_id": cid, "plan_id": plan}),
    )
    .await;
    if top_up != "0" {
        admin(
            gw,
            "POST",
            &format!("/admin/v1/consumers/{cid}/wallets/{currency}/entries"),
            json!({"kind": "top_up", "amount": top_up}),
        )
        .await;
    }
    (cid, key)
}

/// Every record of the gateway's log, through the bulk export.
pub async fn gateway_records(gw: &Gateway) -> Vec<CallLog> {
    let mut out: Vec<CallLog> = Vec::new();
    loop {
        let after = out.last().map_or(0, |l| l.seq);
        let text = http()
            .get(format!(
                "{}/admin/v1/logs/export?after={after}&limit=5000",
                gw.base
            ))
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let page: Vec<CallLog> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let n = page.len();
        out.extend(page);
        if n < 5000 {
            return out;
        }
    }
}

/// The gateway's own per-minute stats over `[from, to)`.
pub async fn gateway_stats(gw: &Gateway, from: DateTime<Utc>, to: DateTime<Utc>) -> CallStats {
    let resp = http()
        .get(format!("{}/admin/v1/logs/stats", gw.base))
        .query(&[
            ("from", from.to_rfc3339()),
            ("to", to.to_rfc3339()),
            ("bucket", "minute".into()),
        ])
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "stats: {}", resp.status());
    resp.json().await.unwrap()
}
