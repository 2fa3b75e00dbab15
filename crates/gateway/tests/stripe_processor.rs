//! The `stripe` processor against the local Stripe-compatible server (a
//! test fixture, `tests/stripe-fixture`): its settings (keys sealed at rest,
//! never shown) and "test the connection".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::stripe::StripeFixture;
use common::{Gateway, fields, stored_holds};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET_KEY: &str = "sk_test_51TollgateStripeFixtureKey4321";
const WEBHOOK_SECRET: &str = "whsec_TollgateFixtureSigningSecret";

async fn tested(gw: &Gateway, query: &str) -> Value {
    gw.send(
        "POST",
        &format!("/admin/v1/billing/settings/test{query}"),
        Value::Null,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn stripe_keys_are_sealed_and_the_connection_is_tested_before_switching() {
    let stripe = StripeFixture::start(SECRET_KEY);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gw = Gateway::start_in(&dir);

    // Nothing saved yet: the test says what is missing.
    let missing = tested(&gw, "?processor=stripe").await;
    assert_eq!(
        (missing["ok"].as_bool(), missing["code"].as_str()),
        (Some(false), Some("credentials-missing"))
    );

    let saved = gw
        .send(
            "PUT",
            "/admin/v1/billing/settings",
            json!({
                "credentials": SECRET_KEY,
                "publishable_key": "pk_test_51TollgateFixture",
                "webhook_secret": WEBHOOK_SECRET,
                "api_base_url": format!("{}/", stripe.url),
            }),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        saved["processor"], "test",
        "saving Stripe's keys does not switch"
    );
    assert_eq!(saved["publishable_key"], "pk_test_51TollgateFixture");
    assert_eq!(saved["webhook_secret_set"], true);
    assert_eq!(saved["credentials_last4"], "4321");
    assert_eq!(saved["api_base_url"].as_str(), Some(stripe.url.as_str()));
    let shown = saved.to_string();
    assert!(!shown.contains(SECRET_KEY) && !shown.contains(WEBHOOK_SECRET));

    let ok = tested(&gw, "?processor=stripe").await;
    assert_eq!(
        (
            ok["ok"].as_bool(),
            ok["code"].as_str(),
            ok["processor"].as_str()
        ),
        (Some(true), Some("connected"), Some("stripe")),
        "{ok}"
    );
    // The processor in force is still the built-in one.
    assert_eq!(tested(&gw, "").await["processor"], "test");

    // A key Stripe does not know: refused, named by its last 4 only.
    let wrong = "sk_test_51SomebodyElsesKeyNotKnown8888";
    gw.send(
        "PUT",
        "/admin/v1/billing/settings",
        json!({"credentials": wrong}),
        StatusCode::OK,
    )
    .await;
    let refused = tested(&gw, "?processor=stripe").await;
    assert_eq!(
        (refused["ok"].as_bool(), refused["code"].as_str()),
        (Some(false), Some("credentials-refused")),
        "{refused}"
    );
    assert!(refused["message"].as_str().unwrap().contains("8888"));
    assert!(!refused.to_string().contains(wrong));

    // A proxy in front of Stripe failing (502, no Request-Id): Stripe is
    // out of reach, not a wrong base URL.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in proxy.incoming().flatten() {
            use std::io::{Read, Write};
            let _ = conn.read(&mut [0u8; 4096]);
            let _ = conn.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    // Nothing listening there, a failing proxy, and a server that is not
    // Stripe's API.
    for (base, code) in [
        ("http://127.0.0.1:9".to_owned(), "unreachable"),
        (proxy_url, "unreachable"),
        (
            gw.url("/admin/v1/info").replace("/admin/v1/info", ""),
            "not-stripe",
        ),
    ] {
        gw.send(
            "PUT",
            "/admin/v1/billing/settings",
            json!({"credentials": SECRET_KEY, "api_base_url": base}),
            StatusCode::OK,
        )
        .await;
        let found = tested(&gw, "?processor=stripe").await;
        assert_eq!(
            (found["ok"].as_bool(), found["code"].as_str()),
            (Some(false), Some(code)),
            "{found}"
        );
    }

    // Sealed at rest: neither secret is in the data directory.
    drop(gw);
    assert!(!stored_holds(&dir, SECRET_KEY.as_bytes()));
    assert!(!stored_holds(&dir, WEBHOOK_SECRET.as_bytes()));
}

#[tokio::test]
async fn stripe_settings_refuse_keys_of_the_wrong_kind_and_bad_urls() {
    let gw = Gateway::start();
    for (body, field) in [
        (
            json!({"publishable_key": "sk_test_51NotPublishable"}),
            "publishable_key",
        ),
        (json!({"publishable_key": "pk_test_"}), "publishable_key"),
        (
            json!({"webhook_secret": "not_a_signing_secret"}),
            "webhook_secret",
        ),
        (json!({"api_base_url": "ftp://example.com"}), "api_base_url"),
        (
            json!({"api_base_url": "https://user:pw@example.com"}),
            "api_base_url",
        ),
        (
            json!({"api_base_url": "https://example.com/?q=1"}),
            "api_base_url",
        ),
        (json!({"api_base_url": "not a url"}), "api_base_url"),
    ] {
        let problem = gw
            .send(
                "PUT",
                "/admin/v1/billing/settings",
                body.clone(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(fields(&problem), vec![field], "{body}");
    }
    let problem = gw
        .send(
            "POST",
            "/admin/v1/billing/settings/test?processor=paypal",
            Value::Null,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(fields(&problem), vec!["processor"]);
    // Nothing was changed by the refused requests.
    let settings = gw
        .send(
            "GET",
            "/admin/v1/billing/settings",
            Value::Null,
            StatusCode::OK,
        )
        .await;
    assert_eq!(settings["version"], 0);
    // Clearing works and is shown.
    let cleared = gw
        .send(
            "PUT",
            "/admin/v1/billing/settings",
            json!({"publishable_key": "", "webhook_secret": "", "api_base_url": ""}),
            StatusCode::OK,
        )
        .await;
    assert!(cleared["publishable_key"].is_null() && cleared["api_base_url"].is_null());
    assert_eq!(cleared["webhook_secret_set"], false);
}
