//! How both stores spell enums and amounts in their columns and answers.

use tollgate_api::money::format_amount;
use tollgate_api::{LedgerKind, OveragePolicy, PlanPeriod};

pub(crate) fn period_str(p: PlanPeriod) -> &'static str {
    match p {
        PlanPeriod::Month => "month",
        PlanPeriod::Year => "year",
        PlanPeriod::None => "none",
    }
}

pub(crate) fn overage_str(o: OveragePolicy) -> &'static str {
    match o {
        OveragePolicy::Block => "block",
        OveragePolicy::ChargeWallet => "charge_wallet",
    }
}

pub(crate) fn kind_str(k: LedgerKind) -> &'static str {
    match k {
        LedgerKind::TopUp => "top_up",
        LedgerKind::Usage => "usage",
        LedgerKind::Refund => "refund",
        LedgerKind::Adjustment => "adjustment",
        LedgerKind::Grant => "grant",
    }
}

pub(crate) fn parse_kind(s: &str) -> LedgerKind {
    match s {
        "top_up" => LedgerKind::TopUp,
        "usage" => LedgerKind::Usage,
        "refund" => LedgerKind::Refund,
        "grant" => LedgerKind::Grant,
        _ => LedgerKind::Adjustment,
    }
}

/// Wire format of an amount: at least two decimals.
pub(crate) fn money(micros: i64) -> String {
    format_amount(micros, 2)
}

pub(crate) fn parse_period(s: &str) -> PlanPeriod {
    match s {
        "month" => PlanPeriod::Month,
        "year" => PlanPeriod::Year,
        _ => PlanPeriod::None,
    }
}

pub(crate) fn parse_overage(s: &str) -> OveragePolicy {
    if s == "block" {
        OveragePolicy::Block
    } else {
        OveragePolicy::ChargeWallet
    }
}
