//! Stripe's webhook signatures. Stripe sends `Stripe-Signature: t=<unix
//! seconds>,v1=<hex>[,v1=<hex>…]`, each `v1` an HMAC-SHA256 of
//! `"<t>.<body>"` keyed with the endpoint's signing secret (several while a
//! secret is being rolled); other schemes (`v0`) are ignored. A signature
//! older than the tolerance is refused, so a captured request cannot be
//! replayed later.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's own libraries allow five minutes.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp `t` or no `v1` signature")]
    Malformed,
    #[error(
        "the signature was made {age_secs} s from now, outside the {TOLERANCE_SECS} s tolerance"
    )]
    Stale { age_secs: i64 },
    #[error("no `v1` signature matches the body with the webhook signing secret")]
    Mismatch,
}

/// Checks `header` against `body` with `secret` at `now`; returns the
/// signature's timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) => signatures.extend(hex::decode(hex).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age_secs = now.timestamp() - timestamp;
    if age_secs.abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale { age_secs });
    }
    let signed = |key: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    };
    // `verify_slice` compares in constant time.
    if signatures
        .iter()
        .any(|s| signed(secret.as_bytes()).verify_slice(s).is_ok())
    {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `body` at `timestamp` (for tests and
/// fixtures that sign as Stripe does).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BODY: &str = r#"{"id": "evt_1", "object": "event", "type": "setup_intent.succeeded"}"#;
    const SECRET: &str = "whsec_test_secret";
    /// Made by the official `stripe` Python library (16.1.0):
    /// `stripe.WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=1765000000)`.
    const SDK_HEADER: &str =
        "t=1765000000,v1=3688f6a050852b786e2254b44a43bb747911115c299635ce437e2921707255f4";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    #[test]
    fn what_the_official_library_signs_is_accepted_and_signed_alike() {
        assert_eq!(
            verify(Some(SDK_HEADER), BODY.as_bytes(), SECRET, at(1_765_000_100)),
            Ok(1_765_000_000)
        );
        assert_eq!(sign(BODY.as_bytes(), SECRET, 1_765_000_000), SDK_HEADER);
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_other_schemes_are_ignored() {
        let good = SDK_HEADER.split_once(",v1=").unwrap().1;
        let header = format!("t=1765000000,v0=abcd,v1={},v1={good}", "00".repeat(32));
        assert!(verify(Some(&header), BODY.as_bytes(), SECRET, at(1_765_000_000)).is_ok());
    }

    #[test]
    fn a_tampered_body_a_wrong_secret_or_a_stale_or_malformed_header_is_refused() {
        let now = at(1_765_000_000);
        let tampered = BODY.replace("evt_1", "evt_2");
        assert_eq!(
            verify(Some(SDK_HEADER), tampered.as_bytes(), SECRET, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(SDK_HEADER), BODY.as_bytes(), "whsec_other", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(SDK_HEADER), BODY.as_bytes(), SECRET, at(1_765_000_301)),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        assert_eq!(
            verify(Some(SDK_HEADER), BODY.as_bytes(), SECRET, at(1_764_999_699)),
            Err(SignatureError::Stale { age_secs: -301 })
        );
        assert!(verify(Some(SDK_HEADER), BODY.as_bytes(), SECRET, at(1_765_000_300)).is_ok());
        for bad in [
            "",
            "v1=abc",
            "t=now,v1=00",
            "t=1765000000",
            "t=1765000000,v1=zz",
        ] {
            assert_eq!(
                verify(Some(bad), BODY.as_bytes(), SECRET, now),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(None, BODY.as_bytes(), SECRET, now),
            Err(SignatureError::Missing)
        );
    }
}
