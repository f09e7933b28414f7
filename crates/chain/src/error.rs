//! Why a transaction or a block is refused.

use ogpu_core::spec::SpecError;
use ogpu_core::vote::EvidenceError;
use ogpu_core::{Amount, ChainId, Hash};

use crate::params::ParamError;

/// Why a transaction failed. Admission failures (see [`TxError::is_admission`]) leave
/// the state exactly as it was; any other failure charges the fee and consumes the nonce,
/// and changes nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    // Admission: the sender cannot be held to the transaction, or cannot pay for it.
    #[error("transaction is for chain {got}, this is {expected}")]
    WrongChain { expected: ChainId, got: ChainId },
    #[error("the signature does not verify for the sender's key")]
    BadSignature,
    #[error("nonce {got} was already used; the next nonce is {expected}")]
    NonceReplayed { expected: u64, got: u64 },
    #[error("nonce {got} skips ahead; the next nonce is {expected}")]
    NonceSkipped { expected: u64, got: u64 },
    #[error("fee {got:?} is below the minimum fee {min:?}")]
    FeeTooLow { min: Amount, got: Amount },
    #[error("balance {balance:?} cannot pay the fee {fee:?}")]
    CannotPayFee { balance: Amount, fee: Amount },

    // Execution.
    #[error("insufficient funds: need {need:?}, have {have:?}")]
    InsufficientFunds { need: Amount, have: Amount },
    #[error("amount overflow")]
    Overflow,
    #[error("the amount must be more than zero")]
    ZeroAmount,
    #[error("stake would be {would_be:?}, below the minimum {min:?}; stake more or unstake everything")]
    StakeBelowMinimum { min: Amount, would_be: Amount },
    #[error("cannot unstake {want:?}: only {have:?} is staked")]
    NotEnoughStake { have: Amount, want: Amount },
    #[error("nothing to withdraw yet{}", .next_release.map(|h| format!("; the next unbonding ends at height {h}")).unwrap_or_default())]
    NothingToWithdraw { next_release: Option<u64> },
    #[error("stake as a provider only after registering a device profile")]
    NotAProvider,
    #[error("this account is already a registered provider")]
    AlreadyRegistered,
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error("no task {0}")]
    UnknownTask(Hash),
    #[error("no pool {0}")]
    UnknownPool(Hash),
    #[error("no proposal {0}")]
    UnknownProposal(Hash),
    #[error("only the task's client may cancel it, top it up or post its keys")]
    NotTheClient,
    #[error("only an auction task takes a top-up: a pool job is paid the pool's price")]
    NotAnAuction,
    #[error("a top-up must raise the price cap above {cap:?}; it names {got:?}")]
    TopUpNotHigher { cap: Amount, got: Amount },
    #[error("a task can be cancelled only before its auction ends; it is {phase}")]
    NotCancellable { phase: &'static str },
    #[error("the task is {phase}, which does not take this transaction")]
    WrongPhase { phase: &'static str },
    #[error("outside the window: open from height {opens} to {closes}, this is height {height}")]
    OutsideWindow { opens: u64, closes: u64, height: u64 },
    #[error("this provider has already committed")]
    DoubleCommit,
    #[error("nothing was committed to reveal")]
    RevealWithoutCommit,
    #[error("the revealed value does not match the commitment")]
    RevealMismatch,
    #[error("this provider has already revealed")]
    AlreadyRevealed,
    #[error("the bid {price:?} is above the task's maximum {max:?}")]
    PriceAboveMax { price: Amount, max: Amount },
    #[error("the result claim is invalid: {0}")]
    InvalidClaim(&'static str),
    #[error("no provider is available to verify a challenge, or the task's escrow cannot pay them")]
    NoVerifiersAvailable,
    #[error(
        "the deadline of {got} blocks is longer than the unbonding period of {max}, after which a late provider's stake could be gone"
    )]
    DeadlineTooLong { max: u64, got: u64 },
    #[error("the provider cannot take this task: {0}")]
    Ineligible(Ineligible),
    #[error("the sender is not an executor of this task")]
    NotAnExecutor,
    #[error("the task is not private: it has no keys to post or reasons to decline")]
    NotPrivate,
    #[error("keys go only to the task's executors, its chosen verifiers and its client")]
    NotAWorker,
    #[error("the task has {expected} blobs, one key each; {got} were posted")]
    KeyCount { expected: usize, got: usize },
    #[error("keys were already posted to this worker")]
    KeysAlreadyPosted,
    #[error("the executor has committed its result, so it has read the task")]
    AlreadyCommitted,
    #[error("a reason is at most {max} bytes")]
    ReasonTooLong { max: usize },
    #[error("the executor has already started")]
    AlreadyStarted,
    #[error("the executor must start before committing a result")]
    NotStarted,
    #[error("the provider is not subscribed to this pool")]
    NotSubscribed,
    #[error("the provider is already subscribed to this pool")]
    AlreadySubscribed,
    #[error("the pool's workload kind is {pool:?}, the job's is {job:?}")]
    PoolKindMismatch { pool: ogpu_core::spec::WorkloadKind, job: ogpu_core::spec::WorkloadKind },
    #[error("the sender is not a selected verifier of this task")]
    NotSelectedVerifier,
    #[error("the verifier already reported on this executor")]
    DuplicateReport,
    #[error("the report is inconsistent: {0}")]
    InconsistentReport(&'static str),
    #[error("the bond must be at least {min:?}")]
    BondTooSmall { min: Amount },
    #[error("the task has already been challenged")]
    AlreadyChallenged,
    #[error("invalid evidence: {0}")]
    Evidence(#[from] EvidenceError),
    #[error("the offender is not a validator")]
    UnknownValidator,
    #[error("this offence has already been punished")]
    AlreadyPunished,
    #[error("evidence from height {height} is older than the unbonding period")]
    EvidenceTooOld { height: u64 },
    #[error("only validators may propose and vote")]
    NotAValidator,
    #[error("{0}")]
    InvalidParam(#[from] ParamError),
    #[error("the validator has already voted on this proposal")]
    AlreadyVoted,
}

impl TxError {
    /// Whether the transaction was refused before the sender could be charged.
    pub fn is_admission(&self) -> bool {
        matches!(
            self,
            TxError::WrongChain { .. }
                | TxError::BadSignature
                | TxError::NonceReplayed { .. }
                | TxError::NonceSkipped { .. }
                | TxError::FeeTooLow { .. }
                | TxError::CannotPayFee { .. }
        )
    }
}

/// The first requirement of a task that a provider fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ineligible {
    #[error("not a registered provider")]
    NotRegistered,
    #[error("provider stake below the minimum")]
    StakeTooLow,
    #[error("jailed")]
    Jailed,
    #[error("too few GPUs")]
    TooFewGpus,
    #[error("too little GPU memory")]
    TooLittleVram,
    #[error("GPU model not allowed")]
    ModelNotAllowed,
    #[error("reputation too low")]
    ReputationTooLow,
    #[error("excluded after failing this task")]
    Excluded,
    #[error("no reader key registered, which a private task needs")]
    NoReaderKey,
}

/// Why a whole block is refused. The state is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain {got}, this is {expected}")]
    WrongChain { expected: ChainId, got: ChainId },
    #[error("block height {got} does not follow {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("block's parent {got} is not the last block {expected}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block time {got} ms is not after its parent's {parent} ms")]
    TimeNotIncreasing { parent: u64, got: u64 },
    #[error("block time {got} ms is more than {max_step} ms after its parent's {parent} ms")]
    TimeTooFarAhead { parent: u64, got: u64, max_step: u64 },
    #[error("the proposer is not in this epoch's validator set")]
    UnknownProposer,
    #[error("the proposer's signature on the header does not verify")]
    BadProposerSignature,
    #[error("the block randomness is not the proposer's VRF output")]
    BadRandomness,
    #[error("tx_root does not match the block's transactions")]
    TxRootMismatch,
    #[error("state_root {got} does not match the computed {computed}")]
    StateRootMismatch { computed: Hash, got: Hash },
    #[error("transaction {index} ({tx}) uses a nonce its sender has used; no block may carry it")]
    NonceAlreadyUsed { index: usize, tx: Hash },
    #[error("too many transactions: {count} (at most {max})")]
    TooManyTxs { count: usize, max: usize },
    #[error("a state invariant broke while applying the block: {0}")]
    Invariant(String),
}
