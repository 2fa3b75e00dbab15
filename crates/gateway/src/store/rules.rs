//! Rules both stores apply the same way, whatever their SQL.

use tollgate_api::{ConsumerStatus, LedgerKind, ProviderModel};

use super::spelling::money;

use super::{
    AllowanceGrant, ConsumerPatch, LeaseAsk, NewLedgerEntry, ProviderSpec, StoreError, StoreResult,
};

/// Model names are unique across providers (the data plane routes by them):
/// `others` are the other providers' names and models (as stored, JSON).
pub(crate) fn models_free<'a>(
    spec: &ProviderSpec,
    others: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> StoreResult<()> {
    for (name, models) in others {
        let models: Vec<ProviderModel> =
            serde_json::from_str(models).map_err(|e| StoreError::Backend(e.into()))?;
        if let Some(taken) = spec
            .models
            .iter()
            .find(|m| models.iter().any(|o| o.name == m.name))
        {
            return Err(StoreError::Conflict(format!(
                "the model `{}` is already served by the provider `{name}`",
                taken.name
            )));
        }
    }
    Ok(())
}

/// The audit action of a consumer's update: a status change says which.
pub(crate) fn consumer_action(patch: &ConsumerPatch, current: ConsumerStatus) -> &'static str {
    match patch.status {
        Some(s) if s != current => match s {
            ConsumerStatus::Suspended => "consumer.suspend",
            ConsumerStatus::Active => "consumer.reactivate",
        },
        _ => "consumer.update",
    }
}

/// How much of a pot a lease request gets, `available` being what no node
/// holds: nothing when the call's `need` is more than that (all of it for a
/// `partial` request), else at least `need`, at most `want`, and no more than
/// a quarter of what is available — so near the end of a balance a node
/// holds only what its call needs, and several nodes share what is left. A
/// grant is a whole number of `need`s: calls of one price leave no crumbs
/// behind on a node that none of them could spend.
pub(crate) fn lease_grant(available: i64, ask: LeaseAsk) -> i64 {
    let available = available.max(0);
    if ask.need <= 0 {
        return 0;
    }
    if available < ask.need {
        return if ask.partial { available } else { 0 };
    }
    let share = (available / 4).max(ask.need);
    let grant = ask.want.max(ask.need).min(share).min(available);
    grant - grant % ask.need
}

/// A minute, in the microseconds rate-limit buckets are kept in.
pub(crate) const MINUTE_MICROS: i64 = 60_000_000;

/// The time `units` of a `per_minute` allowance take to come back (µs,
/// rounded up: a bucket never refills faster than its rate).
pub(crate) fn allowance_span(per_minute: u32, units: u64) -> i64 {
    let per_minute = i128::from(per_minute.max(1));
    let span = (i128::from(units) * i128::from(MINUTE_MICROS) + per_minute - 1) / per_minute;
    i64::try_from(span).unwrap_or(i64::MAX / 4)
}

/// Takes units from a rate limit's bucket (GCRA: a steady rate with a burst
/// of one minute's allowance), kept as the time it is full again
/// (`full_at`, µs; any time past means full). A node asks for what its call
/// `need`s (at most a minute's allowance) and gets at least that, up to a
/// quarter of what the bucket has: nodes share a busy bucket, and near its
/// end each holds only what its call needs. Returns the new `full_at`.
pub(crate) fn allowance_grant(
    full_at: i64,
    now: i64,
    per_minute: u32,
    need: u32,
) -> (i64, AllowanceGrant) {
    let per_minute = per_minute.max(1);
    let need = need.clamp(1, per_minute);
    let start = full_at.max(now);
    // Whole units that came back since the bucket was last taken from.
    let free = i128::from(now + MINUTE_MICROS - start) * i128::from(per_minute)
        / i128::from(MINUTE_MICROS);
    let available = u32::try_from(free.clamp(0, i128::from(per_minute))).unwrap_or(0);
    if available < need {
        let ready = start - MINUTE_MICROS + allowance_span(per_minute, u64::from(need));
        let grant = AllowanceGrant {
            granted: 0,
            remaining: available,
            wait_micros: (ready - now).max(1),
        };
        return (full_at, grant);
    }
    let granted = (available / 4).max(need).min(available);
    let grant = AllowanceGrant {
        granted,
        remaining: available - granted,
        wait_micros: 0,
    };
    (
        start + allowance_span(per_minute, u64::from(granted)),
        grant,
    )
}

/// `full_at` once a node gives back `units` it took and did not use
/// (negative: charges units its calls used beyond what they took).
pub(crate) fn allowance_returned(full_at: i64, now: i64, per_minute: u32, units: i64) -> i64 {
    let span = allowance_span(per_minute, units.unsigned_abs());
    if units >= 0 {
        (full_at - span).max(now)
    } else {
        full_at.max(now).saturating_add(span)
    }
}

/// How a node's spending of `spent` from a wallet is paid: `covered` by its
/// lease (`leased` is what the database says it holds), then `extra` from
/// what no node holds (a lease given back meanwhile, say); any rest is not
/// collected, so the balance never goes below what is set aside.
pub(crate) fn usage_cover(spent: i64, leased: i64, balance: i64, reserved: i64) -> (i64, i64) {
    let covered = spent.min(leased).max(0);
    let extra = (spent - covered).min((balance - reserved).max(0));
    (covered, extra)
}

/// The balance after `entry`: an entry of the admin's may take the balance
/// neither below zero nor below what the nodes hold for calls in flight
/// (`reserved`); a node's usage was paid from what it held.
pub(crate) fn balance_after(e: &NewLedgerEntry, balance: i64, reserved: i64) -> StoreResult<i64> {
    let after = balance
        .checked_add(e.amount_micros)
        .ok_or_else(|| StoreError::Conflict("the balance would overflow".into()))?;
    if e.kind == LedgerKind::Usage || e.amount_micros >= 0 {
        return Ok(after);
    }
    if after < 0 {
        return Err(StoreError::Conflict(format!(
            "this entry would take the balance below zero (balance {} {})",
            money(balance),
            e.currency
        )));
    }
    if after < reserved {
        return Err(StoreError::Conflict(format!(
            "{} {} of the balance is set aside for calls in progress; take at most {} {} now, \
             or retry when they have finished",
            money(reserved),
            e.currency,
            money((balance - reserved).max(0)),
            e.currency
        )));
    }
    Ok(after)
}

/// `entry` (a node's usage of a wallet) charging only what could be
/// `collected`, saying so when that is less than it spent; `None` when
/// nothing could be.
pub(crate) fn collected(entry: &NewLedgerEntry, collected: i64) -> Option<NewLedgerEntry> {
    let spent = -entry.amount_micros;
    if collected < spent {
        tracing::error!(
            consumer = %entry.consumer_id,
            currency = %entry.currency,
            spent,
            collected,
            "a node spent more than it held of a wallet; the rest is not charged"
        );
    }
    (collected > 0).then(|| NewLedgerEntry {
        amount_micros: -collected,
        ..entry.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(need: i64, want: i64, partial: bool) -> LeaseAsk {
        LeaseAsk {
            need,
            want,
            partial,
            included: 0,
        }
    }

    #[test]
    fn a_lease_is_whole_calls_within_a_quarter_of_what_is_left() {
        // Plenty: what the node wants, up to a quarter of the pot.
        assert_eq!(lease_grant(1_000_000, ask(100, 5_000, false)), 5_000);
        assert_eq!(lease_grant(10_000, ask(100, 5_000, false)), 2_500);
        // A quarter that is not whole calls is rounded down to whole calls.
        assert_eq!(lease_grant(1_000, ask(300, 3_000, false)), 300);
        // Near the end: only what one call needs.
        assert_eq!(lease_grant(350, ask(300, 3_000, false)), 300);
        assert_eq!(lease_grant(300, ask(300, 3_000, false)), 300);
        // Not enough: nothing, or everything for a partial request.
        assert_eq!(lease_grant(299, ask(300, 3_000, false)), 0);
        assert_eq!(lease_grant(299, ask(300, 3_000, true)), 299);
        assert_eq!(lease_grant(-5, ask(300, 3_000, true)), 0);
        assert_eq!(lease_grant(1_000, ask(0, 3_000, false)), 0);
    }

    #[test]
    fn usage_is_paid_from_the_lease_then_from_what_is_free_and_never_below_reserved() {
        assert_eq!(usage_cover(100, 500, 1_000, 500), (100, 0));
        assert_eq!(usage_cover(100, 40, 1_000, 500), (40, 60));
        // Only 20 free beyond the leases: 40 of the spending is not collected.
        assert_eq!(usage_cover(100, 40, 520, 500), (40, 20));
        assert_eq!(usage_cover(100, 0, 100, 100), (0, 0));
    }

    #[test]
    fn an_allowance_is_shared_a_quarter_at_a_time_and_refused_with_a_wait() {
        let m = MINUTE_MICROS;
        // A full bucket of 600 a minute: a quarter, and one unit per 100 ms.
        let (full_at, g) = allowance_grant(0, m, 600, 1);
        assert_eq!(
            g,
            AllowanceGrant {
                granted: 150,
                remaining: 450,
                wait_micros: 0
            }
        );
        assert_eq!(full_at, m + 15_000_000);
        // Near the end only what the call needs; nothing more than there is.
        let (_, g) = allowance_grant(2 * m - 300_000, m, 600, 2);
        assert_eq!((g.granted, g.remaining), (2, 1));
        let (_, g) = allowance_grant(2 * m - 300_000, m, 600, 3);
        assert_eq!((g.granted, g.remaining), (3, 0));
        // Empty: refused with the time until the units are back.
        let (same, g) = allowance_grant(2 * m, m, 600, 5);
        assert_eq!(same, 2 * m);
        assert_eq!(
            g,
            AllowanceGrant {
                granted: 0,
                remaining: 0,
                wait_micros: 500_000
            }
        );
        // A need above a minute's allowance waits for a full bucket.
        let (_, g) = allowance_grant(m + 1_000_000, m, 600, 5_000);
        assert_eq!((g.granted, g.wait_micros), (0, 1_000_000));
        let (_, g) = allowance_grant(0, m, 600, 5_000);
        assert_eq!(g.granted, 600);
        // Two calls a minute: one each, then a wait of about 30 s.
        let (t, g) = allowance_grant(0, m, 2, 1);
        assert_eq!(g.granted, 1);
        let (t, g) = allowance_grant(t, m, 2, 1);
        assert_eq!((g.granted, g.remaining), (1, 0));
        let (_, g) = allowance_grant(t, m + 1, 2, 1);
        assert_eq!(g.wait_micros, 30_000_000 - 1);
    }

    #[test]
    fn an_allowance_given_back_refills_the_bucket_but_never_beyond_full() {
        let m = MINUTE_MICROS;
        assert_eq!(
            allowance_returned(m + 10_000_000, m, 600, 50),
            m + 5_000_000
        );
        assert_eq!(allowance_returned(m + 10_000_000, m, 600, 500), m);
        assert_eq!(
            allowance_returned(m + 10_000_000, m, 600, -50),
            m + 15_000_000
        );
        assert_eq!(allowance_returned(0, m, 600, -50), m + 5_000_000);
        // Units that do not divide a minute evenly come back no faster.
        assert_eq!(allowance_span(7, 1), 8_571_429);
    }
}
