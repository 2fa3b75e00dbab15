//! Payment processors. Card details pass through the gateway once, to the
//! processor, in exchange for a token; they are never stored or logged
//! ([`CardDetails`] redacts itself). The gateway keeps the token, brand,
//! last 4 digits and expiry, and records every charge with its result.

pub mod stripe;
pub mod test_processor;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Card details as typed by a person. `Debug` never shows the number or CVC.
pub struct CardDetails {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub cvc: String,
}

impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardDetails")
            .field("number", &"<redacted>")
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"<redacted>")
            .finish()
    }
}

/// What the gateway may keep of a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardToken {
    pub token: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
}

/// Why a card was refused, in the processor's terms (Stripe's codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CardError {
    /// `incorrect_number`, `invalid_expiry_month`, `invalid_expiry_year`,
    /// `expired_card`, `invalid_cvc`, `incorrect_cvc`, `card_declined`, …
    pub code: String,
    /// For `card_declined`: `generic_decline`, `insufficient_funds`, …
    pub decline_code: Option<String>,
    pub message: String,
}

impl CardError {
    pub fn new(code: &str, message: &str) -> Self {
        CardError {
            code: code.to_owned(),
            decline_code: None,
            message: message.to_owned(),
        }
    }

    pub fn declined(decline_code: &str, message: &str) -> Self {
        CardError {
            code: "card_declined".to_owned(),
            decline_code: Some(decline_code.to_owned()),
            message: message.to_owned(),
        }
    }
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeReceipt {
    pub charge_id: String,
}

#[async_trait]
pub trait PaymentProcessor: Send + Sync {
    /// The processor's name in settings (`test`, …).
    fn name(&self) -> &'static str;
    /// Exchanges card details for a token. Checks only what a tokenizer can:
    /// number (Luhn), expiry and CVC format.
    async fn tokenize(&self, card: CardDetails, now: DateTime<Utc>)
    -> Result<CardToken, CardError>;
    /// A zero-amount authorization, done when a card is put on file.
    async fn verify(&self, token: &CardToken, now: DateTime<Utc>) -> Result<(), CardError>;
    /// Charges `amount_micros` of `currency`; `idempotency_key` makes a retry safe.
    async fn charge(
        &self,
        token: &CardToken,
        amount_micros: i64,
        currency: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<ChargeReceipt, CardError>;
}

/// The card network of a number, from its leading digits.
pub fn brand_of(number: &str) -> &'static str {
    let two: u32 = number.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let four: u32 = number.get(..4).and_then(|p| p.parse().ok()).unwrap_or(0);
    if number.starts_with('4') {
        "visa"
    } else if (51..=55).contains(&two) || (2221..=2720).contains(&four) {
        "mastercard"
    } else if two == 34 || two == 37 {
        "amex"
    } else if four == 6011 || two == 65 {
        "discover"
    } else {
        "unknown"
    }
}

/// The Luhn checksum that every card number carries (and 12 to 19 digits).
pub use tollgate_api::redact::card_number_valid as luhn_valid;

/// Whether a card expiring at the end of `month`/`year` has expired at `now`.
pub fn expired(exp_month: u32, exp_year: i32, now: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (exp_year, exp_month) < (now.year(), now.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_brand_and_expiry() {
        for good in [
            "4242424242424242",
            "4000000000000002",
            "5555555555554444",
            "378282246310005",
        ] {
            assert!(luhn_valid(good), "{good}");
        }
        for bad in ["4242424242424241", "4242 4242 4242 4242", "42", "abcd"] {
            assert!(!luhn_valid(bad), "{bad}");
        }
        assert_eq!(brand_of("4242424242424242"), "visa");
        assert_eq!(brand_of("5555555555554444"), "mastercard");
        assert_eq!(brand_of("2223003122003222"), "mastercard");
        assert_eq!(brand_of("378282246310005"), "amex");
        assert_eq!(brand_of("6011111111111117"), "discover");
        let now = "2026-11-25T10:00:00Z".parse().unwrap();
        assert!(
            !expired(11, 2026, now),
            "valid through the end of its month"
        );
        assert!(expired(10, 2026, now));
        assert!(!expired(1, 2027, now));
    }

    #[test]
    fn card_details_never_show_in_debug() {
        let card = CardDetails {
            number: "4242424242424242".into(),
            exp_month: 1,
            exp_year: 2030,
            cvc: "123".into(),
        };
        let shown = format!("{card:?}");
        assert!(!shown.contains("4242") && !shown.contains("123"));
    }
}

/// The payment processors a gateway offers, by the name its payment
/// settings choose one with. The server decides which exist; billing only
/// looks them up.
#[derive(Clone, Default)]
pub struct Processors(Vec<(&'static str, Arc<dyn PaymentProcessor>)>);

/// The setting that turns card payments off.
pub const NO_PROCESSOR: &str = "none";

impl Processors {
    /// The built-in ones: `test` (Stripe's test cards, no money moves).
    pub fn builtin() -> Self {
        Self::default().with("test", Arc::new(test_processor::TestProcessor))
    }

    pub fn with(mut self, name: &'static str, processor: Arc<dyn PaymentProcessor>) -> Self {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, processor));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn PaymentProcessor>> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
    }

    /// The names the payment settings accept: each processor's, then `none`.
    pub fn names(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .map(|(n, _)| *n)
            .chain([NO_PROCESSOR])
            .collect()
    }
}
