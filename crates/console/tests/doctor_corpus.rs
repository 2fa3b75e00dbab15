//! The 402 doctor's classifier against a corpus of documented answers from
//! Tollgate and other gateways, providers and payment processors: one file
//! per case under `tests/doctor/corpus/`, what each must be classified as in
//! `tests/doctor/expected.json`. Shapes the doctor does not know must answer
//! "unknown" rather than a confident guess.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use tollgate_console::doctor::{Cause, Classification, RawResponse, classify, classify_text};

#[derive(Deserialize)]
struct Expected {
    cause: String,
    origin: String,
    system: String,
}

/// Read where the test runs (cargo and nextest set `CARGO_MANIFEST_DIR`):
/// the path compiled in names the checkout that built the binary, which a
/// shared target directory may reuse for another checkout.
fn corpus_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("../../tests/doctor")
}

fn load() -> (BTreeMap<String, Expected>, Vec<(String, String)>) {
    let dir = corpus_dir();
    let expected: BTreeMap<String, Expected> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.join("corpus")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((name, std::fs::read_to_string(&path).unwrap()));
    }
    files.sort();
    (expected, files)
}

fn classified(text: &str) -> Classification {
    classify(&RawResponse::parse(text).unwrap())
}

fn evidence<'a>(c: &'a Classification, field: &str) -> Option<&'a str> {
    c.evidence
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.value.as_str())
}

#[test]
fn every_case_is_classified_as_documented() {
    let (expected, files) = load();
    assert!(files.len() >= 40, "the corpus shrank to {}", files.len());
    let names: Vec<&String> = files.iter().map(|(n, _)| n).collect();
    for name in expected.keys() {
        assert!(names.contains(&name), "{name} is expected but has no file");
    }
    let mut failures = Vec::new();
    for (name, text) in &files {
        let want = expected
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no expectation in expected.json"));
        // What the CLI prints is the same classification, as JSON.
        let json: serde_json::Value = serde_json::from_str(&classify_text(text).unwrap()).unwrap();
        let got = (
            json["cause"].as_str().unwrap(),
            json["origin"].as_str().unwrap(),
            json["system"].as_str().unwrap(),
        );
        if got
            != (
                want.cause.as_str(),
                want.origin.as_str(),
                want.system.as_str(),
            )
        {
            failures.push(format!(
                "{name}: got {got:?}, want ({}, {}, {})",
                want.cause, want.origin, want.system
            ));
            continue;
        }
        let c = classified(text);
        assert!(!c.fix.is_empty(), "{name}: no fix");
        assert_eq!(c.evidence[0].field, "status", "{name}");
        if c.cause == Cause::Unknown || want.system == "unknown" {
            assert!(
                c.confidence <= 0.6,
                "{name}: a guess at confidence {}",
                c.confidence
            );
        } else {
            assert!(
                c.confidence >= 0.75,
                "{name}: known shape at confidence {}",
                c.confidence
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_evidence_names_the_fields_relied_on() {
    let (_, files) = load();
    let get = |name: &str| {
        classified(
            &files
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name}"))
                .1,
        )
    };
    let v2 = get("x402-v2-402-payment-required-header.http");
    assert_eq!(evidence(&v2, "x402.accepts[0].amount"), Some("10000"));
    assert_eq!(
        evidence(&v2, "x402.accepts[0].network"),
        Some("eip155:84532")
    );
    assert!(v2.fix.contains("PAYMENT-SIGNATURE"), "{}", v2.fix);
    let v1 = get("x402-v1-402-accepts.http");
    assert_eq!(evidence(&v1, "x402.accepts[0].amount"), Some("10000"));
    assert!(v1.fix.contains("X-PAYMENT"), "{}", v1.fix);

    let stolen = get("stripe-402-card-declined-stolen.http");
    assert_eq!(
        evidence(&stolen, "body.error.decline_code"),
        Some("stolen_card")
    );
    assert!(stolen.fix.contains("do not retry"), "{}", stolen.fix);
    let funds = get("stripe-402-card-declined-insufficient-funds.http");
    assert!(funds.fix.contains("insufficient funds"), "{}", funds.fix);

    let month = get("kong-429-month-quota-spent.http");
    assert_eq!(
        evidence(&month, "header.x-ratelimit-remaining-month"),
        Some("0")
    );
    let minute = get("kong-429-minute-rate-limit.http");
    assert_eq!(
        evidence(&minute, "header.x-ratelimit-remaining-minute"),
        Some("0")
    );

    let funds = get("tollgate-402-insufficient-funds.http");
    assert_eq!(evidence(&funds, "body.balance"), Some("0.010000"));
    assert_eq!(evidence(&funds, "body.required"), Some("0.250000"));
    assert_eq!(funds.confidence, 1.0);
    let past_due = get("tollgate-402-subscription-past-due.http");
    assert_eq!(
        evidence(&past_due, "body.payment_method.last_decline_code"),
        Some("insufficient_funds")
    );

    // The provider's own masked key is evidence, kept as it was sent.
    let openai = get("openai-401-invalid-api-key.http");
    assert_eq!(
        evidence(&openai, "body.error.code"),
        Some("invalid_api_key")
    );
    assert!(
        evidence(&openai, "body.error.message").is_some_and(|m| m.contains("sk-proj-****")),
        "{:?}",
        openai.evidence
    );
}

#[test]
fn an_openai_code_from_an_unknown_server_is_less_certain() {
    let text = "HTTP/1.1 429 Too Many Requests\ncontent-type: application/json\n\n\
        {\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}";
    let c = classified(text);
    assert_eq!(c.cause, Cause::QuotaExceeded);
    assert!(c.confidence < 0.8, "{}", c.confidence);
}

#[test]
fn a_file_that_is_not_a_response_is_refused_with_a_reason() {
    let err = classify_text("{\"error\": \"Quota exceeded\"}").unwrap_err();
    assert!(err.to_string().contains("status line"), "{err}");
}
