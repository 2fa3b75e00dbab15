//! The diagnosis as a pure function of the facts: the gateway's decision
//! path walked again (consumer, key, the subscription that would pay, its
//! card, its credits and wallet, the gateway's own settings, the provider's
//! keys), each step that would refuse a call written up as a finding with
//! its evidence and fix. The refusal the doctor started from, when there is
//! one, puts the findings that explain it first.

use chrono::{DateTime, Utc};
use tollgate_api::money::{format_amount, parse_amount};
use tollgate_api::{
    BillingFinding, ConsumerKeyStatus, ConsumerStatus, OveragePolicy, PaymentMethod,
    PaymentMethodStatus, ProviderKeyStatus, Severity, SubscriptionStatus,
};

use super::classify::{Origin, card_fix};
use super::facts::{Burn, Facts, Refusal, SubscriptionFacts};
use super::model::{
    DoctorCause, DoctorEvidence, EvidenceSource, Finding, FixAction, SettingScreen,
};
use crate::logs::export::scrub;

/// Declines after which the same card must not be charged again.
const HARD_DECLINES: [&str; 6] = [
    "lost_card",
    "stolen_card",
    "pickup_card",
    "fraudulent",
    "restricted_card",
    "expired_card",
];
/// The smallest top-up the doctor proposes, in micro-units.
const MIN_TOP_UP: i64 = 10_000_000;

fn money(micros: i64) -> String {
    format_amount(micros, 2)
}

fn amount(text: &str) -> i64 {
    parse_amount(text).unwrap_or(0)
}

struct Builder {
    source: EvidenceSource,
    findings: Vec<(u8, Finding)>,
}

impl Builder {
    fn ev(&self, at: Option<DateTime<Utc>>, what: impl Into<String>) -> DoctorEvidence {
        DoctorEvidence {
            at,
            source: self.source,
            what: what.into(),
        }
    }

    fn push(&mut self, rank: u8, finding: Finding) {
        if !self
            .findings
            .iter()
            .any(|(_, f)| f.cause == finding.cause && f.title == finding.title)
        {
            self.findings.push((rank, finding));
        }
    }
}

fn finding(cause: DoctorCause, title: impl Into<String>) -> Finding {
    Finding {
        cause,
        origin: Origin::Gateway,
        title: title.into(),
        evidence: Vec::new(),
        fix: String::new(),
        action: None,
    }
}

/// The causes that explain a Tollgate refusal reason, best first.
pub fn causes_of_reason(reason: &str) -> &'static [DoctorCause] {
    use DoctorCause as C;
    match reason {
        "insufficient-funds" => &[
            C::InsufficientFunds,
            C::CurrencyMismatch,
            C::PlanGrantsNoCredits,
        ],
        "subscription-expired" => &[C::SubscriptionExpired],
        "subscription-past-due" => &[C::SubscriptionPastDue, C::PaymentMethodInvalid],
        "payment-method-invalid" => &[C::PaymentMethodInvalid, C::SubscriptionPastDue],
        "subscription-pending-approval" => &[C::SubscriptionPendingApproval],
        "subscription-suspended" => &[C::SubscriptionSuspended],
        "not-subscribed" => &[C::NotSubscribed, C::ApiNotCovered],
        "rate-limited" => &[C::RateLimited],
        "billing-unavailable" => &[C::PaymentSettingsBroken, C::CurrencyMismatch],
        "provider-unavailable" => &[C::ProviderKeyExhausted],
        "consumer-suspended" => &[C::ConsumerSuspended],
        "invalid-api-key" | "api-key-revoked" | "api-key-expired" => &[C::InvalidCredentials],
        _ => &[],
    }
}

/// Every finding, the cause first. Never empty: when nothing would refuse
/// a call the one finding is `no-problem-found`.
pub fn diagnose(f: &Facts) -> Vec<Finding> {
    let mut b = Builder {
        source: f.source,
        findings: Vec::new(),
    };
    if let Some(r) = &f.refusal
        && r.classification.system != super::classify::System::Tollgate
        && r.classification.system != super::classify::System::Unknown
    {
        foreign(&mut b, r);
    }
    if f.source == EvidenceSource::Cache {
        offline(&mut b, f);
    } else {
        live(&mut b, f);
    }
    let explains = f
        .refusal
        .as_ref()
        .and_then(|r| r.reason.as_deref())
        .map(causes_of_reason)
        .unwrap_or_default();
    let mut findings = b.findings;
    findings.sort_by_key(|(rank, fi)| {
        let explained = explains.iter().position(|c| *c == fi.cause);
        (
            fi.cause != DoctorCause::Foreign,
            explained.is_none(),
            explained.unwrap_or(0),
            *rank,
        )
    });
    let mut findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
    if findings.is_empty() {
        findings.push(nothing_wrong(f));
    }
    // Texts the gateway wrote (reasons, messages) are shown and may be
    // copied: nothing shaped like a credential leaves the doctor.
    for fi in &mut findings {
        fi.title = scrub(&fi.title).into_owned();
        fi.fix = scrub(&fi.fix).into_owned();
        for e in &mut fi.evidence {
            e.what = scrub(&e.what).into_owned();
        }
    }
    findings
}

// ---------------------------------------------------------------- live

fn live(b: &mut Builder, f: &Facts) {
    if let Some(r) = &f.refusal
        && r.reason.as_deref() == Some("rate-limited")
    {
        rate_limited(b, f, r);
    }
    if let Some(c) = &f.consumer
        && c.status == ConsumerStatus::Suspended
    {
        let mut fi = finding(
            DoctorCause::ConsumerSuspended,
            format!(
                "The consumer {} is suspended: every call is refused",
                c.name
            ),
        );
        fi.evidence.push(
            b.ev(
                f.audited(&c.id, "consumer.update")
                    .map(|e| e.time)
                    .or(Some(c.updated_at)),
                "Consumer status: suspended",
            ),
        );
        fi.fix = "Reactivate the consumer if the reason it was suspended is settled.".into();
        fi.action = Some(FixAction::OpenSetting {
            screen: SettingScreen::Consumers,
            target: Some(c.id.clone()),
        });
        b.push(10, fi);
    }
    if let Some(k) = &f.key
        && matches!(
            k.status,
            ConsumerKeyStatus::Revoked | ConsumerKeyStatus::Expired
        )
    {
        let mut fi = finding(
            DoctorCause::InvalidCredentials,
            format!("The key {} is {:?}", k.display_prefix, k.status).to_lowercase(),
        );
        fi.evidence.push(b.ev(
            k.revoked_at.or(k.expires_at),
            format!("Key {} ({})", k.display_prefix, k.name),
        ));
        fi.fix = match &k.replaced_by {
            Some(next) => format!(
                "Not a payment problem: the consumer should use the key that replaced it ({next})."
            ),
            None => "Not a payment problem: issue the consumer a new key.".into(),
        };
        fi.action = Some(FixAction::OpenSetting {
            screen: SettingScreen::Consumers,
            target: Some(k.consumer_id.clone()),
        });
        b.push(20, fi);
    }
    subscription(b, f);
    settings(b, f);
    provider_keys(b, f);
}

fn rate_limited(b: &mut Builder, f: &Facts, r: &Refusal) {
    let mut fi = finding(
        DoctorCause::RateLimited,
        "A rate limit, not a payment problem: the plan's limit on requests or tokens per minute was reached",
    );
    fi.evidence.push(DoctorEvidence {
        at: r.at,
        source: r.source,
        what: format!(
            "{} rate-limited{}",
            r.status,
            r.request_id
                .as_deref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default()
        ),
    });
    let recent = f
        .records
        .iter()
        .filter(|rec| rec.reason.as_deref() == Some("rate-limited"))
        .count();
    if recent > 0 {
        fi.evidence.push(DoctorEvidence {
            at: f.records.first().map(|r| r.at),
            source: EvidenceSource::Cache,
            what: format!(
                "{recent} of the consumer's last {} calls were rate-limited",
                f.records.len()
            ),
        });
    }
    if let Some(plan) = active_plan(f) {
        let limits = &plan.rate_limits;
        fi.evidence.push(b.ev(
            Some(plan.updated_at),
            format!(
                "Plan {}: {} requests and {} tokens a minute",
                plan.name,
                limits
                    .requests_per_minute
                    .map_or("unlimited".into(), |n| n.to_string()),
                limits
                    .tokens_per_minute
                    .map_or("unlimited".into(), |n| n.to_string())
            ),
        ));
    }
    fi.fix = "Nothing is owed: the consumer retries after the Retry-After seconds, or the plan's rate limit is raised.".into();
    fi.action = active_plan(f).map(|p| FixAction::OpenSetting {
        screen: SettingScreen::Plans,
        target: Some(p.id.clone()),
    });
    b.push(5, fi);
}

fn active_plan(f: &Facts) -> Option<&tollgate_api::Plan> {
    f.subscriptions
        .iter()
        .find(|s| s.sub.status == SubscriptionStatus::Active)
        .and_then(|s| s.plan.as_ref())
}

/// The subscription the gateway would charge for the API, as it picks it.
fn covering<'a>(f: &'a Facts, api: &str) -> Option<&'a SubscriptionFacts> {
    f.subscriptions
        .iter()
        .filter(|s| {
            s.plan
                .as_ref()
                .is_some_and(|p| p.apis.iter().any(|a| a == api))
        })
        .min_by_key(|s| s.sub.status.cover_rank())
}

fn card_label(m: &PaymentMethod) -> String {
    format!(
        "{} ending {} ({:02}/{})",
        m.brand, m.last4, m.exp_month, m.exp_year
    )
}

fn card_expired(m: &PaymentMethod, now: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    m.status == PaymentMethodStatus::Expired
        || (m.exp_year, m.exp_month) < (now.year(), now.month())
}

fn card_usable(m: &PaymentMethod, now: DateTime<Utc>) -> bool {
    m.status == PaymentMethodStatus::Active && !card_expired(m, now)
}

fn subscription(b: &mut Builder, f: &Facts) {
    let Some(consumer) = &f.consumer else {
        return;
    };
    let api = f
        .refusal
        .as_ref()
        .and_then(|r| r.api.clone())
        .unwrap_or_else(|| "chat".into());
    let Some(s) = covering(f, &api) else {
        let mut fi = finding(
            DoctorCause::NotSubscribed,
            format!(
                "No subscription of {} covers the `{api}` API",
                consumer.name
            ),
        );
        for other in &f.subscriptions {
            fi.evidence.push(b.ev(
                Some(other.sub.updated_at),
                format!(
                    "Subscription {} to {} ({}) covers {}",
                    other.sub.id,
                    other.plan.as_ref().map_or("?", |p| p.name.as_str()),
                    other.sub.status.as_str(),
                    other
                        .plan
                        .as_ref()
                        .map_or("nothing known".into(), |p| p.apis.join(", "))
                ),
            ));
        }
        if f.subscriptions.is_empty() {
            fi.evidence
                .push(b.ev(None, "The consumer has no subscription"));
        }
        fi.fix = format!("Subscribe the consumer to a plan that covers `{api}`.");
        fi.action = Some(FixAction::OpenSetting {
            screen: SettingScreen::Consumers,
            target: Some(consumer.id.clone()),
        });
        b.push(30, fi);
        return;
    };
    let sub = &s.sub;
    let plan_name = s.plan.as_ref().map_or("its plan", |p| p.name.as_str());
    match sub.status {
        SubscriptionStatus::Active => funds(b, f, s),
        SubscriptionStatus::PendingApproval => {
            let mut fi = finding(
                DoctorCause::SubscriptionPendingApproval,
                format!("The subscription to {plan_name} waits for an admin's approval"),
            );
            fi.evidence.push(
                b.ev(
                    f.audited(&sub.id, "subscription.create")
                        .map(|e| e.time)
                        .or(Some(sub.created_at)),
                    format!("Subscription {} created, pending approval", sub.id),
                ),
            );
            fi.fix = "Approve the subscription (its first period is charged to the default card)."
                .into();
            fi.action = Some(FixAction::ApproveSubscription {
                subscription_id: sub.id.clone(),
            });
            b.push(40, fi);
        }
        SubscriptionStatus::Suspended => {
            let mut fi = finding(
                DoctorCause::SubscriptionSuspended,
                format!("The subscription to {plan_name} is suspended"),
            );
            fi.evidence.push(
                b.ev(
                    f.audited(&sub.id, "subscription.suspend")
                        .map(|e| e.time)
                        .or(Some(sub.updated_at)),
                    format!(
                        "Suspended: {}",
                        sub.status_reason.as_deref().unwrap_or("no reason given")
                    ),
                ),
            );
            fi.fix = "Resume the subscription once the reason it was suspended is settled.".into();
            fi.action = Some(FixAction::ResumeSubscription {
                subscription_id: sub.id.clone(),
            });
            b.push(40, fi);
        }
        SubscriptionStatus::PastDue => past_due(b, f, s),
        SubscriptionStatus::Expired => {
            let mut fi = finding(
                DoctorCause::SubscriptionExpired,
                format!(
                    "The subscription to {plan_name} expired{}",
                    sub.current_period_end
                        .map(|t| format!(" on {}", t.format("%Y-%m-%d")))
                        .unwrap_or_default()
                ),
            );
            fi.evidence.push(b.ev(
                sub.current_period_end.or(Some(sub.updated_at)),
                format!(
                    "Period ended; auto-renew {}{}",
                    if sub.auto_renew { "on" } else { "off" },
                    sub.status_reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            ));
            card_evidence(b, f, &mut fi);
            fi.fix = "Renew the subscription now: its next period is charged to the default card."
                .into();
            fi.action = Some(FixAction::RenewSubscription {
                subscription_id: sub.id.clone(),
            });
            b.push(40, fi);
        }
        SubscriptionStatus::Canceled | SubscriptionStatus::Rejected => {
            let mut fi = finding(
                DoctorCause::NotSubscribed,
                format!(
                    "The subscription to {plan_name} was {}",
                    sub.status.as_str()
                ),
            );
            fi.evidence.push(b.ev(
                Some(sub.updated_at),
                format!(
                    "Subscription {}: {}",
                    sub.id,
                    sub.status_reason.as_deref().unwrap_or("no reason given")
                ),
            ));
            fi.fix = "Subscribe the consumer again if they should have access.".into();
            fi.action = Some(FixAction::OpenSetting {
                screen: SettingScreen::Consumers,
                target: Some(consumer.id.clone()),
            });
            b.push(40, fi);
        }
    }
}

fn default_card(f: &Facts) -> Option<&PaymentMethod> {
    f.payment_methods.iter().find(|m| m.is_default)
}

fn card_evidence(b: &Builder, f: &Facts, fi: &mut Finding) {
    match default_card(f) {
        Some(m) => fi.evidence.push(b.ev(
            Some(m.created_at),
            format!(
                "Default card: {} — {}{}",
                card_label(m),
                if card_expired(m, f.now) {
                    "expired".to_owned()
                } else {
                    format!("{:?}", m.status).to_lowercase()
                },
                m.last_decline_code
                    .as_deref()
                    .or(m.last_failure_code.as_deref())
                    .map(|c| format!(", last refusal {c}"))
                    .unwrap_or_default()
            ),
        )),
        None => fi.evidence.push(b.ev(None, "No card on file")),
    }
}

fn past_due(b: &mut Builder, f: &Facts, s: &SubscriptionFacts) {
    let sub = &s.sub;
    let plan_name = s.plan.as_ref().map_or("its plan", |p| p.name.as_str());
    // Failed for want of a processor: the gateway's fault while no processor
    // is set; once one is, an ordinary retry.
    let processor_still_missing = f.check.as_ref().is_none_or(|c| {
        c.findings
            .iter()
            .any(|x| x.code == "processor-missing" || x.code == "credentials-unreadable")
    });
    if processor_still_missing
        && sub
            .status_reason
            .as_deref()
            .is_some_and(|r| r.contains("processor_not_configured"))
    {
        let mut fi = finding(
            DoctorCause::PaymentSettingsBroken,
            "No payment processor is set: renewals cannot be charged",
        );
        fi.evidence.push(b.ev(
            sub.past_due_since,
            format!("Subscription {} past due: processor_not_configured", sub.id),
        ));
        fi.fix = "Set a payment processor in the payment settings, then retry the renewal.".into();
        fi.action = Some(FixAction::OpenSetting {
            screen: SettingScreen::Billing,
            target: None,
        });
        b.push(35, fi);
        return;
    }
    let card = default_card(f);
    let card_invalid = match card {
        None => true,
        Some(m) => {
            card_expired(m, f.now)
                || m.last_failure_code
                    .as_deref()
                    .is_some_and(|c| tollgate_api::CARD_INVALID_CODES.contains(&c))
        }
    };
    let last_failed = f.charges.iter().find(|c| {
        c.subscription_id.as_deref() == Some(&sub.id)
            && c.status != tollgate_api::ChargeStatus::Succeeded
    });
    let decline = last_failed
        .and_then(|c| c.decline_code.clone().or(c.failure_code.clone()))
        .or_else(|| card.and_then(|m| m.last_decline_code.clone()))
        .unwrap_or_default();
    let hard = HARD_DECLINES.contains(&decline.as_str());
    let alternative = f
        .payment_methods
        .iter()
        .find(|m| !m.is_default && card_usable(m, f.now));
    let mut fi = if card_invalid || hard {
        finding(
            DoctorCause::PaymentMethodInvalid,
            match card {
                Some(m) => format!(
                    "The renewal of {plan_name} cannot be charged: the card {} is invalid",
                    card_label(m)
                ),
                None => format!(
                    "The renewal of {plan_name} cannot be charged: there is no card on file"
                ),
            },
        )
    } else {
        finding(
            DoctorCause::SubscriptionPastDue,
            format!(
                "The renewal charge for {plan_name} failed ({}); the subscription is past due",
                if decline.is_empty() {
                    "declined"
                } else {
                    &decline
                }
            ),
        )
    };
    fi.evidence.push(b.ev(
        sub.past_due_since,
        format!("Subscription {} past due", sub.id),
    ));
    if let Some(c) = last_failed {
        fi.evidence.push(b.ev(
            Some(c.created_at),
            format!(
                "Charge of {} {} failed: {}{}",
                c.amount,
                c.currency,
                c.failure_code.as_deref().unwrap_or("failed"),
                c.decline_code
                    .as_deref()
                    .map(|d| format!(" / {d}"))
                    .unwrap_or_default()
            ),
        ));
    }
    card_evidence(b, f, &mut fi);
    if let Some(grace) = sub.grace_until {
        fi.evidence.push(b.ev(
            Some(grace),
            "Grace period ends: the subscription expires unless paid",
        ));
    }
    // Another card that can pay is the surer fix whatever the decline.
    match alternative {
        Some(alt) => {
            fi.evidence.push(b.ev(
                Some(alt.created_at),
                format!("Another card on file can pay: {}", card_label(alt)),
            ));
            fi.fix = format!(
                "Make the {} the default card and charge the renewal with it.",
                card_label(alt)
            );
            fi.action = Some(FixAction::SetDefaultPaymentMethod {
                payment_method_id: alt.id.clone(),
                then_retry_subscription_id: Some(sub.id.clone()),
            });
        }
        _ if card_invalid || hard => {
            fi.fix = format!(
                "{} Then retry the renewal.",
                if card.is_none() {
                    "The consumer adds a card.".to_owned()
                } else {
                    card_fix(
                        "",
                        if decline.is_empty() {
                            "expired_card"
                        } else {
                            &decline
                        },
                    )
                }
            );
            fi.action = Some(FixAction::OpenSetting {
                screen: SettingScreen::Consumers,
                target: Some(sub.consumer_id.clone()),
            });
        }
        _ => {
            fi.fix = card_fix("card_declined", &decline);
            fi.action = Some(FixAction::RetryCharge {
                subscription_id: sub.id.clone(),
            });
        }
    }
    b.push(40, fi);
}

/// Credits and wallet of the active subscription: what would pay the next call.
fn funds(b: &mut Builder, f: &Facts, s: &SubscriptionFacts) {
    let (Some(plan), Some(consumer)) = (&s.plan, &f.consumer) else {
        return;
    };
    let included = amount(&plan.included_credits);
    let credits_left = s
        .usage
        .as_ref()
        .map_or(included, |u| amount(&u.credits_left));
    let required = f
        .refusal
        .as_ref()
        .and_then(|r| {
            r.classification
                .evidence
                .iter()
                .find(|e| e.field == "body.required")
                .map(|e| amount(&e.value))
        })
        .unwrap_or(0);
    if credits_left > required {
        return;
    }
    let wallet = f.wallets.iter().find(|w| w.currency == plan.currency);
    let available = wallet.map_or(0, |w| amount(&w.available));
    let usage_ev = |b: &Builder| {
        s.usage.as_ref().filter(|_| included > 0).map(|u| {
            b.ev(
                u.period_start,
                format!(
                    "Included credits this period: {} of {} {} used, {} left",
                    u.credits_used, u.credits_included, u.currency, u.credits_left
                ),
            )
        })
    };
    if plan.overage == OveragePolicy::Block {
        if included == 0 {
            // The billing check names it too; here it is this consumer's plan.
            let mut fi = finding(
                DoctorCause::PlanGrantsNoCredits,
                format!(
                    "The plan {} grants no credits and blocks overage: every call is refused",
                    plan.name
                ),
            );
            fi.evidence.push(b.ev(
                Some(plan.updated_at),
                format!(
                    "Plan {}: included credits 0 {}, overage blocked",
                    plan.name, plan.currency
                ),
            ));
            fi.fix = "Give the plan included credits, or let overage charge the wallet.".into();
            fi.action = Some(FixAction::OpenSetting {
                screen: SettingScreen::Plans,
                target: Some(plan.id.clone()),
            });
            b.push(50, fi);
            return;
        }
        let mut fi = finding(
            DoctorCause::InsufficientFunds,
            format!(
                "The plan {}'s included credits for this period are used up",
                plan.name
            ),
        );
        fi.evidence.extend(usage_ev(b));
        fi.evidence.push(b.ev(
            Some(plan.updated_at),
            format!(
                "Plan {} blocks overage: the wallet is not charged",
                plan.name
            ),
        ));
        fi.fix = format!(
            "The credits return when the period renews{}; until then move the consumer to a plan with more credits or one that charges overage to the wallet.",
            s.sub
                .current_period_end
                .map(|t| format!(" on {}", t.format("%Y-%m-%d")))
                .unwrap_or_default()
        );
        fi.action = Some(FixAction::OpenSetting {
            screen: SettingScreen::Consumers,
            target: Some(consumer.id.clone()),
        });
        b.push(50, fi);
        return;
    }
    let burn = f.burns.iter().find(|x| x.currency == plan.currency);
    // Without the refusal's own figure, a call costs what calls cost lately;
    // and a refusal for funds after the last top-up says enough.
    let need = required.max(burn.map_or(0, Burn::typical_micros));
    let last_top_up = burn
        .and_then(|x| x.last_top_up.as_ref())
        .map(|t| t.created_at);
    let refused_since_top_up = f
        .records
        .iter()
        .find(|r| r.reason.as_deref() == Some("insufficient-funds"))
        .filter(|r| last_top_up.is_none_or(|t| t < r.at));
    if available > need && available > 0 && refused_since_top_up.is_none() {
        return;
    }
    let elsewhere: Vec<&tollgate_api::Wallet> = f
        .wallets
        .iter()
        .filter(|w| w.currency != plan.currency && amount(&w.available) > 0)
        .collect();
    let suggested = suggested_top_up(required - available, burn);
    if !elsewhere.is_empty() {
        let mut fi = finding(
            DoctorCause::CurrencyMismatch,
            format!(
                "The plan {} bills {} but the consumer's money is in {}",
                plan.name,
                plan.currency,
                elsewhere
                    .iter()
                    .map(|w| w.currency.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        for w in &elsewhere {
            fi.evidence.push(b.ev(
                w.updated_at,
                format!(
                    "{} wallet: {} available (not usable for this plan)",
                    w.currency, w.available
                ),
            ));
        }
        fi.evidence.push(b.ev(
            wallet.and_then(|w| w.updated_at),
            format!("{} wallet: {} available", plan.currency, money(available)),
        ));
        fi.fix = format!(
            "Top up the {} wallet, or move the consumer to a plan priced in {}.",
            plan.currency, elsewhere[0].currency
        );
        fi.action = Some(FixAction::TopUpWallet {
            consumer_id: consumer.id.clone(),
            currency: plan.currency.clone(),
            amount: money(suggested),
        });
        b.push(50, fi);
        return;
    }
    let mut fi = finding(
        DoctorCause::InsufficientFunds,
        format!(
            "The {} wallet cannot pay for calls: {} available{}",
            plan.currency,
            money(available),
            if required > 0 {
                format!(", {} needed", money(required))
            } else {
                String::new()
            }
        ),
    );
    fi.evidence.extend(usage_ev(b));
    fi.evidence.push(b.ev(
        wallet.and_then(|w| w.updated_at),
        format!(
            "{} wallet: balance {}, reserved {}, available {}",
            plan.currency,
            wallet.map_or("0", |w| w.balance.as_str()),
            wallet.map_or("0", |w| w.reserved.as_str()),
            money(available)
        ),
    ));
    if let Some(r) = refused_since_top_up {
        fi.evidence.push(DoctorEvidence {
            at: Some(r.at),
            source: EvidenceSource::Cache,
            what: format!("Refused for insufficient funds ({})", r.id),
        });
    }
    if let Some(burn) = burn {
        fi.evidence.push(b.ev(
            burn.last_usage_at,
            format!(
                "Recent burn rate: {} {} a day (over the last {:.1} days)",
                money(burn.per_day_micros()),
                plan.currency,
                burn.days
            ),
        ));
        if let Some(top_up) = &burn.last_top_up {
            fi.evidence.push(b.ev(
                Some(top_up.created_at),
                format!("Last top-up: {} {}", top_up.amount, top_up.currency),
            ));
        }
    }
    fi.fix = format!(
        "Top up the {} wallet ({} {} covers about a week at the recent rate).",
        plan.currency,
        money(suggested),
        plan.currency
    );
    fi.action = Some(FixAction::TopUpWallet {
        consumer_id: consumer.id.clone(),
        currency: plan.currency.clone(),
        amount: money(suggested),
    });
    b.push(50, fi);
}

/// What to propose: what is missing plus a week at the recent burn rate,
/// rounded up to a whole unit, at least [`MIN_TOP_UP`].
pub fn suggested_top_up(missing: i64, burn: Option<&Burn>) -> i64 {
    let week = burn.map_or(0, |b| b.per_day_micros() * 7);
    let raw = missing.max(0) + week;
    let whole = (raw + 999_999) / 1_000_000 * 1_000_000;
    whole.max(MIN_TOP_UP)
}

/// The gateway's billing check, where it concerns this consumer (its plan),
/// or everyone (the settings).
fn settings(b: &mut Builder, f: &Facts) {
    let Some(check) = &f.check else {
        return;
    };
    let plan_ids: Vec<&str> = f
        .subscriptions
        .iter()
        .filter_map(|s| s.plan.as_ref().map(|p| p.id.as_str()))
        .collect();
    // Settings and providers concern everyone; a plan, only its subscribers.
    let concerns = |finding: &BillingFinding| match &finding.target {
        Some(t) if t.starts_with("plan_") => f.consumer.is_none() || plan_ids.contains(&t.as_str()),
        _ => true,
    };
    for found in check.findings.iter().filter(|x| concerns(x)) {
        let (cause, screen) = match found.code.as_str() {
            "credentials-unreadable" | "processor-missing" => {
                (DoctorCause::PaymentSettingsBroken, SettingScreen::Billing)
            }
            "currency-not-accepted" => (DoctorCause::CurrencyMismatch, SettingScreen::Billing),
            "model-currency-mismatch" => (DoctorCause::CurrencyMismatch, SettingScreen::Providers),
            "plan-grants-nothing" => (DoctorCause::PlanGrantsNoCredits, SettingScreen::Plans),
            "plan-covers-nothing" | "api-uncovered" => {
                (DoctorCause::ApiNotCovered, SettingScreen::Plans)
            }
            "model-unpriced" => (DoctorCause::ModelWithoutPrice, SettingScreen::Providers),
            _ => continue,
        };
        let mut fi = finding(cause, found.message.clone());
        fi.evidence.push(b.ev(
            None,
            format!("Billing check: {} ({:?})", found.code, found.severity).to_string(),
        ));
        if let Some(last) = check.billing_unavailable_last
            && cause == DoctorCause::PaymentSettingsBroken
        {
            fi.evidence.push(b.ev(
                Some(last),
                format!(
                    "{} calls answered 503 billing-unavailable since the gateway started",
                    check.billing_unavailable_count
                ),
            ));
        }
        fi.fix = found.fix.clone();
        fi.action = Some(FixAction::OpenSetting {
            screen,
            target: found.target.clone(),
        });
        let rank = if found.severity == Severity::Error {
            35
        } else {
            90
        };
        b.push(rank, fi);
    }
}

/// Keys the providers refused as spent: each can be put back once topped up.
fn provider_keys(b: &mut Builder, f: &Facts) {
    let refused_model = f.refusal.as_ref().and_then(|r| r.model.clone());
    let provider_side = f.refusal.as_ref().is_some_and(|r| {
        r.reason.as_deref() == Some("provider-unavailable")
            || matches!(r.upstream_status, Some(402 | 429))
            || r.classification.origin == Origin::Provider
    });
    for (provider, keys) in &f.providers {
        let serves_refused = refused_model
            .as_deref()
            .is_some_and(|m| provider.models.iter().any(|pm| pm.name == m));
        for key in keys
            .iter()
            .filter(|k| k.status == ProviderKeyStatus::Exhausted)
        {
            let mut fi = finding(
                DoctorCause::ProviderKeyExhausted,
                format!(
                    "The provider {} refused its key {} (…{}) as spent",
                    provider.name, key.label, key.last4
                ),
            );
            fi.origin = Origin::Provider;
            fi.evidence.push(b.ev(
                Some(key.status_changed_at),
                format!(
                    "Key {} exhausted: {}",
                    key.label,
                    key.status_reason.as_deref().unwrap_or("no reason recorded")
                ),
            ));
            let usable = keys
                .iter()
                .filter(|k| k.status == ProviderKeyStatus::Active)
                .count();
            fi.evidence.push(b.ev(
                None,
                format!(
                    "{usable} other usable key(s) in the pool of {}",
                    provider.name
                ),
            ));
            fi.fix = format!(
                "Top up the account of this key at {}, then put the key back in the pool.",
                provider.name
            );
            fi.action = Some(FixAction::ReEnableProviderKey {
                provider_id: provider.id.clone(),
                key_id: key.id.clone(),
                version: key.version,
            });
            let rank = if serves_refused || (provider_side && usable == 0) {
                25
            } else {
                95
            };
            b.push(rank, fi);
        }
    }
}

// ---------------------------------------------------------------- other systems

/// How people write each system's name.
fn system_name(system: super::classify::System) -> &'static str {
    use super::classify::System as S;
    match system {
        S::Tollgate => "Tollgate",
        S::Openrouter => "OpenRouter",
        S::Openai => "OpenAI",
        S::Anthropic => "Anthropic",
        S::Deepseek => "DeepSeek",
        S::Litellm => "LiteLLM",
        S::OneApi => "One API",
        S::NewApi => "New API",
        S::Tyk => "Tyk",
        S::Kong => "Kong",
        S::Stripe => "Stripe",
        S::X402 => "x402",
        S::Unknown => "An unknown system",
    }
}

fn foreign(b: &mut Builder, r: &Refusal) {
    let c = &r.classification;
    let mut fi = finding(
        DoctorCause::Foreign,
        format!(
            "{}: {}",
            system_name(c.system),
            serde_json::to_value(c.cause)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.replace('-', " ")))
                .unwrap_or_default()
        ),
    );
    fi.origin = c.origin;
    for e in &c.evidence {
        fi.evidence.push(DoctorEvidence {
            at: None,
            source: EvidenceSource::Response,
            what: format!("{}: {}", e.field, e.value),
        });
    }
    fi.fix = c.fix.clone();
    b.push(0, fi);
}

// ---------------------------------------------------------------- offline

/// From the cache alone: the refusal and the consumer's recent records.
fn offline(b: &mut Builder, f: &Facts) {
    let latest = f.refusal.clone().or_else(|| {
        f.records
            .iter()
            .find(|r| r.status >= 400 && r.reason.is_some())
            .map(Refusal::from_record)
    });
    let Some(r) = latest else {
        return;
    };
    let Some(reason) = r.reason.as_deref() else {
        return;
    };
    let Some(cause) = causes_of_reason(reason).first().copied() else {
        return;
    };
    let mut fi = finding(
        cause,
        format!("{} {reason}: {}", r.status, r.classification.fix),
    );
    fi.title = match r
        .classification
        .evidence
        .iter()
        .find(|e| e.field == "body.detail")
    {
        Some(d) if !d.value.is_empty() => d.value.clone(),
        _ => format!("Refused with {} {reason}", r.status),
    };
    if cause == DoctorCause::ProviderKeyExhausted {
        fi.origin = Origin::Provider;
    }
    fi.evidence.push(DoctorEvidence {
        at: r.at,
        source: r.source,
        what: format!(
            "{} {reason}{}{}",
            r.status,
            r.model
                .as_deref()
                .map(|m| format!(" on {m}"))
                .unwrap_or_default(),
            r.request_id
                .as_deref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default()
        ),
    });
    let same: Vec<_> = f
        .records
        .iter()
        .filter(|rec| rec.reason.as_deref() == Some(reason))
        .collect();
    if let (Some(newest), Some(oldest)) = (same.first(), same.last()) {
        fi.evidence.push(DoctorEvidence {
            at: Some(newest.at),
            source: EvidenceSource::Cache,
            what: format!(
                "{} of the consumer's last {} cached calls refused with {reason}, since {}",
                same.len(),
                f.records.len(),
                oldest.at.format("%Y-%m-%d %H:%M")
            ),
        });
    }
    if let Some(ok) = f.records.iter().find(|rec| rec.status < 400) {
        fi.evidence.push(DoctorEvidence {
            at: Some(ok.at),
            source: EvidenceSource::Cache,
            what: "Last successful call".into(),
        });
    }
    fi.fix = format!(
        "{} (The instance cannot be reached: the fix can be applied once it answers.)",
        r.classification.fix
    );
    b.push(10, fi);
}

fn nothing_wrong(f: &Facts) -> Finding {
    let mut fi = finding(
        DoctorCause::NoProblemFound,
        "Nothing found that would refuse this consumer's next call",
    );
    fi.origin = Origin::Unknown;
    let src = f.source;
    let ev = |at, what: String| DoctorEvidence {
        at,
        source: src,
        what,
    };
    if let Some(s) = f
        .subscriptions
        .iter()
        .find(|s| s.sub.status == SubscriptionStatus::Active)
    {
        fi.evidence.push(ev(
            s.sub.current_period_end,
            format!(
                "Subscription {} to {} is active",
                s.sub.id,
                s.plan.as_ref().map_or("?", |p| p.name.as_str())
            ),
        ));
        if let Some(u) = &s.usage {
            fi.evidence.push(ev(
                u.period_start,
                format!("{} {} of included credits left", u.credits_left, u.currency),
            ));
        }
    }
    for w in &f.wallets {
        fi.evidence.push(ev(
            w.updated_at,
            format!("{} wallet: {} available", w.currency, w.available),
        ));
    }
    if let Some(r) = &f.refusal {
        fi.evidence.push(DoctorEvidence {
            at: r.at,
            source: r.source,
            what: format!(
                "The refusal ({} {}) no longer applies",
                r.status,
                r.reason.as_deref().unwrap_or("")
            ),
        });
    }
    fi.fix = if f.source == EvidenceSource::Cache {
        "The cache shows no refusal for this consumer; connect to the instance for a full check."
            .into()
    } else {
        "Nothing to fix now.".into()
    };
    fi
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::facts::{Facts, SubscriptionFacts};
    use serde_json::json;

    const T: &str = "2026-11-01T00:00:00Z";

    fn now() -> DateTime<Utc> {
        "2026-11-26T00:00:00Z".parse().unwrap()
    }

    fn card(id: &str, default: bool, exp: (u32, i32), decline: Option<&str>) -> PaymentMethod {
        serde_json::from_value(json!({"id": id, "consumer_id": "con_1", "processor": "test", "brand": "visa",
            "last4": "4242", "exp_month": exp.0, "exp_year": exp.1, "status": if decline.is_some() { "failed" } else { "active" },
            "is_default": default, "last_decline_code": decline, "created_at": T}))
        .unwrap()
    }

    fn past_due(cards: Vec<PaymentMethod>) -> Facts {
        let mut f = Facts::empty(EvidenceSource::Live, now());
        f.consumer = Some(
            serde_json::from_value(json!({"id": "con_1", "team_id": "team_1", "name": "Ann", "contact": "",
                "metadata": {}, "status": "active", "created_at": T, "updated_at": T, "version": 1}))
            .unwrap(),
        );
        f.subscriptions = vec![SubscriptionFacts {
            sub: serde_json::from_value(json!({"id": "sub_1", "consumer_id": "con_1", "plan_id": "plan_1",
                "status": "past_due", "auto_renew": true, "past_due_since": T, "created_at": T, "updated_at": T, "version": 1}))
            .unwrap(),
            plan: Some(
                serde_json::from_value(json!({"id": "plan_1", "name": "Pro", "currency": "USD", "price": "9.00",
                    "period": "month", "included_credits": "5", "overage": "block", "approval_required": false,
                    "apis": ["chat"], "models": [], "rate_limits": {}, "created_at": T, "updated_at": T, "version": 1}))
                .unwrap(),
            ),
            usage: None,
        }];
        f.payment_methods = cards;
        f
    }

    #[test]
    fn an_expired_card_with_another_on_file_switches_and_charges() {
        let f = past_due(vec![
            card("pm_old", true, (10, 2026), None),
            card("pm_new", false, (12, 2030), None),
        ]);
        let found = diagnose(&f);
        assert_eq!(found[0].cause, DoctorCause::PaymentMethodInvalid);
        assert!(found[0].evidence.iter().any(|e| e.what.contains("expired")));
        assert_eq!(
            found[0].action,
            Some(FixAction::SetDefaultPaymentMethod {
                payment_method_id: "pm_new".into(),
                then_retry_subscription_id: Some("sub_1".into()),
            })
        );
    }

    #[test]
    fn each_decline_code_gets_its_fix() {
        // A stolen card: not retried, the consumer must bring another.
        let found = diagnose(&past_due(vec![card(
            "pm_1",
            true,
            (12, 2030),
            Some("stolen_card"),
        )]));
        assert_eq!(found[0].cause, DoctorCause::PaymentMethodInvalid);
        assert!(found[0].fix.contains("do not retry"), "{}", found[0].fix);
        assert!(!found[0].action.as_ref().unwrap().applies());
        // A soft decline: the charge is retried.
        for (decline, words) in [
            ("insufficient_funds", "insufficient funds"),
            ("do_not_honor", "without saying why"),
            ("card_velocity_exceeded", "spending limit"),
            ("authentication_required", "3-D Secure"),
        ] {
            let found = diagnose(&past_due(vec![card(
                "pm_1",
                true,
                (12, 2030),
                Some(decline),
            )]));
            assert_eq!(
                found[0].cause,
                DoctorCause::SubscriptionPastDue,
                "{decline}"
            );
            assert!(found[0].fix.contains(words), "{decline}: {}", found[0].fix);
            assert_eq!(
                found[0].action,
                Some(FixAction::RetryCharge {
                    subscription_id: "sub_1".into()
                }),
                "{decline}"
            );
        }
    }

    #[test]
    fn offline_the_latest_cached_refusal_is_the_cause_without_a_fix_to_apply() {
        let mut f = Facts::empty(EvidenceSource::Cache, now());
        f.records = vec![serde_json::from_value(json!({"seq": 9, "id": "req_9", "at": "2026-11-25T10:00:00Z",
            "api": "chat", "method": "POST", "path": "/v1/chat/completions", "consumer_id": "con_1",
            "status": 402, "reason": "subscription-expired", "latency_us": 100, "tokens_in": 0, "tokens_out": 0,
            "cost": "0"}))
        .unwrap()];
        let found = diagnose(&f);
        assert_eq!(found[0].cause, DoctorCause::SubscriptionExpired);
        assert!(found[0].action.is_none());
        assert!(found[0].fix.contains("cannot be reached"));
        assert_eq!(found[0].evidence[0].source, EvidenceSource::Cache);
    }

    #[test]
    fn gateway_texts_are_scrubbed_of_credentials() {
        let mut f = past_due(vec![card("pm_1", true, (12, 2030), None)]);
        f.subscriptions[0].sub.status = SubscriptionStatus::Suspended;
        f.subscriptions[0].sub.status_reason =
            Some("key tg_abcdefgh_ijklmnopqrstuvwx was shared".into());
        let found = diagnose(&f);
        assert_eq!(found[0].cause, DoctorCause::SubscriptionSuspended);
        let text = format!("{:?}", found[0]);
        assert!(!text.contains("ijklmnopqrstuvwx"), "{text}");
        assert!(text.contains("was shared"), "{text}");
    }

    #[test]
    fn another_systems_answer_comes_first() {
        let mut f = past_due(vec![card(
            "pm_1",
            true,
            (12, 2030),
            Some("insufficient_funds"),
        )]);
        let response = crate::doctor::RawResponse::parse(
            "HTTP/1.1 402 Payment Required\ncontent-type: application/json\n\n{\"error\":{\"message\":\"Insufficient Balance\"}}",
        )
        .unwrap();
        f.refusal = Some(Refusal::from_response(&response));
        let found = diagnose(&f);
        assert_eq!(found[0].cause, DoctorCause::Foreign);
        assert_eq!(found[0].title, "DeepSeek: insufficient funds");
        assert_eq!(found[0].origin, Origin::Provider);
        assert_eq!(found[1].cause, DoctorCause::SubscriptionPastDue);
    }
}
