//! Who may propose at a height, and from when.
//!
//! The parent's VRF randomness orders a few validators, drawn by stake. The first may
//! propose as soon as the parent is accepted, the next after one window, and so on; after
//! the last window anyone may propose, so a missing proposer delays a height but cannot
//! stop the chain.

use ogpu_core::rng::DetRng;
use ogpu_core::{Address, Hash};

use crate::validators::ValidatorSet;

/// The scheduled proposers of `height`, in order, drawn from the parent's randomness.
pub fn proposer_schedule(
    validators: &ValidatorSet,
    parent_randomness: &Hash,
    height: u64,
    slots: usize,
) -> Vec<Address> {
    let mut rng = DetRng::new(parent_randomness, "ogpu/proposers", &[&height.to_le_bytes()]);
    validators.sample(&mut rng, slots)
}

/// The position of `proposer` in `schedule`: its index, or the number of slots when it is
/// not scheduled (it may propose once every window has passed).
pub fn slot_of(schedule: &[Address], proposer: &Address) -> usize {
    schedule.iter().position(|p| p == proposer).unwrap_or(schedule.len())
}
