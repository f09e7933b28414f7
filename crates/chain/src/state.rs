//! The chain state and its records.
//!
//! Maps are persistent (`imbl`): cloning a state is O(1) and shares structure, so the
//! executor can snapshot before each transaction and roll back a failed one exactly,
//! and `apply_block` can leave the caller's state untouched.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use imbl::{OrdMap, OrdSet};
use ogpu_core::merkle::{self, Proof};
use ogpu_core::sealed::Envelope;
use ogpu_core::spec::{DeviceProfile, PoolSpec, TaskSpec};
use ogpu_core::tx::{ParamChange, ResultClaim, StakeRole, VerificationReport};
use ogpu_core::{Address, Amount, BlobHash, ChainId, Hash, PoolId, ProposalId, PublicKey, TaskId};

use crate::error::TxError;
use crate::params::Params;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct Account {
    pub balance: Amount,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Validator {
    pub key: PublicKey,
    pub stake: Amount,
    /// Excluded from the validator set before this height.
    pub jailed_until: u64,
}

/// An account's money by where it sits (see [`State::holdings`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holdings {
    /// The balance it may spend.
    pub available: Amount,
    /// Reserved for its live tasks' executors and verifiers.
    pub escrow: Amount,
    /// Its tasks' client trust locks and its challenge bonds, returned unless forfeited.
    pub trust_lock: Amount,
    /// As a validator, a provider and in pools.
    pub staked: Amount,
    /// Unstaked and waiting out the unbonding period.
    pub unbonding: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Provider {
    pub profile: DeviceProfile,
    /// The provider's trust lock.
    pub stake: Amount,
    pub reputation: u16,
    pub jailed_until: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Unbonding {
    pub role: StakeRole,
    pub amount: Amount,
    pub release_height: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    pub owner: Address,
    pub spec: PoolSpec,
    /// Each subscriber's pool stake.
    pub subscribers: BTreeMap<Address, Amount>,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    pub proposer: Address,
    pub change: ParamChange,
    pub voting_ends: u64,
    pub votes: BTreeMap<Address, bool>,
}

/// A task (an auction task or a pool job) from submission to its end.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub client: Address,
    pub spec: TaskSpec,
    pub submitted_at: u64,
    /// The price each executor is paid at most: the auction's maximum or the pool's price.
    pub price_cap: Amount,
    /// What is left of the client's reservation to pay executors and the protocol fee.
    pub escrow: Amount,
    /// What is left to pay verifiers. Kept apart from `escrow`, so verification rounds,
    /// however many, never eat into what the executors were promised.
    pub verification_budget: Amount,
    /// The client's trust lock, returned at the end unless the client forfeits it.
    pub client_lock: Amount,
    pub phase: Phase,
    pub executors: Vec<Executor>,
    /// Providers barred from this task: they failed or cheated on it.
    pub excluded: BTreeSet<Address>,
    /// Auction or race rounds held so far.
    pub rounds: u32,
    pub verifiers: Vec<VerifierSlot>,
    pub challenge: Option<Challenge>,
    /// Height of the next timed step, if any.
    pub due: Option<u64>,
    /// A private task's blob keys, per worker they were posted to (see `PostKeys`).
    pub keys: BTreeMap<Address, Vec<Envelope>>,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Sealed bids until `commit_end`, reveals until `reveal_end`; then the award.
    Bidding {
        commit_end: u64,
        reveal_end: u64,
        bids: BTreeMap<Address, Bid>,
    },
    /// Awarded executors start, compute and commit their results.
    Executing,
    /// Every executor has committed; results are revealed.
    Revealing {
        reveal_end: u64,
    },
    /// Pool subscribers race: commits until `commit_end`, reveals until `reveal_end`.
    Racing {
        commit_end: u64,
        reveal_end: u64,
        entries: Vec<RaceEntry>,
    },
    Verifying {
        reason: VerifyReason,
        report_end: u64,
    },
    /// Results are in and verified; anyone may challenge until `challenge_end`.
    Challengeable {
        challenge_end: u64,
    },
    Done(Outcome),
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Bidding { .. } => "bidding",
            Phase::Executing => "executing",
            Phase::Revealing { .. } => "revealing",
            Phase::Racing { .. } => "racing",
            Phase::Verifying { .. } => "verifying",
            Phase::Challengeable { .. } => "challengeable",
            Phase::Done(_) => "done",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Bid {
    pub commitment: Hash,
    pub revealed: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct RaceEntry {
    pub provider: Address,
    pub commitment: Hash,
    pub claim: Option<ResultClaim>,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Executor {
    pub provider: Address,
    /// What this executor is paid on success.
    pub price: Amount,
    pub stage: Stage,
    /// The height by which the current stage must be left.
    pub stage_due: u64,
    /// Where this executor's result of a private task lies, sealed: the index blob it
    /// revealed. Only parties to the task can open it.
    pub sealed: Option<BlobHash>,
}

impl Executor {
    /// The height by which this executor must act, if it has anything left to do alone.
    pub fn deadline(&self) -> Option<u64> {
        matches!(self.stage, Stage::Awarded | Stage::Started).then_some(self.stage_due)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Awarded,
    Started,
    Committed(Hash),
    Revealed(ResultClaim),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyReason {
    SpotCheck,
    ProofOfLearning,
    /// Executors disagree and no quorum was reached.
    Dispute,
    Challenge,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct VerifierSlot {
    pub verifier: Address,
    /// The verifier's stake when it was chosen: what its reports weigh.
    pub weight: Amount,
    /// The checkpoint segment to replay, for proof of learning.
    pub segment: Option<u32>,
    pub reports: BTreeMap<Address, VerificationReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    pub challenger: Address,
    pub bond: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed {
        output: Hash,
    },
    Cancelled,
    /// No eligible bid: why each provider could not take the task.
    Unfilled(ScreeningReport),
    Failed(String),
}

/// Why nobody took a task: how many providers failed which requirement (each counted
/// once, at the first requirement it fails), and how many bid at all.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct ScreeningReport {
    pub providers: u32,
    pub stake_too_low: u32,
    pub jailed: u32,
    pub too_few_gpus: u32,
    pub too_little_vram: u32,
    pub model_not_allowed: u32,
    pub reputation_too_low: u32,
    pub excluded: u32,
    pub no_reader_key: u32,
    pub eligible: u32,
    pub sealed_bids: u32,
    pub revealed_bids: u32,
}

/// Money minted and destroyed since genesis.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize,
)]
pub struct Supply {
    pub minted: Amount,
    pub burned: Amount,
}

#[derive(Debug, Clone)]
pub struct State {
    pub chain_id: ChainId,
    pub height: u64,
    pub last_block: Hash,
    pub randomness: Hash,
    pub time_ms: u64,
    pub params: Params,
    pub supply: Supply,
    /// Block rewards and protocol fees waiting for the next epoch boundary.
    pub reward_pool: Amount,
    pub accounts: OrdMap<Address, Account>,
    pub validators: OrdMap<Address, Validator>,
    /// The validator set of the current epoch, with the stake each had at its start.
    pub active_set: OrdMap<Address, (PublicKey, Amount)>,
    pub providers: OrdMap<Address, Provider>,
    pub unbonding: OrdMap<(Address, u64), Unbonding>,
    pub next_unbonding: u64,
    pub pools: OrdMap<PoolId, Pool>,
    pub tasks: OrdMap<TaskId, Task>,
    /// `(height, task)`: a task with something to do at the end of that block.
    pub timers: OrdSet<(u64, TaskId)>,
    pub proposals: OrdMap<ProposalId, Proposal>,
    /// Offences already punished, so one piece of evidence slashes once.
    pub punished: OrdSet<(PublicKey, u64)>,
}

impl State {
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    pub fn balance(&self, address: &Address) -> Amount {
        self.account(address).balance
    }

    pub fn credit(&mut self, address: Address, amount: Amount) -> Result<(), TxError> {
        if amount.is_zero() {
            return Ok(());
        }
        let account = self.accounts.entry(address).or_default();
        account.balance = account.balance.checked_add(amount).ok_or(TxError::Overflow)?;
        Ok(())
    }

    pub fn debit(&mut self, address: Address, amount: Amount) -> Result<(), TxError> {
        let have = self.balance(&address);
        let left = have.checked_sub(amount).ok_or(TxError::InsufficientFunds { need: amount, have })?;
        if let Some(account) = self.accounts.get_mut(&address) {
            account.balance = left;
        }
        Ok(())
    }

    pub fn burn(&mut self, amount: Amount) -> Result<(), TxError> {
        self.supply.burned = self.supply.burned.checked_add(amount).ok_or(TxError::Overflow)?;
        Ok(())
    }

    /// Moves a task's timer to `due` (or removes it).
    pub fn schedule(&mut self, id: TaskId, task: &mut Task, due: Option<u64>) {
        if let Some(old) = task.due {
            self.timers.remove(&(old, id));
        }
        if let Some(new) = due {
            self.timers.insert((new, id));
        }
        task.due = due;
    }

    /// Every unit of money the state holds, wherever it sits. Equal to
    /// `supply.minted - supply.burned` after every block; the tests check it.
    pub fn money_held(&self) -> Option<Amount> {
        let mut total = self.reward_pool;
        let mut add = |amount: Amount| total.checked_add(amount).map(|t| total = t);
        for account in self.accounts.values() {
            add(account.balance)?;
        }
        for validator in self.validators.values() {
            add(validator.stake)?;
        }
        for provider in self.providers.values() {
            add(provider.stake)?;
        }
        for entry in self.unbonding.values() {
            add(entry.amount)?;
        }
        for pool in self.pools.values() {
            for stake in pool.subscribers.values() {
                add(*stake)?;
            }
        }
        for task in self.tasks.values() {
            add(task.escrow)?;
            add(task.verification_budget)?;
            add(task.client_lock)?;
            if let Some(challenge) = &task.challenge {
                add(challenge.bond)?;
            }
        }
        Some(total)
    }

    /// What `address` holds, by where it sits. Walks every task and pool: for a wallet's
    /// view, not for block execution.
    pub fn holdings(&self, address: &Address) -> Option<Holdings> {
        let mut holdings = Holdings { available: self.balance(address), ..Holdings::default() };
        let add = |to: &mut Amount, amount: Amount| to.checked_add(amount).map(|sum| *to = sum);
        if let Some(validator) = self.validators.get(address) {
            add(&mut holdings.staked, validator.stake)?;
        }
        if let Some(provider) = self.providers.get(address) {
            add(&mut holdings.staked, provider.stake)?;
        }
        for pool in self.pools.values() {
            if let Some(stake) = pool.subscribers.get(address) {
                add(&mut holdings.staked, *stake)?;
            }
        }
        for (_, entry) in self.unbonding.range((*address, 0)..=(*address, u64::MAX)) {
            add(&mut holdings.unbonding, entry.amount)?;
        }
        for task in self.tasks.values() {
            if task.client == *address {
                add(&mut holdings.escrow, task.escrow)?;
                add(&mut holdings.escrow, task.verification_budget)?;
                add(&mut holdings.trust_lock, task.client_lock)?;
            }
            if let Some(challenge) = task.challenge.as_ref().filter(|c| c.challenger == *address) {
                add(&mut holdings.trust_lock, challenge.bond)?;
            }
        }
        Some(holdings)
    }

    /// Every entry of the state as `(key, value)` leaf hashes in a fixed order, each key
    /// prefixed by the table it belongs to.
    fn leaves(&self) -> Vec<(Vec<u8>, Hash)> {
        fn table<K: BorshSerialize, V: BorshSerialize>(
            out: &mut Vec<(Vec<u8>, Hash)>,
            name: u8,
            entries: impl Iterator<Item = (K, V)>,
        ) {
            for (key, value) in entries {
                let mut key_bytes = vec![name];
                key.serialize(&mut key_bytes).expect("writing to a Vec cannot fail");
                let value = borsh::to_vec(&value).expect("writing to a Vec cannot fail");
                let leaf = Hash::tagged("ogpu/state-leaf", &[&key_bytes, &value]);
                out.push((key_bytes, leaf));
            }
        }
        let mut out = Vec::with_capacity(self.accounts.len() + 64);
        // `last_block` stays out: it is set from the header after the root is computed.
        let globals = (
            &self.chain_id,
            self.height,
            &self.randomness,
            self.time_ms,
            &self.params,
            &self.supply,
            self.reward_pool,
            self.next_unbonding,
        );
        table(&mut out, 0, std::iter::once(((), globals)));
        table(&mut out, 1, self.accounts.iter());
        table(&mut out, 2, self.validators.iter());
        table(&mut out, 3, self.active_set.iter());
        table(&mut out, 4, self.providers.iter());
        table(&mut out, 5, self.unbonding.iter());
        table(&mut out, 6, self.pools.iter());
        table(&mut out, 7, self.tasks.iter());
        table(&mut out, 8, self.timers.iter().map(|t| (t, ())));
        table(&mut out, 9, self.proposals.iter());
        table(&mut out, 10, self.punished.iter().map(|p| (p, ())));
        out
    }

    /// The Merkle root over the whole state.
    pub fn root(&self) -> Hash {
        let leaves: Vec<Hash> = self.leaves().into_iter().map(|(_, leaf)| leaf).collect();
        merkle::root(&leaves)
    }

    /// A proof that `address` holds `account()` in the state with root [`State::root`].
    pub fn prove_account(&self, address: &Address) -> Option<AccountProof> {
        let leaves = self.leaves();
        let mut key = vec![1u8];
        address.serialize(&mut key).expect("writing to a Vec cannot fail");
        let index = leaves.iter().position(|(k, _)| *k == key)?;
        let hashes: Vec<Hash> = leaves.iter().map(|(_, leaf)| *leaf).collect();
        Some(AccountProof { address: *address, account: self.account(address), path: merkle::prove(&hashes, index)? })
    }
}

/// What a light client needs to check one account against a state root.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccountProof {
    pub address: Address,
    pub account: Account,
    pub path: Proof,
}

impl AccountProof {
    pub fn verify(&self, state_root: &Hash) -> bool {
        let mut key = vec![1u8];
        self.address.serialize(&mut key).expect("writing to a Vec cannot fail");
        let value = borsh::to_vec(&self.account).expect("writing to a Vec cannot fail");
        self.path.verify(state_root, &Hash::tagged("ogpu/state-leaf", &[&key, &value]))
    }
}
