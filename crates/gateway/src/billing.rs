//! Charging and renewals: the lifecycle applied to stored subscriptions, with
//! the payment processor. Used by the renewal job and by admin actions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use tollgate_api::money::parse_amount;
use tollgate_api::{
    BillingCheck, BillingFinding, FieldError, OveragePolicy, PaymentSettings, Plan, ProcessorTest,
    Provider, ProviderKey, ProviderKeyStatus, Severity, Subscription, SubscriptionStatus,
    UpdatePaymentSettings,
};

use crate::crypto::SecretBox;
use crate::error::{ApiError, for_resource};
use crate::lifecycle::{self, Due, State, Terms};
use crate::payments::stripe::{self, api::StripeError};
use crate::payments::{CardError, NO_PROCESSOR, PaymentProcessor, Processors};
use crate::store::{AuditContext, NewCharge, Store, StoreError, StoredPaymentSettings};
use crate::validate;

pub struct Billing {
    pub store: Arc<dyn Store>,
    /// The processors the settings may name, given by the server.
    processors: Processors,
    /// The payment settings in force, and their credentials once opened.
    settings: RwLock<Effective>,
    secrets: Arc<SecretBox>,
    /// Calls refused with 503 because of these settings: flagged to admins.
    incidents: AtomicU64,
    last_incident: Mutex<Option<DateTime<Utc>>>,
}

#[derive(Debug, Clone)]
struct Effective {
    stored: StoredPaymentSettings,
    /// `Err` when the sealed credentials cannot be opened with the current key.
    credentials_readable: bool,
}

fn defaults(grace_days: u32) -> StoredPaymentSettings {
    StoredPaymentSettings {
        processor: "test".into(),
        credentials_sealed: None,
        credentials_last4: None,
        publishable_key: None,
        webhook_secret_sealed: None,
        api_base_url: None,
        accepted_currencies: Vec::new(),
        grace_days,
        updated_at: None,
        version: 0,
    }
}

/// Whether every sealed secret of `settings` opens with the current key.
fn sealed_readable(secrets: &SecretBox, settings: &StoredPaymentSettings) -> bool {
    [
        &settings.credentials_sealed,
        &settings.webhook_secret_sealed,
    ]
    .into_iter()
    .flatten()
    .all(|blob| secrets.open(blob).is_ok())
}

/// An API base URL as the OpenAPI document's pattern says:
/// `http(s)://host[:port][/path]`, the host's labels of letters, digits and
/// `-`, a port of 1 to 5 digits, a path of unreserved characters.
fn base_url_valid(url: &str) -> bool {
    if url.len() > 2048 {
        return false;
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    host.split('.').all(|label| {
        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }) && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~%/-".contains(c))
}

/// A connection test reports within this bound.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether `key` is one of Stripe's keys with one of `prefixes`: the prefix,
/// then letters, digits and underscores.
fn stripe_key(key: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        key.strip_prefix(p).is_some_and(|rest| {
            !rest.is_empty()
                && key.len() <= 255
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

pub fn terms(plan: &Plan) -> Terms {
    Terms {
        period: plan.period,
        price_micros: parse_amount(&plan.price).unwrap_or(0),
    }
}

pub fn state_of(sub: &Subscription) -> State {
    State {
        status: sub.status,
        period_start: sub.current_period_start,
        period_end: sub.current_period_end,
        auto_renew: sub.auto_renew,
        past_due_since: sub.past_due_since,
        reason: sub.status_reason.clone(),
    }
}

/// How a charge attempt ended, for the lifecycle.
pub enum ChargeOutcome {
    Paid,
    Failed(String),
}

impl Billing {
    /// Loads the stored settings (or defaults, with `default_grace_days`).
    pub async fn new(
        store: Arc<dyn Store>,
        secrets: Arc<SecretBox>,
        default_grace_days: u32,
        processors: Processors,
    ) -> anyhow::Result<Self> {
        let stored = store
            .payment_settings()
            .await?
            .unwrap_or_else(|| defaults(default_grace_days));
        let readable = sealed_readable(&secrets, &stored);
        if !readable {
            tracing::error!(
                "the payment credentials cannot be decrypted with this encryption key: billing is unavailable"
            );
        }
        Ok(Billing {
            store,
            processors,
            settings: RwLock::new(Effective {
                stored,
                credentials_readable: readable,
            }),
            secrets,
            incidents: AtomicU64::new(0),
            last_incident: Mutex::new(None),
        })
    }

    fn effective(&self) -> Effective {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn grace_days(&self) -> u32 {
        self.effective().stored.grace_days
    }

    /// The configured processor; `None` when card payments are off.
    pub fn processor(&self) -> Option<Arc<dyn PaymentProcessor>> {
        self.processors.get(&self.effective().stored.processor)
    }

    pub fn settings_view(&self) -> PaymentSettings {
        let e = self.effective().stored;
        PaymentSettings {
            processor: e.processor,
            credentials_set: e.credentials_sealed.is_some(),
            credentials_last4: e.credentials_last4,
            publishable_key: e.publishable_key,
            webhook_secret_set: e.webhook_secret_sealed.is_some(),
            api_base_url: e.api_base_url,
            accepted_currencies: e.accepted_currencies,
            grace_days: e.grace_days,
            updated_at: e.updated_at,
            version: e.version,
        }
    }

    /// Validates and saves a change of the payment settings.
    pub async fn update_settings(
        &self,
        patch: UpdatePaymentSettings,
        expected_version: Option<i64>,
        audit: &AuditContext,
    ) -> Result<PaymentSettings, ApiError> {
        let mut next = self.effective().stored;
        let mut errors = Vec::new();
        if let Some(p) = patch.processor {
            let names = self.processors.names();
            if names.contains(&p.as_str()) {
                next.processor = p;
            } else {
                errors.push(FieldError::new(
                    "processor",
                    format!("must be one of {}", names.join(", ")),
                ));
            }
        }
        if let Some(sent) = patch.credentials {
            let secret = sent.trim();
            if sent.chars().count() > 4096 || sent.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    "credentials",
                    "must be one line of at most 4096 characters",
                ));
            } else if secret.is_empty() {
                (next.credentials_sealed, next.credentials_last4) = (None, None);
            } else {
                next.credentials_sealed = Some(self.secrets.seal(secret.as_bytes()));
                next.credentials_last4 = Some(
                    secret
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect(),
                );
            }
        }
        if let Some(key) = patch.publishable_key {
            let key = key.trim();
            if key.is_empty() {
                next.publishable_key = None;
            } else if stripe_key(key, &["pk_test_", "pk_live_"]) {
                next.publishable_key = Some(key.to_owned());
            } else {
                errors.push(FieldError::new(
                    "publishable_key",
                    "must be Stripe's publishable key: pk_test_… or pk_live_…",
                ));
            }
        }
        if let Some(secret) = patch.webhook_secret {
            let secret = secret.trim();
            if secret.is_empty() {
                next.webhook_secret_sealed = None;
            } else if stripe_key(secret, &["whsec_"]) {
                next.webhook_secret_sealed = Some(self.secrets.seal(secret.as_bytes()));
            } else {
                errors.push(FieldError::new(
                    "webhook_secret",
                    "must be Stripe's webhook signing secret: whsec_…",
                ));
            }
        }
        if let Some(url) = patch.api_base_url {
            let url = url.trim();
            if url.is_empty() {
                next.api_base_url = None;
            } else if base_url_valid(url) {
                next.api_base_url = Some(url.trim_end_matches('/').to_owned());
            } else {
                errors.push(FieldError::new(
                    "api_base_url",
                    "must be http:// or https://, a host name or address, an optional port and an optional path, \
                     with no credentials, query or fragment",
                ));
            }
        }
        if let Some(list) = patch.accepted_currencies {
            for (i, code) in list.iter().enumerate() {
                validate::currency(&format!("accepted_currencies.{i}"), code, &mut errors);
            }
            next.accepted_currencies = list;
        }
        if let Some(days) = patch.grace_days {
            if days > 90 {
                errors.push(FieldError::new("grace_days", "must be 0 to 90"));
            }
            next.grace_days = days;
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        let saved = self
            .store
            .save_payment_settings(next, expected_version, audit)
            .await?;
        let readable = sealed_readable(&self.secrets, &saved);
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Effective {
            stored: saved,
            credentials_readable: readable,
        };
        Ok(self.settings_view())
    }

    /// Whether `processor`'s saved credentials work (the one in force when
    /// `None`): for Stripe, one `GET /v1/balance` with the secret key (5 s,
    /// not retried).
    pub async fn test_processor(&self, processor: Option<&str>) -> ProcessorTest {
        let e = self.effective();
        let processor = processor.map_or_else(|| e.stored.processor.clone(), str::to_owned);
        let answer = |ok: bool, code: &str, message: String| ProcessorTest {
            ok,
            processor: processor.clone(),
            code: code.into(),
            message,
        };
        match processor.as_str() {
            NO_PROCESSOR => {
                return answer(
                    false,
                    "no-processor",
                    "No payment processor is set: priced plans cannot renew.".into(),
                );
            }
            "test" => {
                return answer(
                    true,
                    "connected",
                    "The built-in test processor needs no connection.".into(),
                );
            }
            _ => {}
        }
        let Some(sealed) = e.stored.credentials_sealed.as_deref() else {
            return answer(false, "credentials-missing", "No secret key is set.".into());
        };
        let Ok(secret) = self.secrets.open(sealed) else {
            return answer(
                false,
                "credentials-unreadable",
                "The secret key cannot be decrypted with this gateway's encryption key.".into(),
            );
        };
        let secret = String::from_utf8_lossy(&secret).into_owned();
        let last4 = e.stored.credentials_last4.clone().unwrap_or_default();
        let base = e
            .stored
            .api_base_url
            .as_deref()
            .unwrap_or(stripe::STRIPE_API);
        let result = match stripe::api::StripeApi::with_limits(base, &secret, TEST_TIMEOUT, 1) {
            Ok(api) => api.get("/v1/balance", &[]).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(balance) if balance.get("object").and_then(|o| o.as_str()) == Some("balance") => {
                answer(
                    true,
                    "connected",
                    format!("Stripe at {base} accepted the secret key."),
                )
            }
            Ok(_) => answer(
                false,
                "not-stripe",
                format!("{base} answered, but not as Stripe's API does: check the API base URL."),
            ),
            Err(err) if err.unauthorized() => answer(
                false,
                "credentials-refused",
                format!(
                    "Stripe at {base} refused the secret key ending in {last4} (or it lacks a permission)."
                ),
            ),
            Err(StripeError::Api { status, error, .. }) => answer(
                false,
                "processor-error",
                format!(
                    "Stripe at {base} refused the request ({status}): {}",
                    error.message.as_deref().unwrap_or_default()
                ),
            ),
            Err(StripeError::Unexpected(why)) => answer(
                false,
                "not-stripe",
                format!(
                    "{base} answered, but not as Stripe's API does ({why}): check the API base URL."
                ),
            ),
            Err(StripeError::Unreachable(why)) => answer(
                false,
                "unreachable",
                format!("Stripe at {base} could not be reached: {why}."),
            ),
        }
    }

    /// Why calls on `plan` cannot be billed because of the gateway's own
    /// settings, if they cannot: the gateway's fault, answered with 503.
    pub fn fault_for(&self, plan: &Plan) -> Option<String> {
        // Asked on every call: read in place rather than clone the settings.
        let e = self.settings.read().unwrap_or_else(|p| p.into_inner());
        if !e.credentials_readable {
            return Some(
                "the payment credentials cannot be decrypted with this gateway's encryption key"
                    .into(),
            );
        }
        let accepted = &e.stored.accepted_currencies;
        if !accepted.is_empty() && !accepted.contains(&plan.currency) {
            return Some(format!(
                "the plan {} is priced in {}, which the payment settings do not accept",
                plan.name, plan.currency
            ));
        }
        None
    }

    /// Counts a call refused because of the settings, for `billing/check`.
    pub fn record_incident(&self, reason: &str) {
        self.incidents.fetch_add(1, Ordering::Relaxed);
        *self.last_incident.lock().unwrap_or_else(|p| p.into_inner()) = Some(Utc::now());
        tracing::error!(
            reason,
            "a call was refused because the gateway's payment settings are broken"
        );
    }

    /// Every misconfiguration of the payment settings, the plans and the
    /// providers (the enabled ones with their keys) that would refuse calls.
    pub async fn check(
        &self,
        upstream_configured: bool,
        calls_are_free: bool,
        providers: &[(Provider, Vec<ProviderKey>)],
    ) -> Result<BillingCheck, ApiError> {
        let e = self.effective();
        let mut findings = Vec::new();
        let mut add =
            |code: &str, severity: Severity, message: String, target: Option<String>, fix: &str| {
                findings.push(BillingFinding {
                    code: code.into(),
                    severity,
                    message,
                    target,
                    fix: fix.into(),
                });
            };
        if !e.credentials_readable {
            add("credentials-unreadable", Severity::Error,
                "The payment credentials cannot be decrypted with this gateway's encryption key; every billed call is refused with 503.".into(),
                None, "Restore the encryption key the credentials were saved with, or enter the credentials again.");
        }
        let mut plans = Vec::new();
        let mut after = 0;
        loop {
            let (page, next) = self.store.list_plans(after, 200).await?;
            plans.extend(page);
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        for plan in &plans {
            let priced = terms(plan).price_micros > 0;
            if priced && e.stored.processor == NO_PROCESSOR {
                add(
                    "processor-missing",
                    Severity::Error,
                    format!(
                        "The plan {} costs {} {} per period but no payment processor is set: its renewals cannot be charged.",
                        plan.name, plan.price, plan.currency
                    ),
                    Some(plan.id.clone()),
                    "Set a payment processor in the payment settings, or make the plan free.",
                );
            }
            if !e.stored.accepted_currencies.is_empty()
                && !e.stored.accepted_currencies.contains(&plan.currency)
            {
                add(
                    "currency-not-accepted",
                    Severity::Error,
                    format!(
                        "The plan {} is priced in {}, which the payment settings do not accept; its calls are refused with 503.",
                        plan.name, plan.currency
                    ),
                    Some(plan.id.clone()),
                    "Add the currency to the accepted currencies, or reprice the plan.",
                );
            }
            let credits = parse_amount(&plan.included_credits).unwrap_or(0);
            if plan.overage == OveragePolicy::Block && credits == 0 && !calls_are_free {
                add(
                    "plan-grants-nothing",
                    Severity::Error,
                    format!(
                        "The plan {} includes no credits and blocks overage: every call of its subscribers is refused with 402.",
                        plan.name
                    ),
                    Some(plan.id.clone()),
                    "Give the plan included credits, or let overage charge the wallet.",
                );
            }
            if plan.apis.is_empty() {
                add(
                    "plan-covers-nothing",
                    Severity::Warning,
                    format!(
                        "The plan {} covers no API: its subscribers cannot call anything.",
                        plan.name
                    ),
                    Some(plan.id.clone()),
                    "List the APIs the plan covers.",
                );
            }
        }
        check_providers(&plans, providers, upstream_configured, &mut add);
        if !plans.iter().any(|p| p.apis.iter().any(|a| a == "chat")) {
            add(
                "api-uncovered",
                Severity::Warning,
                "No plan covers the `chat` API: every consumer is refused with 403 not-subscribed."
                    .into(),
                None,
                "Create a plan that covers `chat`.",
            );
        }
        if calls_are_free {
            add(
                "calls-are-free",
                Severity::Warning,
                "Calls are priced at zero: wallets and credits are never charged.".into(),
                None,
                "Price the providers' models, or set price_per_request.",
            );
        }
        if !upstream_configured && providers.is_empty() {
            add(
                "no-upstream",
                Severity::Warning,
                "No provider (and no default upstream) is configured: calls are refused with 503."
                    .into(),
                None,
                "Add a provider with a key.",
            );
        }
        Ok(BillingCheck {
            ok: !findings.iter().any(|f| f.severity == Severity::Error),
            findings,
            billing_unavailable_count: self.incidents.load(Ordering::Relaxed),
            billing_unavailable_last: *self.last_incident.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    /// The subscription as answered by the API: with its grace deadline.
    pub fn present(&self, mut sub: Subscription) -> Subscription {
        sub.grace_until = if sub.status == SubscriptionStatus::PastDue {
            lifecycle::grace_until(&state_of(&sub), self.grace_days())
        } else {
            None
        };
        sub
    }

    /// Charges the consumer's default card and records the attempt.
    pub async fn charge(
        &self,
        sub: &Subscription,
        plan: &Plan,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<ChargeOutcome, ApiError> {
        // A node that charged this period and stopped before it renewed the
        // subscription: the period is paid, the card is not charged again.
        if self
            .store
            .succeeded_charge(&sub.id, idempotency_key)
            .await?
            .is_some()
        {
            tracing::info!(subscription = %sub.id, "this period was charged already; renewing it");
            return Ok(ChargeOutcome::Paid);
        }
        let amount = terms(plan).price_micros;
        let method = self.store.default_payment_method(&sub.consumer_id).await?;
        let (method_id, result) = match (method, self.processor()) {
            (_, None) => (
                None,
                Err(CardError::new(
                    "processor_not_configured",
                    "The gateway has no payment processor.",
                )),
            ),
            (None, _) => (
                None,
                Err(CardError::new(
                    "no_payment_method",
                    "The consumer has no payment method on file.",
                )),
            ),
            (Some((method, token)), Some(processor)) => {
                let result = processor
                    .charge(&token, amount, &plan.currency, idempotency_key, now)
                    .await;
                (Some(method.id), result)
            }
        };
        let (failure, processor_charge_id) = match result {
            Ok(receipt) => (None, Some(receipt.charge_id)),
            Err(e) => (Some(e), None),
        };
        let outcome = match &failure {
            None => ChargeOutcome::Paid,
            Some(e) => ChargeOutcome::Failed(match &e.decline_code {
                Some(d) => format!("renewal charge failed: {} ({d})", e.code),
                None => format!("renewal charge failed: {}", e.code),
            }),
        };
        self.store
            .record_charge(NewCharge {
                consumer_id: sub.consumer_id.clone(),
                payment_method_id: method_id,
                subscription_id: Some(sub.id.clone()),
                amount_micros: amount,
                currency: plan.currency.clone(),
                failure,
                processor_charge_id,
                idempotency_key: idempotency_key.to_owned(),
            })
            .await
            .map(|_| outcome)
            .or_else(|e| match e {
                // Another node recorded this period's charge first: the
                // period is paid. Of the nodes renewing the subscription,
                // the versioned write lets one through.
                StoreError::Conflict(_) => Ok(ChargeOutcome::Paid),
                other => Err(other.into()),
            })
    }

    /// Charges and applies the result to the lifecycle.
    async fn charge_and_apply(
        &self,
        sub: &Subscription,
        plan: &Plan,
        key: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditContext>,
    ) -> Result<Subscription, ApiError> {
        let state = state_of(sub);
        let (next, action) = match self.charge(sub, plan, key, now).await? {
            ChargeOutcome::Paid => (
                lifecycle::charged(&state, terms(plan), now),
                "subscription.renew",
            ),
            ChargeOutcome::Failed(reason) => (
                lifecycle::charge_failed(&state, &reason, now),
                "subscription.renewal_failed",
            ),
        };
        Ok(self
            .store
            .save_subscription(&sub.id, next, sub.version, action, audit)
            .await?)
    }

    /// The first charge of a new, active, priced subscription.
    pub async fn first_charge(
        &self,
        sub: Subscription,
        plan: &Plan,
        now: DateTime<Utc>,
        audit: &AuditContext,
    ) -> Result<Subscription, ApiError> {
        let key = format!("first:{}", sub.id);
        self.charge_new_period(sub, plan, &key, now, audit).await
    }

    /// Charges the price of a period that just started (on approval, or on a
    /// plan change); a failed charge makes the subscription past due.
    /// `key` makes the charge idempotent.
    pub async fn charge_new_period(
        &self,
        sub: Subscription,
        plan: &Plan,
        key: &str,
        now: DateTime<Utc>,
        audit: &AuditContext,
    ) -> Result<Subscription, ApiError> {
        if sub.status != SubscriptionStatus::Active || terms(plan).price_micros == 0 {
            return Ok(sub);
        }
        match self.charge(&sub, plan, key, now).await? {
            ChargeOutcome::Paid => Ok(sub),
            ChargeOutcome::Failed(reason) => {
                let next = lifecycle::charge_failed(&state_of(&sub), &reason, now);
                Ok(self
                    .store
                    .save_subscription(
                        &sub.id,
                        next,
                        sub.version,
                        "subscription.renewal_failed",
                        Some(audit),
                    )
                    .await?)
            }
        }
    }

    /// Whatever is due for one subscription at `now` (the renewal job).
    pub async fn process_due(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Subscription>, ApiError> {
        let sub = self.store.subscription(id).await?;
        let plan = self.store.plan(&sub.plan_id).await?;
        match lifecycle::due(&state_of(&sub), terms(&plan), self.grace_days(), now) {
            Due::Nothing => Ok(None),
            Due::Transition(next) => {
                let action = if next.status == SubscriptionStatus::Expired {
                    "subscription.expire"
                } else {
                    "subscription.renew"
                };
                Ok(Some(
                    self.store
                        .save_subscription(id, next, sub.version, action, None)
                        .await?,
                ))
            }
            Due::Charge => {
                let key = renewal_key(&sub);
                Ok(Some(
                    self.charge_and_apply(&sub, &plan, &key, now, None).await?,
                ))
            }
        }
    }

    /// An admin's "renew now": retries a past-due charge, renews a due or
    /// expired subscription. Refused when nothing is owed.
    pub async fn renew_now(
        &self,
        id: &str,
        now: DateTime<Utc>,
        audit: &AuditContext,
    ) -> Result<Subscription, ApiError> {
        let sub = self
            .store
            .subscription(id)
            .await
            .map_err(for_resource("subscription", id))?;
        let plan = self.store.plan(&sub.plan_id).await?;
        let due_now = matches!(
            lifecycle::due(&state_of(&sub), terms(&plan), self.grace_days(), now),
            Due::Charge
        );
        match sub.status {
            SubscriptionStatus::PastDue | SubscriptionStatus::Expired => {}
            SubscriptionStatus::Active if due_now => {}
            SubscriptionStatus::Active => {
                let until = sub
                    .current_period_end
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "ever".into());
                return Err(ApiError::Conflict(format!(
                    "nothing is due: the current period runs until {until}"
                )));
            }
            other => {
                return Err(ApiError::Conflict(format!(
                    "a subscription that is {} cannot be renewed",
                    other.as_str()
                )));
            }
        }
        if terms(&plan).price_micros == 0 {
            let next = lifecycle::charged(&state_of(&sub), terms(&plan), now);
            return Ok(self
                .store
                .save_subscription(id, next, sub.version, "subscription.renew", Some(audit))
                .await?);
        }
        // The period owed is charged under the key the renewal job uses: an
        // admin's renewal and the job's, at once, charge it once.
        let key = match sub.status {
            SubscriptionStatus::Expired => format!("manual:{id}:{}", sub.version),
            _ => renewal_key(&sub),
        };
        let state_before = sub.status;
        let renewed = self
            .charge_and_apply(&sub, &plan, &key, now, Some(audit))
            .await?;
        if state_before == SubscriptionStatus::Expired
            && renewed.status != SubscriptionStatus::Active
        {
            // An expired subscription stays expired when its charge fails.
            let back = State {
                status: SubscriptionStatus::Expired,
                ..state_of(&renewed)
            };
            return Ok(self
                .store
                .save_subscription(
                    id,
                    back,
                    renewed.version,
                    "subscription.renewal_failed",
                    Some(audit),
                )
                .await?);
        }
        Ok(renewed)
    }

    /// Whether this node runs the renewal job (one node of a database).
    pub fn leads_jobs(&self) -> bool {
        self.store.leads_jobs()
    }

    /// Processes every live subscription; returns how many changed.
    pub async fn run_due(&self, now: DateTime<Utc>) -> usize {
        let ids = match self.store.live_subscription_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "renewal job could not list subscriptions");
                return 0;
            }
        };
        let mut changed = 0;
        for id in ids {
            match self.process_due(&id, now).await {
                Ok(Some(_)) => changed += 1,
                Ok(None) => {}
                // Another writer moved it first; the next run sees the new state.
                Err(ApiError::PreconditionFailed { .. }) => {}
                Err(e) => tracing::error!(subscription = %id, error = %e, "renewal failed to run"),
            }
        }
        changed
    }
}

fn unpriced(model: &tollgate_api::ProviderModel) -> bool {
    parse_amount(&model.input_price).unwrap_or(0) == 0
        && parse_amount(&model.output_price).unwrap_or(0) == 0
}

/// The findings about providers: models the plans name that nobody serves,
/// models priced in another currency than a plan that covers them,
/// fallbacks to nothing, and pools without a usable key.
fn check_providers(
    plans: &[Plan],
    providers: &[(Provider, Vec<ProviderKey>)],
    default_upstream: bool,
    add: &mut impl FnMut(&str, Severity, String, Option<String>, &str),
) {
    let now = Utc::now();
    let served = |model: &str| {
        providers
            .iter()
            .find(|(p, _)| p.models.iter().any(|m| m.name == model))
            .map(|(p, _)| p)
    };
    for plan in plans.iter().filter(|p| p.apis.iter().any(|a| a == "chat")) {
        for model in &plan.models {
            if served(model).is_none() && !default_upstream {
                add(
                    "model-not-served",
                    Severity::Error,
                    format!(
                        "The plan {} covers the model {model}, which no provider serves: its calls are refused with 404.",
                        plan.name
                    ),
                    Some(plan.id.clone()),
                    "Add the model to a provider, or remove it from the plan.",
                );
            }
        }
        for (provider, _) in providers
            .iter()
            .filter(|(p, _)| p.currency != plan.currency)
        {
            let covered: Vec<&str> = provider
                .models
                .iter()
                .map(|m| m.name.as_str())
                .filter(|m| plan.models.is_empty() || plan.models.iter().any(|p| p == m))
                .collect();
            if !covered.is_empty() {
                add(
                    "model-currency-mismatch",
                    Severity::Error,
                    format!(
                        "The plan {} is priced in {} but the provider {} prices {} in {}: those calls are refused with 503.",
                        plan.name,
                        plan.currency,
                        provider.name,
                        covered.join(", "),
                        provider.currency
                    ),
                    Some(plan.id.clone()),
                    "Price the provider in the plan's currency, or list only models in that currency in the plan.",
                );
            }
        }
    }
    let all_free = providers.iter().all(|(p, _)| p.models.iter().all(unpriced));
    for (provider, keys) in providers {
        for model in &provider.models {
            // When every model is free `calls-are-free` says so once.
            if !all_free && unpriced(model) {
                add(
                    "model-unpriced",
                    Severity::Warning,
                    format!(
                        "The model {} of {} has no price: its calls are never charged, to credits or wallets, whatever the plan.",
                        model.name, provider.name
                    ),
                    Some(provider.id.clone()),
                    "Give the model its input and output prices, or stop serving it.",
                );
            }
            if let Some(fallback) = &model.fallback
                && served(fallback).is_none()
            {
                add(
                    "fallback-not-served",
                    Severity::Warning,
                    format!(
                        "The model {} of {} falls back to {fallback}, which no provider serves.",
                        model.name, provider.name
                    ),
                    Some(provider.id.clone()),
                    "Name a served model as its fallback, or none.",
                );
            }
        }
        let usable = keys.iter().filter(|k| {
            k.status == ProviderKeyStatus::Active && k.expires_at.is_none_or(|t| t > now)
        });
        if usable.count() == 0 && !provider.models.is_empty() {
            add(
                "pool-empty",
                Severity::Error,
                format!(
                    "The provider {} has no usable key: calls to its models are refused with 503 provider-unavailable (after trying their fallbacks).",
                    provider.name
                ),
                Some(provider.id.clone()),
                "Add a key to the provider, or re-enable one that was refused or spent once it is fixed.",
            );
        }
        for key in keys.iter().filter(|k| {
            matches!(
                k.status,
                ProviderKeyStatus::Exhausted | ProviderKeyStatus::Invalid
            )
        }) {
            add(
                "key-out-of-pool",
                Severity::Warning,
                format!(
                    "The key {} (…{}) of {} is {}: {}.",
                    key.label,
                    key.last4,
                    provider.name,
                    key.status.as_str(),
                    key.status_reason.as_deref().unwrap_or("no reason recorded")
                ),
                Some(key.id.clone()),
                "Fix it at the provider (top up, or replace it), then re-enable it.",
            );
        }
    }
}

/// The key of a subscription's renewal charge: one per period (its end), so
/// that the database records one succeeded charge per period, whoever runs it.
fn renewal_key(sub: &Subscription) -> String {
    format!(
        "renewal:{}:{}",
        sub.id,
        sub.current_period_end.map(|t| t.timestamp()).unwrap_or(0)
    )
}
