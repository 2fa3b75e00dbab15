//! The prevention rules as a pure function of an instance's facts and the
//! time: what is about to refuse calls (a subscription that will not renew,
//! a card about to expire, a wallet running low or out, a failed renewal, a
//! provider key refused as spent, a rising 402 rate, a misconfiguration).
//! Each candidate carries a key naming its situation and episode, so that
//! running the rules again raises nothing new.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tollgate_api::money::{format_amount, parse_amount};
use tollgate_api::{
    BillingCheck, Charge, ChargeStatus, Consumer, OveragePolicy, PaymentMethod,
    PaymentMethodStatus, Plan, Provider, ProviderKey, ProviderKeyStatus, Severity, Subscription,
    SubscriptionStatus, Wallet,
};

use super::{AlertRule, AlertRules};
use crate::doctor::facts::Burn;

/// A consumer with what pays for its calls.
#[derive(Debug, Clone)]
pub struct ConsumerFacts {
    pub consumer: Consumer,
    pub subscriptions: Vec<(Subscription, Option<Plan>)>,
    pub payment_methods: Vec<PaymentMethod>,
    pub wallets: Vec<Wallet>,
    pub burns: Vec<Burn>,
    /// Newest first.
    pub charges: Vec<Charge>,
}

/// 402s among calls: the last hour against the 24 hours before it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RefusalRate {
    pub recent_402: i64,
    pub recent_total: i64,
    pub base_402: i64,
    pub base_total: i64,
}

#[derive(Debug, Clone, Default)]
pub struct InstanceFacts {
    pub consumers: Vec<ConsumerFacts>,
    pub providers: Vec<(Provider, Vec<ProviderKey>)>,
    pub check: Option<BillingCheck>,
    pub refusals: Option<RefusalRate>,
}

/// What a rule found; stored as an alert unless one with its key exists.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub rule: AlertRule,
    pub severity: Severity,
    /// The situation and its episode, e.g. `card-expiring:pm_…:2026-12`.
    pub key: String,
    pub title: String,
    pub detail: String,
    pub consumer_id: Option<String>,
    pub target: Option<String>,
}

fn money(micros: i64) -> String {
    format_amount(micros, 2)
}

/// The last moment a card can pay: the end of its expiry month.
fn card_end(m: &PaymentMethod) -> Option<DateTime<Utc>> {
    let (y, mo) = if m.exp_month >= 12 {
        (m.exp_year + 1, 1)
    } else {
        (m.exp_year, m.exp_month + 1)
    };
    NaiveDate::from_ymd_opt(y, mo, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn usable(m: &PaymentMethod, at: DateTime<Utc>) -> bool {
    m.status == PaymentMethodStatus::Active && card_end(m).is_some_and(|end| end > at)
}

/// Every candidate the enabled rules find at `now`.
pub fn evaluate(facts: &InstanceFacts, rules: &AlertRules, now: DateTime<Utc>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in &facts.consumers {
        consumer_rules(c, rules, now, &mut out);
    }
    if rules.provider_key_exhausted {
        for (provider, keys) in &facts.providers {
            for k in keys
                .iter()
                .filter(|k| k.status == ProviderKeyStatus::Exhausted)
            {
                out.push(Candidate {
                    rule: AlertRule::ProviderKeyExhausted,
                    severity: Severity::Error,
                    key: format!("key-exhausted:{}:{}", k.id, k.status_changed_at.timestamp()),
                    title: format!(
                        "{}'s key {} (…{}) was refused as spent",
                        provider.name, k.label, k.last4
                    ),
                    detail: format!(
                        "{}. Top up its account at the provider, then put it back in the pool.",
                        k.status_reason.as_deref().unwrap_or("No reason recorded")
                    ),
                    consumer_id: None,
                    target: Some(k.id.clone()),
                });
            }
        }
    }
    if rules.rising_402
        && let Some(rate) = facts.refusals
        && rising(rate)
    {
        out.push(Candidate {
            rule: AlertRule::Rising402,
            severity: Severity::Warning,
            key: format!("rising-402:{}", now.format("%Y-%m-%d")),
            title: format!(
                "402s are rising: {} of {} calls in the last hour",
                rate.recent_402, rate.recent_total
            ),
            detail: format!(
                "{} of {} calls in the 24 hours before. Open the 402 doctor on one of them.",
                rate.base_402, rate.base_total
            ),
            consumer_id: None,
            target: None,
        });
    }
    if rules.config_lint
        && let Some(check) = &facts.check
    {
        for f in check
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
        {
            out.push(Candidate {
                rule: AlertRule::ConfigLint,
                severity: Severity::Error,
                key: format!("lint:{}:{}", f.code, f.target.as_deref().unwrap_or("-")),
                title: f.message.clone(),
                detail: format!("{} (billing check: {})", f.fix, f.code),
                consumer_id: None,
                target: f.target.clone(),
            });
        }
    }
    // Reasons and messages come from the gateway and end up in the console's
    // database and in notifications: nothing shaped like a credential does.
    for c in &mut out {
        c.title = crate::logs::export::scrub(&c.title).into_owned();
        c.detail = crate::logs::export::scrub(&c.detail).into_owned();
    }
    out
}

/// At least five 402s in the last hour, at twice the rate of the day before.
pub fn rising(r: RefusalRate) -> bool {
    if r.recent_402 < 5 || r.recent_total == 0 {
        return false;
    }
    if r.base_402 == 0 || r.base_total == 0 {
        return true;
    }
    // recent_402 / recent_total >= 2 * base_402 / base_total, in integers.
    i128::from(r.recent_402) * i128::from(r.base_total)
        >= 2 * i128::from(r.base_402) * i128::from(r.recent_total)
}

fn consumer_rules(
    c: &ConsumerFacts,
    rules: &AlertRules,
    now: DateTime<Utc>,
    out: &mut Vec<Candidate>,
) {
    let name = &c.consumer.name;
    let card = c.payment_methods.iter().find(|m| m.is_default);
    let running: Vec<&(Subscription, Option<Plan>)> = c
        .subscriptions
        .iter()
        .filter(|(s, _)| {
            matches!(
                s.status,
                SubscriptionStatus::Active | SubscriptionStatus::PastDue
            )
        })
        .collect();
    if running.is_empty() {
        return;
    }
    if rules.subscription_expiring_days > 0 {
        let horizon = now + Duration::days(i64::from(rules.subscription_expiring_days));
        for (s, plan) in running
            .iter()
            .filter(|(s, _)| s.status == SubscriptionStatus::Active)
        {
            let Some(end) = s.current_period_end.filter(|e| *e > now && *e <= horizon) else {
                continue;
            };
            let priced = plan
                .as_ref()
                .is_some_and(|p| parse_amount(&p.price).unwrap_or(0) > 0);
            let why = if !s.auto_renew {
                Some("it will not renew (auto-renew is off)".to_owned())
            } else if priced && !card.is_some_and(|m| usable(m, end)) {
                Some(match card {
                    None => "its renewal will fail: there is no card on file".to_owned(),
                    Some(m) => format!(
                        "its renewal will fail: the {} card ending {} cannot pay then",
                        m.brand, m.last4
                    ),
                })
            } else {
                None
            };
            if let Some(why) = why {
                out.push(Candidate {
                    rule: AlertRule::SubscriptionExpiring,
                    severity: Severity::Warning,
                    key: format!("sub-expiring:{}:{}", s.id, end.timestamp()),
                    title: format!(
                        "{name}'s subscription to {} ends on {}",
                        plan.as_ref().map_or("its plan", |p| p.name.as_str()),
                        end.format("%Y-%m-%d")
                    ),
                    detail: format!("{}.", capitalise(&why)),
                    consumer_id: Some(c.consumer.id.clone()),
                    target: Some(s.id.clone()),
                });
            }
        }
    }
    if rules.card_expiring_days > 0
        && let Some(m) = card
        && let Some(end) = card_end(m)
        && end > now
        && end <= now + Duration::days(i64::from(rules.card_expiring_days))
    {
        out.push(Candidate {
            rule: AlertRule::CardExpiring,
            severity: Severity::Warning,
            key: format!("card-expiring:{}:{}-{:02}", m.id, m.exp_year, m.exp_month),
            title: format!(
                "{name}'s {} card ending {} expires at the end of {:02}/{}",
                m.brand, m.last4, m.exp_month, m.exp_year
            ),
            detail: "Renewals after that fail: ask the consumer for a new card.".into(),
            consumer_id: Some(c.consumer.id.clone()),
            target: Some(m.id.clone()),
        });
    }
    wallet_rules(c, &running, rules, out);
    if rules.renewal_failed {
        let since = now - Duration::days(7);
        for ch in c.charges.iter().filter(|ch| {
            ch.status == ChargeStatus::Failed
                && ch.subscription_id.is_some()
                && ch.created_at >= since
        }) {
            out.push(Candidate {
                rule: AlertRule::RenewalFailed,
                severity: Severity::Error,
                key: format!("renewal-failed:{}", ch.id),
                title: format!(
                    "A charge of {} {} to {name} failed ({})",
                    ch.amount,
                    ch.currency,
                    ch.decline_code
                        .as_deref()
                        .or(ch.failure_code.as_deref())
                        .unwrap_or("declined")
                ),
                detail: crate::doctor::classify::card_fix(
                    ch.failure_code.as_deref().unwrap_or("card_declined"),
                    ch.decline_code.as_deref().unwrap_or(""),
                ),
                consumer_id: Some(c.consumer.id.clone()),
                target: ch.subscription_id.clone(),
            });
        }
    }
}

fn wallet_rules(
    c: &ConsumerFacts,
    running: &[&(Subscription, Option<Plan>)],
    rules: &AlertRules,
    out: &mut Vec<Candidate>,
) {
    let name = &c.consumer.name;
    let threshold = parse_amount(&rules.low_balance).unwrap_or(0);
    for w in &c.wallets {
        // Only wallets that pay for calls: a plan in their currency charges overage.
        let pays = running.iter().any(|(_, p)| {
            p.as_ref().is_some_and(|p| {
                p.currency == w.currency && p.overage == OveragePolicy::ChargeWallet
            })
        });
        if !pays {
            continue;
        }
        let available = parse_amount(&w.available).unwrap_or(0);
        let burn = c.burns.iter().find(|b| b.currency == w.currency);
        let episode = burn
            .and_then(|b| b.last_top_up.as_ref())
            .map_or_else(|| "none".to_owned(), |t| t.id.clone());
        if threshold > 0 && available < threshold {
            out.push(Candidate {
                rule: AlertRule::LowBalance,
                severity: Severity::Warning,
                key: format!("low-balance:{}:{}:{episode}", c.consumer.id, w.currency),
                title: format!(
                    "{name}'s {} wallet is low: {} available",
                    w.currency,
                    money(available)
                ),
                detail: format!(
                    "Below the alert threshold of {} {}: top it up before calls are refused with 402.",
                    money(threshold),
                    w.currency
                ),
                consumer_id: Some(c.consumer.id.clone()),
                target: None,
            });
        }
        if rules.run_out_days > 0
            && let Some(b) = burn
            && b.per_day_micros() > 0
        {
            let days_left = available as f64 / b.per_day_micros() as f64;
            if days_left < f64::from(rules.run_out_days) {
                out.push(Candidate {
                    rule: AlertRule::BalanceRunOut,
                    severity: Severity::Warning,
                    key: format!("run-out:{}:{}:{episode}", c.consumer.id, w.currency),
                    title: format!(
                        "{name}'s {} wallet runs out in about {:.1} days",
                        w.currency,
                        days_left.max(0.0)
                    ),
                    detail: format!(
                        "{} available at a burn of {} {} a day (last {:.1} days).",
                        money(available),
                        money(b.per_day_micros()),
                        w.currency,
                        b.days
                    ),
                    consumer_id: Some(c.consumer.id.clone()),
                    target: None,
                });
            }
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn consumer(auto_renew: bool, card: (u32, i32)) -> ConsumerFacts {
        let t = "2026-11-01T00:00:00Z";
        ConsumerFacts {
            consumer: serde_json::from_value(json!({"id": "con_1", "team_id": "team_1", "name": "Ann",
                "contact": "", "metadata": {}, "status": "active", "created_at": t, "updated_at": t, "version": 1}))
            .unwrap(),
            subscriptions: vec![(
                serde_json::from_value(json!({"id": "sub_1", "consumer_id": "con_1", "plan_id": "plan_1",
                    "status": "active", "current_period_start": t, "current_period_end": "2026-12-01T00:00:00Z",
                    "auto_renew": auto_renew, "created_at": t, "updated_at": t, "version": 1}))
                .unwrap(),
                Some(
                    serde_json::from_value(json!({"id": "plan_1", "name": "Pro", "currency": "USD", "price": "9.00",
                        "period": "month", "included_credits": "5", "overage": "block", "approval_required": false,
                        "apis": ["chat"], "models": [], "rate_limits": {}, "created_at": t, "updated_at": t, "version": 1}))
                    .unwrap(),
                ),
            )],
            payment_methods: vec![serde_json::from_value(json!({"id": "pm_1", "consumer_id": "con_1",
                "processor": "test", "brand": "visa", "last4": "4242", "exp_month": card.0, "exp_year": card.1,
                "status": "active", "is_default": true, "created_at": t}))
            .unwrap()],
            wallets: vec![],
            burns: vec![],
            charges: vec![],
        }
    }

    fn found(c: ConsumerFacts, now: &str) -> Vec<AlertRule> {
        let facts = InstanceFacts {
            consumers: vec![c],
            ..Default::default()
        };
        evaluate(&facts, &AlertRules::default(), at(now))
            .into_iter()
            .map(|c| c.rule)
            .collect()
    }

    #[test]
    fn a_subscription_that_will_not_renew_is_raised_within_its_window_only() {
        let c = || consumer(false, (12, 2030));
        assert!(
            found(c(), "2026-11-20T00:00:00Z").is_empty(),
            "11 days before"
        );
        assert_eq!(
            found(c(), "2026-11-25T00:00:00Z"),
            vec![AlertRule::SubscriptionExpiring]
        );
        assert!(
            found(c(), "2026-12-02T00:00:00Z").is_empty(),
            "already ended"
        );
        // Renewing with a card that will pay: nothing to say.
        assert!(found(consumer(true, (12, 2030)), "2026-11-25T00:00:00Z").is_empty());
        // Renewing with a card that will have expired: the renewal will fail.
        assert_eq!(
            found(consumer(true, (10, 2026)), "2026-11-25T00:00:00Z"),
            vec![AlertRule::SubscriptionExpiring]
        );
    }

    #[test]
    fn a_card_is_raised_in_the_days_before_its_expiry_month_ends() {
        let c = || consumer(true, (1, 2027));
        assert!(!found(c(), "2026-12-01T00:00:00Z").contains(&AlertRule::CardExpiring));
        assert!(found(c(), "2027-01-10T00:00:00Z").contains(&AlertRule::CardExpiring));
        assert!(!found(c(), "2027-02-01T00:00:00Z").contains(&AlertRule::CardExpiring));
    }

    #[test]
    fn a_spent_keys_reason_is_scrubbed_of_credentials() {
        let t = "2026-11-01T00:00:00Z";
        let provider: Provider = serde_json::from_value(json!({"id": "prv_1", "name": "OpenAI",
            "kind": "openai-compatible", "base_url": "https://api.example/v1", "currency": "USD",
            "models": [], "timeout_secs": 60, "enabled": true, "keys_total": 1, "keys_active": 0,
            "created_at": t, "updated_at": t, "version": 1}))
        .unwrap();
        let key: ProviderKey =
            serde_json::from_value(json!({"id": "pkey_1", "provider_id": "prv_1",
            "label": "main", "last4": "wxyz", "status": "exhausted",
            "status_reason": "429 insufficient_quota for sk-live-abcdefghijklmnopqrstuvwxyz",
            "status_changed_at": t, "priority": 100, "requests": 1, "failures": 1, "tokens": 0,
            "created_at": t, "version": 1}))
            .unwrap();
        let facts = InstanceFacts {
            providers: vec![(provider, vec![key])],
            ..Default::default()
        };
        let found = evaluate(&facts, &AlertRules::default(), at("2026-11-02T00:00:00Z"));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].detail.contains("insufficient_quota"),
            "{}",
            found[0].detail
        );
        assert!(
            !found[0].detail.contains("abcdefghijklmnop"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn the_402_rate_rises_at_twice_the_day_before_and_five_at_least() {
        let r = |recent_402, recent_total, base_402, base_total| RefusalRate {
            recent_402,
            recent_total,
            base_402,
            base_total,
        };
        assert!(!rising(r(4, 4, 0, 0)), "fewer than five");
        assert!(rising(r(5, 100, 0, 1000)));
        assert!(rising(r(10, 100, 50, 1000)), "10% against 5%");
        assert!(!rising(r(10, 100, 60, 1000)), "10% against 6%");
    }
}
