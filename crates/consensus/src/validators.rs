//! The validator set of one epoch, and sampling it by stake.

use std::collections::BTreeMap;

use ogpu_core::rng::DetRng;
use ogpu_core::{Address, PublicKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub key: PublicKey,
    pub stake: u128,
}

/// Validators and their stake for one epoch. The chain hands the engine a new set at each
/// epoch boundary; messages tagged with another epoch are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorSet {
    pub epoch: u64,
    members: BTreeMap<Address, Member>,
}

impl ValidatorSet {
    /// A set of the given keys and stakes; zero-stake entries are left out.
    pub fn new(epoch: u64, members: impl IntoIterator<Item = (PublicKey, u128)>) -> ValidatorSet {
        let members = members
            .into_iter()
            .filter(|(_, stake)| *stake > 0)
            .map(|(key, stake)| (Address::of(&key), Member { key, stake }))
            .collect();
        ValidatorSet { epoch, members }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn get(&self, address: &Address) -> Option<&Member> {
        self.members.get(address)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Address, &Member)> {
        self.members.iter()
    }

    pub fn total_stake(&self) -> u128 {
        self.members.values().map(|m| m.stake).sum()
    }

    /// Up to `count` distinct validators, drawn by units of stake without replacement.
    pub fn sample(&self, rng: &mut DetRng, count: usize) -> Vec<Address> {
        let weighted: Vec<(Address, u128)> = self.members.iter().map(|(a, m)| (*a, m.stake)).collect();
        rng.sample_weighted(&weighted, count)
    }
}
