//! The built-in `test` processor: behaves like Stripe's documented test cards,
//! offline. Tokens carry the card's behaviour so they survive restarts.
//!
//! | number | on file (verify) | when charged |
//! |---|---|---|
//! | 4242 4242 4242 4242 (and any other valid number) | ok | succeeds |
//! | 4000 0000 0000 0002 | `card_declined` / `generic_decline` | same |
//! | 4000 0000 0000 9995 | ok (a zero-amount check sees no funds problem) | `card_declined` / `insufficient_funds` |
//! | 4000 0000 0000 0069 | `expired_card` | `expired_card` |
//! | 4000 0000 0000 0127 | `incorrect_cvc` | succeeds (no CVC on recurring charges) |
//! | 4000 0000 0000 0341 | ok | `card_declined` / `generic_decline` |
//!
//! A card whose expiry date has passed fails every charge with `expired_card`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::RngCore;

use super::{
    CardDetails, CardError, CardToken, ChargeReceipt, PaymentProcessor, brand_of, expired,
    luhn_valid,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    GenericDecline,
    InsufficientFunds,
    ExpiredCard,
    IncorrectCvc,
    DeclineOnCharge,
}

impl Behaviour {
    fn of(number: &str) -> Self {
        match number {
            "4000000000000002" => Behaviour::GenericDecline,
            "4000000000009995" => Behaviour::InsufficientFunds,
            "4000000000000069" => Behaviour::ExpiredCard,
            "4000000000000127" => Behaviour::IncorrectCvc,
            "4000000000000341" => Behaviour::DeclineOnCharge,
            _ => Behaviour::Succeed,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Behaviour::Succeed => "ok",
            Behaviour::GenericDecline => "decline",
            Behaviour::InsufficientFunds => "funds",
            Behaviour::ExpiredCard => "expired",
            Behaviour::IncorrectCvc => "cvc",
            Behaviour::DeclineOnCharge => "chargefail",
        }
    }

    fn from_token(token: &str) -> Self {
        let tag = token
            .strip_prefix("tok_test_")
            .and_then(|rest| rest.split('_').next())
            .unwrap_or("ok");
        [
            Behaviour::Succeed,
            Behaviour::GenericDecline,
            Behaviour::InsufficientFunds,
            Behaviour::ExpiredCard,
            Behaviour::IncorrectCvc,
            Behaviour::DeclineOnCharge,
        ]
        .into_iter()
        .find(|b| b.tag() == tag)
        .unwrap_or(Behaviour::Succeed)
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Default)]
pub struct TestProcessor;

#[async_trait]
impl PaymentProcessor for TestProcessor {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn tokenize(
        &self,
        card: CardDetails,
        now: DateTime<Utc>,
    ) -> Result<CardToken, CardError> {
        let number: String = card
            .number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if !luhn_valid(&number) {
            return Err(CardError::new(
                "incorrect_number",
                "The card number is incorrect.",
            ));
        }
        if !(1..=12).contains(&card.exp_month) {
            return Err(CardError::new(
                "invalid_expiry_month",
                "The card's expiration month is invalid.",
            ));
        }
        if !(2000..=2100).contains(&card.exp_year) {
            return Err(CardError::new(
                "invalid_expiry_year",
                "The card's expiration year is invalid.",
            ));
        }
        if expired(card.exp_month, card.exp_year, now) {
            return Err(CardError::new("expired_card", "The card has expired."));
        }
        if !(3..=4).contains(&card.cvc.len()) || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::new(
                "invalid_cvc",
                "The card's security code is invalid.",
            ));
        }
        let behaviour = Behaviour::of(&number);
        Ok(CardToken {
            token: format!("tok_test_{}_{}", behaviour.tag(), random_suffix()),
            brand: brand_of(&number).to_owned(),
            last4: number[number.len() - 4..].to_owned(),
            exp_month: card.exp_month,
            exp_year: card.exp_year,
        })
    }

    async fn verify(&self, token: &CardToken, now: DateTime<Utc>) -> Result<(), CardError> {
        if expired(token.exp_month, token.exp_year, now) {
            return Err(CardError::new("expired_card", "The card has expired."));
        }
        match Behaviour::from_token(&token.token) {
            Behaviour::GenericDecline => Err(CardError::declined(
                "generic_decline",
                "The card was declined.",
            )),
            Behaviour::ExpiredCard => Err(CardError::new("expired_card", "The card has expired.")),
            Behaviour::IncorrectCvc => Err(CardError::new(
                "incorrect_cvc",
                "The card's security code is incorrect.",
            )),
            Behaviour::Succeed | Behaviour::InsufficientFunds | Behaviour::DeclineOnCharge => {
                Ok(())
            }
        }
    }

    async fn charge(
        &self,
        token: &CardToken,
        amount_micros: i64,
        _currency: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<ChargeReceipt, CardError> {
        if amount_micros <= 0 {
            return Err(CardError::new(
                "amount_too_small",
                "The amount must be greater than zero.",
            ));
        }
        if expired(token.exp_month, token.exp_year, now) {
            return Err(CardError::new("expired_card", "The card has expired."));
        }
        match Behaviour::from_token(&token.token) {
            Behaviour::GenericDecline | Behaviour::DeclineOnCharge => Err(CardError::declined(
                "generic_decline",
                "The card was declined.",
            )),
            Behaviour::InsufficientFunds => Err(CardError::declined(
                "insufficient_funds",
                "The card has insufficient funds to complete the purchase.",
            )),
            Behaviour::ExpiredCard => Err(CardError::new("expired_card", "The card has expired.")),
            Behaviour::Succeed | Behaviour::IncorrectCvc => {
                // Same key, same charge id: a retried charge is not a second charge.
                let digest =
                    crate::tokens::hash_token(&format!("{}:{idempotency_key}", token.token));
                let id: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                Ok(ChargeReceipt {
                    charge_id: format!("ch_test_{id}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(number: &str) -> CardDetails {
        CardDetails {
            number: number.into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    async fn outcome(number: &str) -> (Result<(), String>, Result<(), String>) {
        let p = TestProcessor;
        let token = p.tokenize(card(number), now()).await.unwrap();
        let code = |e: CardError| format!("{}/{}", e.code, e.decline_code.unwrap_or_default());
        (
            p.verify(&token, now()).await.map_err(code),
            p.charge(&token, 1_000_000, "USD", "k", now())
                .await
                .map(|_| ())
                .map_err(code),
        )
    }

    #[tokio::test]
    async fn behaves_like_stripes_test_cards() {
        assert_eq!(outcome("4242424242424242").await, (Ok(()), Ok(())));
        assert_eq!(
            outcome("4000000000000002").await.0,
            Err("card_declined/generic_decline".into())
        );
        assert_eq!(
            outcome("4000000000009995").await,
            (Ok(()), Err("card_declined/insufficient_funds".into()))
        );
        assert_eq!(
            outcome("4000000000000069").await.0,
            Err("expired_card/".into())
        );
        assert_eq!(
            outcome("4000000000000127").await.0,
            Err("incorrect_cvc/".into())
        );
        assert_eq!(
            outcome("4000000000000341").await,
            (Ok(()), Err("card_declined/generic_decline".into()))
        );
    }

    #[tokio::test]
    async fn tokenizing_checks_number_expiry_and_cvc() {
        let p = TestProcessor;
        let code = |r: Result<CardToken, CardError>| r.unwrap_err().code;
        assert_eq!(
            code(p.tokenize(card("4242424242424241"), now()).await),
            "incorrect_number"
        );
        let mut c = card("4242424242424242");
        c.exp_month = 13;
        assert_eq!(code(p.tokenize(c, now()).await), "invalid_expiry_month");
        let mut c = card("4242424242424242");
        (c.exp_month, c.exp_year) = (10, 2026);
        assert_eq!(code(p.tokenize(c, now()).await), "expired_card");
        let mut c = card("4242424242424242");
        c.cvc = "12a".into();
        assert_eq!(code(p.tokenize(c, now()).await), "invalid_cvc");
        let token = p
            .tokenize(card("4242 4242 4242 4242"), now())
            .await
            .unwrap();
        assert_eq!(
            (token.brand.as_str(), token.last4.as_str()),
            ("visa", "4242")
        );
        assert!(!token.token.contains("4242424242424242"));
    }

    #[tokio::test]
    async fn a_card_that_expires_on_file_fails_its_next_charge_and_charges_are_idempotent() {
        let p = TestProcessor;
        let mut c = card("4242424242424242");
        (c.exp_month, c.exp_year) = (12, 2026);
        let token = p.tokenize(c, now()).await.unwrap();
        let first = p
            .charge(&token, 5, "USD", "renewal-1", now())
            .await
            .unwrap();
        assert_eq!(
            p.charge(&token, 5, "USD", "renewal-1", now())
                .await
                .unwrap(),
            first
        );
        assert_ne!(
            p.charge(&token, 5, "USD", "renewal-2", now())
                .await
                .unwrap(),
            first
        );
        let next_year = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            p.charge(&token, 5, "USD", "renewal-3", next_year)
                .await
                .unwrap_err()
                .code,
            "expired_card"
        );
    }
}
