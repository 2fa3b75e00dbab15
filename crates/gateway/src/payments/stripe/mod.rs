//! The `stripe` processor: Stripe's API and its webhooks. Card numbers never
//! pass through the gateway with it: cards are entered on Stripe's Elements
//! and reach the gateway as payment methods (brand, last 4 digits, expiry).

pub mod signature;
