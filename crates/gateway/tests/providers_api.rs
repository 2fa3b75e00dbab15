//! Providers and their key pools through the management API: validation of
//! every field, model names unique across providers, key secrets sealed at
//! rest and masked in every answer, status changes recorded with who and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, client, fields, pluck};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn model(name: &str) -> Value {
    json!({"name": name, "input_price": "0.50", "output_price": "1.50"})
}

#[tokio::test]
async fn providers_are_validated_and_their_models_unique() {
    let gw = Gateway::start();
    let bad = gw
        .send(
            "POST",
            "/admin/v1/providers",
            json!({
                "name": " ", "kind": "openai-compatible", "base_url": "ftp://x", "currency": "usd",
                "timeout_secs": 0,
                "models": [
                    {"name": "a b", "input_price": "-1", "output_price": "x"},
                    {"name": "m", "input_price": "1", "output_price": "1", "fallback": "m"},
                    {"name": "m", "input_price": "1", "output_price": "1"}
                ]
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(
        fields(&bad),
        [
            "name",
            "base_url",
            "currency",
            "models.0.name",
            "models.0.input_price",
            "models.0.output_price",
            "models.1.fallback",
            "models.2.name",
            "timeout_secs"
        ]
    );
    // Base URLs as the document's pattern says: no spaces around them, no
    // user, query or fragment, a port that exists.
    for url in [
        " https://h/v1",
        "https://h/v1 ",
        "https://user@h/v1",
        "https://h/v1?x=1",
        "https://h:70000/v1",
        "https://h/a b",
        "https://1.2.3.999/v1",
    ] {
        let bad = gw
            .send(
                "POST",
                "/admin/v1/providers",
                json!({"name": "x", "kind": "openai-compatible", "base_url": url}),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(fields(&bad), ["base_url"], "{url}");
    }
    // An unknown kind is refused by the body's shape.
    gw.send(
        "POST",
        "/admin/v1/providers",
        json!({"name": "x", "kind": "gemini", "base_url": "http://h/v1"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let openai = gw.send("POST",
        "/admin/v1/providers",
        json!({"name": "OpenAI", "kind": "openai-compatible", "base_url": "https://api.openai.example/v1/",
               "models": [model("gpt-x"), model("gpt-x-mini")]}),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(openai["base_url"], "https://api.openai.example/v1");
    assert_eq!(
        (
            &openai["currency"],
            &openai["timeout_secs"],
            &openai["enabled"]
        ),
        (&json!("USD"), &json!(60), &json!(true))
    );
    let clash = gw.send("POST",
        "/admin/v1/providers",
        json!({"name": "Other", "kind": "anthropic", "base_url": "https://api.anthropic.example/v1",
               "models": [model("claude-x"), model("gpt-x-mini")]}),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        clash["detail"].as_str().unwrap().contains("gpt-x-mini"),
        "{clash}"
    );
    gw.send(
        "POST",
        "/admin/v1/providers",
        json!({"name": "openai", "kind": "anthropic", "base_url": "https://h/v1"}),
        StatusCode::CONFLICT,
    )
    .await;

    let id = openai["id"].as_str().unwrap();
    let path = format!("/admin/v1/providers/{id}");
    let patched = gw
        .send(
            "PATCH",
            &path,
            json!({"timeout_secs": 5, "enabled": false}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (
            &patched["timeout_secs"],
            &patched["enabled"],
            &patched["version"]
        ),
        (&json!(5), &json!(false), &json!(2))
    );
    assert_eq!(patched["models"], openai["models"]);
    let bad = gw
        .send(
            "PATCH",
            &path,
            json!({"timeout_secs": 3601}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(fields(&bad), ["timeout_secs"]);
    let listed = gw
        .send("GET", "/admin/v1/providers", Value::Null, StatusCode::OK)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // A read-only token may look but not change.
    let reader = gw.create_token("reader", "read");
    gw.send_as(&reader, "GET", &path, Value::Null, StatusCode::OK)
        .await;
    gw.send_as(
        &reader,
        "PATCH",
        &path,
        json!({"enabled": true}),
        StatusCode::FORBIDDEN,
    )
    .await;

    gw.send("DELETE", &path, Value::Null, StatusCode::NO_CONTENT)
        .await;
    gw.send("GET", &path, Value::Null, StatusCode::NOT_FOUND)
        .await;
}

#[tokio::test]
async fn key_secrets_are_sealed_masked_and_their_status_changes_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gw = Gateway::start_in(&dir);
    let provider = gw
        .send(
            "POST",
            "/admin/v1/providers",
            json!({"name": "Pool", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
               "models": [model("pool-model")]}),
            StatusCode::CREATED,
        )
        .await;
    let id = provider["id"].as_str().unwrap();
    let keys_path = format!("/admin/v1/providers/{id}/keys");

    let bad = gw.send("POST",
        &keys_path,
        json!({"label": "", "secret": "short", "priority": 2_000_000, "expires_at": "2001-01-01T00:00:00Z"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), ["label", "secret", "priority", "expires_at"]);
    assert!(
        !bad.to_string().contains("short"),
        "the secret is echoed: {bad}"
    );
    gw.send(
        "POST",
        "/admin/v1/providers/prv_missing/keys",
        json!({"label": "x", "secret": "sk-0123456789"}),
        StatusCode::NOT_FOUND,
    )
    .await;

    let secret = "sk-live-TollgatePoolSecret-7f3a";
    let main = gw
        .send(
            "POST",
            &keys_path,
            json!({"label": "main", "secret": secret, "priority": 10}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(main["last4"], "7f3a");
    assert_eq!(main["status"], "active");
    let backup = gw
        .send(
            "POST",
            &keys_path,
            json!({"label": "backup", "secret": "sk-backup-0000-1111"}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(backup["priority"], 100);
    let keys = gw
        .send("GET", &keys_path, Value::Null, StatusCode::OK)
        .await;
    let labels: Vec<_> = pluck(&keys, "label");
    assert_eq!(labels, ["main", "backup"]);
    let everything = format!(
        "{keys}{}",
        gw.send("GET", "/admin/v1/providers", Value::Null, StatusCode::OK)
            .await
    );
    assert!(!everything.contains(secret), "a secret in an answer");

    // Admins may disable and re-enable; the other statuses are the gateway's.
    let key_path = format!("/admin/v1/provider-keys/{}", main["id"].as_str().unwrap());
    let bad = gw
        .send(
            "PATCH",
            &key_path,
            json!({"status": "exhausted", "priority": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(bad["status"], 422);
    let bad = gw
        .send(
            "PATCH",
            &key_path,
            json!({"status": "invalid", "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(fields(&bad), ["status"]);
    let disabled = gw
        .send(
            "PATCH",
            &key_path,
            json!({"status": "disabled", "reason": "rotating it"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (&disabled["status"], &disabled["status_reason"]),
        (&json!("disabled"), &json!("rotating it"))
    );
    let provider_now = gw
        .send(
            "GET",
            &format!("/admin/v1/providers/{id}"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (&provider_now["keys_total"], &provider_now["keys_active"]),
        (&json!(2), &json!(1))
    );
    gw.send(
        "PATCH",
        &key_path,
        json!({"status": "active", "label": "main again", "priority": 1}),
        StatusCode::OK,
    )
    .await;
    let events = gw
        .send(
            "GET",
            &format!(
                "/admin/v1/providers/{id}/key-events?key_id={}",
                main["id"].as_str().unwrap()
            ),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    let steps: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["to"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
                e["actor"].as_str().unwrap().starts_with("admin:"),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("active", "enabled by an admin", true),
            ("disabled", "rotating it", true),
            ("active", "added", true)
        ]
    );
    gw.send(
        "GET",
        &format!("/admin/v1/providers/{id}/key-events?limit=0"),
        Value::Null,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // A stale version is refused; deleting takes the key out of the pool.
    let stale = client()
        .delete(gw.url(&key_path))
        .bearer_auth(&gw.token)
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    gw.send("DELETE", &key_path, Value::Null, StatusCode::NO_CONTENT)
        .await;
    let keys = gw
        .send("GET", &keys_path, Value::Null, StatusCode::OK)
        .await;
    assert_eq!(keys.as_array().unwrap().len(), 1);

    // The secret is nowhere on disk in clear.
    drop(gw);
    assert!(
        !common::stored_holds(&dir, secret.as_bytes()),
        "a provider key in clear"
    );
}

/// A provider that accepts the connection and never answers fails its test
/// after 5 s, saying so, instead of holding the admin's request for the
/// provider's whole timeout.
#[tokio::test]
async fn a_provider_that_never_answers_fails_its_test_after_five_seconds() {
    let gw = Gateway::start();
    // Accepts connections (the kernel's backlog) and reads nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let provider = gw
        .send(
            "POST",
            "/admin/v1/providers",
            json!({"name": "Silent", "kind": "openai-compatible",
                   "base_url": format!("http://{address}/v1"), "timeout_secs": 600,
                   "models": [model("quiet")]}),
            StatusCode::CREATED,
        )
        .await;
    let id = provider["id"].as_str().unwrap();
    gw.send(
        "POST",
        &format!("/admin/v1/providers/{id}/keys"),
        json!({"label": "k", "secret": "sk-silent-0001"}),
        StatusCode::CREATED,
    )
    .await;
    let started = std::time::Instant::now();
    let test = gw
        .send(
            "POST",
            &format!("/admin/v1/providers/{id}/test"),
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(test["ok"], false, "{test}");
    assert_eq!(test["message"], "the provider did not answer within 5 s");
    assert!(test["latency_ms"].as_u64().unwrap() >= 5_000, "{test}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    drop(silent);
}
