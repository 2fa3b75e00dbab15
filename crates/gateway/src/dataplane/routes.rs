//! Which provider serves a model, with its key pool: rebuilt from the store
//! when first needed after a provider's change on the change feed (its
//! models, prices, keys or their status), with each key decrypted once per
//! build rather than per call.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use tollgate_api::money::parse_amount;
use tollgate_api::{Provider, ProviderKeyStatus, ProviderKind};

use super::upstream::{KeyHeader, Target, bearer, x_api_key};
use crate::changes::{Change, ChangeListener};
use crate::crypto::SecretBox;
use crate::store::{SealedProviderKey, Store, StoreResult};

/// One key of a pool, ready to send.
pub struct PoolKey {
    pub id: String,
    /// The id and last four characters, as the call log names the key.
    pub logged_as: String,
    authorization: KeyHeader,
    status: ProviderKeyStatus,
    expires_at: Option<DateTime<Utc>>,
    /// Unix milliseconds until which the key rests after a rate limit.
    resting_until: AtomicI64,
    /// Found invalid or exhausted since this table was built (the store is
    /// told too; the next table reads it from there).
    benched: AtomicBool,
}

impl PoolKey {
    pub fn authorization(&self) -> &KeyHeader {
        &self.authorization
    }

    /// Whether the key may be tried at `now_ms`; `Err(ms)` when it is only
    /// resting after a rate limit, with the time it may be tried again.
    pub fn usable(&self, now: DateTime<Utc>) -> Result<bool, i64> {
        if self.status != ProviderKeyStatus::Active
            || self.benched.load(Ordering::Relaxed)
            || self.expires_at.is_some_and(|t| t <= now)
        {
            return Ok(false);
        }
        let resting = self.resting_until.load(Ordering::Relaxed);
        if resting > now.timestamp_millis() {
            return Err(resting);
        }
        Ok(true)
    }

    /// The key's state as this node routes it (for the metrics).
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        match self.status {
            ProviderKeyStatus::Exhausted => "exhausted",
            ProviderKeyStatus::Expired => "expired",
            ProviderKeyStatus::Invalid => "invalid",
            ProviderKeyStatus::Disabled => "disabled",
            ProviderKeyStatus::Active => match self.usable(now) {
                _ if self.benched.load(Ordering::Relaxed) => "benched",
                Ok(true) => "active",
                Ok(false) => "expired",
                Err(_) => "resting",
            },
        }
    }

    pub fn bench(&self) {
        self.benched.store(true, Ordering::Relaxed);
    }

    pub fn rest(&self, now: DateTime<Utc>, pause: Duration) {
        let until =
            now.timestamp_millis() + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX / 2);
        self.resting_until.fetch_max(until, Ordering::Relaxed);
    }
}

pub struct ProviderRoute {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    pub currency: String,
    pub target: Target,
    /// In the order they are tried.
    pub keys: Vec<PoolKey>,
    /// The provider's name as the `x-tollgate-provider` header.
    pub name_header: HeaderValue,
}

pub struct ModelRoute {
    pub name: String,
    pub provider: Arc<ProviderRoute>,
    /// Micro-units of the provider's currency per million tokens.
    pub input_price: i64,
    pub output_price: i64,
    pub fallback: Option<String>,
    /// The model's name as the `x-tollgate-model` header.
    pub name_header: HeaderValue,
}

impl ModelRoute {
    /// The price of a call's tokens, rounded up to a whole micro-unit.
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> i64 {
        let micros = i128::from(input_tokens) * i128::from(self.input_price)
            + i128::from(output_tokens) * i128::from(self.output_price);
        i64::try_from((micros + 999_999) / 1_000_000).unwrap_or(i64::MAX / 2)
    }
}

#[derive(Default)]
pub struct RouteTable {
    models: HashMap<String, Arc<ModelRoute>>,
}

impl RouteTable {
    pub fn model(&self, name: &str) -> Option<&Arc<ModelRoute>> {
        self.models.get(name)
    }

    pub fn models(&self) -> impl Iterator<Item = (&str, &Arc<ModelRoute>)> {
        self.models
            .iter()
            .map(|(name, route)| (name.as_str(), route))
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Every provider that serves a model, once each.
    pub fn providers(&self) -> Vec<&Arc<ProviderRoute>> {
        let mut providers: Vec<_> = self.models.values().map(|m| &m.provider).collect();
        providers.sort_by(|a, b| a.id.cmp(&b.id));
        providers.dedup_by(|a, b| a.id == b.id);
        providers
    }

    /// Whether every model is priced at zero.
    pub fn is_free(&self) -> bool {
        self.models
            .values()
            .all(|m| m.input_price == 0 && m.output_price == 0)
    }

    async fn load(store: &dyn Store, secrets: &SecretBox) -> StoreResult<RouteTable> {
        let mut models = HashMap::default();
        for (provider, keys) in store.routing_table().await? {
            let target = target_of(&provider, Endpoint::Chat);
            let target = match target {
                Ok(target) => target,
                Err(e) => {
                    tracing::error!(provider = %provider.id, error = %e, "a provider's URL is unusable");
                    continue;
                }
            };
            let keys = keys
                .into_iter()
                .filter_map(|sealed| {
                    let Some(authorization) = key_header(provider.kind, secrets, &sealed) else {
                        tracing::error!(key = %sealed.key.id,
                            "a provider key cannot be decrypted with this gateway's encryption key");
                        return None;
                    };
                    Some(PoolKey {
                        logged_as: format!("{} (…{})", sealed.key.id, sealed.key.last4),
                        id: sealed.key.id,
                        authorization,
                        status: sealed.key.status,
                        expires_at: sealed.key.expires_at,
                        resting_until: AtomicI64::new(0),
                        benched: AtomicBool::new(false),
                    })
                })
                .collect();
            let route = Arc::new(ProviderRoute {
                name_header: HeaderValue::from_str(&provider.name)
                    .unwrap_or_else(|_| HeaderValue::from_static("provider")),
                id: provider.id,
                name: provider.name,
                kind: provider.kind,
                currency: provider.currency,
                target,
                keys,
            });
            for model in provider.models {
                let Ok(name_header) = HeaderValue::from_str(&model.name) else {
                    continue;
                };
                models.insert(
                    model.name.clone(),
                    Arc::new(ModelRoute {
                        provider: route.clone(),
                        input_price: parse_amount(&model.input_price).unwrap_or(0),
                        output_price: parse_amount(&model.output_price).unwrap_or(0),
                        fallback: model.fallback,
                        name_header,
                        name: model.name,
                    }),
                );
            }
        }
        Ok(RouteTable { models })
    }
}

/// Which of a provider's endpoints to call.
pub enum Endpoint {
    Chat,
    Models,
}

/// Where a provider's `endpoint` is, with the headers its API needs.
pub fn target_of(provider: &Provider, endpoint: Endpoint) -> anyhow::Result<Target> {
    let timeout = Duration::from_secs(u64::from(provider.timeout_secs));
    let path = match (provider.kind, endpoint) {
        (_, Endpoint::Models) => "/models",
        (ProviderKind::OpenaiCompatible, Endpoint::Chat) => "/chat/completions",
        (ProviderKind::Anthropic, Endpoint::Chat) => "/messages",
    };
    let mut target = Target::new(&provider.base_url, path, timeout)?;
    if provider.kind == ProviderKind::Anthropic {
        target.fixed.push((
            axum::http::HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(super::anthropic::API_VERSION),
        ));
    }
    Ok(target)
}

/// A pool key's secret, decrypted, as the header its provider reads it
/// from; `None` when it cannot be decrypted with this gateway's key.
pub fn key_header(
    kind: ProviderKind,
    secrets: &SecretBox,
    sealed: &SealedProviderKey,
) -> Option<KeyHeader> {
    let secret = String::from_utf8(secrets.open(&sealed.secret_sealed).ok()?).ok()?;
    match kind {
        ProviderKind::OpenaiCompatible => bearer(&secret).ok(),
        ProviderKind::Anthropic => x_api_key(&secret).ok(),
    }
}

/// The current table, rebuilt when first needed after a provider changed.
#[derive(Default)]
pub struct Routes {
    /// Moved on by every provider change; a table is kept with the
    /// generation it was read at, so one read before a change is never kept.
    generation: AtomicU64,
    cached: RwLock<Option<(u64, Arc<RouteTable>)>>,
}

impl ChangeListener for Routes {
    fn changed(&self, change: &Change) {
        if let Change::Provider { .. } | Change::Everything = change {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Routes {
    pub async fn current(
        &self,
        store: &dyn Store,
        secrets: &SecretBox,
    ) -> StoreResult<Arc<RouteTable>> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((at, table)) = &*self.cached.read().unwrap_or_else(|p| p.into_inner())
            && *at == generation
        {
            return Ok(table.clone());
        }
        let table = Arc::new(RouteTable::load(store, secrets).await?);
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some((generation, table.clone()));
        Ok(table)
    }
}
