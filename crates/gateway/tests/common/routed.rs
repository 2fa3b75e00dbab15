//! A gateway with a team, and the simulated provider (a test fixture) to
//! route to: the setup of the tests of routed calls and of the call log.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Gateway, client};

pub struct Setup {
    pub gw: Gateway,
    pub sim: String,
    pub team: String,
}

impl Setup {
    pub async fn new() -> Setup {
        Setup::with("").await
    }

    /// With extra settings (TOML lines).
    pub async fn with(settings: &str) -> Setup {
        let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let gw = Gateway::start_with(&format!("price_per_request = \"0\"\n{settings}"));
        let mut s = Setup {
            gw,
            sim: format!("http://{sim}"),
            team: String::new(),
        };
        s.team = s
            .admin(
                "POST",
                "/admin/v1/teams",
                json!({"name": "T"}),
                StatusCode::CREATED,
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        s
    }

    pub async fn admin(&self, method: &str, path: &str, body: Value, status: StatusCode) -> Value {
        let mut req = client()
            .request(method.parse().unwrap(), self.gw.url(path))
            .bearer_auth(&self.gw.token);
        if !body.is_null() {
            req = req.json(&body);
        }
        if path.contains("/wallets/") {
            req = req.header("Idempotency-Key", format!("{:x}", rand_id()));
        }
        let resp = req.send().await.unwrap();
        let got = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }

    /// A provider (of `kind`) of the simulator serving `models` (name, fallback), with
    /// `keys` in priority order; returns its id.
    pub async fn provider(
        &self,
        kind: &str,
        name: &str,
        models: &[(&str, Option<&str>)],
        keys: &[&str],
        timeout: u32,
    ) -> String {
        let models: Vec<Value> = models
            .iter()
            .map(|(m, fallback)| {
                json!({"name": m, "input_price": "1000", "output_price": "2000", "fallback": fallback})
            })
            .collect();
        let p = self
            .admin(
                "POST",
                "/admin/v1/providers",
                json!({"name": name, "kind": kind, "base_url": format!("{}/v1", self.sim),
                       "models": models, "timeout_secs": timeout}),
                StatusCode::CREATED,
            )
            .await;
        let id = p["id"].as_str().unwrap().to_owned();
        for (i, key) in keys.iter().enumerate() {
            self.admin(
                "POST",
                &format!("/admin/v1/providers/{id}/keys"),
                json!({"label": format!("key {i}"), "secret": key, "priority": i}),
                StatusCode::CREATED,
            )
            .await;
        }
        id
    }

    /// A consumer on a wallet-charging plan (covering `models`, or all when
    /// empty) with 10 USD; returns (consumer id, key).
    pub async fn consumer(&self, name: &str, models: &[&str]) -> (String, String) {
        self.consumer_on(
            name,
            json!({"name": format!("Plan {name}"), "currency": "USD", "price": "0", "period": "month",
                   "overage": "charge_wallet", "apis": ["chat"], "models": models}),
        )
        .await
    }

    /// A consumer with 10 USD on the plan `plan`; returns (consumer id, key).
    pub async fn consumer_on(&self, name: &str, plan: Value) -> (String, String) {
        let (consumer, key) = self.gw.subscribed_consumer(&self.team, name, plan).await;
        self.gw.top_up(&consumer, "10").await;
        (consumer, key)
    }

    pub async fn call(&self, key: &str, model: &str) -> reqwest::Response {
        client()
            .post(self.gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}))
            .send()
            .await
            .unwrap()
    }

    pub async fn balance(&self, consumer: &str) -> String {
        let wallets = self
            .admin(
                "GET",
                &format!("/admin/v1/consumers/{consumer}/wallets"),
                Value::Null,
                StatusCode::OK,
            )
            .await;
        wallets[0]["balance"].as_str().unwrap().to_owned()
    }

    /// The id of the `index`th key (in pool order) of the provider named `name`.
    pub async fn key_id_of(&self, name: &str, index: usize) -> String {
        let providers = self
            .admin("GET", "/admin/v1/providers", Value::Null, StatusCode::OK)
            .await;
        let id = providers["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let keys = self
            .admin(
                "GET",
                &format!("/admin/v1/providers/{id}/keys"),
                Value::Null,
                StatusCode::OK,
            )
            .await;
        keys[index]["id"].as_str().unwrap().to_owned()
    }

    /// The OpenAPI document of the prompt APIs served now.
    pub async fn prompt_docs(&self) -> Value {
        let resp = client()
            .get(self.gw.url("/apis/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    pub async fn client_reset(&self) {
        let resp = client()
            .post(format!("{}/sim/reset", self.sim))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    pub async fn sim_stats(&self) -> Value {
        client()
            .get(format!("{}/sim/stats", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The statuses of a provider's keys, in pool order, once the gateway
    /// has recorded its findings (they are written off the call's path).
    pub async fn statuses_become(&self, provider: &str, expected: &[&str]) -> Value {
        let mut keys = Value::Null;
        for _ in 0..100 {
            keys = self
                .admin(
                    "GET",
                    &format!("/admin/v1/providers/{provider}/keys"),
                    Value::Null,
                    StatusCode::OK,
                )
                .await;
            let now: Vec<&str> = keys
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["status"].as_str().unwrap())
                .collect();
            if now == expected {
                return keys;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("key statuses never became {expected:?}: {keys}");
    }
}

pub fn rand_id() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub async fn problem(resp: reqwest::Response, status: StatusCode, reason: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reason"], reason, "{body}");
    body
}
