//! The pricing policy: what a task costs this provider, which is what it bids. Auctions
//! pay the critical price (reverse Vickrey), so bidding one's true cost is the best
//! strategy and the policy has no reason to shade its bids.

use ogpu_core::Amount;
use ogpu_core::amount::BasisPoints;
use ogpu_core::spec::{Market, TaskSpec};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pricing {
    /// The cost of one device busy for one second.
    pub per_device_second: Amount,
    /// The least the provider works for.
    pub floor: Amount,
    /// Added on top of the cost, in basis points.
    pub margin_bps: BasisPoints,
}

impl Default for Pricing {
    fn default() -> Pricing {
        Pricing {
            per_device_second: Amount::from_base_units(10u128.pow(13)),
            floor: Amount::from_base_units(10u128.pow(15)),
            margin_bps: 2_000,
        }
    }
}

impl Pricing {
    /// The price to bid on an auction task: the cost of holding its devices for its whole
    /// time limit, plus the margin, at least the floor. `None` when that is above what the
    /// client pays at most, or the task is not an auction.
    pub fn quote(&self, spec: &TaskSpec) -> Option<Amount> {
        let Market::Auction { max_price, .. } = spec.market else { return None };
        let devices = u128::from(spec.requirements.gpus.max(1));
        let cost =
            self.per_device_second.checked_mul(devices)?.checked_mul(u128::from(spec.workload.limits.timeout_s))?;
        let price = cost.checked_add(cost.bps(self.margin_bps))?;
        let price = if price < self.floor { self.floor } else { price };
        (price <= max_price).then_some(price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogpu_core::spec::TaskSpec;

    fn spec(timeout_s: u32, gpus: u32, max_price: &str) -> TaskSpec {
        let text = format!(
            r#"
            name = "t"
            deadline_blocks = 10
            [workload]
            kind = "wasm"
            program = "{program}"
            limits = {{ fuel = 1000, memory_mb = 16, timeout_s = {timeout_s} }}
            [market]
            kind = "auction"
            max_price = "{max_price}"
            bid_window = 1
            [requirements]
            gpus = {gpus}
            min_vram_mb = 0
            models = []
            min_reputation = 0
            "#,
            program = "00".repeat(32)
        );
        TaskSpec::from_toml(&text).unwrap()
    }

    #[test]
    fn the_price_is_cost_plus_margin_at_least_the_floor() {
        let pricing = Pricing {
            per_device_second: Amount::from_base_units(1_000),
            floor: Amount::from_base_units(50_000),
            margin_bps: 1_000,
        };
        // 100 s on 2 GPUs at 1000 per device-second, plus 10%.
        assert_eq!(pricing.quote(&spec(100, 2, "1")), Some(Amount::from_base_units(220_000)));
        // A CPU task counts one device; a short one is priced at the floor.
        assert_eq!(pricing.quote(&spec(10, 0, "1")), Some(Amount::from_base_units(50_000)));
    }

    #[test]
    fn tasks_that_pay_less_than_the_price_get_no_bid() {
        let pricing = Pricing { floor: Amount::ogpu(2), ..Pricing::default() };
        assert_eq!(pricing.quote(&spec(10, 0, "1")), None);
        assert_eq!(pricing.quote(&spec(10, 0, "2")), Some(Amount::ogpu(2)));
    }
}
