//! The 402 doctor: why a consumer's calls are refused, with the evidence and
//! the fix. [`classify`] reads one answer (Tollgate's or another system's);
//! [`facts`] gathers what the instance knows about the consumer (live, or
//! from the call-log cache when it cannot be reached); [`rules`] walks the
//! gateway's decision path over those facts; `Console::diagnose` and
//! `Console::apply_fix` tie them to an instance.

pub mod classify;
pub mod facts;
pub mod model;
pub mod response;
pub mod rules;

use std::time::Instant;

use chrono::Utc;
use rusqlite::params;
use serde::Serialize;
use tollgate_api::{
    ConsumerKey, CreateLedgerEntry, LedgerKind, ProviderKeyStatus, UpdateProviderKey,
};
use ts_rs::TS;

pub use classify::{Cause, Classification, Evidence, Origin, System, classify};
pub use model::{
    Diagnosis, DoctorCause, DoctorEvidence, DoctorStart, EvidenceSource, Finding, FixAction,
    FixOutcome, SettingScreen,
};
pub use response::{RawResponse, ResponseParseError};

use crate::Console;
use crate::error::ConsoleError;
use crate::logs::LogFilter;
use facts::{Facts, Refusal, gather_live, unreachable};

/// Classifies a raw HTTP response (status line, headers, blank line, body)
/// and renders the result as one line of JSON: what `tollgate doctor
/// classify FILE` prints.
pub fn classify_text(text: &str) -> Result<String, ResponseParseError> {
    let response = RawResponse::parse(text)?;
    let found = classify(&response);
    // A struct of strings, numbers and enums always serializes.
    Ok(serde_json::to_string(&found).unwrap_or_default())
}

const ID_MAX: usize = 80;
/// The largest top-up the doctor proposes or applies in one step.
const TOP_UP_MAX_MICROS: i64 = 1_000_000 * 1_000_000;

fn id_like(field: &str, value: &str, prefix: &str) -> Result<String, ConsoleError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConsoleError::validation(field, "is required"));
    }
    if value.len() > ID_MAX
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConsoleError::validation(
            field,
            "may hold only letters, digits, `_` and `-`",
        ));
    }
    if !value.starts_with(prefix) {
        return Err(ConsoleError::validation(
            field,
            format!("must start with `{prefix}`"),
        ));
    }
    Ok(value.to_owned())
}

/// The start, checked: what the doctor will look for.
fn checked(start: DoctorStart) -> Result<DoctorStart, ConsoleError> {
    Ok(match start {
        DoctorStart::Consumer { consumer_id } => DoctorStart::Consumer {
            consumer_id: id_like("consumer_id", &consumer_id, "con_")?,
        },
        DoctorStart::KeyPrefix { prefix } => {
            let prefix = id_like("prefix", &prefix, "tg_")?;
            if prefix.len() < 7 {
                return Err(ConsoleError::validation(
                    "prefix",
                    "give at least 4 characters after `tg_`",
                ));
            }
            DoctorStart::KeyPrefix { prefix }
        }
        DoctorStart::RequestId { request_id } => DoctorStart::RequestId {
            request_id: id_like("request_id", &request_id, "req_")?,
        },
        DoctorStart::Response { text } => {
            RawResponse::parse(&text)
                .map_err(|e| ConsoleError::validation("text", e.to_string()))?;
            DoctorStart::Response { text }
        }
    })
}

/// One fix applied from this console, as kept in its database.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct AppliedFix {
    #[ts(type = "number")]
    pub id: i64,
    pub applied_at: chrono::DateTime<Utc>,
    pub description: String,
    pub cause_before: String,
    /// `resolved`, `not_resolved` or `failed`.
    pub outcome: String,
    #[ts(optional)]
    pub cause_after: Option<String>,
    #[ts(optional)]
    pub error: Option<String>,
}

impl Console {
    /// Diagnoses why calls are (or would be) refused, from a consumer, a key
    /// prefix, a request id in the log cache, or a pasted response. Reads
    /// the instance live; when it cannot be reached, the cache, and says so.
    pub async fn diagnose(
        &self,
        instance_id: &str,
        start: DoctorStart,
    ) -> Result<Diagnosis, ConsoleError> {
        let started = Instant::now();
        let start = checked(start)?;
        self.instance(instance_id)?;
        let now = Utc::now();
        let mut facts = Facts::empty(EvidenceSource::Live, now);
        let mut offline_reason = None;
        let consumer_id = self
            .resolve(instance_id, &start, &mut facts, &mut offline_reason)
            .await?;
        if let Some(consumer_id) = &consumer_id {
            facts.records = self.recent_records(instance_id, consumer_id).await;
        }
        if offline_reason.is_none() {
            let client = self.client(instance_id).await?;
            let result = match &consumer_id {
                Some(c) => gather_live(&client, c, &mut facts).await,
                None => facts::gather_gateway(&client, &mut facts).await,
            };
            match result {
                Ok(()) => {}
                Err(e) if unreachable(&e) => offline_reason = Some(e.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
        if offline_reason.is_some() {
            facts.source = EvidenceSource::Cache;
        }
        let findings = rules::diagnose(&facts);
        Ok(Diagnosis {
            instance_id: instance_id.to_owned(),
            source: facts.source,
            offline_reason,
            consumer_name: facts.consumer.as_ref().map(|c| c.name.clone()),
            consumer_id: consumer_id.or_else(|| facts.consumer.as_ref().map(|c| c.id.clone())),
            refusal: facts.refusal.map(|r| r.classification),
            findings,
            diagnosed_at: now,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Turns the start into a consumer (and the refusal, the key) as far as
    /// it goes; sets `offline` when the instance could not be reached.
    async fn resolve(
        &self,
        instance_id: &str,
        start: &DoctorStart,
        facts: &mut Facts,
        offline: &mut Option<String>,
    ) -> Result<Option<String>, ConsoleError> {
        match start {
            DoctorStart::Consumer { consumer_id } => Ok(Some(consumer_id.clone())),
            DoctorStart::RequestId { request_id } => {
                let record = self.cached_request(instance_id, request_id).await?.ok_or_else(|| {
                    ConsoleError::validation(
                        "request_id",
                        format!("{request_id} is not in this instance's log cache; sync it and try again"),
                    )
                })?;
                facts.refusal = Some(Refusal::from_record(&record));
                Ok(record.consumer_id)
            }
            DoctorStart::Response { text } => {
                let response = RawResponse::parse(text)
                    .map_err(|e| ConsoleError::validation("text", e.to_string()))?;
                let mut refusal = Refusal::from_response(&response);
                let mut consumer = response.text_at(&["consumer_id"]).map(str::to_owned);
                if refusal.classification.system == System::Tollgate {
                    if let Some(id) = refusal.request_id.clone()
                        && let Some(record) = self.cached_request(instance_id, &id).await?
                    {
                        refusal.at = Some(record.at);
                        refusal.model = refusal.model.or(record.model.clone());
                        refusal.api = refusal.api.or(Some(record.api.clone()));
                        consumer = consumer.or(record.consumer_id);
                    }
                    if consumer.is_none()
                        && let Some(sub) = response.text_at(&["subscription_id"])
                    {
                        let client = self.client(instance_id).await?;
                        let path =
                            format!("/admin/v1/subscriptions/{}", crate::client::encode(sub));
                        match client.get_json::<tollgate_api::Subscription>(&path).await {
                            Ok(s) => consumer = Some(s.consumer_id),
                            Err(e) if unreachable(&e) => *offline = Some(e.to_string()),
                            Err(e) => {
                                tracing::info!(error = %e, "the pasted subscription is unknown")
                            }
                        }
                    }
                }
                facts.refusal = Some(refusal);
                Ok(consumer)
            }
            DoctorStart::KeyPrefix { prefix } => {
                let client = self.client(instance_id).await?;
                let path = format!(
                    "/admin/v1/keys?prefix={}&limit=10",
                    crate::client::encode(prefix)
                );
                match client
                    .get_json::<tollgate_api::Page<ConsumerKey>>(&path)
                    .await
                {
                    Ok(page) => match page.items.len() {
                        0 => Err(ConsoleError::validation(
                            "prefix",
                            format!("no key of this instance starts with {prefix}"),
                        )),
                        1 => {
                            let key = page.items.into_iter().next();
                            let consumer = key.as_ref().map(|k| k.consumer_id.clone());
                            facts.key = key;
                            Ok(consumer)
                        }
                        n => Err(ConsoleError::validation(
                            "prefix",
                            format!("{n} keys start with {prefix}; give more of it"),
                        )),
                    },
                    Err(e) if unreachable(&e) => {
                        *offline = Some(e.to_string());
                        // The cache knows which consumer used the key.
                        let filter = LogFilter {
                            text: Some(format!("{prefix}*")),
                            ..Default::default()
                        };
                        let page = self.log_page(instance_id, filter, None, Some(20)).await?;
                        Ok(page
                            .items
                            .into_iter()
                            .find(|r| {
                                r.key_prefix
                                    .as_deref()
                                    .is_some_and(|p| p.starts_with(prefix.as_str()))
                            })
                            .and_then(|r| r.consumer_id))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The cached record of a request id, if the cache has it.
    async fn cached_request(
        &self,
        instance_id: &str,
        request_id: &str,
    ) -> Result<Option<tollgate_api::CallLog>, ConsoleError> {
        let filter = LogFilter {
            text: Some(request_id.to_owned()),
            ..Default::default()
        };
        let page = self.log_page(instance_id, filter, None, Some(5)).await?;
        Ok(page.items.into_iter().find(|r| r.id == request_id))
    }

    /// The consumer's latest cached records; none when the cache has none
    /// (or cannot be read: the live evidence does not depend on it).
    async fn recent_records(
        &self,
        instance_id: &str,
        consumer_id: &str,
    ) -> Vec<tollgate_api::CallLog> {
        let filter = LogFilter {
            consumer_id: Some(consumer_id.to_owned()),
            ..Default::default()
        };
        match self
            .log_page(instance_id, filter, None, Some(facts::RECENT_RECORDS))
            .await
        {
            Ok(page) => page.items,
            Err(e) => {
                tracing::info!(error = %e, "the doctor reads no cached records");
                Vec::new()
            }
        }
    }

    /// Applies a one-step fix the admin confirmed, records it, and diagnoses
    /// again from the same start to show whether the cause is gone.
    pub async fn apply_fix(
        &self,
        instance_id: &str,
        start: DoctorStart,
        action: FixAction,
        confirmed: bool,
    ) -> Result<FixOutcome, ConsoleError> {
        if !confirmed {
            return Err(ConsoleError::validation(
                "confirmed",
                "a fix is applied only once the admin confirms it",
            ));
        }
        if !action.applies() {
            return Err(ConsoleError::validation(
                "action",
                "this fix opens a screen; there is nothing to apply",
            ));
        }
        let action = checked_action(action)?;
        let before = self.diagnose(instance_id, start.clone()).await?;
        if before.source != EvidenceSource::Live {
            return Err(ConsoleError::validation(
                "action",
                format!(
                    "the instance cannot be reached ({}); apply the fix once it answers",
                    before.offline_reason.as_deref().unwrap_or("unreachable")
                ),
            ));
        }
        let before_cause = before.cause();
        let description = action.describe();
        if let Err(e) = self.apply(instance_id, &action).await {
            self.record_fix(
                instance_id,
                &action,
                &description,
                before_cause,
                "failed",
                None,
                Some(&e.to_string()),
            );
            return Err(e);
        }
        let recheck = self.diagnose(instance_id, start).await?;
        let resolved = !recheck
            .findings
            .iter()
            .any(|f| f.cause == before_cause && f.cause.refuses());
        self.record_fix(
            instance_id,
            &action,
            &description,
            before_cause,
            if resolved { "resolved" } else { "not_resolved" },
            Some(recheck.cause()),
            None,
        );
        Ok(FixOutcome {
            applied: description,
            before: before_cause,
            recheck,
            resolved,
        })
    }

    async fn apply(&self, instance_id: &str, action: &FixAction) -> Result<(), ConsoleError> {
        match action {
            FixAction::RenewSubscription { subscription_id }
            | FixAction::RetryCharge { subscription_id } => {
                self.subscription_action(instance_id, subscription_id, "renew", "")
                    .await?;
            }
            FixAction::ApproveSubscription { subscription_id } => {
                self.subscription_action(instance_id, subscription_id, "approve", "")
                    .await?;
            }
            FixAction::ResumeSubscription { subscription_id } => {
                self.subscription_action(instance_id, subscription_id, "resume", "")
                    .await?;
            }
            FixAction::TopUpWallet {
                consumer_id,
                currency,
                amount,
            } => {
                let entry = CreateLedgerEntry {
                    kind: LedgerKind::TopUp,
                    amount: amount.clone(),
                    reason: "Top-up from the 402 doctor".into(),
                };
                let key = format!("doctor-{}", ulid::Ulid::new());
                self.create_ledger_entry(instance_id, consumer_id, currency, entry, &key)
                    .await?;
            }
            FixAction::SetDefaultPaymentMethod {
                payment_method_id,
                then_retry_subscription_id,
            } => {
                self.set_default_payment_method(instance_id, payment_method_id)
                    .await?;
                if let Some(sub) = then_retry_subscription_id {
                    self.subscription_action(instance_id, sub, "renew", "")
                        .await?;
                }
            }
            FixAction::ReEnableProviderKey {
                key_id, version, ..
            } => {
                let update = UpdateProviderKey {
                    status: Some(ProviderKeyStatus::Active),
                    reason: Some("Re-enabled from the 402 doctor".into()),
                    ..Default::default()
                };
                self.update_provider_key(instance_id, key_id, update, *version)
                    .await?;
            }
            FixAction::OpenSetting { .. } => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn record_fix(
        &self,
        instance_id: &str,
        action: &FixAction,
        description: &str,
        before: DoctorCause,
        outcome: &str,
        after: Option<DoctorCause>,
        error: Option<&str>,
    ) {
        let written = self.db().execute(
            "INSERT INTO doctor_fixes (instance_id, applied_at, action, description, cause_before, outcome, cause_after, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                instance_id,
                Utc::now().to_rfc3339(),
                serde_json::to_string(action).unwrap_or_default(),
                description,
                before.as_str(),
                outcome,
                after.map(DoctorCause::as_str),
                error,
            ],
        );
        if let Err(e) = written {
            tracing::error!(error = %e, "the doctor could not record a fix");
        }
    }

    /// The fixes applied from this console to an instance, newest first.
    pub fn list_doctor_fixes(&self, instance_id: &str) -> Result<Vec<AppliedFix>, ConsoleError> {
        self.instance(instance_id)?;
        let conn = self.db();
        let mut stmt = conn.prepare(
            "SELECT id, applied_at, description, cause_before, outcome, cause_after, error \
             FROM doctor_fixes WHERE instance_id = ?1 ORDER BY id DESC LIMIT 200",
        )?;
        let rows = stmt.query_map(params![instance_id], |r| {
            let at: String = r.get(1)?;
            Ok(AppliedFix {
                id: r.get(0)?,
                applied_at: chrono::DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                description: r.get(2)?,
                cause_before: r.get(3)?,
                outcome: r.get(4)?,
                cause_after: r.get(5)?,
                error: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

/// A fix as it came over IPC, checked before anything is sent.
fn checked_action(action: FixAction) -> Result<FixAction, ConsoleError> {
    match &action {
        FixAction::TopUpWallet {
            consumer_id,
            currency,
            amount,
        } => {
            id_like("consumer_id", consumer_id, "con_")?;
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ConsoleError::validation(
                    "currency",
                    "must be a three-letter code such as USD",
                ));
            }
            match tollgate_api::money::parse_amount(amount) {
                Ok(micros) if micros > 0 && micros <= TOP_UP_MAX_MICROS => {}
                Ok(_) => {
                    return Err(ConsoleError::validation(
                        "amount",
                        "must be more than 0 and at most 1000000",
                    ));
                }
                Err(e) => return Err(ConsoleError::validation("amount", e)),
            }
        }
        FixAction::RenewSubscription { subscription_id }
        | FixAction::RetryCharge { subscription_id }
        | FixAction::ApproveSubscription { subscription_id }
        | FixAction::ResumeSubscription { subscription_id } => {
            id_like("subscription_id", subscription_id, "sub_")?;
        }
        FixAction::SetDefaultPaymentMethod {
            payment_method_id,
            then_retry_subscription_id,
        } => {
            id_like("payment_method_id", payment_method_id, "pm_")?;
            if let Some(s) = then_retry_subscription_id {
                id_like("subscription_id", s, "sub_")?;
            }
        }
        FixAction::ReEnableProviderKey {
            key_id,
            provider_id,
            ..
        } => {
            id_like("key_id", key_id, "pkey_")?;
            id_like("provider_id", provider_id, "prv_")?;
        }
        FixAction::OpenSetting { .. } => {}
    }
    Ok(action)
}
