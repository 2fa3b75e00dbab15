//! Prevention: rules per instance evaluated in the background ([`rules`]),
//! the alerts they raise kept in the console's database (raised once per
//! situation and episode, cleared when the situation is gone, snoozed or
//! resolved by the admin), announced on a channel the shell turns into
//! desktop notifications. The billing check runs as a configuration lint
//! with them, and again after each configuration change made from the
//! console.

pub mod rules;

use std::collections::{BTreeMap, HashSet};
use std::sync::Weak;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tollgate_api::money::parse_amount;
use tollgate_api::{
    Charge, Consumer, Page, PaymentMethod, Plan, Severity, Subscription, SubscriptionStatus, Wallet,
};
use ts_rs::TS;

use crate::Console;
use crate::client::{GatewayClient, GatewayError, encode};
use crate::doctor::facts::{Facts, burns, gather_gateway, get};
use crate::doctor::model::EvidenceSource;
use crate::error::ConsoleError;
use crate::logs::LogStatsQuery;
use rules::{Candidate, ConsumerFacts, InstanceFacts, RefusalRate};

/// How often the background evaluation runs per instance.
pub const EVALUATE_EVERY: StdDuration = StdDuration::from_secs(300);
/// The most consumers one evaluation reads (those with a running subscription).
const CONSUMERS_MAX: usize = 500;
/// Requests in flight at once while reading consumers.
const READ_CONCURRENCY: usize = 8;
/// The refusal reasons answered with 402.
const REASONS_402: [&str; 4] = [
    "insufficient-funds",
    "subscription-expired",
    "subscription-past-due",
    "payment-method-invalid",
];

/// The rules an alert can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum AlertRule {
    SubscriptionExpiring,
    CardExpiring,
    LowBalance,
    BalanceRunOut,
    RenewalFailed,
    ProviderKeyExhausted,
    Rising402,
    ConfigLint,
}

impl AlertRule {
    pub const ALL: [AlertRule; 8] = [
        AlertRule::SubscriptionExpiring,
        AlertRule::CardExpiring,
        AlertRule::LowBalance,
        AlertRule::BalanceRunOut,
        AlertRule::RenewalFailed,
        AlertRule::ProviderKeyExhausted,
        AlertRule::Rising402,
        AlertRule::ConfigLint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::SubscriptionExpiring => "subscription-expiring",
            AlertRule::CardExpiring => "card-expiring",
            AlertRule::LowBalance => "low-balance",
            AlertRule::BalanceRunOut => "balance-run-out",
            AlertRule::RenewalFailed => "renewal-failed",
            AlertRule::ProviderKeyExhausted => "provider-key-exhausted",
            AlertRule::Rising402 => "rising-402",
            AlertRule::ConfigLint => "config-lint",
        }
    }

    fn parse(s: &str) -> Option<AlertRule> {
        AlertRule::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An instance's alert rules. Days of `0` (or an empty threshold) turn a
/// rule off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct AlertRules {
    /// Subscriptions that will not renew (auto-renew off, or a card that
    /// cannot pay) within this many days.
    pub subscription_expiring_days: u32,
    /// Default cards expiring within this many days.
    pub card_expiring_days: u32,
    /// A paying wallet below this amount (decimal, in its own currency).
    pub low_balance: String,
    /// A paying wallet projected to run out within this many days at the
    /// recent burn rate.
    pub run_out_days: u32,
    pub renewal_failed: bool,
    pub provider_key_exhausted: bool,
    pub rising_402: bool,
    /// The gateway's billing check, as a configuration lint.
    pub config_lint: bool,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            subscription_expiring_days: 7,
            card_expiring_days: 30,
            low_balance: "5.00".into(),
            run_out_days: 3,
            renewal_failed: true,
            provider_key_exhausted: true,
            rising_402: true,
            config_lint: true,
        }
    }
}

impl AlertRules {
    fn checked(mut self) -> Result<AlertRules, ConsoleError> {
        let mut errors = Vec::new();
        for (field, days) in [
            (
                "subscription_expiring_days",
                self.subscription_expiring_days,
            ),
            ("card_expiring_days", self.card_expiring_days),
            ("run_out_days", self.run_out_days),
        ] {
            if days > 365 {
                errors.push(tollgate_api::FieldError::new(
                    field,
                    "at most 365 days (0 turns the rule off)",
                ));
            }
        }
        self.low_balance = self.low_balance.trim().to_owned();
        if !self.low_balance.is_empty() {
            match parse_amount(&self.low_balance) {
                Ok(v) if v >= 0 => {}
                Ok(_) => errors.push(tollgate_api::FieldError::new(
                    "low_balance",
                    "must not be negative",
                )),
                Err(e) => errors.push(tollgate_api::FieldError::new("low_balance", e)),
            }
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ConsoleError::Validation(errors))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum AlertState {
    Open,
    Snoozed,
    Resolved,
}

impl AlertState {
    fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Snoozed => "snoozed",
            AlertState::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> AlertState {
        match s {
            "snoozed" => AlertState::Snoozed,
            "resolved" => AlertState::Resolved,
            _ => AlertState::Open,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Alert {
    #[ts(type = "number")]
    pub id: i64,
    pub instance_id: String,
    pub rule: AlertRule,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    /// The consumer it is about, to open the doctor on.
    #[ts(optional)]
    pub consumer_id: Option<String>,
    /// What it is about: a subscription, a card, a provider key, a plan.
    #[ts(optional)]
    pub target: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub state: AlertState,
    #[ts(optional)]
    pub snoozed_until: Option<DateTime<Utc>>,
    #[ts(optional)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who or what resolved it: the admin, or the situation clearing.
    #[ts(optional)]
    pub resolution: Option<String>,
}

/// What one evaluation did.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct AlertReport {
    pub instance_id: String,
    /// New alerts, and snoozed ones whose snooze ended with the situation still there.
    pub raised: Vec<Alert>,
    /// Open alerts whose situation is gone.
    pub cleared: u32,
    pub evaluated_at: DateTime<Utc>,
}

/// Which rules one evaluation covers: all, or the lint alone (after a
/// configuration change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Lint,
}

impl Scope {
    fn covers(self, rule: AlertRule) -> bool {
        self == Scope::All || rule == AlertRule::ConfigLint
    }
}

/// The console's channel of raised alerts (one per console).
pub struct AlertHub {
    sender: broadcast::Sender<Alert>,
}

impl Default for AlertHub {
    fn default() -> Self {
        AlertHub {
            sender: broadcast::channel(256).0,
        }
    }
}

const ALERT_COLUMNS: &str = "id, instance_id, rule, severity, title, detail, consumer_id, target, raised_at, state, snoozed_until, resolved_at, resolution";

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn alert_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: r.get(0)?,
        instance_id: r.get(1)?,
        rule: AlertRule::parse(&r.get::<_, String>(2)?).unwrap_or(AlertRule::ConfigLint),
        severity: if r.get::<_, String>(3)? == "error" {
            Severity::Error
        } else {
            Severity::Warning
        },
        title: r.get(4)?,
        detail: r.get(5)?,
        consumer_id: r.get(6)?,
        target: r.get(7)?,
        raised_at: time(r.get(8)?).unwrap_or_default(),
        state: AlertState::parse(&r.get::<_, String>(9)?),
        snoozed_until: time(r.get(10)?),
        resolved_at: time(r.get(11)?),
        resolution: r.get(12)?,
    })
}

/// Stores what the rules found: new keys become open alerts, snoozed ones
/// past their snooze open again, open ones no longer found are cleared.
/// One transaction; answers (raised, cleared).
fn record(
    conn: &mut rusqlite::Connection,
    instance_id: &str,
    scope: Scope,
    found: &[Candidate],
    now: DateTime<Utc>,
) -> rusqlite::Result<(Vec<Alert>, u32)> {
    let tx = conn.transaction()?;
    let mut raised = Vec::new();
    let stamp = now.to_rfc3339();
    for c in found {
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO alerts (instance_id, key, rule, severity, title, detail, consumer_id, target, raised_at, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open')",
            params![
                instance_id,
                c.key,
                c.rule.as_str(),
                if c.severity == Severity::Error { "error" } else { "warning" },
                c.title,
                c.detail,
                c.consumer_id,
                c.target,
                stamp
            ],
        )?;
        let id = if inserted == 1 {
            Some(tx.last_insert_rowid())
        } else {
            // A snooze that ended with the situation still there.
            tx.query_row(
                "UPDATE alerts SET state = 'open', snoozed_until = NULL \
                 WHERE instance_id = ?1 AND key = ?2 AND state = 'snoozed' AND snoozed_until <= ?3 RETURNING id",
                params![instance_id, c.key, stamp],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        };
        if let Some(id) = id {
            raised.push(tx.query_row(
                &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
                params![id],
                alert_of,
            )?);
        }
    }
    let keys: HashSet<&str> = found.iter().map(|c| c.key.as_str()).collect();
    let mut cleared = 0u32;
    let active: Vec<(i64, String, String)> = {
        let mut stmt = tx.prepare(
            "SELECT id, key, rule FROM alerts WHERE instance_id = ?1 AND state IN ('open', 'snoozed')",
        )?;
        stmt.query_map(params![instance_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?
    };
    for (id, key, rule) in active {
        let covered = AlertRule::parse(&rule).is_some_and(|r| scope.covers(r));
        if covered && !keys.contains(key.as_str()) {
            tx.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolution = 'cleared: the situation is gone' WHERE id = ?1",
                params![id, stamp],
            )?;
            cleared += 1;
        }
    }
    tx.commit()?;
    Ok((raised, cleared))
}

/// Every page of a list, up to `max` items.
async fn all_pages<T: serde::de::DeserializeOwned>(
    client: &GatewayClient,
    path: &str,
    max: usize,
) -> Result<Vec<T>, GatewayError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}&cursor={}", encode(c)),
            None => path.to_owned(),
        };
        let page: Page<T> = client.get_json(&page_path).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) if items.len() < max => cursor = Some(next),
            _ => break,
        }
    }
    items.truncate(max);
    Ok(items)
}

/// What the rules read about one consumer.
async fn consumer_facts(
    client: &GatewayClient,
    consumer_id: String,
    subscriptions: Vec<(Subscription, Option<Plan>)>,
    now: DateTime<Utc>,
) -> Result<ConsumerFacts, GatewayError> {
    let c = encode(&consumer_id);
    let (consumer, methods, wallets, charges) = tokio::join!(
        get::<Consumer>(client, format!("/admin/v1/consumers/{c}")),
        get::<Vec<PaymentMethod>>(client, format!("/admin/v1/consumers/{c}/payment-methods")),
        get::<Vec<Wallet>>(client, format!("/admin/v1/consumers/{c}/wallets")),
        get::<Page<Charge>>(client, format!("/admin/v1/consumers/{c}/charges?limit=20")),
    );
    let wallets = wallets.unwrap_or_default();
    let burns = burns(client, &consumer_id, &wallets, now).await;
    Ok(ConsumerFacts {
        consumer: consumer?,
        subscriptions,
        payment_methods: methods.unwrap_or_default(),
        wallets,
        burns,
        charges: charges.map(|p| p.items).unwrap_or_default(),
    })
}

impl Console {
    /// The instance's alert rules (the defaults until changed).
    pub fn alert_rules(&self, instance_id: &str) -> Result<AlertRules, ConsoleError> {
        self.instance(instance_id)?;
        let stored: Option<String> = self
            .db()
            .query_row(
                "SELECT rules FROM alert_rules WHERE instance_id = ?1",
                params![instance_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(stored
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default())
    }

    pub fn set_alert_rules(
        &self,
        instance_id: &str,
        rules: AlertRules,
    ) -> Result<AlertRules, ConsoleError> {
        self.instance(instance_id)?;
        let rules = rules.checked()?;
        self.db().execute(
            "INSERT INTO alert_rules (instance_id, rules) VALUES (?1, ?2) \
             ON CONFLICT (instance_id) DO UPDATE SET rules = excluded.rules",
            params![
                instance_id,
                serde_json::to_string(&rules).unwrap_or_default()
            ],
        )?;
        Ok(rules)
    }

    /// Reads the instance, runs its rules at `now` (the clock is the
    /// caller's, so tests can move it) and stores what they found. New
    /// alerts are also sent to [`Console::subscribe_alerts`].
    pub async fn evaluate_alerts(
        &self,
        instance_id: &str,
        now: DateTime<Utc>,
        scope: Scope,
    ) -> Result<AlertReport, ConsoleError> {
        let rules = self.alert_rules(instance_id)?;
        let client = self.client(instance_id).await?;
        let mut facts = InstanceFacts::default();
        if scope == Scope::All {
            let mut gateway = Facts::empty(EvidenceSource::Live, now);
            gather_gateway(&client, &mut gateway).await?;
            facts.check = gateway.check;
            facts.providers = gateway.providers;
            facts.consumers = self.read_consumers(&client, now).await?;
            facts.refusals = self.refusal_rate(instance_id, now).await;
        } else {
            facts.check = Some(
                client
                    .post_json("/admin/v1/billing/check", &serde_json::json!({}), None)
                    .await?,
            );
        }
        let found: Vec<Candidate> = rules::evaluate(&facts, &rules, now)
            .into_iter()
            .filter(|c| scope.covers(c.rule))
            .collect();
        let (raised, cleared) = {
            let mut conn = self.db();
            record(&mut conn, instance_id, scope, &found, now)?
        };
        for alert in &raised {
            // Nobody listening is fine: the inbox has them.
            let _ = self.alert_hub.sender.send(alert.clone());
        }
        Ok(AlertReport {
            instance_id: instance_id.to_owned(),
            raised,
            cleared,
            evaluated_at: now,
        })
    }

    async fn read_consumers(
        &self,
        client: &GatewayClient,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConsumerFacts>, GatewayError> {
        let mut subs: Vec<Subscription> = Vec::new();
        for status in [SubscriptionStatus::Active, SubscriptionStatus::PastDue] {
            subs.extend(
                all_pages::<Subscription>(
                    client,
                    &format!(
                        "/admin/v1/subscriptions?status={}&limit=100",
                        status.as_str()
                    ),
                    CONSUMERS_MAX * 2,
                )
                .await?,
            );
        }
        let plans: BTreeMap<String, Plan> =
            all_pages::<Plan>(client, "/admin/v1/plans?limit=100", 1_000)
                .await?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect();
        let mut by_consumer: BTreeMap<String, Vec<(Subscription, Option<Plan>)>> = BTreeMap::new();
        for s in subs {
            let plan = plans.get(&s.plan_id).cloned();
            by_consumer
                .entry(s.consumer_id.clone())
                .or_default()
                .push((s, plan));
        }
        let reads = by_consumer
            .into_iter()
            .take(CONSUMERS_MAX)
            .map(|(id, subs)| consumer_facts(client, id, subs, now));
        let results: Vec<Result<ConsumerFacts, GatewayError>> = futures_util::stream::iter(reads)
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::new();
        for r in results {
            match r {
                Ok(f) => out.push(f),
                // A consumer deleted meanwhile is simply not evaluated.
                Err(GatewayError::Problem(p)) if p.status == 404 => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.consumer.id.cmp(&b.consumer.id));
        Ok(out)
    }

    /// 402s in the cache: the hour before `now` and the 24 hours before that.
    async fn refusal_rate(&self, instance_id: &str, now: DateTime<Utc>) -> Option<RefusalRate> {
        let count = |stats: &tollgate_api::CallStats| {
            stats
                .by_reason
                .iter()
                .filter(|r| REASONS_402.contains(&r.reason.as_str()))
                .map(|r| r.count)
                .sum::<i64>()
        };
        let hour_ago = now - Duration::hours(1);
        let recent = self
            .log_stats(
                instance_id,
                LogStatsQuery {
                    from: Some(hour_ago),
                    to: Some(now),
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        let base = self
            .log_stats(
                instance_id,
                LogStatsQuery {
                    from: Some(hour_ago - Duration::hours(24)),
                    to: Some(hour_ago),
                    ..Default::default()
                },
            )
            .await
            .ok()?;
        Some(RefusalRate {
            recent_402: count(&recent),
            recent_total: recent.requests,
            base_402: count(&base),
            base_total: base.requests,
        })
    }

    /// Runs the lint after a configuration change made from the console: a
    /// misconfiguration it introduced is in the inbox (and notified) before
    /// the change's answer returns. A lint that cannot run is logged; the
    /// change stands.
    pub(crate) async fn lint_after_change(&self, instance_id: &str) {
        let rules = self.alert_rules(instance_id).unwrap_or_default();
        if !rules.config_lint {
            return;
        }
        if let Err(e) = self
            .evaluate_alerts(instance_id, Utc::now(), Scope::Lint)
            .await
        {
            tracing::info!(instance = %instance_id, error = %e, "the lint after a change did not run");
        }
    }

    /// Alerts of one instance (or all), newest first; resolved ones only when asked.
    pub fn list_alerts(
        &self,
        instance_id: Option<&str>,
        include_resolved: bool,
    ) -> Result<Vec<Alert>, ConsoleError> {
        let conn = self.db();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts \
             WHERE (?1 IS NULL OR instance_id = ?1) AND (?2 OR state != 'resolved') \
             ORDER BY id DESC LIMIT 500"
        ))?;
        let rows = stmt.query_map(params![instance_id, include_resolved], alert_of)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn set_alert_state(
        &self,
        alert_id: i64,
        state: AlertState,
        snoozed_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Alert, ConsoleError> {
        let conn = self.db();
        let changed = conn.execute(
            "UPDATE alerts SET state = ?2, snoozed_until = ?3, \
             resolved_at = CASE WHEN ?2 = 'resolved' THEN ?4 ELSE NULL END, \
             resolution = CASE WHEN ?2 = 'resolved' THEN 'resolved by the admin' ELSE NULL END \
             WHERE id = ?1",
            params![
                alert_id,
                state.as_str(),
                snoozed_until.map(|t| t.to_rfc3339()),
                now.to_rfc3339()
            ],
        )?;
        if changed == 0 {
            return Err(ConsoleError::validation(
                "alert_id",
                format!("no alert {alert_id}"),
            ));
        }
        Ok(conn.query_row(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
            params![alert_id],
            alert_of,
        )?)
    }

    /// Hides an alert until `until` (1 hour to 90 days ahead); it opens again
    /// then if its situation is still there.
    pub fn snooze_alert(
        &self,
        alert_id: i64,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Alert, ConsoleError> {
        if until < now + Duration::minutes(59) || until > now + Duration::days(90) {
            return Err(ConsoleError::validation(
                "until",
                "snooze for at least an hour and at most 90 days",
            ));
        }
        self.set_alert_state(alert_id, AlertState::Snoozed, Some(until), now)
    }

    /// Marks an alert dealt with; the same situation does not raise it again.
    pub fn resolve_alert(&self, alert_id: i64, now: DateTime<Utc>) -> Result<Alert, ConsoleError> {
        self.set_alert_state(alert_id, AlertState::Resolved, None, now)
    }

    /// New alerts as they are raised (the shell shows them as desktop notifications).
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<Alert> {
        self.alert_hub.sender.subscribe()
    }

    /// Evaluates every instance's rules every [`EVALUATE_EVERY`] until the
    /// console is dropped; an instance that cannot be read is skipped until
    /// the next round.
    pub async fn run_alerts(console: Weak<Console>) {
        tokio::time::sleep(StdDuration::from_secs(10)).await;
        let mut tick = tokio::time::interval(EVALUATE_EVERY);
        loop {
            tick.tick().await;
            let Some(c) = console.upgrade() else {
                break;
            };
            let ids: Vec<String> = c
                .list_instances()
                .map(|list| list.into_iter().map(|i| i.id).collect())
                .unwrap_or_default();
            for id in ids {
                if let Err(e) = c.evaluate_alerts(&id, Utc::now(), Scope::All).await {
                    tracing::info!(instance = %id, error = %e, "alert rules not evaluated");
                }
            }
        }
    }
}
