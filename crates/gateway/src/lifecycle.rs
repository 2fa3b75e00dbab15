//! The subscription state machine, as pure functions of the subscription, its
//! plan and the time, so it is tested with any clock:
//!
//! ```text
//! pending_approval ──approve──▶ active ──period ends, charge fails──▶ past_due ──grace ends──▶ expired
//!        │                        ▲  │                                   │
//!        └──reject──▶ rejected    │  └──period ends, no renewal──▶ expired
//!                                 └───────────── charge succeeds ◀───────┘
//! active/past_due ──suspend──▶ suspended ──resume──▶ active    any live state ──cancel──▶ canceled
//! ```

use chrono::{DateTime, Duration, Months, Utc};
use tollgate_api::{PlanPeriod, SubscriptionStatus};

/// The parts of a subscription the lifecycle reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub status: SubscriptionStatus,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub auto_renew: bool,
    pub past_due_since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// The parts of a plan the lifecycle needs.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    pub period: PlanPeriod,
    pub price_micros: i64,
}

/// What the caller must do for a subscription at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Charge the period's price, then report with [`charged`] or [`charge_failed`].
    Charge,
    /// Move to the new state (renewed for free, or expired).
    Transition(State),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a subscription that is {from} cannot be {action}")]
pub struct NotAllowed {
    pub from: &'static str,
    pub action: &'static str,
}

fn not_allowed(from: SubscriptionStatus, action: &'static str) -> NotAllowed {
    NotAllowed {
        from: from.as_str(),
        action,
    }
}

/// The end of a period that starts at `start`.
pub fn period_end(period: PlanPeriod, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match period {
        PlanPeriod::Month => start.checked_add_months(Months::new(1)),
        PlanPeriod::Year => start.checked_add_months(Months::new(12)),
        PlanPeriod::None => None,
    }
}

/// A new subscription: waiting for approval, or active from `now`.
/// A priced plan's first period is charged by the caller right after.
pub fn start(terms: Terms, approval_required: bool, auto_renew: bool, now: DateTime<Utc>) -> State {
    if approval_required {
        return State {
            status: SubscriptionStatus::PendingApproval,
            period_start: None,
            period_end: None,
            auto_renew,
            past_due_since: None,
            reason: None,
        };
    }
    activate(terms, auto_renew, now)
}

fn activate(terms: Terms, auto_renew: bool, now: DateTime<Utc>) -> State {
    State {
        status: SubscriptionStatus::Active,
        period_start: Some(now),
        period_end: period_end(terms.period, now),
        auto_renew,
        past_due_since: None,
        reason: None,
    }
}

pub fn approve(state: &State, terms: Terms, now: DateTime<Utc>) -> Result<State, NotAllowed> {
    match state.status {
        SubscriptionStatus::PendingApproval => Ok(activate(terms, state.auto_renew, now)),
        other => Err(not_allowed(other, "approved")),
    }
}

pub fn reject(state: &State, reason: &str) -> Result<State, NotAllowed> {
    match state.status {
        SubscriptionStatus::PendingApproval => Ok(State {
            status: SubscriptionStatus::Rejected,
            reason: Some(reason.to_owned()),
            ..state.clone()
        }),
        other => Err(not_allowed(other, "rejected")),
    }
}

pub fn cancel(state: &State, reason: &str) -> Result<State, NotAllowed> {
    match state.status {
        SubscriptionStatus::Expired
        | SubscriptionStatus::Rejected
        | SubscriptionStatus::Canceled => Err(not_allowed(state.status, "canceled")),
        _ => Ok(State {
            status: SubscriptionStatus::Canceled,
            auto_renew: false,
            reason: Some(reason.to_owned()),
            ..state.clone()
        }),
    }
}

pub fn suspend(state: &State, reason: &str) -> Result<State, NotAllowed> {
    match state.status {
        SubscriptionStatus::Active | SubscriptionStatus::PastDue => Ok(State {
            status: SubscriptionStatus::Suspended,
            reason: Some(reason.to_owned()),
            ..state.clone()
        }),
        other => Err(not_allowed(other, "suspended")),
    }
}

/// Back from suspension: past due again if it was unpaid, else active.
pub fn resume(state: &State) -> Result<State, NotAllowed> {
    match state.status {
        SubscriptionStatus::Suspended => Ok(State {
            status: if state.past_due_since.is_some() {
                SubscriptionStatus::PastDue
            } else {
                SubscriptionStatus::Active
            },
            reason: None,
            ..state.clone()
        }),
        other => Err(not_allowed(other, "resumed")),
    }
}

/// What a plan change asks of the caller besides storing the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterChange {
    Nothing,
    /// A new period started now: charge the new plan's price for it.
    ChargeNewPeriod,
}

/// Moves a subscription to another plan (`terms`) at `now`, by an admin (so
/// no approval is asked for). A paid period in progress runs to its end and
/// renews on the new terms; a subscription without a running period (its old
/// plan had none, or it is past due) starts a new one now, to be charged. A
/// past-due subscription thus leaves its grace period: should the new charge
/// fail too, a new grace period starts from the change. A pending
/// subscription stays pending, now for the new plan.
pub fn change_plan(
    state: &State,
    terms: Terms,
    now: DateTime<Utc>,
) -> Result<(State, AfterChange), NotAllowed> {
    match state.status {
        SubscriptionStatus::PendingApproval => Ok((state.clone(), AfterChange::Nothing)),
        SubscriptionStatus::Active if terms.period == PlanPeriod::None => Ok((
            State {
                period_end: None,
                ..state.clone()
            },
            AfterChange::Nothing,
        )),
        SubscriptionStatus::Active if state.period_end.is_some_and(|end| end > now) => {
            Ok((state.clone(), AfterChange::Nothing))
        }
        SubscriptionStatus::Active | SubscriptionStatus::PastDue => Ok((
            activate(terms, state.auto_renew, now),
            AfterChange::ChargeNewPeriod,
        )),
        other => Err(not_allowed(other, "moved to another plan")),
    }
}

/// When a past-due subscription expires.
pub fn grace_until(state: &State, grace_days: u32) -> Option<DateTime<Utc>> {
    state
        .past_due_since
        .map(|t| t + Duration::days(i64::from(grace_days)))
}

/// What is due at `now`: nothing, a renewal charge, or a transition.
pub fn due(state: &State, terms: Terms, grace_days: u32, now: DateTime<Utc>) -> Due {
    match state.status {
        SubscriptionStatus::Active => match state.period_end {
            Some(end) if end <= now => {
                if !state.auto_renew {
                    Due::Transition(State {
                        status: SubscriptionStatus::Expired,
                        reason: Some("the period ended and auto-renew is off".into()),
                        ..state.clone()
                    })
                } else if terms.price_micros == 0 {
                    Due::Transition(renewed(state, terms, end))
                } else {
                    Due::Charge
                }
            }
            _ => Due::Nothing,
        },
        SubscriptionStatus::PastDue => match grace_until(state, grace_days) {
            Some(limit) if limit <= now => Due::Transition(State {
                status: SubscriptionStatus::Expired,
                reason: Some("the grace period ended without payment".into()),
                ..state.clone()
            }),
            _ => Due::Nothing,
        },
        _ => Due::Nothing,
    }
}

/// The next period, starting where the last one ended.
fn renewed(state: &State, terms: Terms, from: DateTime<Utc>) -> State {
    State {
        status: SubscriptionStatus::Active,
        period_start: Some(from),
        period_end: period_end(terms.period, from),
        past_due_since: None,
        reason: None,
        ..state.clone()
    }
}

/// A renewal (or retry) charge succeeded at `now`. A subscription that was
/// past due starts its new period now; an on-time renewal continues seamlessly.
pub fn charged(state: &State, terms: Terms, now: DateTime<Utc>) -> State {
    let from = match (state.status, state.period_end) {
        (SubscriptionStatus::Active, Some(end)) if end <= now => end,
        (SubscriptionStatus::Active, Some(_)) => return state.clone(),
        _ => now,
    };
    renewed(state, terms, from)
}

/// A renewal charge failed: past due from the first failure on.
pub fn charge_failed(state: &State, reason: &str, now: DateTime<Utc>) -> State {
    State {
        status: SubscriptionStatus::PastDue,
        past_due_since: state.past_due_since.or(Some(now)),
        reason: Some(reason.to_owned()),
        ..state.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscriptionStatus::*;

    /// A manual clock: the tests move time by hand.
    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const MONTHLY: Terms = Terms {
        period: PlanPeriod::Month,
        price_micros: 49_000_000,
    };
    const FREE: Terms = Terms {
        period: PlanPeriod::Month,
        price_micros: 0,
    };

    #[test]
    fn approval_then_renewal_keeps_periods_seamless() {
        let pending = start(MONTHLY, true, true, at("2026-01-10T00:00:00Z"));
        assert_eq!(pending.status, PendingApproval);
        assert_eq!(
            due(&pending, MONTHLY, 3, at("2030-01-01T00:00:00Z")),
            Due::Nothing
        );
        let active = approve(&pending, MONTHLY, at("2026-01-31T09:00:00Z")).unwrap();
        assert_eq!(
            active.period_end,
            Some(at("2026-02-28T09:00:00Z")),
            "month arithmetic clamps to the month's end"
        );
        assert_eq!(
            due(&active, MONTHLY, 3, at("2026-02-28T08:59:59Z")),
            Due::Nothing
        );
        assert_eq!(
            due(&active, MONTHLY, 3, at("2026-02-28T09:00:00Z")),
            Due::Charge
        );
        let renewed = charged(&active, MONTHLY, at("2026-02-28T09:05:00Z"));
        assert_eq!(
            (renewed.period_start, renewed.period_end),
            (
                Some(at("2026-02-28T09:00:00Z")),
                Some(at("2026-03-28T09:00:00Z"))
            )
        );
        assert!(approve(&renewed, MONTHLY, at("2026-03-01T00:00:00Z")).is_err());
    }

    #[test]
    fn a_failed_renewal_is_past_due_through_grace_then_expires() {
        let active = start(MONTHLY, false, true, at("2026-10-03T00:00:00Z"));
        assert_eq!(
            due(&active, MONTHLY, 7, at("2026-11-03T00:00:00Z")),
            Due::Charge
        );
        let past_due = charge_failed(
            &active,
            "card_declined: insufficient_funds",
            at("2026-11-03T00:00:00Z"),
        );
        assert_eq!(
            (past_due.status, past_due.past_due_since),
            (PastDue, Some(at("2026-11-03T00:00:00Z")))
        );
        // A second failure keeps the first date: grace is counted from the first.
        let still = charge_failed(
            &past_due,
            "card_declined: generic_decline",
            at("2026-11-05T00:00:00Z"),
        );
        assert_eq!(still.past_due_since, past_due.past_due_since);
        assert_eq!(grace_until(&still, 7), Some(at("2026-11-10T00:00:00Z")));
        assert_eq!(
            due(&still, MONTHLY, 7, at("2026-11-09T23:59:59Z")),
            Due::Nothing
        );
        match due(&still, MONTHLY, 7, at("2026-11-10T00:00:00Z")) {
            Due::Transition(s) => assert_eq!(
                (s.status, s.reason.as_deref()),
                (Expired, Some("the grace period ended without payment"))
            ),
            other => panic!("{other:?}"),
        }
        // Paying during grace starts a fresh period from the payment.
        let paid = charged(&still, MONTHLY, at("2026-11-06T12:00:00Z"));
        assert_eq!((paid.status, paid.past_due_since), (Active, None));
        assert_eq!(paid.period_start, Some(at("2026-11-06T12:00:00Z")));
    }

    #[test]
    fn free_plans_renew_without_charging_and_no_auto_renew_expires() {
        let free = start(FREE, false, true, at("2026-01-01T00:00:00Z"));
        match due(&free, FREE, 3, at("2026-02-01T00:00:00Z")) {
            Due::Transition(s) => assert_eq!(
                (s.status, s.period_end),
                (Active, Some(at("2026-03-01T00:00:00Z")))
            ),
            other => panic!("{other:?}"),
        }
        let once = start(MONTHLY, false, false, at("2026-01-01T00:00:00Z"));
        assert!(matches!(
            due(&once, MONTHLY, 3, at("2026-02-01T00:00:00Z")),
            Due::Transition(State {
                status: Expired,
                ..
            })
        ));
        let forever = start(
            Terms {
                period: PlanPeriod::None,
                price_micros: 0,
            },
            false,
            true,
            at("2026-01-01T00:00:00Z"),
        );
        assert_eq!(forever.period_end, None);
        assert_eq!(
            due(&forever, FREE, 3, at("2099-01-01T00:00:00Z")),
            Due::Nothing
        );
    }

    #[test]
    fn rejection_cancellation_and_suspension() {
        let pending = start(MONTHLY, true, true, at("2026-01-01T00:00:00Z"));
        let rejected = reject(&pending, "unknown company").unwrap();
        assert_eq!(
            (rejected.status, rejected.reason.as_deref()),
            (Rejected, Some("unknown company"))
        );
        assert!(cancel(&rejected, "x").is_err());
        assert_eq!(
            reject(&rejected, "again").unwrap_err().to_string(),
            "a subscription that is rejected cannot be rejected"
        );

        let active = start(MONTHLY, false, true, at("2026-01-01T00:00:00Z"));
        let past_due = charge_failed(&active, "declined", at("2026-02-01T00:00:00Z"));
        let suspended = suspend(&past_due, "abuse").unwrap();
        assert_eq!(
            due(&suspended, MONTHLY, 0, at("2030-01-01T00:00:00Z")),
            Due::Nothing,
            "suspension stops the clock"
        );
        assert_eq!(
            resume(&suspended).unwrap().status,
            PastDue,
            "resuming does not forgive the debt"
        );
        assert_eq!(
            resume(&suspend(&active, "x").unwrap()).unwrap().status,
            Active
        );
        let canceled = cancel(&active, "customer left").unwrap();
        assert_eq!((canceled.status, canceled.auto_renew), (Canceled, false));
        assert!(suspend(&canceled, "x").is_err());
    }

    #[test]
    fn a_plan_change_keeps_a_paid_period_or_starts_one() {
        let active = start(MONTHLY, false, true, at("2026-03-01T00:00:00Z"));
        // Mid-period: the paid period runs on; renewal follows the new terms.
        let (kept, after) = change_plan(&active, FREE, at("2026-03-10T00:00:00Z")).unwrap();
        assert_eq!(kept, active);
        assert_eq!(after, AfterChange::Nothing);
        // To a plan without periods: no more renewals.
        let unlimited = Terms {
            period: PlanPeriod::None,
            price_micros: 0,
        };
        let (open, after) = change_plan(&active, unlimited, at("2026-03-10T00:00:00Z")).unwrap();
        assert_eq!((open.status, open.period_end), (Active, None));
        assert_eq!(after, AfterChange::Nothing);
        // From a plan without periods: a period starts now and is charged.
        let (started, after) = change_plan(&open, MONTHLY, at("2026-04-02T12:00:00Z")).unwrap();
        assert_eq!(started.period_start, Some(at("2026-04-02T12:00:00Z")));
        assert_eq!(started.period_end, Some(at("2026-05-02T12:00:00Z")));
        assert_eq!(after, AfterChange::ChargeNewPeriod);
        // Past due: the new plan starts afresh and is charged now.
        let past_due = charge_failed(&active, "card_declined", at("2026-04-01T00:00:00Z"));
        let (fresh, after) = change_plan(&past_due, FREE, at("2026-04-02T00:00:00Z")).unwrap();
        assert_eq!((fresh.status, fresh.past_due_since), (Active, None));
        assert_eq!(after, AfterChange::ChargeNewPeriod);
        // Pending stays pending; ended and suspended ones cannot move.
        let pending = start(MONTHLY, true, true, at("2026-03-01T00:00:00Z"));
        assert_eq!(
            change_plan(&pending, FREE, at("2026-03-02T00:00:00Z")).unwrap(),
            (pending.clone(), AfterChange::Nothing)
        );
        for ended in [
            cancel(&active, "bye").unwrap(),
            suspend(&active, "abuse").unwrap(),
            reject(&pending, "no").unwrap(),
        ] {
            let refused = change_plan(&ended, FREE, at("2026-03-02T00:00:00Z")).unwrap_err();
            assert_eq!(refused.action, "moved to another plan");
        }
    }
}
