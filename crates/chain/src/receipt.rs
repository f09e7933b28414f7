//! What applying a block produced: one receipt per transaction, and the events of the
//! block (including those from end-of-block steps such as awards and settlements), for
//! indexers, the API and tests.

use borsh::{BorshDeserialize, BorshSerialize};
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

/// Serialized with its kind under `type`, for the API's event feed.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
    /// A private task's client posted the blob keys of the task to a worker.
    KeysPosted {
        task: TaskId,
        to: Address,
    },
    /// The client raised the task's price cap and reserved `added` more.
    ToppedUp {
        task: TaskId,
        price_cap: Amount,
        added: Amount,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlashReason {
    StartTimeout,
    MissedDeadline,
    WrongResult,
    Equivocation,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PayReason {
    Execution,
    Replica,
    Verification,
    Compensation,
    ChallengeBond,
    ProtocolFee,
}

impl Event {
    /// The task the event is about, if any.
    pub fn task(&self) -> Option<TaskId> {
        match self {
            Event::TaskSubmitted { task, .. }
            | Event::AuctionOpened { task, .. }
            | Event::Awarded { task, .. }
            | Event::RaceOpened { task, .. }
            | Event::VerificationStarted { task, .. }
            | Event::Verdict { task, .. }
            | Event::VerificationSkipped { task, .. }
            | Event::Paid { task, .. }
            | Event::Refunded { task, .. }
            | Event::ToppedUp { task, .. }
            | Event::KeysPosted { task, .. }
            | Event::TaskEnded { task, .. } => Some(*task),
            Event::Slashed { .. }
            | Event::PoolCreated { .. }
            | Event::ProposalPassed { .. }
            | Event::ProposalRejected { .. }
            | Event::BlockReward { .. }
            | Event::EpochRewards { .. } => None,
        }
    }

    /// The accounts the event names: clients, providers, verifiers, payees.
    pub fn parties(&self) -> Vec<Address> {
        match self {
            Event::TaskSubmitted { client, .. } | Event::Refunded { client, .. } => vec![*client],
            Event::Awarded { provider, .. } => vec![*provider],
            Event::VerificationStarted { verifiers, .. } => verifiers.clone(),
            Event::Verdict { executor, .. } => vec![*executor],
            Event::Slashed { who, .. } => vec![*who],
            Event::Paid { to, .. } => vec![*to],
            _ => vec![],
        }
    }
}

/// Everything a block produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockOutcome {
    pub receipts: Vec<Receipt>,
    pub events: Vec<Event>,
}
