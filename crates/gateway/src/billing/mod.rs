//! Billing: the subscription lifecycle (pure) and the service that applies it
//! to stored subscriptions with the payment processor.

pub mod lifecycle;
pub mod service;
