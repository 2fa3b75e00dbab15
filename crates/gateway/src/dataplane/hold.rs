//! What a call holds from its admission to its settlement.

use super::DataPlane;
use super::accounts::Reservation;
use super::ratelimit::TokenCharge;

/// What a call holds until it is settled: credit (its reservation) and,
/// under a tokens-per-minute limit, tokens of the plan's allowance.
pub struct Hold {
    pub reservation: Reservation,
    pub tokens: Option<TokenCharge>,
}

impl Hold {
    /// The call failed: it pays nothing and uses no tokens.
    pub async fn release(&self, data: &DataPlane) {
        data.accounts.release(&self.reservation).await;
        if let Some(tokens) = &self.tokens {
            tokens.refund(&data.limiter).await;
        }
    }

    /// The call is done: it pays `cost` and used `tokens`.
    pub async fn settle(&self, data: &DataPlane, cost: i64, tokens: u64, request_id: &str) {
        data.accounts
            .settle(&self.reservation, cost, request_id)
            .await;
        if let Some(charge) = &self.tokens {
            charge.settle(&data.limiter, tokens).await;
        }
    }
}
