//! Calls routed to providers by model: priced by the serving model, failed
//! over across a provider's keys (refused and spent keys taken out of the
//! pool, rate-limited ones rested and retried), then to fallback models;
//! against a real `tollgated` and the simulated provider (a test fixture),
//! which scripts failures by API key and by model name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::routed::{Setup, problem};
use common::{client, fields, pluck};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn calls_are_routed_and_priced_by_model() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None), ("sim-large", None)],
        &["sim-key-good-0001"],
        30,
    )
    .await;
    let (consumer, key) = s.consumer("Router", &[]).await;

    let ok = s.call(&key, "sim-small").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-tollgate-provider"], "Sim");
    assert_eq!(ok.headers()["x-tollgate-model"], "sim-small");
    // 2 prompt words at 1000 USD and 3 reply words at 2000 USD per million tokens.
    assert_eq!(ok.headers()["x-tollgate-cost"], "0.008 USD");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(s.balance(&consumer).await, "9.992");
    assert_eq!(s.sim_stats().await["by_key"]["sim-key-good-0001"], 1);

    let unknown = problem(
        s.call(&key, "no-such-model").await,
        StatusCode::NOT_FOUND,
        "model-not-found",
    )
    .await;
    assert_eq!(unknown["model"], "no-such-model");

    // A plan that lists models covers only those.
    let (_, narrow) = s.consumer("Narrow", &["sim-small"]).await;
    assert_eq!(s.call(&narrow, "sim-small").await.status(), StatusCode::OK);
    let refused = problem(
        s.call(&narrow, "sim-large").await,
        StatusCode::FORBIDDEN,
        "not-subscribed",
    )
    .await;
    assert_eq!(refused["model"], "sim-large");

    // Each key lists the models it may use, as OpenAI SDKs expect.
    for (key, expected) in [
        (&key, vec!["sim-large", "sim-small"]),
        (&narrow, vec!["sim-small"]),
    ] {
        let list: Value = client()
            .get(s.gw.url("/v1/models"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["object"], "list");
        let ids: Vec<&str> = pluck(&list["data"], "id");
        assert_eq!(ids, expected, "{list}");
        assert_eq!(list["data"][0]["owned_by"], "Sim");
    }
    let anonymous = client().get(s.gw.url("/v1/models")).send().await.unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED, "invalid-api-key").await;
}

#[tokio::test]
async fn refused_and_spent_keys_leave_the_pool_and_calls_fail_over() {
    let s = Setup::new().await;
    let provider = s
        .provider(
            "openai-compatible",
            "Pool",
            &[("sim-small", None)],
            &[
                "sim-key-fail-401",
                "sim-key-fail-429-quota",
                "sim-key-fail-400-credit",
                "sim-key-good-0002",
            ],
            30,
        )
        .await;
    let (_, key) = s.consumer("Failover", &[]).await;

    let ok = s.call(&key, "sim-small").await;
    assert_eq!(ok.status(), StatusCode::OK, "{:?}", ok.text().await);
    let keys = s
        .statuses_become(&provider, &["invalid", "exhausted", "exhausted", "active"])
        .await;
    assert!(
        keys[0]["status_reason"].as_str().unwrap().contains("401"),
        "{keys}"
    );
    let events = s
        .admin(
            "GET",
            &format!("/admin/v1/providers/{provider}/key-events"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    let by_gateway = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "gateway")
        .count();
    assert_eq!(by_gateway, 3, "{events}");

    // Benched keys are skipped: only the good key is tried again.
    assert_eq!(s.call(&key, "sim-small").await.status(), StatusCode::OK);
    let stats = s.sim_stats().await;
    assert_eq!(
        (
            &stats["by_key"]["sim-key-fail-401"],
            &stats["by_key"]["sim-key-fail-429-quota"],
            &stats["by_key"]["sim-key-good-0002"]
        ),
        (&json!(1), &json!(1), &json!(2)),
        "{stats}"
    );

    // An admin re-enables a key: it is tried again (and found invalid again).
    let first = keys[0]["id"].as_str().unwrap();
    s.admin(
        "PATCH",
        &format!("/admin/v1/provider-keys/{first}"),
        json!({"status": "active", "reason": "replaced at the provider"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(s.call(&key, "sim-small").await.status(), StatusCode::OK);
    assert_eq!(s.sim_stats().await["by_key"]["sim-key-fail-401"], 2);
    let keys = s
        .statuses_become(&provider, &["invalid", "exhausted", "exhausted", "active"])
        .await;
    // Each key's use: calls sent with it, failures, tokens, last use.
    let uses: Vec<_> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["requests"].as_i64().unwrap(),
                k["failures"].as_i64().unwrap(),
                k["tokens"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        uses,
        [(2, 2, 0), (1, 1, 0), (1, 1, 0), (3, 0, 15)],
        "{keys}"
    );
    assert!(keys[3]["last_used_at"].is_string(), "{keys}");
}

#[tokio::test]
async fn fallbacks_rate_limits_timeouts_and_empty_pools() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Spent",
        &[("primary", Some("backup")), ("lonely", None)],
        &["sim-key-fail-402"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Backup",
        &[("backup", None)],
        &["sim-key-good-0003"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Flaky",
        &[("sim-flaky", None)],
        &["sim-key-flaky-1"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Slow",
        &[("sim-slow-3000", None)],
        &["sim-key-good-0004"],
        1,
    )
    .await;
    let (consumer, key) = s.consumer("Fallback", &[]).await;

    // The provider's only key is spent: the model's fallback serves, at its price.
    let ok = s.call(&key, "primary").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        (
            &ok.headers()["x-tollgate-provider"],
            &ok.headers()["x-tollgate-model"]
        ),
        (&"Backup".parse().unwrap(), &"backup".parse().unwrap())
    );
    let before = s.balance(&consumer).await;

    // No fallback and no usable key: 503, nothing charged.
    let unavailable = problem(
        s.call(&key, "lonely").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider-unavailable",
    )
    .await;
    assert_eq!(unavailable["model"], "lonely");
    // Too slow: 504, nothing charged.
    problem(
        s.call(&key, "sim-slow-3000").await,
        StatusCode::GATEWAY_TIMEOUT,
        "upstream-timeout",
    )
    .await;
    assert_eq!(s.balance(&consumer).await, before);

    // Rate limited once (Retry-After: 1): the key rests, then serves.
    let ok = s.call(&key, "sim-flaky").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(s.sim_stats().await["by_key"]["sim-key-flaky-1"], 2);
}

/// The `data:` payloads of a server-sent event stream.
fn events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

impl Setup {
    async fn stream(
        &self,
        key: &str,
        model: &str,
        text: &str,
        include_usage: bool,
    ) -> reqwest::Response {
        let mut body = json!({"model": model, "stream": true, "max_tokens": 16,
                              "messages": [{"role": "user", "content": text}]});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        client()
            .post(self.gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The balance once it differs from `before` (streams settle when they end).
    async fn balance_leaves(&self, consumer: &str, before: &str) -> String {
        for _ in 0..100 {
            let now = self.balance(consumer).await;
            if now != before {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the balance stayed at {before}");
    }
}

#[tokio::test]
async fn streams_are_relayed_and_settled_even_when_cut_short() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[
            ("sim-small", None),
            ("sim-small-pace-300", None),
            ("sim-cut-2", None),
            ("sim-down", None),
        ],
        &["sim-key-good-0005"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Down",
        &[("sim-spent", None)],
        &["sim-key-fail-402"],
        30,
    )
    .await;
    let (consumer, key) = s.consumer("Streamer", &[]).await;

    // Relayed event by event; the usage chunk the gateway asked for is not
    // passed on to a client that did not ask for it.
    let resp = s.stream(&key, "sim-small", "hello there", false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-tollgate-model"], "sim-small");
    let got = events(&resp.text().await.unwrap());
    assert_eq!(streamed_text(&got), "echo: hello there");
    assert_eq!(got.last().unwrap(), "[DONE]");
    assert!(!got.iter().any(|e| e.contains("\"usage\":{")), "{got:?}");
    // Billed from the upstream's usage: 2 prompt and 3 completion tokens.
    assert_eq!(s.balance_leaves(&consumer, "10").await, "9.992");

    // A client that asks for the usage chunk gets it.
    let resp = s.stream(&key, "sim-small", "hello there", true).await;
    let got = events(&resp.text().await.unwrap());
    let usage: Vec<Value> = got
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter(|c| c["usage"].is_object())
        .collect();
    assert_eq!(usage.len(), 1, "{got:?}");
    assert_eq!(usage[0]["usage"]["completion_tokens"], 3);
    let before = s.balance_leaves(&consumer, "9.992").await;
    assert_eq!(before, "9.984");

    // The client goes away after two events: the upstream stream is
    // stopped and the call is paid for what was used.
    s.client_reset().await;
    let mut resp = s
        .stream(
            &key,
            "sim-small-pace-300",
            "one two three four five six seven eight nine ten",
            false,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for _ in 0..2 {
        resp.chunk().await.unwrap().unwrap();
    }
    drop(resp);
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = s.sim_stats().await;
        if stats["streams_aborted"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stats["streams_aborted"], 1,
        "the upstream kept streaming: {stats}"
    );
    let after = s.balance_leaves(&consumer, &before).await;
    let paid = before.parse::<f64>().unwrap() - after.parse::<f64>().unwrap();
    // At most the call's reservation (the prompt's length and 16 tokens).
    assert!(paid > 0.0 && paid < 0.1, "paid {paid}");

    // A stream that breaks off upstream ends broken for the client, which
    // pays for what it received.
    let resp = s.stream(&key, "sim-cut-2", "hello there", false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap_or_default();
    assert!(!text.contains("[DONE]"), "{text}");
    let cut = s.balance_leaves(&consumer, &after).await;

    // A stream that cannot start leaves nothing reserved or charged.
    problem(
        s.stream(&key, "sim-spent", "hello", false).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider-unavailable",
    )
    .await;
    assert_eq!(s.balance(&consumer).await, cut);
    let resp = s.stream(&key, "sim-small", "hello there", false).await;
    assert_eq!(
        streamed_text(&events(&resp.text().await.unwrap())),
        "echo: hello there"
    );
}

#[tokio::test]
async fn anthropic_providers_answer_in_the_openai_format() {
    let s = Setup::new().await;
    s.provider(
        "anthropic",
        "Claude",
        &[("claude-sim", None), ("claude-spent", Some("gpt-backup"))],
        &["sim-key-fail-401", "sim-anth-key-0001"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Backup",
        &[("gpt-backup", None)],
        &["sim-key-good-0006"],
        30,
    )
    .await;
    let (consumer, key) = s.consumer("Translated", &[]).await;

    // A whole answer: the Messages answer comes back as a chat completion,
    // after the refused key was failed over (the key went as `x-api-key`).
    let ok = s.call(&key, "claude-sim").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-tollgate-provider"], "Claude");
    assert_eq!(ok.headers()["x-tollgate-cost"], "0.008 USD");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["total_tokens"], 5);
    assert_eq!(s.sim_stats().await["by_key"]["sim-anth-key-0001"], 1);
    assert_eq!(s.balance(&consumer).await, "9.992");

    // Streamed: Messages events become chat completion chunks.
    let resp = s.stream(&key, "claude-sim", "hello there", true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let got = events(&resp.text().await.unwrap());
    assert_eq!(streamed_text(&got), "echo: hello there");
    assert_eq!(got.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = got
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 5);
    assert_eq!(s.balance_leaves(&consumer, "9.992").await, "9.984");

    // A spent Anthropic model falls back to an OpenAI-compatible one, which
    // is asked for by its own name.
    s.admin(
        "PATCH",
        &format!("/admin/v1/provider-keys/{}", s.key_id_of("Claude", 1).await),
        json!({"status": "disabled"}),
        StatusCode::OK,
    )
    .await;
    let ok = s.call(&key, "claude-spent").await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-tollgate-model"], "gpt-backup");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["model"], "gpt-backup");

    // What cannot be translated is refused before anything is sent.
    let tools = client()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "claude-sim", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}))
        .send()
        .await
        .unwrap();
    let refused = problem(tools, StatusCode::BAD_REQUEST, "bad-request").await;
    assert!(
        refused["detail"].as_str().unwrap().contains("tools"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_billing_check_names_what_providers_would_refuse() {
    let s = Setup::new().await;
    let euro = s
        .admin(
            "POST",
            "/admin/v1/providers",
            json!({"name": "Euro", "kind": "openai-compatible", "base_url": format!("{}/v1", s.sim), "currency": "EUR",
                   "models": [{"name": "euro-model", "input_price": "1", "output_price": "1"}]}),
            StatusCode::CREATED,
        )
        .await;
    s.admin(
        "POST",
        &format!("/admin/v1/providers/{}/keys", euro["id"].as_str().unwrap()),
        json!({"label": "k", "secret": "sim-key-good-0007"}),
        StatusCode::CREATED,
    )
    .await;
    // A model without a price while others have one: its calls are free.
    s.admin(
        "POST",
        "/admin/v1/providers",
        json!({"name": "Unpriced", "kind": "openai-compatible", "base_url": format!("{}/v1", s.sim), "currency": "USD",
               "models": [{"name": "free-model", "input_price": "0", "output_price": "0"}]}),
        StatusCode::CREATED,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Refused",
        &[("refused-model", Some("nowhere"))],
        &["sim-key-fail-401"],
        30,
    )
    .await;
    let (_, key) = s.consumer("Checked", &[]).await;
    s.consumer("Ghostly", &["ghost-model"]).await;

    // Priced in euros for a plan in dollars: the gateway's fault, 503.
    problem(
        s.call(&key, "euro-model").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "billing-unavailable",
    )
    .await;
    // The only key is refused: it leaves the pool, and the pool is empty.
    problem(
        s.call(&key, "refused-model").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "provider-unavailable",
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..100 {
        let check = s
            .admin(
                "POST",
                "/admin/v1/billing/check",
                Value::Null,
                StatusCode::OK,
            )
            .await;
        codes = check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect();
        // The pool drops the refused key at once; the key's new status
        // reaches the store a moment later (the check reads both).
        if ["pool-empty", "key-out-of-pool"]
            .iter()
            .all(|want| codes.iter().any(|c| c == want))
        {
            assert_eq!(check["ok"], false);
            assert!(
                check["billing_unavailable_count"].as_u64().unwrap() >= 1,
                "{check}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for expected in [
        "model-currency-mismatch",
        "model-unpriced",
        "model-not-served",
        "fallback-not-served",
        "pool-empty",
        "key-out-of-pool",
    ] {
        assert!(
            codes.iter().any(|c| c == expected),
            "{expected} missing from {codes:?}"
        );
    }
    assert!(!codes.iter().any(|c| c == "no-upstream"), "{codes:?}");
}

#[tokio::test]
async fn providers_are_tested_with_their_first_usable_key() {
    let s = Setup::new().await;
    let good = s
        .provider(
            "openai-compatible",
            "Good",
            &[("sim-small", None), ("sim-smal", None)],
            &["sim-key-good-0009"],
            30,
        )
        .await;
    let refused = s
        .provider(
            "openai-compatible",
            "Refused",
            &[("m-refused", None)],
            &["sim-key-fail-401"],
            30,
        )
        .await;
    let empty = s
        .provider("openai-compatible", "Empty", &[("m-empty", None)], &[], 30)
        .await;
    let claude = s
        .provider(
            "anthropic",
            "Claude",
            &[("sim-large", None)],
            &["sim-anth-key-0010"],
            30,
        )
        .await;
    let s = &s;
    let test = |id: String| async move {
        s.admin(
            "POST",
            &format!("/admin/v1/providers/{id}/test"),
            Value::Null,
            StatusCode::OK,
        )
        .await
    };

    let ok = test(good).await;
    assert_eq!(
        (&ok["ok"], &ok["status"]),
        (&json!(true), &json!(200)),
        "{ok}"
    );
    assert_eq!(ok["models"], json!(["sim-small", "sim-large"]));
    // A misspelt model is named.
    assert_eq!(ok["missing_models"], json!(["sim-smal"]));

    let no = test(refused.clone()).await;
    assert_eq!(
        (&no["ok"], &no["status"]),
        (&json!(false), &json!(401)),
        "{no}"
    );
    assert!(
        no["message"].as_str().unwrap().contains("refused the key"),
        "{no}"
    );
    // Testing changes no key's status.
    let keys = s
        .admin(
            "GET",
            &format!("/admin/v1/providers/{refused}/keys"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(keys[0]["status"], "active");
    assert_eq!(keys[0]["id"], no["key_id"]);

    let none = test(empty).await;
    assert_eq!(none["ok"], false);
    assert_eq!(none["message"], "the pool has no usable key");

    let anthropic = test(claude).await;
    assert_eq!(anthropic["ok"], true, "{anthropic}");
    assert_eq!(anthropic["missing_models"], json!([]));
}

#[tokio::test]
async fn failed_calls_leave_nothing_reserved() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Works",
        &[("sim-small", None)],
        &["sim-key-good-0011"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Spent",
        &[("sim-spent", None)],
        &["sim-key-fail-402"],
        30,
    )
    .await;
    s.provider(
        "openai-compatible",
        "Slow",
        &[("sim-slow-3000", None)],
        &["sim-key-good-0012"],
        1,
    )
    .await;
    let (consumer, key) = s.consumer("Exact", &[]).await;
    // The wallet holds 10 USD; one call reserves its estimate: ~4 characters
    // a token of its body at 0.001 USD and 16 completion tokens at 0.002.
    let body = json!({"model": "sim-small", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 16});
    let estimate_micros =
        (serde_json::to_vec(&body).unwrap().len() as i64 + 3) / 4 * 1000 + 16 * 2000;
    // Spend down to one call's reservation (rounded up to a cent, which is
    // less than two): a single hold left behind would refuse the last call.
    let left_cents = (estimate_micros + 9_999) / 10_000;
    assert!(left_cents * 10_000 < 2 * estimate_micros);
    let spend = 1000 - left_cents;
    s.admin(
        "POST",
        &format!("/admin/v1/consumers/{consumer}/wallets/USD/entries"),
        json!({"kind": "adjustment", "amount": format!("-{}.{:02}", spend / 100, spend % 100), "reason": "leave one call"}),
        StatusCode::CREATED,
    )
    .await;
    let left = format!("{}.{:02}", left_cents / 100, left_cents % 100);

    // Calls that fail, plain and streamed, one after the other: each must
    // find the balance free, so none may leave its hold behind.
    for i in 0..6 {
        let model = if i % 2 == 0 {
            "sim-spent"
        } else {
            "sim-slow-3000"
        };
        let resp = client()
            .post(s.gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(
                &json!({"model": model, "stream": i % 3 == 0, "max_tokens": 16,
                          "messages": [{"role": "user", "content": "hello there"}]}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_server_error(),
            "{model}: {}",
            resp.status()
        );
    }
    assert_eq!(s.balance(&consumer).await, left);
    // The whole balance is free again: a call reserving all of it goes through.
    let ok = s.call(&key, "sim-small").await;
    assert_eq!(ok.status(), StatusCode::OK, "{:?}", ok.text().await);
}

#[tokio::test]
async fn prompt_apis_are_called_with_their_variables() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None)],
        &["sim-key-good-0013"],
        30,
    )
    .await;
    let api = s
        .admin(
            "POST",
            "/admin/v1/prompt-apis",
            json!({"slug": "summarize", "name": "Summarize", "definition": {
                "models": ["not-served", "sim-small"],
                "template": "Summarize ({{tone}}): {{text}}",
                "variables": [{"name": "text", "required": true, "max_length": 40},
                              {"name": "tone", "default": "neutral", "max_length": 10}],
                "parameters": {"max_tokens": 32}}}),
            StatusCode::CREATED,
        )
        .await;
    let id = api["id"].as_str().unwrap().to_owned();
    // Prompt APIs are covered by plans that list their slug.
    let (_, key) = s
        .consumer_on(
            "Prompted",
            json!({"name": "Summaries", "currency": "USD", "price": "0", "period": "month",
                   "overage": "charge_wallet", "apis": ["summarize"]}),
        )
        .await;
    let call = |body: Value| {
        let (s, key) = (&s, &key);
        async move {
            client()
                .post(s.gw.url("/apis/summarize"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };

    // A draft is not served.
    problem(
        call(json!({"variables": {"text": "x"}})).await,
        StatusCode::NOT_FOUND,
        "api-not-found",
    )
    .await;
    let lifecycle = format!("/admin/v1/prompt-apis/{id}/lifecycle");
    s.admin(
        "POST",
        &lifecycle,
        json!({"action": "publish"}),
        StatusCode::OK,
    )
    .await;

    // Published APIs are documented, variables and all, in an OpenAPI document.
    let doc = s.prompt_docs().await;
    serde_json::from_value::<utoipa::openapi::OpenApi>(doc.clone())
        .expect("a valid OpenAPI document");
    let op = &doc["paths"]["/apis/summarize"]["post"];
    let variables =
        &op["requestBody"]["content"]["application/json"]["schema"]["properties"]["variables"];
    assert_eq!(variables["required"], json!(["text"]), "{doc}");
    assert_eq!(variables["properties"]["tone"]["default"], "neutral");
    assert_eq!(variables["properties"]["text"]["maxLength"], 40);
    assert_eq!(op["deprecated"], false);

    // Variables are data: a value that looks like a placeholder stays literal.
    // The first model has no provider, so the chain's next one serves.
    let ok = call(json!({"variables": {"text": "keep {{tone}} as is"}})).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-tollgate-model"], "sim-small");
    assert!(ok.headers().get("deprecation").is_none());
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: Summarize (neutral): keep {{tone}} as is"
    );

    // With messages, the prompt is the system message and the caller's
    // messages follow.
    let ok = call(json!({"variables": {"text": "t", "tone": "dry"}, "messages": [{"role": "user", "content": "go on"}]})).await;
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: go on");
    // Only the caller's and the model's turns, as the documents say: the
    // API's prompt is the only system message; a call is an object.
    for bad in [
        json!({"variables": {"text": "t"}, "messages": [{"role": "system", "content": "obey"}]}),
        json!({"variables": {"text": "t"}, "messages": [{"role": "user", "content": 1}]}),
        json!({"variables": {"text": "t"}, "messages": [{"role": "user", "content": "x", "name": "n"}]}),
        json!([{"text": "t"}]),
    ] {
        problem(call(bad).await, StatusCode::BAD_REQUEST, "bad-request").await;
    }

    // Every invalid variable is named.
    let bad = problem(
        call(json!({"variables": {"tone": 3, "extra": "x"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-variables",
    )
    .await;
    let named: Vec<&str> = fields(&bad);
    assert_eq!(
        named,
        ["variables.extra", "variables.text", "variables.tone"],
        "{bad}"
    );
    problem(
        call(json!({"variables": {"text": "x".repeat(41)}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-variables",
    )
    .await;
    problem(
        call(json!({"vars": {}})).await,
        StatusCode::BAD_REQUEST,
        "bad-request",
    )
    .await;

    // A key whose plan covers only chat may not call it.
    let (_, chat_only) = s.consumer("Chatty", &[]).await;
    let refused = client()
        .post(s.gw.url("/apis/summarize"))
        .bearer_auth(&chat_only)
        .json(&json!({"variables": {"text": "x"}}))
        .send()
        .await
        .unwrap();
    problem(refused, StatusCode::FORBIDDEN, "not-subscribed").await;

    // Deprecated: still served, with Deprecation and Sunset; retired: 410.
    s.admin(
        "POST",
        &lifecycle,
        json!({"action": "deprecate", "sunset_at": "2099-06-30T00:00:00Z"}),
        StatusCode::OK,
    )
    .await;
    let ok = call(json!({"variables": {"text": "x"}})).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.headers()["deprecation"]
            .to_str()
            .unwrap()
            .starts_with('@')
    );
    assert_eq!(ok.headers()["sunset"], "Tue, 30 Jun 2099 00:00:00 GMT");
    assert_eq!(
        s.prompt_docs().await["paths"]["/apis/summarize"]["post"]["deprecated"],
        true
    );
    s.admin(
        "POST",
        &lifecycle,
        json!({"action": "retire"}),
        StatusCode::OK,
    )
    .await;
    problem(
        call(json!({"variables": {"text": "x"}})).await,
        StatusCode::GONE,
        "api-retired",
    )
    .await;
    let doc = s.prompt_docs().await;
    assert!(doc["paths"].as_object().unwrap().is_empty(), "{doc}");
    problem(
        client()
            .post(s.gw.url("/apis/nothing-here"))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "api-not-found",
    )
    .await;
}

#[tokio::test]
async fn admins_run_definitions_streamed_and_charged_to_no_one() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None), ("sim-cut-2", None)],
        &["sim-key-good-0021"],
        30,
    )
    .await;
    let run = |body: Value| {
        let s = &s;
        async move {
            client()
                .post(s.gw.url("/admin/v1/prompt-apis/run"))
                .bearer_auth(&s.gw.token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let definition = |models: Value| {
        json!({"models": models,
               "template": "Summarize ({{tone}}): {{text}}",
               "variables": [{"name": "text", "required": true, "max_length": 40},
                             {"name": "tone", "default": "neutral", "max_length": 10}]})
    };
    /// The text of a run's stream and its summary.
    fn read_run(text: &str) -> (String, Value) {
        let (chunks, summary) = text
            .split_once("event: summary\ndata: ")
            .expect("a summary event");
        let summary: Value = serde_json::from_str(summary.trim()).unwrap();
        (streamed_text(&events(chunks)), summary)
    }

    // Unsaved, the first model unserved: the next one answers, streamed,
    // then the summary says what it used and would cost.
    let ok = run(
        json!({"definition": definition(json!(["not-served", "sim-small"])),
                        "variables": {"text": "keep {{tone}}"}}),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["content-type"], "text/event-stream");
    assert_eq!(ok.headers()["x-tollgate-model"], "sim-small");
    let (text, summary) = read_run(&ok.text().await.unwrap());
    assert_eq!(text, "echo: Summarize (neutral): keep {{tone}}");
    assert_eq!(summary["model"], "sim-small");
    assert_eq!(summary["provider_name"], "Sim");
    assert_eq!(summary["currency"], "USD");
    assert_eq!(summary["usage_reported"], true);
    assert_eq!(summary["cut_short"], false);
    let (prompt, completion) = (
        summary["prompt_tokens"].as_u64().unwrap(),
        summary["completion_tokens"].as_u64().unwrap(),
    );
    assert!(prompt > 0 && completion > 0, "{summary}");
    // 1000 and 2000 USD a million tokens: 1000 and 2000 micro-USD a token.
    let cost: f64 = summary["cost"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        (cost * 1e6).round() as u64,
        prompt * 1000 + completion * 2000,
        "{summary}"
    );

    // A stream the provider cuts off still ends with its summary.
    let cut = run(json!({"definition": definition(json!(["sim-cut-2"])),
                         "variables": {"text": "a b c d e f"}}))
    .await;
    assert_eq!(cut.status(), StatusCode::OK);
    let (_, summary) = read_run(&cut.text().await.unwrap());
    assert_eq!(summary["cut_short"], true, "{summary}");
    assert_eq!(summary["usage_reported"], false, "{summary}");

    // Refused before streaming: invalid values, invalid definitions, no
    // provider, no write scope.
    let bad = problem(
        run(json!({"definition": definition(json!(["sim-small"])),
                   "variables": {"tone": "x".repeat(11), "extra": "y"}}))
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-variables",
    )
    .await;
    let named: Vec<&str> = fields(&bad);
    assert_eq!(
        named,
        ["variables.extra", "variables.text", "variables.tone"],
        "{bad}"
    );
    let mut undeclared = definition(json!(["sim-small"]));
    undeclared["template"] = json!("{{text}} {{ghost}}");
    let bad = problem(
        run(json!({"definition": undeclared, "variables": {"text": "x"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    )
    .await;
    assert!(
        bad["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "definition.template"),
        "{bad}"
    );
    let none = problem(
        run(json!({"definition": definition(json!(["nope", "nada"])), "variables": {"text": "x"}}))
            .await,
        StatusCode::NOT_FOUND,
        "model-not-found",
    )
    .await;
    assert!(
        none["detail"]
            .as_str()
            .unwrap()
            .contains("`nope` or `nada`"),
        "{none}"
    );
    let read_only = s.gw.create_token("reader", "read");
    let forbidden = client()
        .post(s.gw.url("/admin/v1/prompt-apis/run"))
        .bearer_auth(&read_only)
        .json(&json!({"definition": definition(json!(["sim-small"])), "variables": {"text": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // Runs reach the provider through the pool, whose key use is counted.
    assert_eq!(s.sim_stats().await["by_key"]["sim-key-good-0021"], 2);
}

#[tokio::test]
async fn deprecated_apis_answer_410_from_their_sunset() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None)],
        &["sim-key-good-0022"],
        30,
    )
    .await;
    let api = s
        .admin(
            "POST",
            "/admin/v1/prompt-apis",
            json!({"slug": "greet", "name": "Greet", "definition": {
                "models": ["sim-small"], "template": "Say hello."}}),
            StatusCode::CREATED,
        )
        .await;
    let lifecycle = format!(
        "/admin/v1/prompt-apis/{}/lifecycle",
        api["id"].as_str().unwrap()
    );
    s.admin(
        "POST",
        &lifecycle,
        json!({"action": "publish"}),
        StatusCode::OK,
    )
    .await;
    let (_, key) = s
        .consumer_on(
            "Greeted",
            json!({"name": "Greetings", "currency": "USD", "price": "0", "period": "month",
                   "overage": "charge_wallet", "apis": ["greet"]}),
        )
        .await;
    let call = || {
        client()
            .post(s.gw.url("/apis/greet"))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
    };
    let deprecate = |sunset: chrono::DateTime<chrono::Utc>| {
        s.admin(
            "POST",
            &lifecycle,
            json!({"action": "deprecate", "sunset_at": sunset}),
            StatusCode::OK,
        )
    };
    // Before its sunset a deprecated API is served, with the dates to move by.
    deprecate(chrono::Utc::now() + chrono::Duration::days(1)).await;
    let served = call().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert!(served.headers().contains_key("deprecation"));
    assert!(served.headers().contains_key("sunset"));
    s.admin(
        "POST",
        &lifecycle,
        json!({"action": "publish"}),
        StatusCode::OK,
    )
    .await;
    // From its sunset on it is gone without an admin's step, although its
    // definition is cached. Polled with a bound; each answer is judged by
    // when it was asked for and when it came back (one clock for both).
    let sunset = chrono::Utc::now() + chrono::Duration::seconds(1);
    deprecate(sunset).await;
    let mut gone = false;
    for _ in 0..300 {
        let sent = chrono::Utc::now();
        let resp = call().await.unwrap();
        let received = chrono::Utc::now();
        match resp.status() {
            StatusCode::OK => assert!(sent < sunset, "served after its sunset"),
            StatusCode::GONE => {
                assert!(received >= sunset, "retired before its sunset");
                problem(resp, StatusCode::GONE, "api-retired").await;
                gone = true;
                break;
            }
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "still served 15 s after its sunset");
}

#[tokio::test]
async fn tokens_per_minute_are_taken_at_an_estimate_and_corrected_by_usage() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None)],
        &["sim-key-good-0023"],
        30,
    )
    .await;
    let (_, key) = s
        .consumer_on(
            "Metered",
            json!({"name": "Metered", "currency": "USD", "price": "0", "period": "month",
                   "overage": "charge_wallet", "apis": ["chat"],
                   "rate_limits": {"tokens_per_minute": 100}}),
        )
        .await;
    let call = |max_tokens: u32| {
        client()
            .post(s.gw.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "sim-small", "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
    };
    // Each call is estimated at ~25 prompt tokens (its body) + 40, but uses
    // 5 (the simulator counts words): the second fits only because the
    // first was corrected to its usage.
    for _ in 0..2 {
        let ok = call(40).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()["x-ratelimit-limit-tokens"], "100");
        let remaining: u32 = ok.headers()["x-ratelimit-remaining-tokens"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(remaining < 40, "{remaining}");
    }
    // A call that may use a whole minute's allowance waits for it.
    let refused = problem(
        call(95).await.unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
    )
    .await;
    assert_eq!(refused["limit_unit"], "tokens", "{refused}");
    assert_eq!(refused["limit"], 100);
    assert!(refused["retry_after"].as_u64().unwrap() >= 1, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("100 tokens a minute"),
        "{refused}"
    );
}
