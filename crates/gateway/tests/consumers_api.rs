//! Consumers and consumer keys through the management API of a real `tollgated`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, client, expect, fields, pluck};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api<'a> {
    gw: &'a Gateway,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.gw.url(path))
            .bearer_auth(&self.gw.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.gw.url(path))
            .bearer_auth(&self.gw.token)
            .send()
            .await
            .unwrap()
    }
    async fn json(&self, resp: reqwest::Response, status: StatusCode) -> Value {
        expect(resp, status).await
    }
    async fn team(&self, name: &str) -> String {
        let team = self
            .json(
                self.post("/admin/v1/teams", json!({"name": name})).await,
                StatusCode::CREATED,
            )
            .await;
        team["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn consumers_live_in_teams_with_validation_suspension_and_audit() {
    let gw = Gateway::start();
    let api = Api {
        gw: &gw,
        http: client(),
    };
    let acme = api.team("Acme").await;
    let globex = api.team("Globex").await;

    let created = api.post("/admin/v1/consumers", json!({"team_id": acme, "name": "Chatbot", "contact": "ops@acme.test", "metadata": {"tier": "gold"}})).await;
    assert_eq!(created.headers()["etag"], "\"1\"");
    let bot = api.json(created, StatusCode::CREATED).await;
    assert_eq!(
        (bot["status"].as_str(), bot["metadata"]["tier"].as_str()),
        (Some("active"), Some("gold"))
    );
    let bot_id = bot["id"].as_str().unwrap().to_owned();

    // Names are unique per team, not across teams.
    let dup = api
        .json(
            api.post(
                "/admin/v1/consumers",
                json!({"team_id": acme, "name": "chatbot"}),
            )
            .await,
            StatusCode::CONFLICT,
        )
        .await;
    assert!(
        dup["detail"].as_str().unwrap().contains("Chatbot")
            || dup["detail"].as_str().unwrap().contains("chatbot")
    );
    api.json(
        api.post(
            "/admin/v1/consumers",
            json!({"team_id": globex, "name": "Chatbot"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    let bad = api
        .json(
            api.post(
                "/admin/v1/consumers",
                json!({"team_id": "acme", "name": "", "metadata": {"bad key!": "x"}}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(fields(&bad), vec!["team_id", "name", "metadata.bad key!"]);
    let missing = api
        .json(
            api.post(
                "/admin/v1/consumers",
                json!({"team_id": "team_01jaaaaaaaaaaaaaaaaaaaaaaa", "name": "X"}),
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    // A well-formed id that names nothing is 404, as in a path.
    assert!(
        missing["detail"].as_str().unwrap().contains("team_id"),
        "{missing}"
    );

    let of_acme = api
        .json(
            api.get(&format!("/admin/v1/consumers?team_id={acme}"))
                .await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(of_acme["items"].as_array().unwrap().len(), 1);
    let all = api
        .json(api.get("/admin/v1/consumers").await, StatusCode::OK)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    api.json(
        api.get("/admin/v1/consumers?team_id=nope").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let suspended = api
        .http
        .patch(gw.url(&format!("/admin/v1/consumers/{bot_id}")))
        .bearer_auth(&gw.token)
        .header("If-Match", "\"1\"")
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    let suspended = api.json(suspended, StatusCode::OK).await;
    assert_eq!(suspended["status"], "suspended");
    let stale = api
        .http
        .patch(gw.url(&format!("/admin/v1/consumers/{bot_id}")))
        .bearer_auth(&gw.token)
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "Late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    // A team with consumers cannot be deleted; once they are gone it can.
    let refused = api
        .http
        .delete(gw.url(&format!("/admin/v1/teams/{acme}")))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    let refused = api.json(refused, StatusCode::CONFLICT).await;
    assert!(refused["detail"].as_str().unwrap().contains("consumers"));
    let gone = api
        .http
        .delete(gw.url(&format!("/admin/v1/consumers/{bot_id}")))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let deleted = api
        .http
        .delete(gw.url(&format!("/admin/v1/teams/{acme}")))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let audit = api
        .json(api.get("/admin/v1/audit?limit=200").await, StatusCode::OK)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == bot_id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["consumer.delete", "consumer.suspend", "consumer.create"]
    );
}

#[tokio::test]
async fn keys_are_shown_once_stored_hashed_rotated_with_grace_and_revoked() {
    let gw = Gateway::start();
    let api = Api {
        gw: &gw,
        http: client(),
    };
    let team = api.team("Acme").await;
    let consumer = api
        .json(
            api.post(
                "/admin/v1/consumers",
                json!({"team_id": team, "name": "App"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    let cid = consumer["id"].as_str().unwrap().to_owned();
    let keys_path = format!("/admin/v1/consumers/{cid}/keys");

    // Key operations need the `keys` scope; `write` is not enough.
    let writer = gw.create_token("writer", "read,write");
    let refused = api
        .http
        .post(gw.url(&keys_path))
        .bearer_auth(&writer)
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap();
    let refused = api.json(refused, StatusCode::FORBIDDEN).await;
    assert!(refused["detail"].as_str().unwrap().contains("`keys`"));

    let resp = api
        .http
        .post(gw.url(&keys_path))
        .bearer_auth(&gw.token)
        .header("Idempotency-Key", "issue-1")
        .json(&json!({"name": "production", "allowed_apis": ["chat"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let issued = api.json(resp, StatusCode::CREATED).await;
    let secret = issued["secret"].as_str().unwrap().to_owned();
    let key = &issued["key"];
    let key_id = key["id"].as_str().unwrap().to_owned();
    let prefix = key["display_prefix"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tg_") && secret.starts_with(&prefix) && secret.len() > 50);
    assert_eq!(
        (key["status"].as_str(), key["allowed_apis"][0].as_str()),
        (Some("active"), Some("chat"))
    );

    // A replay answers with the same key but never the secret again.
    let replay = api
        .http
        .post(gw.url(&keys_path))
        .bearer_auth(&gw.token)
        .header("Idempotency-Key", "issue-1")
        .json(&json!({"name": "production", "allowed_apis": ["chat"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay = api.json(replay, StatusCode::CREATED).await;
    assert_eq!(replay["key"]["id"], key_id.as_str());
    assert!(replay.get("secret").is_none());

    // Reads never carry the secret; the key is found by its prefix.
    let one = api
        .json(
            api.get(&format!("/admin/v1/keys/{key_id}")).await,
            StatusCode::OK,
        )
        .await;
    assert!(!one.to_string().contains(&secret));
    let found = api
        .json(
            api.get(&format!("/admin/v1/keys?prefix={}", &prefix[..6]))
                .await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(found["items"][0]["id"], key_id.as_str());
    api.json(
        api.get("/admin/v1/keys?prefix=sk-abc").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let listed = api.json(api.get(&keys_path).await, StatusCode::OK).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let bad = api.json(api.post(&keys_path, json!({"name": "", "allowed_apis": ["Bad API"], "expires_at": "2020-01-01T00:00:00Z"})).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(fields(&bad), vec!["name", "allowed_apis.0", "expires_at"]);
    api.json(
        api.post(
            "/admin/v1/consumers/con_01jaaaaaaaaaaaaaaaaaaaaaaa/keys",
            json!({"name": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Rotation: a successor now, the old key valid for the grace period.
    api.json(
        api.post(
            &format!("/admin/v1/keys/{key_id}/rotate"),
            json!({"grace_seconds": 700000}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let rotated = api
        .json(
            api.post(
                &format!("/admin/v1/keys/{key_id}/rotate"),
                json!({"grace_seconds": 3600}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    let new_id = rotated["key"]["id"].as_str().unwrap().to_owned();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(rotated["key"]["allowed_apis"], json!(["chat"]));
    let old = api
        .json(
            api.get(&format!("/admin/v1/keys/{key_id}")).await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (old["status"].as_str(), old["replaced_by"].as_str()),
        (Some("rotating"), Some(new_id.as_str()))
    );
    let grace = chrono::DateTime::parse_from_rfc3339(old["grace_until"].as_str().unwrap()).unwrap();
    let left = grace.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!((3500..=3600).contains(&left.num_seconds()), "{left}");
    api.json(
        api.post(
            &format!("/admin/v1/keys/{key_id}/rotate"),
            json!({"grace_seconds": 0}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;

    let revoked = api
        .json(
            api.post(&format!("/admin/v1/keys/{new_id}/revoke"), json!({}))
                .await,
            StatusCode::OK,
        )
        .await;
    assert_eq!(revoked["status"], "revoked");
    api.json(
        api.post(&format!("/admin/v1/keys/{new_id}/revoke"), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    api.json(
        api.post(
            &format!("/admin/v1/keys/{new_id}/rotate"),
            json!({"grace_seconds": 0}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;

    let audit = api
        .json(api.get("/admin/v1/audit?limit=200").await, StatusCode::OK)
        .await;
    let actions: Vec<&str> = pluck(&audit["items"], "action");
    assert_eq!(
        &actions[..4],
        &[
            "consumer_key.revoke",
            "consumer_key.create",
            "consumer_key.rotate",
            "consumer_key.create"
        ]
    );

    // Only hashes reach the disk.
    for s in [&secret, &new_secret] {
        assert!(
            !common::stored_holds(&gw.dir, s.as_bytes()),
            "a key is stored in clear"
        );
    }
}
