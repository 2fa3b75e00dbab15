//! Which payment failure an HTTP answer stands for, from its status, body and
//! headers alone: Tollgate's own problem answers and the documented shapes of
//! other gateways, providers and payment processors. Each rule recognises one
//! system's shape and says what it relied on; an answer no rule recognises is
//! "unknown", with what was seen — never a guess.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

use super::response::RawResponse;
use crate::logs::export::scrub;

/// Why a call was refused, in words common to every system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Cause {
    InsufficientFunds,
    BudgetExceeded,
    QuotaExceeded,
    RateLimited,
    SubscriptionExpired,
    SubscriptionPastDue,
    SubscriptionPendingApproval,
    NotSubscribed,
    PaymentMethodInvalid,
    PaymentRequired,
    InvalidCredentials,
    Unknown,
}

/// Who refused: the gateway the consumer called, a provider behind it, or the
/// payment processor that charged a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Origin {
    Gateway,
    Provider,
    PaymentProcessor,
    Unknown,
}

/// The system whose answer it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum System {
    Tollgate,
    Openrouter,
    Openai,
    Anthropic,
    Deepseek,
    Litellm,
    OneApi,
    NewApi,
    Tyk,
    Kong,
    Stripe,
    X402,
    Unknown,
}

/// One field the classification relied on, as it was seen (scrubbed of
/// anything shaped like a credential, cut to a readable length).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Evidence {
    /// `status`, `header.<name>`, or `body.<path>`.
    pub field: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Classification {
    pub cause: Cause,
    pub origin: Origin,
    pub system: System,
    /// 0–1: how sure the rule is of the system and the cause together.
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    /// What to do, in one sentence.
    pub fix: String,
}

const EVIDENCE_MAX_CHARS: usize = 300;

impl Classification {
    fn new(cause: Cause, origin: Origin, system: System, confidence: f64) -> Self {
        Classification {
            cause,
            origin,
            system,
            confidence,
            evidence: Vec::new(),
            fix: String::new(),
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    fn saw(mut self, field: impl Into<String>, value: impl AsRef<str>) -> Self {
        let value = mask_card_numbers(&scrub(value.as_ref()));
        let value = if value.chars().count() > EVIDENCE_MAX_CHARS {
            let cut: String = value.chars().take(EVIDENCE_MAX_CHARS).collect();
            format!("{cut}…")
        } else {
            value
        };
        self.evidence.push(Evidence {
            field: field.into(),
            value,
        });
        self
    }

    fn saw_status(self, r: &RawResponse) -> Self {
        self.saw("status", r.status.to_string())
    }

    /// Adds the body field at `path` when there is one.
    fn saw_body(self, r: &RawResponse, path: &[&str]) -> Self {
        match r.at(path) {
            Some(Value::Null) | None => self,
            Some(Value::String(s)) => self.saw(body_field(path), s),
            Some(other) => self.saw(body_field(path), other.to_string()),
        }
    }

    fn saw_header(self, r: &RawResponse, name: &str) -> Self {
        match r.header(name) {
            Some(v) => self.saw(format!("header.{name}"), v),
            None => self,
        }
    }
}

/// Runs of 13 to 19 digits (a card number's length) masked to their last
/// four: a pasted body never carries a card number into the console.
fn mask_card_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if (13..=19).contains(&digits.len()) {
            out.push_str("••••");
            out.push_str(&digits[digits.len() - 4..]);
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else {
            flush(&mut digits, &mut out);
            out.push(ch);
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn body_field(path: &[&str]) -> String {
    format!("body.{}", path.join("."))
}

type Rule = fn(&RawResponse) -> Option<Classification>;

/// Most specific shapes first: LiteLLM, One API and the providers copy
/// OpenAI's error object, so OpenAI's own rule comes after theirs.
const RULES: &[Rule] = &[
    tollgate, x402, stripe, litellm, one_api, openrouter, anthropic, deepseek, openai, tyk, kong,
];

/// Classifies one answer. Never fails: what no rule recognises is `unknown`.
pub fn classify(r: &RawResponse) -> Classification {
    RULES
        .iter()
        .find_map(|rule| rule(r))
        .unwrap_or_else(|| unknown(r))
}

fn unknown(r: &RawResponse) -> Classification {
    let mut c = Classification::new(Cause::Unknown, Origin::Unknown, System::Unknown, 0.0)
        .saw_status(r)
        .saw_header(r, "content-type")
        .saw_header(r, "server");
    if !r.body.is_empty() {
        c = c.saw("body", &r.body);
    }
    c.fix("The doctor does not know this answer's shape: read the evidence, and the documentation of the system that sent it.")
}

fn lower(s: Option<&str>) -> String {
    s.unwrap_or_default().to_ascii_lowercase()
}

/// The error object's message, whichever of the common places holds it.
fn message(r: &RawResponse) -> String {
    r.text_at(&["error", "message"])
        .or_else(|| r.text_at(&["message"]))
        .or_else(|| r.text_at(&["error"]))
        .or_else(|| r.text_at(&["detail"]))
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------- Tollgate

/// Tollgate's problem answers: `type` ends in `/problems/<reason>` and
/// `reason` repeats the slug.
fn tollgate(r: &RawResponse) -> Option<Classification> {
    let reason = r.text_at(&["reason"])?;
    let kind = r.text_at(&["type"])?;
    if !kind.ends_with(&format!("/problems/{reason}")) {
        return None;
    }
    let problem_type = r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/problem+json"));
    let confidence = if problem_type { 1.0 } else { 0.9 };
    let detail = r.text_at(&["detail"]).unwrap_or_default().to_owned();
    let (cause, origin, fix) = match reason {
        "insufficient-funds" => (
            Cause::InsufficientFunds,
            Origin::Gateway,
            format!(
                "Top up the consumer's {} wallet (balance {}, needed {}), or move them to a plan with more included credits.",
                r.text_at(&["currency"]).unwrap_or("plan's"),
                r.text_at(&["balance"]).unwrap_or("?"),
                r.text_at(&["required"]).unwrap_or("?")
            ),
        ),
        "subscription-expired" => (
            Cause::SubscriptionExpired,
            Origin::Gateway,
            "Renew the subscription (a charge to the consumer's default card), or have the consumer subscribe again.".to_owned(),
        ),
        "subscription-past-due" => (
            Cause::SubscriptionPastDue,
            Origin::Gateway,
            "Retry the renewal charge once the card can pay, or have the consumer add another card and make it the default; the subscription is active again as soon as a charge succeeds.".to_owned(),
        ),
        "payment-method-invalid" => (
            Cause::PaymentMethodInvalid,
            Origin::Gateway,
            "Have the consumer add a valid card and make it the default, then retry the renewal charge.".to_owned(),
        ),
        "subscription-pending-approval" => (
            Cause::SubscriptionPendingApproval,
            Origin::Gateway,
            "Approve the subscription (or reject it, so the consumer knows).".to_owned(),
        ),
        "subscription-suspended" => (
            Cause::NotSubscribed,
            Origin::Gateway,
            "Resume the subscription once the reason it was suspended is settled.".to_owned(),
        ),
        "not-subscribed" => (
            Cause::NotSubscribed,
            Origin::Gateway,
            match r.text_at(&["api"]) {
                Some(api) => format!("Subscribe the consumer to a plan that covers the `{api}` API, or let the key call it."),
                None => "Subscribe the consumer to a plan that covers this API.".to_owned(),
            },
        ),
        "rate-limited" => (
            Cause::RateLimited,
            Origin::Gateway,
            format!(
                "Not a payment problem: the plan's rate limit was reached; retry after {} s, or raise the plan's limit.",
                r.at(&["retry_after"]).map_or_else(|| "a few".to_owned(), Value::to_string)
            ),
        ),
        "invalid-api-key" | "api-key-revoked" | "api-key-expired" => (
            Cause::InvalidCredentials,
            Origin::Gateway,
            match r.text_at(&["replaced_by"]) {
                Some(next) => format!("Not a payment problem: the key was replaced; use the key {next}."),
                None => "Not a payment problem: the API key is not valid; issue the consumer a new key.".to_owned(),
            },
        ),
        "consumer-suspended" => (
            Cause::InvalidCredentials,
            Origin::Gateway,
            "Not a payment problem: the consumer is suspended; reactivate them to let their keys call again.".to_owned(),
        ),
        "billing-unavailable" => (
            Cause::PaymentRequired,
            Origin::Gateway,
            "The gateway's own payment settings are broken, not the consumer's account: run the gateway's billing check and fix what it finds.".to_owned(),
        ),
        "provider-unavailable" => {
            // The gateway's pool had no usable key: often keys the provider
            // refused as spent, but the answer alone cannot tell.
            let c = Classification::new(Cause::QuotaExceeded, Origin::Provider, System::Tollgate, 0.6)
                .saw_status(r)
                .saw_body(r, &["reason"])
                .saw_body(r, &["model"])
                .saw_body(r, &["detail"])
                .saw_body(r, &["request_id"]);
            return Some(c.fix("No key of the model's provider could take the call: check the provider's key pool for keys refused as exhausted or invalid, top them up at the provider and re-enable them."));
        }
        _ => {
            let c = Classification::new(Cause::Unknown, Origin::Gateway, System::Tollgate, confidence)
                .saw_status(r)
                .saw_body(r, &["reason"])
                .saw_body(r, &["detail"])
                .saw_body(r, &["request_id"]);
            return Some(c.fix(format!("Not a payment problem: {detail}")));
        }
    };
    let mut c = Classification::new(cause, origin, System::Tollgate, confidence)
        .saw_status(r)
        .saw_body(r, &["reason"])
        .saw_body(r, &["detail"]);
    for field in [
        "request_id",
        "subscription_id",
        "balance",
        "required",
        "currency",
        "api",
        "grace_until",
        "retry_after",
        "consumer_id",
    ] {
        c = c.saw_body(r, &[field]);
    }
    for field in ["last_decline_code", "last_failure_code", "status"] {
        c = c.saw_body(r, &["payment_method", field]);
    }
    Some(c.fix(fix))
}

// ---------------------------------------------------------------- x402

/// x402: v2 sends its requirements base64-encoded in `PAYMENT-REQUIRED`;
/// v1 sends them as the 402's JSON body (`x402Version`, `accepts`).
fn x402(r: &RawResponse) -> Option<Classification> {
    if let Some(header) = r.header("payment-required") {
        let requirements = decode_base64_json(header)?;
        requirements.get("x402Version")?;
        let c = Classification::new(Cause::PaymentRequired, Origin::Gateway, System::X402, 0.95)
            .saw_status(r)
            .saw("header.payment-required", "base64 JSON (decoded below)");
        return Some(x402_terms(c, &requirements, "PAYMENT-SIGNATURE"));
    }
    if r.status != 402 {
        return None;
    }
    let body = r.json.as_ref()?;
    body.get("x402Version")?;
    body.get("accepts")?.as_array()?;
    let c = Classification::new(Cause::PaymentRequired, Origin::Gateway, System::X402, 0.95)
        .saw_status(r)
        .saw_body(r, &["x402Version"])
        .saw_body(r, &["error"]);
    Some(x402_terms(c, body, "X-PAYMENT"))
}

fn x402_terms(mut c: Classification, requirements: &Value, pay_header: &str) -> Classification {
    if let Some(version) = requirements.get("x402Version") {
        c = c.saw("x402.x402Version", version.to_string());
    }
    let first = requirements
        .get("accepts")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    let field = |name: &str| {
        first
            .and_then(|f| f.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // v2 calls the price `amount`, v1 `maxAmountRequired`.
    let amount = field("amount").or_else(|| field("maxAmountRequired"));
    for (name, value) in [
        ("scheme", field("scheme")),
        ("network", field("network")),
        ("amount", amount.clone()),
        ("asset", field("asset")),
        ("payTo", field("payTo")),
    ] {
        if let Some(v) = value {
            c = c.saw(format!("x402.accepts[0].{name}"), v);
        }
    }
    let resource = requirements
        .get("resource")
        .and_then(|r| r.get("url").or(Some(r)))
        .and_then(Value::as_str)
        .or_else(|| {
            first
                .and_then(|f| f.get("resource"))
                .and_then(Value::as_str)
        });
    if let Some(url) = resource {
        c = c.saw("x402.resource", url);
    }
    let fix = format!(
        "The resource asks to be paid per call: an x402 client pays {} (in the asset's smallest unit) of {} on {} to {} and repeats the request with the {pay_header} header.",
        amount.unwrap_or_else(|| "the amount asked".into()),
        field("asset").unwrap_or_else(|| "the asset named".into()),
        field("network").unwrap_or_else(|| "the network named".into()),
        field("payTo").unwrap_or_else(|| "the address named".into()),
    );
    c.fix(fix)
}

fn decode_base64_json(text: &str) -> Option<Value> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())?;
    serde_json::from_slice(&bytes).ok()
}

// ---------------------------------------------------------------- Stripe

/// Stripe's card errors: `error.type = card_error` with `code` and, for
/// declines, the bank's `decline_code`.
fn stripe(r: &RawResponse) -> Option<Classification> {
    let kind = r.text_at(&["error", "type"])?;
    let stripe_signals = r
        .text_at(&["error", "doc_url"])
        .is_some_and(|u| u.contains("stripe.com"))
        || r.header("stripe-version").is_some()
        || r.header("stripe-should-retry").is_some();
    if kind != "card_error" {
        // Stripe's other errors are not about the card; known to be Stripe's.
        if stripe_signals {
            let c = Classification::new(
                Cause::Unknown,
                Origin::PaymentProcessor,
                System::Stripe,
                0.5,
            )
            .saw_status(r)
            .saw_body(r, &["error", "type"])
            .saw_body(r, &["error", "code"])
            .saw_body(r, &["error", "message"]);
            return Some(c.fix("A Stripe error that is not about the card: read its message and Stripe's documentation at its doc_url."));
        }
        return None;
    }
    let code = r.text_at(&["error", "code"]).unwrap_or_default();
    let decline = r.text_at(&["error", "decline_code"]).unwrap_or_default();
    let confidence = if stripe_signals || r.header("request-id").is_some() {
        0.95
    } else {
        0.8
    };
    let c = Classification::new(
        Cause::PaymentMethodInvalid,
        Origin::PaymentProcessor,
        System::Stripe,
        confidence,
    )
    .saw_status(r)
    .saw_body(r, &["error", "type"])
    .saw_body(r, &["error", "code"])
    .saw_body(r, &["error", "decline_code"])
    .saw_body(r, &["error", "message"])
    .saw_header(r, "request-id");
    Some(c.fix(card_fix(code, decline)))
}

/// What to do about a card the processor refused, by Stripe's `code` and
/// the bank's `decline_code` (the test processor uses the same words).
pub fn card_fix(code: &str, decline: &str) -> String {
    let what = match (code, decline) {
        ("expired_card", _) | (_, "expired_card") => {
            "The card has expired: the consumer adds a current card and makes it the default, then the charge is retried."
        }
        ("incorrect_cvc" | "invalid_cvc", _) | (_, "incorrect_cvc") => {
            "The card's CVC was wrong: the consumer enters the card again, then the charge is retried."
        }
        ("incorrect_number" | "invalid_number", _) | (_, "incorrect_number") => {
            "The card number is wrong: the consumer enters the card again."
        }
        ("processing_error", _) | (_, "processing_error") => {
            "The processor failed while charging: retry the charge."
        }
        (_, "insufficient_funds") => {
            "The card has insufficient funds: the consumer tops it up or adds another card, then the charge is retried."
        }
        (_, "lost_card" | "stolen_card" | "pickup_card" | "fraudulent" | "restricted_card") => {
            "The bank refused the card for good (reported lost, stolen or fraudulent): the consumer must add another card; do not retry this one."
        }
        (_, "card_velocity_exceeded" | "withdrawal_count_limit_exceeded") => {
            "The card reached its spending limit: the consumer waits for it to reset, raises it with their bank, or adds another card."
        }
        (_, "authentication_required") => {
            "The bank wants the cardholder to authenticate the charge (3-D Secure): the consumer completes it, then the charge is retried."
        }
        (_, "do_not_honor" | "generic_decline" | "call_issuer" | "try_again_later") => {
            "The bank declined without saying why: the consumer asks their bank or adds another card, then the charge is retried."
        }
        _ => {
            "The card was declined: the consumer adds another card and makes it the default, then the charge is retried."
        }
    };
    what.to_owned()
}

// ---------------------------------------------------------------- LiteLLM

/// LiteLLM's budgets: `budget_exceeded` (400, or 429 in later versions), and
/// before that a 401 "Authentication Error, ExceededBudget: …".
fn litellm(r: &RawResponse) -> Option<Classification> {
    let kind = lower(r.text_at(&["error", "type"]));
    let text = message(r);
    let message_says = [
        "exceededbudget",
        "exceededtokenbudget",
        "budget has been exceeded",
        "exceeded budget",
    ]
    .iter()
    .any(|m| text.to_ascii_lowercase().contains(m));
    if kind != "budget_exceeded" && !message_says {
        return None;
    }
    let litellm_headers = r.headers.iter().any(|(n, _)| n.starts_with("x-litellm-"));
    let confidence = match (kind == "budget_exceeded", message_says || litellm_headers) {
        (true, true) => 0.95,
        (true, false) | (false, true) => 0.85,
        (false, false) => 0.7,
    };
    let c = Classification::new(
        Cause::BudgetExceeded,
        Origin::Gateway,
        System::Litellm,
        confidence,
    )
    .saw_status(r)
    .saw_body(r, &["error", "type"])
    .saw_body(r, &["error", "code"])
    .saw("body.error.message", text)
    .saw_header(r, "x-litellm-version");
    Some(c.fix("Raise the max_budget of the LiteLLM key, user or team named in the message, or wait for its budget_duration to reset it."))
}

// ---------------------------------------------------------------- One API, New API

/// One API and New API: 403 `insufficient_user_quota` (the user's prepaid
/// quota cannot pay for the call); `error.type` tells the two apart.
fn one_api(r: &RawResponse) -> Option<Classification> {
    let code = r.text_at(&["error", "code"])?;
    if code != "insufficient_user_quota" {
        return None;
    }
    let kind = r.text_at(&["error", "type"]).unwrap_or_default();
    let (system, confidence) = match kind {
        "one_api_error" => (System::OneApi, 0.95),
        "new_api_error" => (System::NewApi, 0.95),
        // The code alone does not say which of the two (or a fork) sent it.
        _ => (System::Unknown, 0.6),
    };
    let c = Classification::new(Cause::QuotaExceeded, Origin::Gateway, system, confidence)
        .saw_status(r)
        .saw_body(r, &["error", "code"])
        .saw_body(r, &["error", "type"])
        .saw_body(r, &["error", "message"]);
    Some(c.fix("Top up the user's quota in the gateway's console (or redeem a top-up code): their remaining quota cannot pay for the call."))
}

// ---------------------------------------------------------------- OpenRouter

/// OpenRouter's 402: credits spent, or too few for `max_tokens`; its error
/// `code` is the status as a number.
fn openrouter(r: &RawResponse) -> Option<Classification> {
    if r.status != 402 {
        return None;
    }
    let text = message(r);
    let lowered = text.to_ascii_lowercase();
    let numeric_code = r.at(&["error", "code"]).and_then(Value::as_u64) == Some(402);
    let says_credits = lowered.contains("credits");
    let says_openrouter = lowered.contains("openrouter.ai") || lowered.contains("can only afford");
    if !(says_credits && (says_openrouter || numeric_code)) {
        return None;
    }
    let confidence = if says_openrouter { 0.95 } else { 0.75 };
    let c = Classification::new(
        Cause::InsufficientFunds,
        Origin::Provider,
        System::Openrouter,
        confidence,
    )
    .saw_status(r)
    .saw_body(r, &["error", "code"])
    .saw("body.error.message", text);
    Some(c.fix("Buy OpenRouter credits for the account of the key the gateway uses (openrouter.ai/settings/credits), or ask for fewer max_tokens."))
}

// ---------------------------------------------------------------- Anthropic

/// Anthropic: `{"type":"error","error":{"type":…,"message":…}}`; a spent
/// balance is a 400 whose message says "credit balance is too low".
fn anthropic(r: &RawResponse) -> Option<Classification> {
    if r.text_at(&["type"]) != Some("error") {
        return None;
    }
    let kind = r.text_at(&["error", "type"])?;
    let text = message(r);
    let headers = r.header("anthropic-organization-id").is_some()
        || r.headers.iter().any(|(n, _)| n.starts_with("anthropic-"));
    let sure = |base: f64| if headers { base + 0.05 } else { base };
    let (cause, confidence, fix) = if text
        .to_ascii_lowercase()
        .contains("credit balance is too low")
    {
        (
            Cause::InsufficientFunds,
            sure(0.9),
            "Buy Anthropic credits (Plans & Billing in the Anthropic console) for the key the gateway uses, or re-enable a key of another account.",
        )
    } else {
        match kind {
            "billing_error" => (
                Cause::PaymentMethodInvalid,
                sure(0.8),
                "Anthropic cannot bill the account: fix its payment details in the Anthropic console.",
            ),
            "rate_limit_error" => (
                Cause::RateLimited,
                sure(0.9),
                "Not a payment problem: Anthropic's rate limit was reached; retry after the retry-after header's seconds.",
            ),
            "authentication_error" => (
                Cause::InvalidCredentials,
                sure(0.9),
                "Not a payment problem: Anthropic refused the key; replace it in the provider's key pool.",
            ),
            _ => (
                Cause::Unknown,
                sure(0.5),
                "An Anthropic error that is not about payment: read its message.",
            ),
        }
    };
    let c = Classification::new(cause, Origin::Provider, System::Anthropic, confidence)
        .saw_status(r)
        .saw_body(r, &["error", "type"])
        .saw("body.error.message", text)
        .saw_header(r, "request-id");
    Some(c.fix(fix))
}

// ---------------------------------------------------------------- DeepSeek

/// DeepSeek: 402 "Insufficient Balance".
fn deepseek(r: &RawResponse) -> Option<Classification> {
    if r.status != 402 {
        return None;
    }
    let text = message(r);
    if !text.to_ascii_lowercase().contains("insufficient balance") {
        return None;
    }
    let c = Classification::new(
        Cause::InsufficientFunds,
        Origin::Provider,
        System::Deepseek,
        0.9,
    )
    .saw_status(r)
    .saw("body.error.message", text)
    .saw_body(r, &["error", "code"]);
    Some(c.fix("Top up the DeepSeek account of the key the gateway uses (platform.deepseek.com), then re-enable the key."))
}

// ---------------------------------------------------------------- OpenAI

/// OpenAI: 429 `insufficient_quota` (credits spent or the monthly limit
/// reached) versus a plain 429 rate limit; 401 `invalid_api_key`.
fn openai(r: &RawResponse) -> Option<Classification> {
    let code = r.text_at(&["error", "code"]).unwrap_or_default();
    let kind = r.text_at(&["error", "type"]).unwrap_or_default();
    let text = message(r);
    let openai_headers = r.header("openai-organization").is_some()
        || r.header("openai-processing-ms").is_some()
        || r.header("openai-version").is_some();
    let openai_words =
        text.contains("platform.openai.com") || text.contains("exceeded your current quota");
    let sure = |base: f64| {
        if openai_headers || openai_words {
            base
        } else {
            // OpenAI-compatible servers copy these codes.
            base - 0.2
        }
    };
    let (cause, confidence, fix) = if code == "insufficient_quota" || kind == "insufficient_quota" {
        (
            Cause::QuotaExceeded,
            sure(0.95),
            "The OpenAI account has no credits left or reached its monthly budget: add credits or raise the limit at platform.openai.com, then re-enable the key.",
        )
    } else if code == "billing_hard_limit_reached" {
        (
            Cause::BudgetExceeded,
            sure(0.9),
            "The OpenAI organisation reached the spending limit it set: raise it at platform.openai.com.",
        )
    } else if code == "billing_not_active" {
        (
            Cause::PaymentRequired,
            sure(0.9),
            "The OpenAI account's billing is not active: add a payment method at platform.openai.com.",
        )
    } else if r.status == 429
        && (code == "rate_limit_exceeded" || kind == "requests" || kind == "tokens")
    {
        (
            Cause::RateLimited,
            sure(0.9),
            "Not a payment problem: OpenAI's rate limit was reached; retry after the reset the x-ratelimit headers give.",
        )
    } else if r.status == 401 && code == "invalid_api_key" {
        (
            Cause::InvalidCredentials,
            sure(0.9),
            "Not a payment problem: OpenAI refused the key; replace it in the provider's key pool.",
        )
    } else {
        return None;
    };
    let c = Classification::new(cause, Origin::Provider, System::Openai, confidence)
        .saw_status(r)
        .saw_body(r, &["error", "code"])
        .saw_body(r, &["error", "type"])
        .saw("body.error.message", text)
        .saw_header(r, "x-request-id");
    Some(c.fix(fix))
}

// ---------------------------------------------------------------- Tyk

/// Tyk: `{"error": "Quota exceeded"}` (403) and `{"error": "Rate limit
/// exceeded"}` (429), the error a bare string.
fn tyk(r: &RawResponse) -> Option<Classification> {
    let body = r.json.as_ref()?.as_object()?;
    if body.len() != 1 {
        return None;
    }
    let text = body.get("error")?.as_str()?;
    let (cause, fix) = match (r.status, text) {
        (403, "Quota exceeded") => (
            Cause::QuotaExceeded,
            "Raise the key's quota in Tyk (quota_max), or wait for it to renew (quota_renews; X-RateLimit-Reset says when).",
        ),
        (429, "Rate limit exceeded") => (
            Cause::RateLimited,
            "Not a payment problem: the key's Tyk rate limit was reached; retry shortly, or raise its rate.",
        ),
        _ => return None,
    };
    let confidence = if r.header("x-ratelimit-remaining").is_some() {
        0.9
    } else {
        0.8
    };
    let c = Classification::new(cause, Origin::Gateway, System::Tyk, confidence)
        .saw_status(r)
        .saw("body.error", text)
        .saw_header(r, "x-ratelimit-limit")
        .saw_header(r, "x-ratelimit-remaining")
        .saw_header(r, "x-ratelimit-reset");
    Some(c.fix(fix))
}

// ---------------------------------------------------------------- Kong

/// Kong's 429: "API rate limit exceeded" (rate-limiting) or "API quota
/// exceeded" (response-ratelimiting). Which window ran out — a second or
/// minute, or a day, month or year — tells a rate limit from a quota.
fn kong(r: &RawResponse) -> Option<Classification> {
    if r.status != 429 {
        return None;
    }
    let text = r.text_at(&["message"])?;
    let lowered = text.to_ascii_lowercase();
    if !(lowered.starts_with("api rate limit exceeded")
        || lowered.starts_with("api quota exceeded")
        || lowered.starts_with("ai token rate limit exceeded"))
    {
        return None;
    }
    let kong_headers = r
        .header("server")
        .is_some_and(|s| s.to_ascii_lowercase().starts_with("kong"))
        || r.headers.iter().any(|(n, _)| n.starts_with("x-kong-"))
        || r.header("via").is_some_and(|v| v.contains("kong"));
    let spent = |windows: &[&str]| {
        r.headers.iter().find(|(n, v)| {
            v.trim() == "0"
                && windows
                    .iter()
                    .any(|w| n.ends_with(&format!("remaining-{w}")))
        })
    };
    let long = spent(&["day", "month", "year"]);
    let short = spent(&["second", "minute", "hour"]);
    let (cause, window) = if lowered.contains("quota") {
        (Cause::QuotaExceeded, long)
    } else if let Some(w) = long {
        (Cause::QuotaExceeded, Some(w))
    } else {
        (Cause::RateLimited, short)
    };
    let confidence = match (kong_headers, window.is_some()) {
        (true, true) => 0.95,
        (true, false) | (false, true) => 0.8,
        (false, false) => 0.65,
    };
    let mut c = Classification::new(cause, Origin::Gateway, System::Kong, confidence)
        .saw_status(r)
        .saw("body.message", text)
        .saw_header(r, "server");
    if let Some((name, value)) = window {
        c = c.saw(format!("header.{name}"), value);
    }
    let fix = if cause == Cause::QuotaExceeded {
        "The consumer used up a Kong quota (a day, month or year window): raise the plugin's limit for them, or wait for the window to reset."
    } else {
        "Not a payment problem: a Kong rate limit (seconds to hours) was reached; retry after the RateLimit-Reset header's seconds."
    };
    Some(c.fix(fix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_text(text: &str) -> Classification {
        classify(&RawResponse::parse(text).unwrap())
    }

    #[test]
    fn a_bare_status_is_unknown_and_says_what_it_saw() {
        let c = classify_text("HTTP/1.1 402 Payment Required\n\n");
        assert_eq!(c.cause, Cause::Unknown);
        assert_eq!(c.system, System::Unknown);
        assert_eq!(c.confidence, 0.0);
        assert_eq!(c.evidence[0].field, "status");
        assert_eq!(c.evidence[0].value, "402");
    }

    #[test]
    fn evidence_is_scrubbed_of_credentials() {
        let c = classify_text(
            "HTTP/1.1 402 Payment Required\n\n{\"note\":\"key sk-live-abcdefghijklmnopqrstuvwx was refused\"}",
        );
        let body = &c.evidence.iter().find(|e| e.field == "body").unwrap().value;
        assert!(!body.contains("abcdefghijklmnopqrstuvwx"), "{body}");
    }

    #[test]
    fn card_numbers_are_masked() {
        let c = classify_text(
            "HTTP/1.1 402 Payment Required\n\n{\"card\":\"4242424242424242\",\"amount\":1000}",
        );
        let body = &c.evidence.iter().find(|e| e.field == "body").unwrap().value;
        assert!(!body.contains("4242424242424242"), "{body}");
        assert!(body.contains("••••4242") && body.contains("1000"), "{body}");
    }

    #[test]
    fn card_fixes_differ_by_decline_code() {
        let a = card_fix("card_declined", "insufficient_funds");
        let b = card_fix("card_declined", "stolen_card");
        let c = card_fix("expired_card", "");
        assert!(a.contains("insufficient funds"));
        assert!(b.contains("do not retry"));
        assert!(c.contains("expired"));
    }
}
