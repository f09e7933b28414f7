//! What applying a block produced: one receipt per transaction, and the events of the
//! block (including those from end-of-block steps such as awards and settlements), for
//! indexers, the API and tests.

use ogpu_core::{Address, Amount, Hash, PoolId, ProposalId, TaskId};

use crate::error::TxError;
use crate::state::{Outcome, VerifyReason};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub tx: Hash,
    pub result: Result<(), TxError>,
    /// The fee actually charged: zero when the transaction was not admitted.
    pub fee_paid: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    TaskSubmitted {
        task: TaskId,
        client: Address,
        reserved: Amount,
    },
    AuctionOpened {
        task: TaskId,
        round: u32,
        commit_end: u64,
        reveal_end: u64,
    },
    Awarded {
        task: TaskId,
        provider: Address,
        price: Amount,
    },
    RaceOpened {
        task: TaskId,
        round: u32,
        commit_end: u64,
    },
    VerificationStarted {
        task: TaskId,
        reason: VerifyReason,
        verifiers: Vec<Address>,
    },
    Verdict {
        task: TaskId,
        executor: Address,
        pass: bool,
    },
    /// The policy called for verifiers, but no eligible provider (or no escrow) was left.
    VerificationSkipped {
        task: TaskId,
        reason: VerifyReason,
    },
    Slashed {
        who: Address,
        amount: Amount,
        reason: SlashReason,
    },
    Paid {
        task: TaskId,
        to: Address,
        amount: Amount,
        why: PayReason,
    },
    Refunded {
        task: TaskId,
        client: Address,
        amount: Amount,
    },
    TaskEnded {
        task: TaskId,
        outcome: Outcome,
    },
    PoolCreated {
        pool: PoolId,
    },
    ProposalPassed {
        proposal: ProposalId,
    },
    ProposalRejected {
        proposal: ProposalId,
    },
    BlockReward {
        amount: Amount,
    },
    EpochRewards {
        epoch: u64,
        paid: Amount,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashReason {
    StartTimeout,
    MissedDeadline,
    WrongResult,
    Equivocation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayReason {
    Execution,
    Replica,
    Verification,
    Compensation,
    ChallengeBond,
    ProtocolFee,
}

/// Everything a block produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockOutcome {
    pub receipts: Vec<Receipt>,
    pub events: Vec<Event>,
}
