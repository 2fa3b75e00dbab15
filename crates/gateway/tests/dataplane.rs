//! The data plane's answers, one test per answer: status, headers and every
//! body field, against a real `tollgated` forwarding to the simulated provider
//! (a test fixture).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Setup {
    gw: Gateway,
    http: reqwest::Client,
    team: String,
}

impl Setup {
    /// A gateway forwarding to a fresh simulated provider; `extra` is more TOML.
    async fn new(extra: &str) -> Setup {
        let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Setup::new_with_upstream(&format!("upstream_url = \"http://{sim}/v1\"\n{extra}")).await
    }

    /// A gateway whose upstream (or lack of one) is given in `config`.
    async fn new_with_upstream(config: &str) -> Setup {
        let gw = Gateway::start_with(&format!(
            "price_per_request = \"0.01\"\nprice_per_1k_tokens = \"0\"\n{config}\n"
        ));
        let http = client();
        let mut s = Setup {
            gw,
            http,
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

    async fn admin(&self, method: &str, path: &str, body: Value, status: StatusCode) -> Value {
        let mut req = self
            .http
            .request(method.parse().unwrap(), self.gw.url(path))
            .bearer_auth(&self.gw.token);
        if !body.is_null() {
            req = req.json(&body);
        }
        if path.contains("/wallets/") {
            req = req.header("Idempotency-Key", ulid_like());
        }
        let resp = req.send().await.unwrap();
        let got = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }

    /// A consumer with a key; returns (consumer id, key secret, key id).
    async fn consumer(&self, name: &str) -> (String, String, String) {
        let c = self
            .admin(
                "POST",
                "/admin/v1/consumers",
                json!({"team_id": self.team, "name": name}),
                StatusCode::CREATED,
            )
            .await;
        let id = c["id"].as_str().unwrap().to_owned();
        let k = self
            .admin(
                "POST",
                &format!("/admin/v1/consumers/{id}/keys"),
                json!({"name": "k"}),
                StatusCode::CREATED,
            )
            .await;
        (
            id,
            k["secret"].as_str().unwrap().to_owned(),
            k["key"]["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn plan(&self, name: &str, extra: Value) -> String {
        let mut plan = json!({"name": name, "currency": "USD", "price": "0", "period": "month", "included_credits": "0",
            "overage": "charge_wallet", "apis": ["chat"]});
        plan.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.admin("POST", "/admin/v1/plans", plan, StatusCode::CREATED)
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn subscribe(&self, consumer: &str, plan: &str) -> Value {
        self.admin(
            "POST",
            "/admin/v1/subscriptions",
            json!({"consumer_id": consumer, "plan_id": plan}),
            StatusCode::CREATED,
        )
        .await
    }

    async fn top_up(&self, consumer: &str, amount: &str) {
        self.admin(
            "POST",
            &format!("/admin/v1/consumers/{consumer}/wallets/USD/entries"),
            json!({"kind": "top_up", "amount": amount}),
            StatusCode::CREATED,
        )
        .await;
    }

    /// A consumer subscribed to a fresh wallet-charging plan, its wallet
    /// topped up with 1 USD; returns (consumer id, key secret).
    async fn paying_consumer(&self, name: &str) -> (String, String) {
        let (consumer, key, _) = self.consumer(name).await;
        let plan = self.plan(&format!("Plan of {name}"), json!({})).await;
        self.subscribe(&consumer, &plan).await;
        self.top_up(&consumer, "1").await;
        (consumer, key)
    }

    /// The consumer's own `GET /v1/billing/status`, in its documented shape.
    async fn billing_status(&self, key: &str) -> tollgate_api::BillingStatus {
        let resp = self
            .http
            .get(self.gw.url("/v1/billing/status"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    async fn call(&self, key: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(self.gw.url("/v1/chat/completions"))
            .json(&json!({"model": "sim-small", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16}));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().await.unwrap()
    }
}

fn ulid_like() -> String {
    format!("{:032x}", rand_u128())
}

fn rand_u128() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u128;
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ (n << 64)
}

/// Checks the problem shape shared by every refusal and returns the body.
async fn refusal(resp: reqwest::Response, status: StatusCode, reason: &str, base: &str) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], format!("{base}/problems/{reason}"), "{body}");
    assert_eq!(body["reason"], reason);
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["request_id"], request_id.as_str());
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert_eq!(body["error"]["message"], body["detail"]);
    assert_eq!(body["error"]["code"], reason.replace('-', "_"));
    assert!(body["error"]["type"].is_string());
    body
}

#[tokio::test]
async fn authentication_answers() {
    let s = Setup::new("").await;
    let base = s.gw.base.clone();
    let resp = s.call(None).await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    refusal(resp, StatusCode::UNAUTHORIZED, "invalid-api-key", &base).await;
    refusal(
        s.call(Some("sk-not-ours")).await,
        StatusCode::UNAUTHORIZED,
        "invalid-api-key",
        &base,
    )
    .await;
    refusal(
        s.call(Some("tg_abcdefghijkl_forged")).await,
        StatusCode::UNAUTHORIZED,
        "invalid-api-key",
        &base,
    )
    .await;

    let (consumer, key, key_id) = s.consumer("A").await;
    let forged = format!("{}x", key);
    refusal(
        s.call(Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
        "invalid-api-key",
        &base,
    )
    .await;
    // x-api-key works as well as Authorization.
    let via_header = s
        .http
        .post(s.gw.url("/v1/chat/completions"))
        .header("x-api-key", &key)
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    refusal(via_header, StatusCode::FORBIDDEN, "not-subscribed", &base).await;

    let rotated = s
        .admin(
            "POST",
            &format!("/admin/v1/keys/{key_id}/rotate"),
            json!({"grace_seconds": 0}),
            StatusCode::CREATED,
        )
        .await;
    let expired = refusal(
        s.call(Some(&key)).await,
        StatusCode::UNAUTHORIZED,
        "api-key-expired",
        &base,
    )
    .await;
    assert!(expired["expires_at"].is_string());
    assert_eq!(expired["replaced_by"], rotated["key"]["id"]);
    let new_key = rotated["secret"].as_str().unwrap();
    s.admin(
        "POST",
        &format!(
            "/admin/v1/keys/{}/revoke",
            rotated["key"]["id"].as_str().unwrap()
        ),
        Value::Null,
        StatusCode::OK,
    )
    .await;
    let revoked = refusal(
        s.call(Some(new_key)).await,
        StatusCode::UNAUTHORIZED,
        "api-key-revoked",
        &base,
    )
    .await;
    assert!(revoked["revoked_at"].is_string());
    let _ = consumer;

    // Every reason has a human-readable page.
    for slug in [
        "invalid-api-key",
        "insufficient-funds",
        "subscription-past-due",
        "rate-limited",
        "billing-unavailable",
    ] {
        let page = s
            .http
            .get(format!("{base}/problems/{slug}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("<h1>"));
    }
}

#[tokio::test]
async fn subscription_answers_and_a_paid_call() {
    let s = Setup::new("").await;
    let base = s.gw.base.clone();
    let (consumer, key, _) = s.consumer("A").await;
    refusal(
        s.call(Some(&key)).await,
        StatusCode::FORBIDDEN,
        "not-subscribed",
        &base,
    )
    .await;

    let gated = s.plan("Gated", json!({"approval_required": true})).await;
    let sub = s.subscribe(&consumer, &gated).await;
    let pending = refusal(
        s.call(Some(&key)).await,
        StatusCode::FORBIDDEN,
        "subscription-pending-approval",
        &base,
    )
    .await;
    assert_eq!(pending["subscription_id"], sub["id"]);
    assert_eq!(pending["plan"]["name"], "Gated");
    let sub_id = sub["id"].as_str().unwrap();
    s.admin(
        "POST",
        &format!("/admin/v1/subscriptions/{sub_id}/approve"),
        json!({}),
        StatusCode::OK,
    )
    .await;

    let broke = refusal(
        s.call(Some(&key)).await,
        StatusCode::PAYMENT_REQUIRED,
        "insufficient-funds",
        &base,
    )
    .await;
    assert_eq!(
        (
            broke["balance"].as_str(),
            broke["required"].as_str(),
            broke["currency"].as_str()
        ),
        (Some("0.00"), Some("0.01"), Some("USD"))
    );

    s.top_up(&consumer, "0.05").await;
    let ok = s.call(Some(&key)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-tollgate-cost"], "0.01 USD");
    assert_eq!(ok.headers()["x-tollgate-subscription"], sub_id);
    let answer: Value = ok.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    let wallets = s
        .admin(
            "GET",
            &format!("/admin/v1/consumers/{consumer}/wallets"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(wallets[0]["balance"], "0.04");

    // The consumer's own view counts a call settled a moment ago (nothing
    // reads the store in between), in the documented shape.
    assert_eq!(s.call(Some(&key)).await.status(), StatusCode::OK);
    let status = s.billing_status(&key).await;
    assert_eq!(status.consumer_id, consumer);
    assert_eq!(
        status.subscriptions[0].status,
        tollgate_api::SubscriptionStatus::Active
    );
    assert_eq!(status.subscriptions[0].plan.name, "Gated");
    let wallet = &status.wallets[0];
    assert_eq!(
        (
            wallet.currency.as_str(),
            wallet.balance.as_str(),
            wallet.reserved.as_str(),
            wallet.available.as_str()
        ),
        ("USD", "0.03", "0.00", "0.03")
    );

    s.admin(
        "POST",
        &format!("/admin/v1/subscriptions/{sub_id}/suspend"),
        json!({"reason": "fraud check"}),
        StatusCode::OK,
    )
    .await;
    let suspended = refusal(
        s.call(Some(&key)).await,
        StatusCode::FORBIDDEN,
        "subscription-suspended",
        &base,
    )
    .await;
    assert!(
        suspended["detail"]
            .as_str()
            .unwrap()
            .contains("fraud check")
    );
    s.admin(
        "POST",
        &format!("/admin/v1/subscriptions/{sub_id}/resume"),
        json!({}),
        StatusCode::OK,
    )
    .await;

    s.admin(
        "PATCH",
        &format!("/admin/v1/consumers/{consumer}"),
        json!({"status": "suspended"}),
        StatusCode::OK,
    )
    .await;
    refusal(
        s.call(Some(&key)).await,
        StatusCode::FORBIDDEN,
        "consumer-suspended",
        &base,
    )
    .await;
}

#[tokio::test]
async fn an_unpaid_subscription_expires_after_grace() {
    // No grace: a failed renewal expires at the renewal job's next run (every second).
    let s = Setup::new("grace_days = 0\nrenewal_interval_secs = 1").await;
    let base = s.gw.base.clone();
    let priced = s.plan("Priced", json!({"price": "49.00"})).await;

    let (poor, poor_key, _) = s.consumer("Poor").await;
    s.admin(
        "POST",
        &format!("/admin/v1/consumers/{poor}/payment-methods"),
        json!({"number": "4000000000009995", "exp_month": 12, "exp_year": 2030, "cvc": "123"}),
        StatusCode::CREATED,
    )
    .await;
    let past_due_sub = s.subscribe(&poor, &priced).await;
    assert_eq!(past_due_sub["status"], "past_due");

    // With no grace the job expires it within a couple of seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let sub = s
            .admin(
                "GET",
                &format!(
                    "/admin/v1/subscriptions/{}",
                    past_due_sub["id"].as_str().unwrap()
                ),
                Value::Null,
                StatusCode::OK,
            )
            .await;
        if sub["status"] == "expired" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewal job did not expire the subscription"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let expired = refusal(
        s.call(Some(&poor_key)).await,
        StatusCode::PAYMENT_REQUIRED,
        "subscription-expired",
        &base,
    )
    .await;
    assert!(expired["expires_at"].is_string());
    assert_eq!(
        expired["expiry_reason"],
        "the grace period ended without payment"
    );
}

#[tokio::test]
async fn past_due_and_invalid_card_during_grace() {
    let s = Setup::new("grace_days = 7").await;
    let base = s.gw.base.clone();
    let priced = s.plan("Priced", json!({"price": "49.00"})).await;

    let (poor, poor_key, _) = s.consumer("Poor").await;
    s.admin(
        "POST",
        &format!("/admin/v1/consumers/{poor}/payment-methods"),
        json!({"number": "4000000000009995", "exp_month": 12, "exp_year": 2030, "cvc": "123"}),
        StatusCode::CREATED,
    )
    .await;
    let sub = s.subscribe(&poor, &priced).await;
    let past_due = refusal(
        s.call(Some(&poor_key)).await,
        StatusCode::PAYMENT_REQUIRED,
        "subscription-past-due",
        &base,
    )
    .await;
    assert_eq!(past_due["subscription_id"], sub["id"]);
    assert_eq!(past_due["payment_method"]["last4"], "9995");
    assert_eq!(past_due["payment_method"]["brand"], "visa");
    assert_eq!(past_due["payment_method"]["expiry"], "12/2030");
    assert_eq!(
        past_due["payment_method"]["decline_code"],
        "insufficient_funds"
    );
    assert!(past_due["grace_until"].is_string());

    let (cardless, cardless_key, _) = s.consumer("Cardless").await;
    s.subscribe(&cardless, &priced).await;
    let invalid = refusal(
        s.call(Some(&cardless_key)).await,
        StatusCode::PAYMENT_REQUIRED,
        "payment-method-invalid",
        &base,
    )
    .await;
    assert!(
        invalid["detail"]
            .as_str()
            .unwrap()
            .contains("no card on file")
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let s = Setup::new("").await;
    let base = s.gw.base.clone();
    let (consumer, key, _) = s.consumer("Busy").await;
    let limited = s
        .plan(
            "Limited",
            json!({"rate_limits": {"requests_per_minute": 2}}),
        )
        .await;
    s.subscribe(&consumer, &limited).await;
    s.top_up(&consumer, "1").await;
    for remaining in ["1", "0"] {
        let ok = s.call(Some(&key)).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()["ratelimit-limit"], "2");
        assert_eq!(ok.headers()["ratelimit-remaining"], remaining);
    }
    let resp = s.call(Some(&key)).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    let body = refusal(resp, StatusCode::TOO_MANY_REQUESTS, "rate-limited", &base).await;
    assert_eq!(body["retry_after"], retry);
    assert_eq!(body["limit_unit"], "requests");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

/// With a balance that covers exactly K calls, N concurrent calls give
/// exactly K successes and N − K `insufficient-funds`; the balance ends exact
/// and the ledger sums to it. Repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_overspend() {
    let s = Setup::new("").await;
    let (consumer, key, _) = s.consumer("Swarm").await;
    let plan = s.plan("PayGo", json!({})).await;
    s.subscribe(&consumer, &plan).await;
    const N: usize = 500;
    const K: usize = 137;
    for round in 0..3 {
        s.top_up(&consumer, &format!("{:.2}", K as f64 * 0.01))
            .await;
        let calls = (0..N).map(|_| s.call(Some(&key)));
        let results = futures_util::future::join_all(calls).await;
        let ok = results
            .iter()
            .filter(|r| r.status() == StatusCode::OK)
            .count();
        let refused = results
            .iter()
            .filter(|r| r.status() == StatusCode::PAYMENT_REQUIRED)
            .count();
        assert_eq!((ok, refused), (K, N - K), "round {round}");
        let wallets = s
            .admin(
                "GET",
                &format!("/admin/v1/consumers/{consumer}/wallets"),
                Value::Null,
                StatusCode::OK,
            )
            .await;
        assert_eq!(wallets[0]["balance"], "0.00", "round {round}");
        assert_eq!(wallets[0]["reserved"], "0.00");
    }
    let mut sum = 0i64;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => {
                format!("/admin/v1/consumers/{consumer}/wallets/USD/entries?limit=200&cursor={c}")
            }
            None => format!("/admin/v1/consumers/{consumer}/wallets/USD/entries?limit=200"),
        };
        let page = s.admin("GET", &path, Value::Null, StatusCode::OK).await;
        for e in page["items"].as_array().unwrap() {
            sum += tollgate_api::money::parse_amount(e["amount"].as_str().unwrap()).unwrap();
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(sum, 0, "the ledger sums to the balance");
}

/// Malformed calls get a problem naming what is wrong — never echoing the
/// values sent — and nothing is charged. Unknown paths, wrong methods and
/// oversized bodies are problems too.
#[tokio::test]
async fn malformed_calls_are_refused_without_echoing_values() {
    let s = Setup::new("max_body_bytes = 4096").await;
    let base = s.gw.base.clone();
    let (consumer, key) = s.paying_consumer("M").await;
    let post = |body: Vec<u8>| {
        s.http
            .post(s.gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let secret = "sk-live-do-not-echo-4242424242424242";
    for body in [
        format!(r#"{{"model": 42, "messages": [], "note": "{secret}"}}"#),
        format!(r#"{{"model": "m", "messages": "{secret}"}}"#),
        format!(r#"{{"model": "m", "messages": [], "stream": "{secret}"}}"#),
        format!(r#"{{"model": "m", "messages": [], "max_tokens": "{secret}"}}"#),
        r#"{"messages": []}"#.to_owned(),
        r#"{"model": "m"}"#.to_owned(),
        format!(r#"{{"model": "{secret}", "messages": [}}"#),
        "[1, 2, 3]".to_owned(),
        // An array is not a request, though serde would read one from it.
        format!(r#"["{secret}", []]"#),
        // Token allowances are whole numbers up to 1000000000.
        r#"{"model": "m", "messages": [], "max_tokens": 1.5}"#.to_owned(),
        r#"{"model": "m", "messages": [], "max_tokens": -1}"#.to_owned(),
        r#"{"model": "m", "messages": [], "max_completion_tokens": 1000000001}"#.to_owned(),
        r#"{"model": "m", "messages": [], "max_tokens": 1e30}"#.to_owned(),
    ] {
        let resp = post(body.clone().into()).await.unwrap();
        let problem = refusal(resp, StatusCode::BAD_REQUEST, "bad-request", &base).await;
        let text = problem.to_string();
        assert!(!text.contains(secret), "{body} → {text}");
        // The number 42 is only checked in the words (the URL's port may hold it).
        assert!(
            !problem["detail"].as_str().unwrap().contains("42"),
            "{body} → {text}"
        );
    }
    let syntax = refusal(
        post(b"{\"model\": ".to_vec()).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "bad-request",
        &base,
    )
    .await;
    assert!(
        syntax["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{syntax}"
    );
    // Bytes that are not UTF-8 inside a message: refused, not forwarded.
    let not_text = refusal(
        post(b"{\"model\": \"m\", \"messages\": [{\"content\": \"\xff\"}]}".to_vec())
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "bad-request",
        &base,
    )
    .await;
    assert_eq!(
        not_text["detail"], "The body is not valid JSON: it is not UTF-8 text (byte 41).",
        "{not_text}"
    );
    // Half a UTF-16 surrogate pair in a message: the caller's error, named
    // where it is, and never forwarded (the provider would refuse it).
    for (body, param) in [
        (
            r#"{"model": "sim-small", "messages": [{"role": "user", "content": "a\ud800b"}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"model": "sim-small", "messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "\udc00"}]}"#,
            "messages[1].content",
        ),
        (
            r#"{"model": "sim-small", "messages": [], "user": "\ud83d\u0041"}"#,
            "user",
        ),
    ] {
        let lone = refusal(
            post(body.as_bytes().to_vec()).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "bad-request",
            &base,
        )
        .await;
        assert_eq!(lone["param"], param, "{body} → {lone}");
        assert!(
            lone["detail"].as_str().unwrap().contains("surrogate"),
            "{lone}"
        );
    }
    // A whole pair (an emoji) and an escaped backslash before `u` are text
    // (served, and paid by another consumer: this one is charged nothing).
    let (_, other) = s.paying_consumer("Texter").await;
    for body in [
        r#"{"model": "sim-small", "messages": [{"role": "user", "content": "\ud83d\ude00"}]}"#,
        r#"{"model": "sim-small", "messages": [{"role": "user", "content": "C:\\ud800"}]}"#,
        // `2.0` is the integer 2 in JSON (and in the consumer API's document).
        r#"{"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2.0}"#,
    ] {
        let resp = s
            .http
            .post(s.gw.url("/v1/chat/completions"))
            .bearer_auth(&other)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{body}");
    }
    let fields = refusal(
        post(br#"{"model": 1, "messages": []}"#.to_vec())
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "bad-request",
        &base,
    )
    .await;
    assert!(
        fields["detail"]
            .as_str()
            .unwrap()
            .contains("`model` (a string)"),
        "{fields}"
    );

    let huge = format!(
        r#"{{"model": "m", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(8192)
    );
    refusal(
        post(huge.into()).await.unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        &base,
    )
    .await;
    refusal(
        s.http
            .get(s.gw.url("/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not-found",
        &base,
    )
    .await;
    refusal(
        s.http
            .get(s.gw.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &base,
    )
    .await;

    // Nothing above was charged: the wallet still holds the whole top-up.
    let wallets = s
        .admin(
            "GET",
            &format!("/admin/v1/consumers/{consumer}/wallets"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(wallets[0]["balance"], "1.00", "{wallets}");
    // And a well-formed call still works.
    assert_eq!(s.call(Some(&key)).await.status(), StatusCode::OK);
}

/// When the provider fails, the consumer is told so (502, the provider's
/// status when it answered) and nothing is charged; without a provider the
/// gateway says it has none (503).
#[tokio::test]
async fn upstream_failures_are_502_and_charge_nothing() {
    let s = Setup::new("").await;
    let base = s.gw.base.clone();
    let (consumer, key) = s.paying_consumer("U").await;
    let failing = s
        .http
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "sim-fail-500", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let problem = refusal(failing, StatusCode::BAD_GATEWAY, "upstream-error", &base).await;
    assert_eq!(problem["upstream_status"], 500, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was charged")
    );
    let wallets = s
        .admin(
            "GET",
            &format!("/admin/v1/consumers/{consumer}/wallets"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(wallets[0]["balance"], "1.00", "{wallets}");

    // A provider that is down: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down =
        Setup::new_with_upstream(&format!("upstream_url = \"http://127.0.0.1:{port}/v1\"")).await;
    let (_, key) = down.paying_consumer("D").await;
    let problem = refusal(
        down.call(Some(&key)).await,
        StatusCode::BAD_GATEWAY,
        "upstream-error",
        &down.gw.base,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{problem}"
    );
    assert!(problem.get("upstream_status").is_none());

    // No provider configured at all.
    let none = Setup::new_with_upstream("").await;
    let (_, key) = none.paying_consumer("N").await;
    refusal(
        none.call(Some(&key)).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream-not-configured",
        &none.gw.base,
    )
    .await;
}

/// Reads from a raw connection until the server closes it (or 10 s pass).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Everything the server sends on `stream` until it closes it (or 10 s).
async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_and_a_bad_key_is_refused_before_its_body() {
    use tokio::io::AsyncWriteExt;
    let s = Setup::new("body_timeout_secs = 1").await;
    let addr = s.gw.base.trim_start_matches("http://").to_owned();
    let (_, key) = s.paying_consumer("Stalling").await;
    let stalled = |key: String| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            // A body of 100 bytes announced, 2 sent, then nothing.
            let head = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\""
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stream
        }
    };
    // A key that is not valid: refused from the head alone, at once.
    let mut bad = stalled("tg_notakey1234_secret0000".into()).await;
    let answer = read_answer(&mut bad).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("invalid-api-key"), "{answer}");
    // A valid key: the body must come within body_timeout_secs; then 408
    // and the connection is closed (read_answer returned: it was).
    let mut slow = stalled(key.clone()).await;
    let answer = read_answer(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // Nothing was charged or held for either.
    let status = s.billing_status(&key).await;
    let wallet = &status.wallets[0];
    assert_eq!(
        (wallet.balance.as_str(), wallet.reserved.as_str()),
        ("1.00", "0.00"),
        "{status:?}"
    );
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_but_slow_answers_are_not() {
    use tokio::io::AsyncWriteExt;
    let s = Setup::new("idle_timeout_secs = 1").await;
    let addr = s.gw.base.trim_start_matches("http://").to_owned();

    // A client that starts a request's head and never finishes it.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut slow).await,
        "a half-sent head kept the connection"
    );

    // A keep-alive connection left idle after an answer.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /v1/billing/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut idle).await,
        "an idle keep-alive connection stayed open"
    );

    // An answer that takes longer than the idle timeout is not cut off.
    let (_, key) = s.paying_consumer("Slow").await;
    let resp = s
        .http
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "sim-slow-2500", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hi");
}

#[tokio::test]
async fn keys_are_read_from_any_case_of_bearer_and_bodies_in_several_chunks() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Setup::new("").await;
    let (consumer, key) = s.paying_consumer("Chunks").await;
    let base = s.gw.base.clone();
    let keys_path = format!("/admin/v1/consumers/{consumer}/keys");
    let keys = s
        .admin("GET", &keys_path, json!(null), StatusCode::OK)
        .await;
    assert!(keys["items"][0]["last_used_at"].is_null(), "{keys}");

    // The scheme is case-insensitive; another scheme is no key at all.
    for (header, status) in [
        (format!("bearer {key}"), StatusCode::OK),
        (format!("BEARER   {key}  "), StatusCode::OK),
        (format!("Basic {key}"), StatusCode::UNAUTHORIZED),
        ("Bearer".to_owned(), StatusCode::UNAUTHORIZED),
    ] {
        let resp = s
            .http
            .post(s.gw.url("/v1/chat/completions"))
            .header("authorization", &header)
            .json(&json!({"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{}", header.replace(&key, "<key>"));
        if status == StatusCode::UNAUTHORIZED {
            refusal(resp, status, "invalid-api-key", &base).await;
        }
    }
    // The key's first use is recorded (later ones at most once a minute).
    let keys = s
        .admin("GET", &keys_path, json!(null), StatusCode::OK)
        .await;
    assert!(keys["items"][0]["last_used_at"].is_string(), "{keys}");

    // A body sent in chunks, apart in time, is read whole.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for part in [
        r#"{"model": "sim-small", "#,
        r#""messages": [{"role": "user", "content": "in two parts"}]}"#,
    ] {
        conn.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_string(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("echo: in two parts"), "{answer}");
}
