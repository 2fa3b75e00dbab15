//! Secrets found in free text and replaced, for the gateway (captured
//! bodies, before they are written to the call log) and the console (every
//! text it exports, or shows from a gateway's answer) alike: credentials —
//! API keys, admin tokens, bearer tokens, values of secret-named JSON
//! fields — and, with [`redact`], card numbers (digit runs that pass the
//! Luhn check).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

pub const REDACTED: &str = "[REDACTED]";

/// Values of JSON fields whose names say they are secret.
static SECRET_FIELDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)("(?:api[_-]?key|x-api-key|authorization|password|passwd|secret|client_secret|token|access_token|refresh_token|id_token|private_key|cvc|cvv|cvc2|card_?number)"\s*:\s*)"(?:[^"\\]|\\.)*""#,
    )
    .expect("a valid pattern")
});

/// Credentials recognisable by their shape; a bearer credential keeps its
/// `Bearer ` (group 1), so the text still says what was there.
static CREDENTIALS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i:(bearer)\s+)[A-Za-z0-9._~+/=-]{8,}",
        r"|\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}",
        r"|\btga?_[A-Za-z0-9]{8,}_[A-Za-z0-9_-]{8,}",
        r"|\bAKIA[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}",
        r"|\bxox[abprs]-[A-Za-z0-9-]{10,}",
    ))
    .expect("a valid pattern")
});

/// Runs of 13 to 19 digits, possibly grouped by spaces or dashes.
static DIGIT_RUNS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("a valid pattern"));

/// The Luhn checksum every card number carries, over digit values (0–9).
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut d = u32::from(*d);
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// Whether `number` is 12 to 19 digits with a valid check digit.
pub fn card_number_valid(number: &str) -> bool {
    let digits: Vec<u8> = number
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    digits.len() == number.len() && (12..=19).contains(&digits.len()) && luhn(&digits)
}

/// `text` with every credential found replaced.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let mut out =
        SECRET_FIELDS.replace_all(text, |c: &Captures<'_>| format!("{}\"{REDACTED}\"", &c[1]));
    if let Cow::Owned(s) = CREDENTIALS.replace_all(&out, |c: &Captures<'_>| match c.get(1) {
        Some(bearer) => format!("{} {REDACTED}", bearer.as_str()),
        None => REDACTED.to_owned(),
    }) {
        out = Cow::Owned(s);
    }
    out
}

/// `text` with every credential and card number found replaced.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = redact_credentials(text);
    if let Cow::Owned(s) = DIGIT_RUNS.replace_all(&out, |c: &Captures<'_>| {
        let digits: Vec<u8> = c[0]
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        if luhn(&digits) {
            "[REDACTED card]".to_owned()
        } else {
            c[0].to_owned()
        }
    }) {
        out = Cow::Owned(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tokens_secret_fields_and_cards_are_replaced() {
        let text = r#"{"messages":[{"role":"user","content":"card 4242 4242 4242 4242, cvc 123, key sk-proj-abcdefghijklmnop1234 and tg_abcdefgh1234_secretsecret99"}],"api_key":"plain-secret","password":"a \"quoted\" one","Authorization":"Bearer abc.def.ghi"}"#;
        let out = redact(text);
        for secret in [
            "4242",
            "sk-proj-abcdefghijklmnop1234",
            "tg_abcdefgh1234_secretsecret99",
            "plain-secret",
            "quoted",
            "abc.def.ghi",
        ] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("[REDACTED card]"), "{out}");
        assert!(out.contains(r#""api_key":"[REDACTED]""#), "{out}");
        // What is not secret stays, and the JSON stays JSON.
        assert!(out.contains(r#""role":"user""#));
        serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
    }

    #[test]
    fn numbers_that_are_not_cards_stay() {
        // 16 digits failing the Luhn check, a phone number, an order id.
        let text = "order 1234567812345678, call +1 415 555 0100, id 42";
        assert_eq!(redact(text), text);
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
        // Stripe's documented test cards are all redacted.
        for card in [
            "4000000000000002",
            "4000-0000-0000-9995",
            "5555 5555 5555 4444",
        ] {
            assert_eq!(redact(card), "[REDACTED card]", "{card}");
        }
    }
}
