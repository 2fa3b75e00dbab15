//! The management API against a real `tollgated` process on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{Gateway, client, fields, pluck};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn problem(resp: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let header_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["request_id"], header_id.as_str());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}

#[tokio::test]
async fn every_management_endpoint_requires_a_valid_token_with_the_right_scope() {
    let gw = Gateway::start();
    let http = client();

    let body = problem(
        http.get(gw.url("/admin/v1/teams")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("/problems/unauthorized")
    );
    for path in [
        "/admin/v1/info",
        "/admin/v1/audit",
        "/admin/v1/openapi.json",
    ] {
        let resp = http.get(gw.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    let forged = format!("{}x", gw.token);
    let resp = http
        .get(gw.url("/admin/v1/teams"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::UNAUTHORIZED).await;
    let resp = http
        .get(gw.url("/admin/v1/teams"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::UNAUTHORIZED).await;

    let reader = gw.create_token("reader", "read");
    let resp = http
        .get(gw.url("/admin/v1/teams"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = http
        .post(gw.url("/admin/v1/teams"))
        .bearer_auth(&reader)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::FORBIDDEN).await;
    assert!(body["detail"].as_str().unwrap().contains("`write`"));
    // Refused from the head: a body the token may not send is not read, so
    // a malformed one is answered 403, never with its validation details.
    for (method, path, body, scope) in [
        (
            "POST",
            "/admin/v1/teams",
            r#"{"name": 42, "bogus": true}"#,
            "`write`",
        ),
        ("POST", "/admin/v1/plans", r#"{"price": "-1"}"#, "`billing`"),
        ("PUT", "/admin/v1/billing/settings", "not json", "`billing`"),
        ("POST", "/admin/v1/keys/key_x/revoke", "{", "`keys`"),
        (
            "PUT",
            "/admin/v1/logs/settings",
            r#"{"retention_days": -5}"#,
            "`write`",
        ),
    ] {
        let resp = http
            .request(method.parse().unwrap(), gw.url(path))
            .bearer_auth(&reader)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let refused = problem(resp, StatusCode::FORBIDDEN).await;
        assert!(refused["errors"].is_null(), "{method} {path}: {refused}");
        assert!(
            refused["detail"].as_str().unwrap().contains(scope),
            "{method} {path}: {refused}"
        );
    }

    let info: Value = http
        .get(gw.url("/admin/v1/info"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["product"], "tollgate");
    assert_eq!(info["token"]["scopes"], json!(["read"]));

    // Revocation through the CLI takes effect on the next request.
    let (ok, listing, _) = gw.cli(&["list"]);
    assert!(ok);
    let reader_id = listing
        .lines()
        .find(|l| l.contains("\treader\t"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    assert!(!listing.contains(&reader), "list must never print secrets");
    let (ok, _, _) = gw.cli(&["revoke", &reader_id]);
    assert!(ok);
    let resp = http
        .get(gw.url("/admin/v1/teams"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNAUTHORIZED).await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
    let (ok, _, stderr) = gw.cli(&["revoke", "atk_nope"]);
    assert!(!ok && stderr.contains("no admin token"));
}

#[tokio::test]
async fn invalid_input_is_a_422_naming_every_field() {
    let gw = Gateway::start();
    let http = client();
    let post = |body: String| {
        http.post(gw.url("/admin/v1/teams"))
            .bearer_auth(&gw.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let long = "d".repeat(1001);
    let body = problem(
        post(json!({"name": "  ", "description": long}).to_string())
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = fields(&body);
    assert_eq!(fields, vec!["name", "description"]);

    let body = problem(
        post(json!({"description": "x"}).to_string()).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "name");
    let body = problem(
        post(json!({"name": "a", "colour": "x"}).to_string())
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "colour");
    let body = problem(
        post(json!({"name": 5}).to_string()).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "name");
    problem(
        post("{not json".into()).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let oversized = post(format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024)))
        .await
        .unwrap();
    problem(oversized, StatusCode::PAYLOAD_TOO_LARGE).await;

    let resp = http
        .get(gw.url("/admin/v1/teams?limit=0&cursor=bogus"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let resp = http
        .get(gw.url("/admin/v1/teams?limit=201"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;

    // Nothing was created by any of the bad requests.
    let page: Value = http
        .get(gw.url("/admin/v1/teams"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);

    problem(
        http.get(gw.url("/admin/v1/nope")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        http.put(gw.url("/admin/v1/teams"))
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    let resp = http
        .get(gw.url("/admin/v1/teams/team_missing"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn pagination_has_no_duplicates_or_gaps_while_rows_are_inserted() {
    let gw = Gateway::start();
    let http = client();
    let mut originals = Vec::new();
    for i in 0..60 {
        let team: Value = http
            .post(gw.url("/admin/v1/teams"))
            .bearer_auth(&gw.token)
            .json(&json!({"name": format!("team {i:03}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        originals.push(team["id"].as_str().unwrap().to_owned());
    }
    // A writer keeps inserting while the reader pages through.
    let writer = {
        let (http, url, token) = (http.clone(), gw.url("/admin/v1/teams"), gw.token.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("late {i:03}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::CREATED);
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = gw.url("/admin/v1/teams?limit=7");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(&url)
            .bearer_auth(&gw.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    writer.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row was returned twice");
    assert_eq!(
        &seen[..60],
        &originals[..],
        "rows present at the start come first, in order, without gaps"
    );
}

#[tokio::test]
async fn a_replayed_post_returns_the_first_result_and_creates_nothing_new() {
    let gw = Gateway::start();
    let http = client();
    let send = |key: &'static str, name: &'static str| {
        http.post(gw.url("/admin/v1/teams"))
            .bearer_auth(&gw.token)
            .header("Idempotency-Key", key)
            .json(&json!({"name": name}))
            .send()
    };
    let first = send("k-1", "Acme").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_etag = first.headers()["etag"].clone();
    let first_body: Value = first.json().await.unwrap();
    let replay = send("k-1", "Acme").await.unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.headers()["etag"], first_etag);
    assert_eq!(replay.json::<Value>().await.unwrap(), first_body);

    let body = problem(
        send("k-1", "Other").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .ends_with("idempotency-key-reused")
    );

    // A failed request's answer is replayed too, and concurrent same-key requests create one team.
    assert_eq!(
        send("k-2", "Acme").await.unwrap().status(),
        StatusCode::CONFLICT
    );
    let results = futures_util::future::join_all((0..8).map(|_| send("k-3", "Concurrent"))).await;
    let created = results
        .iter()
        .filter(|r| r.as_ref().unwrap().status() == StatusCode::CREATED)
        .count();
    assert!(created >= 1);
    for r in &results {
        assert!(matches!(
            r.as_ref().unwrap().status(),
            StatusCode::CREATED | StatusCode::CONFLICT
        ));
    }
    let page: Value = http
        .get(gw.url("/admin/v1/teams"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = pluck(&page["items"], "name");
    assert_eq!(names, vec!["Acme", "Concurrent"]);
}

#[tokio::test]
async fn stale_updates_are_refused_and_every_write_is_audited() {
    let gw = Gateway::start();
    let http = client();
    let created = http
        .post(gw.url("/admin/v1/teams"))
        .bearer_auth(&gw.token)
        .json(&json!({"name": "Ops"}))
        .send()
        .await
        .unwrap();
    let create_request = created.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let team: Value = created.json().await.unwrap();
    let id = team["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/admin/v1/teams/{id}"));

    let got = http
        .get(gw.url(&location))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["etag"], "\"1\"");

    let patch = |etag: &'static str, name: &'static str| {
        http.patch(gw.url(&location))
            .bearer_auth(&gw.token)
            .header("If-Match", etag)
            .json(&json!({"name": name}))
            .send()
    };
    let updated = patch("\"1\"", "Operations").await.unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.headers()["etag"], "\"2\"");
    let update_request = updated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = problem(
        patch("\"1\"", "Stale").await.unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("current version 2")
    );
    problem(
        patch("garbage", "Stale").await.unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    let current: Value = http
        .get(gw.url(&location))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["name"], "Operations");

    let resp = http
        .delete(gw.url(&location))
        .bearer_auth(&gw.token)
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::PRECONDITION_FAILED).await;
    let resp = http
        .delete(gw.url(&location))
        .bearer_auth(&gw.token)
        .header("If-Match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let delete_request = resp.headers()["x-request-id"].to_str().unwrap().to_owned();

    let audit: Value = http
        .get(gw.url("/admin/v1/audit"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = audit["items"].as_array().unwrap();
    let info: Value = http
        .get(gw.url("/admin/v1/info"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["request_id"].as_str().unwrap(),
                e["token_id"].as_str().unwrap(),
            )
        })
        .collect();
    let token_id = info["token"]["id"].as_str().unwrap();
    assert_eq!(
        actions,
        vec![
            (
                "team.delete",
                id.as_str(),
                delete_request.as_str(),
                token_id
            ),
            (
                "team.update",
                id.as_str(),
                update_request.as_str(),
                token_id
            ),
            (
                "team.create",
                id.as_str(),
                create_request.as_str(),
                token_id
            ),
        ],
        "newest first, failed writes not recorded"
    );
}

#[tokio::test]
async fn the_openapi_document_is_generated_and_the_committed_copy_is_current() {
    let gw = Gateway::start();
    let served: Value = client()
        .get(gw.url("/admin/v1/openapi.json"))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    for path in [
        "/admin/v1/teams",
        "/admin/v1/teams/{id}",
        "/admin/v1/audit",
        "/admin/v1/info",
        "/healthz",
    ] {
        assert!(served["paths"][path].is_object(), "{path} missing");
    }
    let committed: Value = serde_json::from_str(tollgate_api::OPENAPI_JSON).unwrap();
    assert!(
        committed == served,
        "crates/api/openapi.json is stale: run `make openapi` and commit it"
    );
}

#[tokio::test]
async fn the_consumer_api_document_is_served_without_a_key_and_committed() {
    let gw = Gateway::start();
    let answer = client()
        .get(gw.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let served: Value = answer.json().await.unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/chat/completions", "post"),
        ("/v1/models", "get"),
        ("/v1/billing/status", "get"),
        ("/apis/{slug}", "post"),
    ] {
        assert!(
            served["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    // Every reason a refusal can carry is a value the document lists.
    let reasons = served["components"]["schemas"]["Problem"]["properties"]["reason"]["enum"]
        .as_array()
        .unwrap();
    for reason in [
        "insufficient-funds",
        "subscription-expired",
        "invalid-api-key",
        "not-found",
    ] {
        assert!(reasons.contains(&json!(reason)), "{reason}");
    }
    let committed: Value = serde_json::from_str(tollgate_api::CONSUMER_OPENAPI_JSON).unwrap();
    assert!(
        committed == served,
        "crates/api/consumer-openapi.json is stale: run `make openapi` and commit it"
    );
    let wrong = client()
        .post(gw.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// A SIGTERM sent the moment tollgated says it listens (before its accept
/// loop first waits) stops it cleanly: the handler is installed first.
#[test]
fn a_sigterm_as_soon_as_it_listens_is_a_clean_stop() {
    for _ in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let mut gw = Gateway::start_in(&tmp.path().join("data"));
        assert!(
            gw.terminate().success(),
            "SIGTERM must end tollgated cleanly"
        );
    }
}

#[tokio::test]
async fn bootstrap_token_is_written_once_and_shutdown_is_graceful() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut gw = Gateway::start_in(&dir);
    let file = dir.join("bootstrap-admin-token");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let health: Value = client()
        .get(gw.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        gw.terminate().success(),
        "SIGTERM must end tollgated cleanly"
    );

    // A restart keeps the token and writes no new one; the database holds only its hash.
    let before = std::fs::read_to_string(&file).unwrap();
    let gw2 = Gateway::start_in(&dir);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    let resp = client()
        .get(gw2.url("/admin/v1/info"))
        .bearer_auth(&gw2.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !common::stored_holds(&dir, before.trim().as_bytes()),
        "token stored in clear"
    );
}
