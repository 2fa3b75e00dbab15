//! Consumers, keys, plans, subscriptions, payment methods and wallets of an
//! instance: each method is one admin action, delegated to the gateway's
//! management API. Card numbers pass through memory to the gateway only; key
//! secrets are returned once to the UI and never kept.

use serde_json::json;
use tollgate_api::{
    AddPaymentMethod, BillingCheck, ChangePlan, Charge, Consumer, ConsumerKey, CreateConsumer,
    CreateConsumerKey, CreateLedgerEntry, CreatePlan, CreateSubscription, FieldError,
    IssuedConsumerKey, LedgerEntry, Page, PaymentMethod, PaymentSettings, Plan, Subscription,
    SubscriptionStatus, UpdateConsumer, UpdatePaymentSettings, UpdatePlan, Wallet,
};

use crate::Console;
use crate::client::encode;
use crate::error::ConsoleError;
use crate::validate;

pub(crate) const PAGE: u32 = 100;

pub(crate) fn with_cursor(path: String, cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("{path}&cursor={}", encode(c)),
        None => path,
    }
}

/// The subscription actions the gateway offers.
pub const SUBSCRIPTION_ACTIONS: [&str; 6] =
    ["approve", "reject", "cancel", "suspend", "resume", "renew"];

impl Console {
    pub async fn list_consumers(
        &self,
        id: &str,
        team_id: Option<String>,
        cursor: Option<String>,
    ) -> Result<Page<Consumer>, ConsoleError> {
        let mut path = format!("/admin/v1/consumers?limit={PAGE}");
        if let Some(team) = team_id.filter(|t| !t.is_empty()) {
            path.push_str(&format!("&team_id={}", encode(&team)));
        }
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    pub async fn create_consumer(
        &self,
        id: &str,
        input: CreateConsumer,
        key: &str,
    ) -> Result<Consumer, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .post_json("/admin/v1/consumers", &input, Some(key))
            .await?)
    }

    pub async fn update_consumer(
        &self,
        id: &str,
        consumer_id: &str,
        patch: UpdateConsumer,
        version: i64,
    ) -> Result<Consumer, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .patch_json(
                &format!("/admin/v1/consumers/{}", encode(consumer_id)),
                &patch,
                version,
            )
            .await?)
    }

    pub async fn list_consumer_keys(
        &self,
        id: &str,
        consumer_id: &str,
    ) -> Result<Page<ConsumerKey>, ConsoleError> {
        let path = format!("/admin/v1/consumers/{}/keys?limit=200", encode(consumer_id));
        Ok(self.client(id).await?.get_json(&path).await?)
    }

    pub async fn create_consumer_key(
        &self,
        id: &str,
        consumer_id: &str,
        input: CreateConsumerKey,
        key: &str,
    ) -> Result<IssuedConsumerKey, ConsoleError> {
        let path = format!("/admin/v1/consumers/{}/keys", encode(consumer_id));
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &input, Some(key))
            .await?)
    }

    pub async fn rotate_consumer_key(
        &self,
        id: &str,
        key_id: &str,
        grace_seconds: u32,
    ) -> Result<IssuedConsumerKey, ConsoleError> {
        let path = format!("/admin/v1/keys/{}/rotate", encode(key_id));
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &json!({"grace_seconds": grace_seconds}), None)
            .await?)
    }

    pub async fn revoke_consumer_key(
        &self,
        id: &str,
        key_id: &str,
    ) -> Result<ConsumerKey, ConsoleError> {
        let path = format!("/admin/v1/keys/{}/revoke", encode(key_id));
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &json!({}), None)
            .await?)
    }

    pub async fn find_keys(
        &self,
        id: &str,
        prefix: &str,
    ) -> Result<Page<ConsumerKey>, ConsoleError> {
        let path = format!(
            "/admin/v1/keys?prefix={}&limit={PAGE}",
            encode(prefix.trim())
        );
        Ok(self.client(id).await?.get_json(&path).await?)
    }

    pub async fn list_plans(
        &self,
        id: &str,
        cursor: Option<String>,
    ) -> Result<Page<Plan>, ConsoleError> {
        let path = format!("/admin/v1/plans?limit={PAGE}");
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    pub async fn create_plan(
        &self,
        id: &str,
        input: CreatePlan,
        key: &str,
    ) -> Result<Plan, ConsoleError> {
        let done = self
            .client(id)
            .await?
            .post_json("/admin/v1/plans", &input, Some(key))
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Changes a plan (not its currency), guarded by the version the admin saw.
    pub async fn update_plan(
        &self,
        id: &str,
        plan_id: &str,
        update: UpdatePlan,
        version: i64,
    ) -> Result<Plan, ConsoleError> {
        let update = checked_plan_update(update)?;
        let path = format!("/admin/v1/plans/{}", encode(plan_id));
        let done = self
            .client(id)
            .await?
            .patch_json(&path, &update, version)
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Deletes a plan nobody subscribes to (the gateway refuses otherwise).
    pub async fn delete_plan(
        &self,
        id: &str,
        plan_id: &str,
        version: i64,
    ) -> Result<(), ConsoleError> {
        let path = format!("/admin/v1/plans/{}", encode(plan_id));
        self.client(id)
            .await?
            .delete_versioned(&path, version)
            .await?;
        self.lint_after_change(id).await;
        Ok(())
    }

    pub async fn list_subscriptions(
        &self,
        id: &str,
        status: Option<String>,
        consumer_id: Option<String>,
        cursor: Option<String>,
    ) -> Result<Page<Subscription>, ConsoleError> {
        let mut path = format!("/admin/v1/subscriptions?limit={PAGE}");
        if let Some(s) = status.filter(|s| !s.is_empty()) {
            if SubscriptionStatus::parse(&s).is_none() {
                return Err(ConsoleError::validation(
                    "status",
                    format!("`{s}` is not a subscription status"),
                ));
            }
            path.push_str(&format!("&status={s}"));
        }
        if let Some(c) = consumer_id.filter(|c| !c.is_empty()) {
            path.push_str(&format!("&consumer_id={}", encode(&c)));
        }
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    pub async fn create_subscription(
        &self,
        id: &str,
        input: CreateSubscription,
        key: &str,
    ) -> Result<Subscription, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .post_json("/admin/v1/subscriptions", &input, Some(key))
            .await?)
    }

    /// approve, reject, cancel, suspend, resume or renew; a reason is needed
    /// to reject, cancel or suspend.
    pub async fn subscription_action(
        &self,
        id: &str,
        subscription_id: &str,
        action: &str,
        reason: &str,
    ) -> Result<Subscription, ConsoleError> {
        if !SUBSCRIPTION_ACTIONS.contains(&action) {
            return Err(ConsoleError::validation(
                "action",
                format!("`{action}` is not a subscription action"),
            ));
        }
        if matches!(action, "reject" | "cancel" | "suspend") && reason.trim().is_empty() {
            return Err(ConsoleError::validation(
                "reason",
                format!("is required to {action}"),
            ));
        }
        let path = format!(
            "/admin/v1/subscriptions/{}/{action}",
            encode(subscription_id)
        );
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &json!({"reason": reason.trim()}), None)
            .await?)
    }

    /// Moves a subscription to another plan (see the gateway's rules: a
    /// running paid period continues; otherwise a new one starts, charged).
    pub async fn change_subscription_plan(
        &self,
        id: &str,
        subscription_id: &str,
        plan_id: &str,
    ) -> Result<Subscription, ConsoleError> {
        let plan_id = plan_id.trim();
        if plan_id.is_empty() {
            return Err(ConsoleError::validation("plan_id", "choose a plan"));
        }
        let path = format!(
            "/admin/v1/subscriptions/{}/change-plan",
            encode(subscription_id)
        );
        Ok(self
            .client(id)
            .await?
            .post_json(
                &path,
                &ChangePlan {
                    plan_id: plan_id.to_owned(),
                },
                None,
            )
            .await?)
    }

    pub async fn list_payment_methods(
        &self,
        id: &str,
        consumer_id: &str,
    ) -> Result<Vec<PaymentMethod>, ConsoleError> {
        let path = format!(
            "/admin/v1/consumers/{}/payment-methods",
            encode(consumer_id)
        );
        Ok(self.client(id).await?.get_json(&path).await?)
    }

    /// The card goes straight to the gateway (and from there to its payment
    /// processor); the console keeps nothing of it.
    pub async fn add_payment_method(
        &self,
        id: &str,
        consumer_id: &str,
        card: AddPaymentMethod,
    ) -> Result<PaymentMethod, ConsoleError> {
        let digits: String = card
            .number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConsoleError::validation(
                "number",
                "must be 12 to 19 digits",
            ));
        }
        let card = AddPaymentMethod {
            number: digits,
            ..card
        };
        let path = format!(
            "/admin/v1/consumers/{}/payment-methods",
            encode(consumer_id)
        );
        Ok(self.client(id).await?.post_json(&path, &card, None).await?)
    }

    pub async fn set_default_payment_method(
        &self,
        id: &str,
        method_id: &str,
    ) -> Result<PaymentMethod, ConsoleError> {
        let path = format!("/admin/v1/payment-methods/{}/default", encode(method_id));
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &json!({}), None)
            .await?)
    }

    pub async fn remove_payment_method(
        &self,
        id: &str,
        method_id: &str,
    ) -> Result<(), ConsoleError> {
        let path = format!("/admin/v1/payment-methods/{}", encode(method_id));
        Ok(self.client(id).await?.delete_path(&path).await?)
    }

    pub async fn list_charges(
        &self,
        id: &str,
        consumer_id: &str,
        cursor: Option<String>,
    ) -> Result<Page<Charge>, ConsoleError> {
        let path = format!(
            "/admin/v1/consumers/{}/charges?limit={PAGE}",
            encode(consumer_id)
        );
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    pub async fn list_wallets(
        &self,
        id: &str,
        consumer_id: &str,
    ) -> Result<Vec<Wallet>, ConsoleError> {
        let path = format!("/admin/v1/consumers/{}/wallets", encode(consumer_id));
        Ok(self.client(id).await?.get_json(&path).await?)
    }

    pub async fn list_ledger(
        &self,
        id: &str,
        consumer_id: &str,
        currency: &str,
        cursor: Option<String>,
    ) -> Result<Page<LedgerEntry>, ConsoleError> {
        let path = format!(
            "/admin/v1/consumers/{}/wallets/{}/entries?limit={PAGE}",
            encode(consumer_id),
            encode(currency)
        );
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    /// A top-up, grant, refund or adjustment; the idempotency key makes a
    /// retried click move money once.
    pub async fn create_ledger_entry(
        &self,
        id: &str,
        consumer_id: &str,
        currency: &str,
        input: CreateLedgerEntry,
        key: &str,
    ) -> Result<LedgerEntry, ConsoleError> {
        let path = format!(
            "/admin/v1/consumers/{}/wallets/{}/entries",
            encode(consumer_id),
            encode(currency.trim())
        );
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &input, Some(key))
            .await?)
    }

    /// The gateway's payment settings (credentials only as "set" and their
    /// last 4 characters).
    pub async fn payment_settings(&self, id: &str) -> Result<PaymentSettings, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .get_json("/admin/v1/billing/settings")
            .await?)
    }

    /// Changes the given payment settings, guarded by the version the admin
    /// saw. A processor secret passes through to the gateway, which stores
    /// it encrypted; the console keeps nothing of it.
    pub async fn update_payment_settings(
        &self,
        id: &str,
        update: UpdatePaymentSettings,
        version: i64,
    ) -> Result<PaymentSettings, ConsoleError> {
        let update = checked_settings(update)?;
        let done = self
            .client(id)
            .await?
            .put_json("/admin/v1/billing/settings", &update, version)
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Every misconfiguration the gateway finds in its payment settings and
    /// plans, and the calls refused because of them.
    pub async fn check_billing(&self, id: &str) -> Result<BillingCheck, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .post_json("/admin/v1/billing/check", &json!({}), None)
            .await?)
    }
}

/// Validates a plan change before it leaves the console; the gateway
/// checks again (and knows the rest of the plan).
fn checked_plan_update(mut update: UpdatePlan) -> Result<UpdatePlan, ConsoleError> {
    let mut errors = Vec::new();
    if let Some(name) = &mut update.name {
        validate::name("name", name, 100, &mut errors);
    }
    for (field, amount) in [
        ("price", &mut update.price),
        ("included_credits", &mut update.included_credits),
    ] {
        if let Some(text) = amount {
            validate::amount(field, text, &mut errors);
        }
    }
    if let Some(apis) = &mut update.apis {
        apis.iter_mut().for_each(|a| *a = a.trim().to_owned());
        apis.retain(|a| !a.is_empty());
        if apis.is_empty() {
            errors.push(FieldError::new(
                "apis",
                "list at least one API: a plan that covers none allows no calls",
            ));
        }
    }
    if let Some(limits) = &update.rate_limits {
        if limits.requests_per_minute == Some(0) {
            errors.push(FieldError::new(
                "rate_limits.requests_per_minute",
                "must be at least 1",
            ));
        }
        if limits.tokens_per_minute == Some(0) {
            errors.push(FieldError::new(
                "rate_limits.tokens_per_minute",
                "must be at least 1",
            ));
        }
    }
    validate::outcome(update, errors)
}

/// The processors a gateway of this version offers.
const PROCESSORS: [&str; 2] = ["test", "none"];

/// Validates a settings change before it leaves the console; the gateway
/// checks again.
fn checked_settings(
    mut update: UpdatePaymentSettings,
) -> Result<UpdatePaymentSettings, ConsoleError> {
    let mut errors = Vec::new();
    if let Some(p) = &mut update.processor {
        *p = p.trim().to_owned();
        if !PROCESSORS.contains(&p.as_str()) {
            errors.push(FieldError::new(
                "processor",
                format!("must be one of {}", PROCESSORS.join(", ")),
            ));
        }
    }
    if let Some(secret) = &update.credentials
        && (secret.trim().len() > 4096 || secret.trim().chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "credentials",
            "must be one line of at most 4096 characters",
        ));
    }
    if let Some(list) = &mut update.accepted_currencies {
        for (i, code) in list.iter_mut().enumerate() {
            validate::currency(&format!("accepted_currencies.{i}"), code, &mut errors);
        }
    }
    if update.grace_days.is_some_and(|d| d > 90) {
        errors.push(FieldError::new("grace_days", "must be 0 to 90"));
    }
    validate::outcome(update, errors)
}
