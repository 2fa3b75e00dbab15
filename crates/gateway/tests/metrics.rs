//! `GET /metrics`: Prometheus metrics of a real `tollgated` after real calls
//! (routed to the simulated provider, a test fixture), valid per
//! `promtool check metrics` (Debian's prometheus package), readable with an
//! admin token, or without one on the separate metrics address only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client;
use common::routed::Setup;
use reqwest::StatusCode;
use serde_json::Value;

/// `promtool check metrics` on `text`: (success, what it said).
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package, installed by scripts/setup.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The value of the sample `line` (its name and labels, exactly) in `text`.
fn sample(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_calls_and_states_and_pass_promtool() {
    let s = Setup::with("metrics_listen = \"127.0.0.1:0\"\n").await;
    let provider = s
        .provider(
            "openai-compatible",
            "Sim",
            &[("sim-small", None)],
            &["sim-key-good-0023", "sim-key-good-0024"],
            30,
        )
        .await;
    let (_, key) = s.consumer("Measured", &[]).await;
    for _ in 0..3 {
        assert_eq!(s.call(&key, "sim-small").await.status(), StatusCode::OK);
    }
    // A model nobody serves: refused, and its made-up name is not a label.
    let made_up = s.call(&key, "made-up-model-7731").await;
    assert_eq!(made_up.status(), StatusCode::NOT_FOUND);
    let refused: Value = made_up.json().await.unwrap();
    let reason = refused["type"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    // Without a token: refused on the gateway's address.
    let anonymous = client().get(s.gw.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    // The calls are counted once the usage writer has seen them (a window).
    let served = format!(
        "tollgate_calls_total{{model=\"sim-small\",provider=\"{provider}\",reason=\"\",status=\"200\"}}"
    );
    let started = Instant::now();
    let text = loop {
        let resp = client()
            .get(s.gw.url("/metrics"))
            .bearer_auth(&s.gw.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = resp.text().await.unwrap();
        if sample(&text, &served) == Some(3.0) {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the served calls were not counted within 10 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (valid, said) = promtool(&text);
    assert!(valid, "promtool check metrics: {said}\n{text}");

    let refusal = format!(
        "tollgate_calls_total{{model=\"\",provider=\"\",reason=\"{reason}\",status=\"404\"}}"
    );
    assert_eq!(sample(&text, &refusal), Some(1.0), "{text}");
    assert!(!text.contains("made-up-model"), "{text}");
    for (line, at_least) in [
        (
            format!("tollgate_provider_keys{{provider=\"{provider}\",state=\"active\"}}"),
            2.0,
        ),
        (
            format!(
                "tollgate_provider_info{{kind=\"openai-compatible\",name=\"Sim\",provider=\"{provider}\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "tollgate_tokens_total{{direction=\"completion\",model=\"sim-small\",provider=\"{provider}\"}}"
            ),
            3.0,
        ),
        (
            "tollgate_call_duration_seconds_count{outcome=\"served\"}".to_owned(),
            3.0,
        ),
        (
            "tollgate_call_duration_seconds_count{outcome=\"refused\"}".to_owned(),
            1.0,
        ),
        (
            format!("tollgate_upstream_duration_seconds_count{{provider=\"{provider}\"}}"),
            3.0,
        ),
        (
            "tollgate_charged_micros_total{currency=\"USD\"}".to_owned(),
            1.0,
        ),
        ("tollgate_database_connections_max".to_owned(), 1.0),
        ("tollgate_leads_jobs".to_owned(), 1.0),
        // The charged calls were paid from a lease the node asked for.
        (
            "tollgate_lease_request_duration_seconds_count".to_owned(),
            1.0,
        ),
        (
            "tollgate_usage_write_duration_seconds_count".to_owned(),
            1.0,
        ),
    ] {
        let value = sample(&text, &line).unwrap_or_else(|| panic!("{line} missing:\n{text}"));
        assert!(value >= at_least, "{line} = {value}, not ≥ {at_least}");
    }
    for family in ["tollgate_usage_writer_lag_seconds", "tollgate_leases"] {
        assert!(sample(&text, family).is_some(), "{family} missing:\n{text}");
    }

    // The metrics address serves them without a token, and nothing else.
    let metrics_url = s.gw.metrics_url.clone().expect("the metrics address");
    let open = client().get(&metrics_url).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let open = open.text().await.unwrap();
    assert!(sample(&open, &served).is_some(), "{open}");
    assert!(promtool(&open).0);
    let elsewhere = metrics_url.replace("/metrics", "/admin/v1/info");
    let other = client().get(&elsewhere).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    // A token without the read scope is refused.
    let writer = s.gw.create_token("metrics-writer", "keys");
    let forbidden = client()
        .get(s.gw.url("/metrics"))
        .bearer_auth(writer)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

#[test]
fn a_metrics_address_equal_to_the_gateways_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgated"))
        .args([
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:47123",
            "--metrics-listen",
            "127.0.0.1:47123",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics_listen"), "{stderr}");
}
