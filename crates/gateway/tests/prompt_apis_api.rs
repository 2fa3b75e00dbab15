//! Prompt APIs through the management API: definitions checked field by
//! field, immutable versions, and the lifecycle (publish, deprecate with a
//! sunset, rollback, retire) with the transitions it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, fields};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn definition(template: &str) -> Value {
    json!({
        "models": ["sim-small", "sim-large"],
        "template": template,
        "variables": [
            {"name": "text", "required": true, "max_length": 2000, "description": "What to summarize"},
            {"name": "tone", "default": "neutral", "max_length": 20}
        ],
        "parameters": {"temperature": 0.2, "max_tokens": 64},
        "input_description": "A text and an optional tone",
        "output_description": "A summary"
    })
}

#[tokio::test]
async fn prompt_apis_have_versions_and_a_lifecycle() {
    let gw = Gateway::start();
    let t = gw.token.clone();
    let bad = gw.send_as(&t,
        "POST",
        "/admin/v1/prompt-apis",
        json!({"slug": "Bad Slug", "name": "", "definition": {"models": [], "template": "{{x}}", "variables": []}}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        fields(&bad),
        ["slug", "name", "definition.models", "definition.template"]
    );
    let reserved = gw
        .send_as(
            &t,
            "POST",
            "/admin/v1/prompt-apis",
            json!({"slug": "chat", "name": "Chat", "definition": definition("{{text}} {{tone}}")}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(fields(&reserved), ["slug"]);

    let api = gw.send_as(&t,
        "POST",
        "/admin/v1/prompt-apis",
        json!({"slug": "summarize", "name": "Summarize", "definition": definition("Summarize ({{tone}}): {{text}}")}),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (
            &api["status"],
            &api["current_version"],
            &api["latest_version"]
        ),
        (&json!("draft"), &json!(1), &json!(1))
    );
    assert_eq!(api["current"]["variables"][1]["default"], "neutral");
    gw.send_as(
        &t,
        "POST",
        "/admin/v1/prompt-apis",
        json!({"slug": "summarize", "name": "Again", "definition": definition("{{text}}{{tone}}")}),
        StatusCode::CONFLICT,
    )
    .await;
    let reader = gw.create_token("reader", "read");
    gw.send_as(
        &reader,
        "GET",
        "/admin/v1/prompt-apis",
        Value::Null,
        StatusCode::OK,
    )
    .await;
    gw.send_as(
        &reader,
        "POST",
        "/admin/v1/prompt-apis",
        json!({"slug": "x", "name": "X", "definition": definition("{{text}}{{tone}}")}),
        StatusCode::FORBIDDEN,
    )
    .await;

    let id = api["id"].as_str().unwrap();
    let path = |rest: &str| format!("/admin/v1/prompt-apis/{id}{rest}");
    let bad = gw.send_as(&t,
        "POST",
        &path("/versions"),
        json!({"models": ["sim-small"], "template": "{{text}} {{nope}}", "variables": [{"name": "text", "max_length": 10}]}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), ["definition.template"]);
    let v2 = gw
        .send_as(
            &t,
            "POST",
            &path("/versions"),
            definition("In a {{tone}} tone, summarize: {{text}}"),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(
        (&v2["current_version"], &v2["latest_version"]),
        (&json!(2), &json!(2))
    );
    let versions = gw
        .send_as(&t, "GET", &path("/versions"), Value::Null, StatusCode::OK)
        .await;
    let numbers: Vec<_> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(
        versions[1]["definition"]["template"],
        "Summarize ({{tone}}): {{text}}"
    );

    let act = |body: Value, status: StatusCode| {
        let (gw, t, p) = (&gw, &t, path("/lifecycle"));
        async move { gw.send_as(t, "POST", &p, body, status).await }
    };
    act(
        json!({"action": "deprecate", "sunset_at": "2099-01-01T00:00:00Z"}),
        StatusCode::CONFLICT,
    )
    .await;
    let published = act(json!({"action": "publish"}), StatusCode::OK).await;
    assert_eq!(published["status"], "published");
    let bad = act(
        json!({"action": "deprecate", "sunset_at": "2001-01-01T00:00:00Z"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), ["sunset_at"]);
    let deprecated = act(
        json!({"action": "deprecate", "sunset_at": "2099-01-01T00:00:00Z"}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(deprecated["status"], "deprecated");
    assert_eq!(deprecated["sunset_at"], "2099-01-01T00:00:00Z");
    assert!(deprecated["deprecated_at"].is_string());

    // Rollback serves an earlier version; the versions stay as they were.
    let missing = act(
        json!({"action": "rollback", "version": 5}),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("(it has 1 to 2)"),
        "{missing}"
    );
    let bad = act(
        json!({"action": "rollback", "version": 0}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(fields(&bad), ["version"]);
    let rolled = act(json!({"action": "rollback", "version": 1}), StatusCode::OK).await;
    assert_eq!(
        (&rolled["current_version"], &rolled["latest_version"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(
        rolled["current"]["template"],
        "Summarize ({{tone}}): {{text}}"
    );
    act(
        json!({"action": "rollback", "version": 1}),
        StatusCode::CONFLICT,
    )
    .await;

    let republished = act(json!({"action": "publish"}), StatusCode::OK).await;
    assert!(republished["sunset_at"].is_null(), "{republished}");
    let retired = act(json!({"action": "retire"}), StatusCode::OK).await;
    assert_eq!(retired["status"], "retired");
    act(json!({"action": "publish"}), StatusCode::CONFLICT).await;
    gw.send_as(
        &t,
        "POST",
        &path("/versions"),
        definition("{{text}}{{tone}}"),
        StatusCode::CONFLICT,
    )
    .await;
    act(
        json!({"action": "explode"}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}
