//! The model providers of an instance and their key pools. Each method is one
//! admin action: checked here first (the gateway's rules, mirrored, so a form
//! learns of every bad field without a round trip), then delegated to the
//! management API, which checks again. A key's secret goes straight to the
//! gateway: the console neither stores nor logs it, and no error repeats it.

use chrono::Utc;
use serde_json::json;
use tollgate_api::{
    CreateProvider, CreateProviderKey, FieldError, Page, Provider, ProviderKey, ProviderKeyEvent,
    ProviderKeyStatus, ProviderModel, ProviderTest, UpdateProvider, UpdateProviderKey,
};

use crate::Console;
use crate::billing::{PAGE, with_cursor};
use crate::client::encode;
use crate::error::ConsoleError;
use crate::validate;

const NAME_MAX: usize = 100;
const MODEL_NAME_MAX: usize = 200;
const MODELS_MAX: usize = 500;
const TIMEOUT_MAX: u32 = 3600;
const SECRET_MIN: usize = 8;
const SECRET_MAX: usize = 4096;
const PRIORITY_MAX: u32 = 1_000_000;
const REASON_MAX: usize = 500;
const EVENTS_MAX: u32 = 200;

fn provider_path(provider_id: &str) -> String {
    format!("/admin/v1/providers/{}", encode(provider_id))
}

fn key_path(key_id: &str) -> String {
    format!("/admin/v1/provider-keys/{}", encode(key_id))
}

impl Console {
    pub async fn list_providers(
        &self,
        id: &str,
        cursor: Option<String>,
    ) -> Result<Page<Provider>, ConsoleError> {
        let path = format!("/admin/v1/providers?limit={PAGE}");
        Ok(self
            .client(id)
            .await?
            .get_json(&with_cursor(path, cursor.as_deref()))
            .await?)
    }

    pub async fn get_provider(
        &self,
        id: &str,
        provider_id: &str,
    ) -> Result<Provider, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .get_json(&provider_path(provider_id))
            .await?)
    }

    /// Adds a provider; its model names must not be another provider's
    /// (the gateway answers 409 otherwise).
    pub async fn create_provider(
        &self,
        id: &str,
        input: CreateProvider,
        key: &str,
    ) -> Result<Provider, ConsoleError> {
        let input = checked_provider(input)?;
        let done = self
            .client(id)
            .await?
            .post_json("/admin/v1/providers", &input, Some(key))
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Changes the given fields, guarded by the version the admin saw.
    pub async fn update_provider(
        &self,
        id: &str,
        provider_id: &str,
        mut update: UpdateProvider,
        version: i64,
    ) -> Result<Provider, ConsoleError> {
        let mut errors = Vec::new();
        check_provider(&mut update, &mut errors);
        let update = validate::outcome(update, errors)?;
        let done = self
            .client(id)
            .await?
            .patch_json(&provider_path(provider_id), &update, version)
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Deletes a provider and its whole key pool.
    pub async fn delete_provider(
        &self,
        id: &str,
        provider_id: &str,
        version: i64,
    ) -> Result<(), ConsoleError> {
        self.client(id)
            .await?
            .delete_versioned(&provider_path(provider_id), version)
            .await?;
        self.lint_after_change(id).await;
        Ok(())
    }

    /// Asks the provider for its model list with the first usable key of its
    /// pool and says what the answer means; no key's status changes. The
    /// configured models the provider does not list come back as
    /// `missing_models` (often misspelt names).
    pub async fn test_provider(
        &self,
        id: &str,
        provider_id: &str,
    ) -> Result<ProviderTest, ConsoleError> {
        let path = format!("{}/test", provider_path(provider_id));
        Ok(self
            .client(id)
            .await?
            .post_json(&path, &json!({}), None)
            .await?)
    }

    /// A provider's keys, masked, in the order the gateway tries them, each
    /// with its use (the gateway writes pending counts before answering).
    pub async fn list_provider_keys(
        &self,
        id: &str,
        provider_id: &str,
    ) -> Result<Vec<ProviderKey>, ConsoleError> {
        let path = format!("{}/keys", provider_path(provider_id));
        Ok(self.client(id).await?.get_json(&path).await?)
    }

    /// Adds a key to a provider's pool. The secret passes through memory to
    /// the gateway, which stores it sealed and answers with its last 4 only.
    /// No idempotency key: the gateway would keep a digest of the secret
    /// with it, and a doubled key is visible and easily deleted.
    pub async fn add_provider_key(
        &self,
        id: &str,
        provider_id: &str,
        input: CreateProviderKey,
    ) -> Result<ProviderKey, ConsoleError> {
        let input = checked_key(input)?;
        let path = format!("{}/keys", provider_path(provider_id));
        let done = self
            .client(id)
            .await?
            .post_json(&path, &input, None)
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Relabels, reprioritises, disables or re-enables a key (a reason goes
    /// with a status change), guarded by the version the admin saw.
    pub async fn update_provider_key(
        &self,
        id: &str,
        key_id: &str,
        update: UpdateProviderKey,
        version: i64,
    ) -> Result<ProviderKey, ConsoleError> {
        let update = checked_key_update(update)?;
        let done = self
            .client(id)
            .await?
            .patch_json(&key_path(key_id), &update, version)
            .await?;
        self.lint_after_change(id).await;
        Ok(done)
    }

    /// Moves a key one place up (tried sooner) or down in its pool by
    /// changing priorities; answers the pool in its new order.
    pub async fn move_provider_key(
        &self,
        id: &str,
        provider_id: &str,
        key_id: &str,
        up: bool,
    ) -> Result<Vec<ProviderKey>, ConsoleError> {
        let client = self.client(id).await?;
        let pool_path = format!("{}/keys", provider_path(provider_id));
        let pool: Vec<ProviderKey> = client.get_json(&pool_path).await?;
        for change in reorder(&pool, key_id, up)? {
            let update = UpdateProviderKey {
                priority: Some(change.priority),
                ..Default::default()
            };
            client
                .patch_json::<ProviderKey>(&key_path(&change.key_id), &update, change.version)
                .await?;
        }
        Ok(client.get_json(&pool_path).await?)
    }

    pub async fn delete_provider_key(
        &self,
        id: &str,
        key_id: &str,
        version: i64,
    ) -> Result<(), ConsoleError> {
        self.client(id)
            .await?
            .delete_versioned(&key_path(key_id), version)
            .await?;
        self.lint_after_change(id).await;
        Ok(())
    }

    /// Status changes of a provider's keys (or of one key), newest first.
    pub async fn list_provider_key_events(
        &self,
        id: &str,
        provider_id: &str,
        key_id: Option<String>,
        limit: Option<u32>,
    ) -> Result<Vec<ProviderKeyEvent>, ConsoleError> {
        let limit = limit.unwrap_or(50);
        if !(1..=EVENTS_MAX).contains(&limit) {
            return Err(ConsoleError::validation(
                "limit",
                format!("must be 1 to {EVENTS_MAX}"),
            ));
        }
        let mut path = format!("{}/key-events?limit={limit}", provider_path(provider_id));
        if let Some(key) = key_id.filter(|k| !k.is_empty()) {
            path.push_str(&format!("&key_id={}", encode(&key)));
        }
        Ok(self.client(id).await?.get_json(&path).await?)
    }
}

/// Checks a whole new provider.
fn checked_provider(input: CreateProvider) -> Result<CreateProvider, ConsoleError> {
    let mut fields = UpdateProvider {
        name: Some(input.name),
        base_url: Some(input.base_url),
        currency: Some(input.currency),
        models: Some(input.models),
        timeout_secs: Some(input.timeout_secs),
        ..Default::default()
    };
    let mut errors = Vec::new();
    check_provider(&mut fields, &mut errors);
    let input = CreateProvider {
        name: fields.name.unwrap_or_default(),
        base_url: fields.base_url.unwrap_or_default(),
        currency: fields.currency.unwrap_or_default(),
        models: fields.models.unwrap_or_default(),
        ..input
    };
    validate::outcome(input, errors)
}

/// Checks and normalises the given fields of a provider.
fn check_provider(p: &mut UpdateProvider, errors: &mut Vec<FieldError>) {
    if let Some(name) = &mut p.name {
        validate::name("name", name, NAME_MAX, errors);
    }
    if let Some(url) = &mut p.base_url {
        base_url(url, errors);
    }
    if let Some(currency) = &mut p.currency {
        validate::currency("currency", currency, errors);
    }
    if let Some(models) = &mut p.models {
        check_models(models, errors);
    }
    if p.timeout_secs
        .is_some_and(|t| !(1..=TIMEOUT_MAX).contains(&t))
    {
        errors.push(FieldError::new(
            "timeout_secs",
            format!("must be 1 to {TIMEOUT_MAX}"),
        ));
    }
}

/// An http(s) URL with a host and neither query nor fragment.
fn base_url(value: &mut String, errors: &mut Vec<FieldError>) {
    *value = value.trim().to_owned();
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            if url.query().is_some() || url.fragment().is_some() {
                errors.push(FieldError::new(
                    "base_url",
                    "must not carry a query or a fragment",
                ));
            }
        }
        _ => errors.push(FieldError::new(
            "base_url",
            "must be an http(s) URL with a host, e.g. https://api.openai.com/v1",
        )),
    }
}

fn check_models(models: &mut [ProviderModel], errors: &mut Vec<FieldError>) {
    if models.len() > MODELS_MAX {
        errors.push(FieldError::new(
            "models",
            format!("at most {MODELS_MAX} models"),
        ));
    }
    for (i, model) in models.iter_mut().enumerate() {
        model.name = model.name.trim().to_owned();
        model_name(&format!("models.{i}.name"), &model.name, errors);
        validate::amount(
            &format!("models.{i}.input_price"),
            &mut model.input_price,
            errors,
        );
        validate::amount(
            &format!("models.{i}.output_price"),
            &mut model.output_price,
            errors,
        );
        model.fallback = model
            .fallback
            .take()
            .map(|f| f.trim().to_owned())
            .filter(|f| !f.is_empty());
        if let Some(fallback) = &model.fallback {
            let field = format!("models.{i}.fallback");
            model_name(&field, fallback, errors);
            if *fallback == model.name {
                errors.push(FieldError::new(field, "must be another model"));
            }
        }
    }
    for (i, model) in models.iter().enumerate() {
        if models[..i].iter().any(|m| m.name == model.name) {
            errors.push(FieldError::new(
                format!("models.{i}.name"),
                "is listed twice",
            ));
        }
    }
}

/// Model names travel in JSON bodies and headers: printable ASCII, no spaces.
fn model_name(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty()
        || value.len() > MODEL_NAME_MAX
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {MODEL_NAME_MAX} printable characters without spaces"),
        ));
    }
}

fn priority(value: u32, errors: &mut Vec<FieldError>) {
    if value > PRIORITY_MAX {
        errors.push(FieldError::new(
            "priority",
            format!("must be 0 to {PRIORITY_MAX}"),
        ));
    }
}

fn checked_key(mut input: CreateProviderKey) -> Result<CreateProviderKey, ConsoleError> {
    let mut errors = Vec::new();
    validate::name("label", &mut input.label, NAME_MAX, &mut errors);
    input.secret = input.secret.trim().to_owned();
    // Sent as a header value to the provider. The message never repeats it.
    if !(SECRET_MIN..=SECRET_MAX).contains(&input.secret.len())
        || !input.secret.bytes().all(|b| b.is_ascii_graphic())
    {
        errors.push(FieldError::new(
            "secret",
            format!("must be {SECRET_MIN} to {SECRET_MAX} printable characters without spaces"),
        ));
    }
    priority(input.priority, &mut errors);
    if input.expires_at.is_some_and(|t| t <= Utc::now()) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    validate::outcome(input, errors)
}

fn checked_key_update(mut update: UpdateProviderKey) -> Result<UpdateProviderKey, ConsoleError> {
    let mut errors = Vec::new();
    if let Some(label) = &mut update.label {
        validate::name("label", label, NAME_MAX, &mut errors);
    }
    if let Some(p) = update.priority {
        priority(p, &mut errors);
    }
    if update
        .status
        .is_some_and(|s| !matches!(s, ProviderKeyStatus::Active | ProviderKeyStatus::Disabled))
    {
        errors.push(FieldError::new(
            "status",
            "an admin may set `active` or `disabled`; the other statuses are the gateway's findings",
        ));
    }
    // An empty reason is no reason: the gateway then records a default one.
    update.reason = update
        .reason
        .take()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(reason) = &update.reason {
        if reason.chars().count() > REASON_MAX {
            errors.push(FieldError::new(
                "reason",
                format!("must be at most {REASON_MAX} characters"),
            ));
        } else if reason
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            errors.push(FieldError::new(
                "reason",
                "must not contain control characters",
            ));
        }
        if update.status.is_none() {
            errors.push(FieldError::new("reason", "goes with a `status` change"));
        }
    }
    validate::outcome(update, errors)
}

/// One key's new priority, written with the version it was read at.
#[derive(Debug, PartialEq)]
struct PriorityChange {
    key_id: String,
    priority: u32,
    version: i64,
}

/// The priority changes that move a key one place up or down in its pool
/// (given in pool order). The two neighbours swap priorities; then each key
/// that would not sort strictly after the one before it is raised just above
/// it, since the gateway breaks ties by age, which a move must not rely on.
/// Nothing changes for a key already at that end of the pool.
fn reorder(
    pool: &[ProviderKey],
    key_id: &str,
    up: bool,
) -> Result<Vec<PriorityChange>, ConsoleError> {
    let i = pool
        .iter()
        .position(|k| k.id == key_id)
        .ok_or_else(|| ConsoleError::validation("key_id", "is not in this provider's pool"))?;
    let neighbour = if up { i.checked_sub(1) } else { Some(i + 1) };
    let Some(j) = neighbour.filter(|&j| j < pool.len()) else {
        return Ok(Vec::new());
    };
    let (lo, hi) = (i.min(j), i.max(j));
    let mut order: Vec<&ProviderKey> = pool.iter().collect();
    let mut priorities: Vec<u32> = pool.iter().map(|k| k.priority).collect();
    order.swap(lo, hi);
    for n in 1..priorities.len() {
        if priorities[n] <= priorities[n - 1] {
            priorities[n] = priorities[n - 1] + 1;
        }
    }
    Ok(order
        .into_iter()
        .zip(priorities)
        .filter(|(key, priority)| key.priority != *priority)
        .map(|(key, priority)| PriorityChange {
            key_id: key.id.clone(),
            priority,
            version: key.version,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, input: &str, output: &str, fallback: Option<&str>) -> ProviderModel {
        ProviderModel {
            name: name.into(),
            input_price: input.into(),
            output_price: output.into(),
            fallback: fallback.map(Into::into),
        }
    }

    fn fields_of(e: ConsoleError) -> Vec<String> {
        match e {
            ConsoleError::Validation(list) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_provider_is_checked_field_by_field_and_normalised() {
        let bad = CreateProvider {
            name: " ".into(),
            kind: tollgate_api::ProviderKind::OpenaiCompatible,
            base_url: "api.openai.com/v1".into(),
            currency: "dollars".into(),
            models: vec![
                model("gpt 4", "-1", "x", None),
                model("m", "1", "2", Some("m")),
                model("m", "1", "2", None),
            ],
            timeout_secs: 0,
            enabled: true,
        };
        assert_eq!(
            fields_of(checked_provider(bad.clone()).unwrap_err()),
            [
                "name",
                "base_url",
                "currency",
                "models.0.name",
                "models.0.input_price",
                "models.0.output_price",
                "models.1.fallback",
                "models.2.name",
                "timeout_secs",
            ]
        );
        let good = checked_provider(CreateProvider {
            name: " OpenAI ".into(),
            base_url: " https://api.openai.com/v1 ".into(),
            currency: "usd".into(),
            models: vec![model(" gpt-4o ", " 2.50 ", "10", Some(" "))],
            timeout_secs: 3600,
            ..bad
        })
        .unwrap();
        assert_eq!(
            (
                good.name.as_str(),
                good.base_url.as_str(),
                good.currency.as_str()
            ),
            ("OpenAI", "https://api.openai.com/v1", "USD")
        );
        assert_eq!(good.models, [model("gpt-4o", "2.50", "10", None)]);
        for url in [
            "ftp://x.test",
            "http://",
            "https://x.test/?a=1",
            "https://x.test/#f",
        ] {
            let mut errors = Vec::new();
            base_url(&mut url.to_owned(), &mut errors);
            assert_eq!(errors.len(), 1, "{url}");
        }
    }

    #[test]
    fn a_key_secret_is_checked_without_being_repeated() {
        let secret = "short secret";
        let e = checked_key(CreateProviderKey {
            label: String::new(),
            secret: secret.into(),
            priority: PRIORITY_MAX + 1,
            expires_at: Some(Utc::now() - chrono::Duration::minutes(1)),
        })
        .unwrap_err();
        assert!(!e.to_string().contains(secret));
        assert!(!format!("{e:?}").contains(secret));
        assert_eq!(fields_of(e), ["label", "secret", "priority", "expires_at"]);
        let ok = checked_key(CreateProviderKey {
            label: " main ".into(),
            secret: " sk-12345678 ".into(),
            priority: 0,
            expires_at: None,
        })
        .unwrap();
        assert_eq!(
            (ok.label.as_str(), ok.secret.as_str()),
            ("main", "sk-12345678")
        );
    }

    #[test]
    fn a_key_update_sets_only_what_an_admin_may() {
        let e = checked_key_update(UpdateProviderKey {
            status: Some(ProviderKeyStatus::Exhausted),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields_of(e), ["status"]);
        let e = checked_key_update(UpdateProviderKey {
            reason: Some("why".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(fields_of(e), ["reason"]);
        let blank = checked_key_update(UpdateProviderKey {
            status: Some(ProviderKeyStatus::Disabled),
            reason: Some("  ".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(blank.reason, None);
    }

    fn key(id: &str, priority: u32) -> ProviderKey {
        let now = Utc::now();
        ProviderKey {
            id: id.into(),
            provider_id: "prv".into(),
            label: id.into(),
            last4: "abcd".into(),
            status: ProviderKeyStatus::Active,
            status_reason: None,
            status_changed_at: now,
            priority,
            expires_at: None,
            requests: 0,
            failures: 0,
            tokens: 0,
            last_used_at: None,
            created_at: now,
            version: 1,
        }
    }

    fn changes(pool: &[ProviderKey], id: &str, up: bool) -> Vec<(String, u32)> {
        reorder(pool, id, up)
            .unwrap()
            .into_iter()
            .map(|c| (c.key_id, c.priority))
            .collect()
    }

    #[test]
    fn moving_a_key_swaps_priorities_and_never_relies_on_ties() {
        let distinct = [key("a", 1), key("b", 5), key("c", 1000)];
        assert_eq!(
            changes(&distinct, "c", true),
            [("c".into(), 5), ("b".into(), 1000)]
        );
        assert_eq!(
            changes(&distinct, "a", false),
            [("b".into(), 1), ("a".into(), 5)]
        );
        let tied = [key("a", 100), key("b", 100), key("c", 100)];
        assert_eq!(
            changes(&tied, "c", true),
            [("c".into(), 101), ("b".into(), 102)]
        );
        assert!(changes(&tied, "a", true).is_empty());
        assert!(changes(&tied, "c", false).is_empty());
        assert_eq!(
            fields_of(reorder(&tied, "zz", true).unwrap_err()),
            ["key_id"]
        );
    }
}
