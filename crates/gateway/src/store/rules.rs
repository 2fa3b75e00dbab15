//! Rules both stores apply the same way, whatever their SQL.

use tollgate_api::{ConsumerStatus, LedgerKind, ProviderModel};

use super::spelling::money;

use super::{ConsumerPatch, LeaseAsk, NewLedgerEntry, ProviderSpec, StoreError, StoreResult};

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
}
