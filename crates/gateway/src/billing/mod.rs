//! Billing rules that need no storage: the subscription lifecycle.

pub mod lifecycle;
