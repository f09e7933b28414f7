//! Chain parameters. They live in state, so every node reads the same values, and all but
//! the monetary schedule change only through governance (see `governance`).

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_core::Amount;
use ogpu_core::amount::BasisPoints;
use ogpu_core::tx::{ParamChange, ParamKey};
use serde::{Deserialize, Serialize};

/// The most oGPU that will ever exist: genesis allocations plus every block reward.
pub const SUPPLY_CAP: Amount = Amount::ogpu(21_000_000);

/// Reputation is out of this; new providers start at half.
pub const MAX_REPUTATION: u16 = 1_000;
pub const START_REPUTATION: u16 = 500;

/// Verifiers called to settle a disagreement between executors, or a challenge.
pub const DISPUTE_VERIFIERS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Reward minted per block before the first halving.
    pub initial_block_reward: Amount,
    /// Blocks between halvings of the block reward.
    pub halving_blocks: u64,

    pub min_fee: Amount,
    pub min_validator_stake: Amount,
    pub min_provider_stake: Amount,
    /// Blocks an unstaked amount stays slashable before it can be withdrawn.
    pub unbonding_blocks: u64,
    /// Blocks per epoch; the validator set and the reward pool change at epoch boundaries.
    pub epoch_blocks: u64,
    pub jail_blocks: u64,

    /// Blocks after a task's bid window during which sealed bids are revealed.
    pub bid_reveal_blocks: u64,
    /// Blocks an awarded provider has to start.
    pub start_timeout_blocks: u64,
    /// Blocks to reveal results once every executor has committed.
    pub result_reveal_blocks: u64,
    /// Blocks verifiers have to report.
    pub verify_blocks: u64,
    /// Blocks after verification during which anyone may challenge a result.
    pub challenge_blocks: u64,
    /// Blocks a pool job is open for commits from subscribers.
    pub pool_commit_blocks: u64,
    /// Auction or race rounds a task gets before it fails and is refunded.
    pub max_rounds: u32,
    pub voting_blocks: u64,

    /// Share of what executors are paid that goes to the validators' reward pool.
    pub protocol_fee_bps: BasisPoints,
    /// Fee per verifier, as a share of the executor's price.
    pub verifier_fee_bps: BasisPoints,
    /// Fee per matching replica in a pool race, as a share of the job price.
    pub replica_fee_bps: BasisPoints,
    /// Replicas paid per pool job at most.
    pub max_paid_replicas: u8,
    /// The client's trust lock, as a share of the task's price cap.
    pub client_lock_bps: BasisPoints,
    pub start_slash_bps: BasisPoints,
    pub fault_slash_bps: BasisPoints,
    pub equivocation_slash_bps: BasisPoints,
    pub challenge_bond: Amount,
    /// The largest file (task input, program or result) a blob may hold; nodes store and
    /// relay blobs up to [`Params::stored_blob_bytes`], which leaves room for sealing it.
    pub max_blob_bytes: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            initial_block_reward: Amount::ogpu(2),
            halving_blocks: 5_250_000,
            min_fee: Amount::from_base_units(10u128.pow(14)),
            min_validator_stake: Amount::ogpu(1_000),
            min_provider_stake: Amount::ogpu(100),
            unbonding_blocks: 100_800,
            epoch_blocks: 1_000,
            jail_blocks: 10_000,
            bid_reveal_blocks: 1,
            start_timeout_blocks: 10,
            result_reveal_blocks: 5,
            verify_blocks: 50,
            challenge_blocks: 2,
            pool_commit_blocks: 2,
            max_rounds: 3,
            voting_blocks: 10_000,
            protocol_fee_bps: 200,
            verifier_fee_bps: 500,
            replica_fee_bps: 500,
            max_paid_replicas: 2,
            client_lock_bps: 1_000,
            start_slash_bps: 100,
            fault_slash_bps: 2_000,
            equivocation_slash_bps: 500,
            challenge_bond: Amount::ogpu(10),
            max_blob_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {key:?} cannot be {value}: {reason}")]
pub struct ParamError {
    pub key: ParamKey,
    pub value: u128,
    pub reason: &'static str,
}

impl Params {
    /// The largest blob nodes store and relay: a file of `max_blob_bytes` sealed for a
    /// private task (a header and a tag per 64 KiB chunk on top).
    pub fn stored_blob_bytes(&self) -> u64 {
        ogpu_core::sealed::sealed_len(self.max_blob_bytes)
    }

    /// The current value of a governable parameter, in the units `with` takes.
    pub fn get(&self, key: ParamKey) -> u128 {
        match key {
            ParamKey::MinFee => self.min_fee.base_units(),
            ParamKey::MinValidatorStake => self.min_validator_stake.base_units(),
            ParamKey::MinProviderStake => self.min_provider_stake.base_units(),
            ParamKey::ChallengeBond => self.challenge_bond.base_units(),
            ParamKey::UnbondingBlocks => self.unbonding_blocks.into(),
            ParamKey::EpochBlocks => self.epoch_blocks.into(),
            ParamKey::JailBlocks => self.jail_blocks.into(),
            ParamKey::BidRevealBlocks => self.bid_reveal_blocks.into(),
            ParamKey::StartTimeoutBlocks => self.start_timeout_blocks.into(),
            ParamKey::ResultRevealBlocks => self.result_reveal_blocks.into(),
            ParamKey::VerifyBlocks => self.verify_blocks.into(),
            ParamKey::ChallengeBlocks => self.challenge_blocks.into(),
            ParamKey::PoolCommitBlocks => self.pool_commit_blocks.into(),
            ParamKey::VotingBlocks => self.voting_blocks.into(),
            ParamKey::MaxAuctionRounds => self.max_rounds.into(),
            ParamKey::ProtocolFeeBps => self.protocol_fee_bps.into(),
            ParamKey::VerifierFeeBps => self.verifier_fee_bps.into(),
            ParamKey::ReplicaFeeBps => self.replica_fee_bps.into(),
            ParamKey::ClientLockBps => self.client_lock_bps.into(),
            ParamKey::StartSlashBps => self.start_slash_bps.into(),
            ParamKey::FaultSlashBps => self.fault_slash_bps.into(),
            ParamKey::EquivocationSlashBps => self.equivocation_slash_bps.into(),
            ParamKey::MaxBlobBytes => self.max_blob_bytes.into(),
        }
    }

    /// Checks every parameter against the bounds governance is held to, so a genesis file
    /// cannot set what a vote could not.
    pub fn validate(&self) -> Result<(), ParamError> {
        for key in ParamKey::ALL {
            self.with(ParamChange { key, value: self.get(key) })?;
        }
        Ok(())
    }

    /// The parameters with `change` applied, or why it is not allowed.
    pub fn with(&self, change: ParamChange) -> Result<Params, ParamError> {
        let ParamChange { key, value } = change;
        let error = |reason| ParamError { key, value, reason };
        let blocks = |max: u64| match u64::try_from(value) {
            Ok(v) if (1..=max).contains(&v) => Ok(v),
            _ => Err(error("a number of blocks must be at least 1 and within range")),
        };
        let bps = || match u16::try_from(value) {
            Ok(v) if v <= 10_000 => Ok(v),
            _ => Err(error("a share is 0 to 10000 basis points")),
        };
        let amount = Amount::from_base_units(value);
        let bounded_amount = || {
            if amount <= SUPPLY_CAP { Ok(amount) } else { Err(error("an amount cannot exceed the supply cap")) }
        };
        let mut p = self.clone();
        match key {
            ParamKey::MinFee => p.min_fee = bounded_amount()?,
            ParamKey::MinValidatorStake => p.min_validator_stake = bounded_amount()?,
            ParamKey::MinProviderStake => p.min_provider_stake = bounded_amount()?,
            ParamKey::ChallengeBond => p.challenge_bond = bounded_amount()?,
            ParamKey::UnbondingBlocks => p.unbonding_blocks = blocks(10_000_000)?,
            ParamKey::EpochBlocks => p.epoch_blocks = blocks(1_000_000)?,
            ParamKey::JailBlocks => p.jail_blocks = blocks(10_000_000)?,
            ParamKey::BidRevealBlocks => p.bid_reveal_blocks = blocks(1_000)?,
            ParamKey::StartTimeoutBlocks => p.start_timeout_blocks = blocks(10_000)?,
            ParamKey::ResultRevealBlocks => p.result_reveal_blocks = blocks(1_000)?,
            ParamKey::VerifyBlocks => p.verify_blocks = blocks(100_000)?,
            ParamKey::ChallengeBlocks => p.challenge_blocks = blocks(100_000)?,
            ParamKey::PoolCommitBlocks => p.pool_commit_blocks = blocks(1_000)?,
            ParamKey::VotingBlocks => p.voting_blocks = blocks(1_000_000)?,
            ParamKey::MaxAuctionRounds => {
                p.max_rounds =
                    u32::try_from(value).ok().filter(|r| (1..=100).contains(r)).ok_or(error("1 to 100 rounds"))?
            }
            ParamKey::ProtocolFeeBps => p.protocol_fee_bps = bps()?,
            ParamKey::VerifierFeeBps => p.verifier_fee_bps = bps()?,
            ParamKey::ReplicaFeeBps => p.replica_fee_bps = bps()?,
            ParamKey::ClientLockBps => p.client_lock_bps = bps()?,
            ParamKey::StartSlashBps => p.start_slash_bps = bps()?,
            ParamKey::FaultSlashBps => p.fault_slash_bps = bps()?,
            ParamKey::EquivocationSlashBps => p.equivocation_slash_bps = bps()?,
            ParamKey::MaxBlobBytes => {
                p.max_blob_bytes = u64::try_from(value)
                    .ok()
                    .filter(|b| (1 << 20..=1 << 40).contains(b))
                    .ok_or(error("1 MiB to 1 TiB"))?
            }
        }
        Ok(p)
    }
}
