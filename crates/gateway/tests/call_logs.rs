//! The call log: one record per data-plane request (served, refused,
//! streamed, prompt APIs), written in group commits, read from a cursor in
//! `seq` order, filtered, and kept across a graceful shutdown; against a real
//! `tollgated` and the simulated provider (a test fixture).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::routed::Setup;
use common::{Gateway, client, fields};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn logs(gw: &Gateway, query: &str) -> Value {
    let resp = client()
        .get(gw.url(&format!("/admin/v1/logs{query}")))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Every record after `after`, page by page with `limit`.
async fn all_logs(gw: &Gateway, filters: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = logs(gw, &format!("?after={after}&limit={limit}{filters}")).await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

#[tokio::test]
async fn every_call_is_logged_once_with_what_it_did() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None)],
        &["sim-key-good-0031"],
        30,
    )
    .await;
    let (consumer, key) = s.consumer("Logged", &[]).await;

    let served = s.call(&key, "sim-small").await;
    assert_eq!(served.status(), StatusCode::OK);
    let served_id = served.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let served_cost = served.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .to_owned();
    let streamed = client()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("user-agent", "log-test/1.0")
        .json(&json!({"model": "sim-small", "stream": true,
                      "messages": [{"role": "user", "content": "one two three"}]}))
        .send()
        .await
        .unwrap();
    let streamed_id = streamed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(streamed.text().await.unwrap().contains("[DONE]"));
    let refused = s.call("tg_notakey1234_secret", "sim-small").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let unknown = s.call(&key, "no-such-model").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let models = client()
        .get(s.gw.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::OK);

    // Paged two at a time: all five, once each, in seq order.
    let records = all_logs(&s.gw, "", 2).await;
    assert_eq!(records.len(), 5, "{records:#?}");
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let by_id = |id: &str| records.iter().find(|r| r["id"] == id).unwrap().clone();

    let ok = by_id(&served_id);
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["api"], "chat");
    assert_eq!(ok["path"], "/v1/chat/completions");
    assert_eq!(ok["consumer_id"], consumer.as_str());
    assert!(ok["key_prefix"].as_str().unwrap().starts_with("tg_"));
    assert!(ok["team_id"].as_str().unwrap().starts_with("team_"));
    assert_eq!(ok["model"], "sim-small");
    assert!(ok["provider_id"].as_str().unwrap().starts_with("prv_"));
    let provider_key = ok["provider_key"].as_str().unwrap();
    assert!(provider_key.ends_with("(…0031)"), "{provider_key}");
    assert!(!provider_key.contains("sim-key-good"), "the key is masked");
    assert_eq!(ok["upstream_status"], 200);
    assert_eq!(
        (ok["tokens_in"].as_i64(), ok["tokens_out"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        format!(
            "{} {}",
            ok["cost"].as_str().unwrap(),
            ok["currency"].as_str().unwrap()
        ),
        served_cost
    );
    assert!(ok["latency_us"].as_i64().unwrap() >= ok["upstream_us"].as_i64().unwrap());
    assert_eq!(ok["client_ip"], "127.0.0.1");
    assert!(ok.get("reason").is_none(), "{ok}");

    let stream = by_id(&streamed_id);
    assert_eq!(stream["status"], 200);
    assert_eq!(stream["user_agent"], "log-test/1.0");
    assert_eq!(
        (stream["tokens_in"].as_i64(), stream["tokens_out"].as_i64()),
        (Some(3), Some(4))
    );
    let ttft = stream["ttft_us"].as_i64().unwrap();
    assert!(
        ttft > 0 && ttft <= stream["latency_us"].as_i64().unwrap(),
        "{stream}"
    );
    assert!(stream.get("error").is_none(), "{stream}");

    let unauthorized = records.iter().find(|r| r["status"] == 401).unwrap();
    assert_eq!(unauthorized["reason"], "invalid-api-key");
    assert!(unauthorized.get("consumer_id").is_none());
    assert!(
        unauthorized["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    let not_found = records.iter().find(|r| r["status"] == 404).unwrap();
    assert_eq!(not_found["reason"], "model-not-found");
    assert_eq!(not_found["model"], "no-such-model");
    assert_eq!(not_found["consumer_id"], consumer.as_str());
    assert_eq!(records.iter().filter(|r| r["api"] == "models").count(), 1);

    // Filters.
    let refusals = all_logs(&s.gw, "&status_class=4", 100).await;
    assert_eq!(refusals.len(), 2);
    let mine = all_logs(&s.gw, &format!("&consumer_id={consumer}&api=chat"), 100).await;
    assert_eq!(mine.len(), 3);
    let by_reason = all_logs(&s.gw, "&reason=invalid-api-key", 100).await;
    assert_eq!(by_reason.len(), 1);
    let future = all_logs(&s.gw, "&from=2999-01-01T00:00:00Z", 100).await;
    assert!(future.is_empty());
    let page = logs(&s.gw, &format!("?after={}", seqs[4])).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["head_seq"], seqs[4]);

    // Live figures of the same calls.
    let stats: Value = client()
        .get(s.gw.url("/admin/v1/logs/stats"))
        .bearer_auth(&s.gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 5, "{stats}");
    assert_eq!(stats["errors"], 2);
    assert_eq!(
        (stats["tokens_in"].as_i64(), stats["tokens_out"].as_i64()),
        (Some(5), Some(7))
    );
    assert_eq!(stats["bucket_seconds"], 60);
    let in_series: i64 = stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(in_series, 5);
    assert!(stats["latency_p50_us"].as_i64().unwrap() > 0);
    assert!(stats["latency_p99_us"].as_i64() >= stats["latency_p50_us"].as_i64());
    let reasons: Vec<(&str, i64)> = stats["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap(), r["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [("invalid-api-key", 401), ("model-not-found", 404)]
    );
    assert_eq!(stats["by_model"][0]["model"], "sim-small");
    assert_eq!(stats["by_model"][0]["requests"], 2);
    assert_eq!(stats["top_consumers"][0]["consumer_id"], consumer.as_str());
    assert_eq!(stats["top_consumers"][0]["requests"], 4);
    let charged: f64 = records
        .iter()
        .map(|r| r["cost"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(stats["cost"][0]["currency"], "USD");
    let total: f64 = stats["cost"][0]["amount"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((total - charged).abs() < 1e-9, "{total} vs {charged}");
    for query in [
        "?bucket=week",
        "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "?from=2020-01-01T00:00:00Z",
    ] {
        let bad = client()
            .get(s.gw.url(&format!("/admin/v1/logs/stats{query}")))
            .bearer_auth(&s.gw.token)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }

    // Bad queries name their fields; the log needs a token that may read.
    let bad = client()
        .get(s.gw.url("/admin/v1/logs?after=-1&limit=0&status_class=7&from=yesterday"))
        .bearer_auth(&s.gw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad: Value = bad.json().await.unwrap();
    let fields: Vec<&str> = fields(&bad);
    assert_eq!(fields, ["after", "limit", "status_class", "from"], "{bad}");
    let anonymous = client()
        .get(s.gw.url("/admin/v1/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn records_of_calls_just_answered_survive_a_graceful_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut gw = Gateway::start_in(&dir);
    let http = client();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let resp = http
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth("tg_notakey1234_secret")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    // Straight to SIGTERM: the records still in the writer's window are stored
    // on the way out.
    assert!(gw.terminate().success());
    let gw = Gateway::start_in(&dir);
    let records = all_logs(&gw, "", 1000).await;
    let logged: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(logged, ids);
}

#[tokio::test]
async fn the_bulk_export_streams_ndjson_gzipped_and_resumes_from_any_line() {
    let gw = Gateway::start();
    let http = client();
    let mut ids = Vec::new();
    for _ in 0..2_345 {
        let resp = http
            .get(gw.url("/v1/models"))
            .bearer_auth("tg_notakey1234_secret")
            .send()
            .await
            .unwrap();
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    let export = |after: i64, limit: u32| {
        http.get(gw.url(&format!(
            "/admin/v1/logs/export?after={after}&limit={limit}"
        )))
        .bearer_auth(&gw.token)
        .send()
    };
    // In pieces of 1000 (more than one store read each), each resumed from
    // the last line received: every record once, in order.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let resp = export(after, 1_000).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        let head: i64 = resp.headers()["x-tollgate-log-head"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = resp.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        seen.extend(lines.iter().map(|l| l["id"].as_str().unwrap().to_owned()));
        match lines.last() {
            Some(last) if lines.len() == 1_000 => after = last["seq"].as_i64().unwrap(),
            _ => {
                assert_eq!(lines.last().map(|l| l["seq"].as_i64().unwrap()), Some(head));
                break;
            }
        }
    }
    assert_eq!(seen, ids);

    // Compressed for a client that asks.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(gw.url("/admin/v1/logs/export?limit=500"))
        .bearer_auth(&gw.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    let compressed = raw.bytes().await.unwrap().len();
    let plain = export(0, 500).await.unwrap().text().await.unwrap().len();
    assert!(compressed * 5 < plain, "{compressed} vs {plain} bytes");

    let bad = export(0, 0).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn bodies_are_captured_only_for_the_apis_named_cut_and_redacted() {
    let s = Setup::new().await;
    s.provider(
        "openai-compatible",
        "Sim",
        &[("sim-small", None)],
        &["sim-key-good-0032"],
        30,
    )
    .await;
    let (_, key) = s.consumer("Captured", &[]).await;
    let settings = |method: &str, body: Value, if_match: Option<&str>| {
        let mut req = client()
            .request(method.parse().unwrap(), s.gw.url("/admin/v1/logs/settings"))
            .bearer_auth(&s.gw.token);
        if !body.is_null() {
            req = req.json(&body);
        }
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        req.send()
    };
    let defaults: Value = settings("GET", Value::Null, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(defaults["retention_days"], 30);
    assert_eq!(defaults["bodies"], json!([]));
    assert_eq!(defaults["version"], 0);

    let bad = settings(
        "PUT",
        json!({"retention_days": 0, "max_records": 5,
               "bodies": [{"api": "chat", "max_bytes": 0}, {"api": "chat", "max_bytes": 10}, {"api": "Bad Name", "max_bytes": 10}]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad: Value = bad.json().await.unwrap();
    let fields: Vec<&str> = fields(&bad);
    assert_eq!(
        fields,
        [
            "retention_days",
            "max_records",
            "bodies.0.max_bytes",
            "bodies.1.api",
            "bodies.2.api"
        ]
    );
    let saved = settings(
        "PUT",
        json!({"retention_days": 7, "bodies": [{"api": "chat", "max_bytes": 120}]}),
        Some("\"0\""),
    )
    .await
    .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["version"], 1);
    let stale = settings("PUT", json!({"retention_days": 9}), Some("\"0\""))
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    let secret_text =
        "card 4242 4242 4242 4242 key sk-proj-abcdefghijklmnop1234 then a long tail of words";
    let plain = client()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(
            &json!({"model": "sim-small", "messages": [{"role": "user", "content": secret_text}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    let streamed = client()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "sim-small", "stream": true,
                      "messages": [{"role": "user", "content": "pay with 4000 0000 0000 0002"}]}))
        .send()
        .await
        .unwrap();
    assert!(streamed.text().await.unwrap().contains("[DONE]"));
    client()
        .get(s.gw.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    let records = all_logs(&s.gw, "", 100).await;
    assert_eq!(records.len(), 3);
    let (plain, stream, models) = (&records[0], &records[1], &records[2]);
    let request = plain["request_body"].as_str().unwrap();
    assert!(
        request.starts_with("{\"messages\":[{\"content\":\"card "),
        "{request}"
    );
    assert!(
        request.contains("[REDACTED card]") && request.contains("[REDACTED]"),
        "{request}"
    );
    assert!(
        !request.contains("4242") && !request.contains("sk-proj"),
        "{request}"
    );
    assert!(request.len() <= 120, "cut to the limit: {}", request.len());
    let response = plain["response_body"].as_str().unwrap();
    assert!(response.contains("\"choices\""), "{response}");
    assert!(!response.contains("4242"), "{response}");
    assert_eq!(
        stream["response_body"], "echo: pay with [REDACTED card]",
        "a stream keeps its text: {stream}"
    );
    assert!(models.get("request_body").is_none() && models.get("response_body").is_none());

    // Nothing secret reached the database file either.
    for secret in ["4242 4242", "sk-proj-abcdefghijklmnop1234"] {
        assert!(
            !common::stored_holds(&s.gw.dir, secret.as_bytes()),
            "{secret} stored"
        );
    }
}
