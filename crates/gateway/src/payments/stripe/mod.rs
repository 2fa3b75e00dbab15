//! The `stripe` processor: Stripe's API and its webhooks. Card numbers never
//! pass through the gateway with it: cards are entered on Stripe's Elements
//! and reach the gateway as payment methods (brand, last 4 digits, expiry).

pub mod api;
pub mod signature;

/// Stripe's own API, when the settings name no other base URL.
pub const STRIPE_API: &str = "https://api.stripe.com";
