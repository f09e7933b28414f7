//! The API's request and response bodies, defined once: the server (`ogpu-api`) builds
//! them and the client reads them, so the two cannot drift apart. Records of the chain
//! (tasks, providers, pools, events) are `ogpu-chain`'s own types, listed with their id.

use ogpu_chain::Event;
use ogpu_chain::state::{Pool, Provider, Task};
use ogpu_core::tasklog::SignedLogEntry;
use ogpu_core::{Address, Amount, BlobHash, Hash, PoolId, TaskId};
use serde::{Deserialize, Serialize};

/// `GET /v1/status`: the node's view of the chain and the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub chain_id: String,
    pub height: u64,
    pub finalized_height: u64,
    pub validators: usize,
    pub peers: usize,
    pub mempool: usize,
    /// Transactions finalized since the node started.
    pub finalized_txs: u64,
    pub listen: Vec<String>,
}

/// `GET /v1/accounts/{address}`: the nonce an account's next transaction takes, and its
/// money by where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: Address,
    /// What it may spend.
    pub balance: Amount,
    pub nonce: u64,
    /// Reserved for its live tasks' executors and verifiers.
    pub escrow: Amount,
    /// Its tasks' client trust locks and its challenge bonds.
    pub trust_lock: Amount,
    /// As a validator, a provider and in pools.
    pub staked: Amount,
    /// Unstaked, waiting out the unbonding period.
    pub unbonding: Amount,
}

/// A finalized transaction as lists show it: its record, where the node has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSummary {
    pub hash: Hash,
    pub sender: Option<Address>,
    pub nonce: Option<u64>,
    pub fee: Option<Amount>,
    /// The body's kind (`transfer`, `submit_task`, ...).
    pub kind: Option<String>,
    pub height: Option<u64>,
    /// Why the chain refused it, if it did.
    pub error: Option<String>,
}

/// `GET /v1/accounts/{address}/txs`: the account's latest finalized transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTxs {
    pub address: Address,
    pub txs: Vec<TxSummary>,
}

/// `POST /v1/txs`: one signed transaction.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The transaction's canonical encoding, hex.
    pub tx: String,
}

/// `POST /v1/txs/batch`: many signed transactions.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    /// Canonical encodings, hex; at most 10,000.
    pub txs: Vec<String>,
}

/// The answer to `POST /v1/txs`: the admitted transaction's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitted {
    pub tx: Hash,
}

/// The answer to `POST /v1/txs/batch`: how many were admitted, and why each other was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchVerdicts {
    pub accepted: usize,
    pub rejected: Vec<BatchRefusal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRefusal {
    /// The transaction's place in the batch.
    pub index: usize,
    pub error: Refusal,
    pub detail: String,
}

/// Why a node's mempool refused a transaction: the `error` of a refused `POST /v1/txs`,
/// and of each refusal in a batch. The detail beside it gives the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Its bytes are not a transaction.
    Malformed,
    /// Signed for another chain.
    WrongChain,
    BadSignature,
    /// The account has used this nonce.
    NonceUsed,
    /// Too many nonces past the account's next one.
    NonceTooFarAhead,
    FeeTooLow,
    /// The sender cannot pay the fee.
    CannotPayFee,
    /// The sender cannot pay the fee besides those of its pending transactions.
    FeesOverBalance,
    /// The same transaction is pending already.
    Duplicate,
    /// Another transaction with this nonce is pending, with a fee this one does not beat
    /// by enough.
    ReplacementUnderpriced,
    /// The sender has as many transactions pending as one may.
    SenderFull,
    /// The mempool is full of transactions paying more.
    PoolFull,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::Malformed,
        Refusal::WrongChain,
        Refusal::BadSignature,
        Refusal::NonceUsed,
        Refusal::NonceTooFarAhead,
        Refusal::FeeTooLow,
        Refusal::CannotPayFee,
        Refusal::FeesOverBalance,
        Refusal::Duplicate,
        Refusal::ReplacementUnderpriced,
        Refusal::SenderFull,
        Refusal::PoolFull,
    ];

    /// The name the API gives it (`nonce_used`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::WrongChain => "wrong_chain",
            Refusal::BadSignature => "bad_signature",
            Refusal::NonceUsed => "nonce_used",
            Refusal::NonceTooFarAhead => "nonce_too_far_ahead",
            Refusal::FeeTooLow => "fee_too_low",
            Refusal::CannotPayFee => "cannot_pay_fee",
            Refusal::FeesOverBalance => "fees_over_balance",
            Refusal::Duplicate => "duplicate",
            Refusal::ReplacementUnderpriced => "replacement_underpriced",
            Refusal::SenderFull => "sender_full",
            Refusal::PoolFull => "pool_full",
        }
    }

    /// Whether the nonce was wrong for the node's view of the account (another client of
    /// the key used it, or a transaction before it was lost): re-reading the account's
    /// nonce may mend it.
    pub fn is_about_the_nonce(self) -> bool {
        matches!(
            self,
            Refusal::NonceUsed | Refusal::NonceTooFarAhead | Refusal::Duplicate | Refusal::ReplacementUnderpriced
        )
    }

    /// The refusal the API named `code`, if it is one.
    pub fn from_code(code: &str) -> Option<Refusal> {
        serde_json::from_value(serde_json::Value::String(code.to_string())).ok()
    }
}

/// `GET /v1/txs/{hash}`: a transaction the node knows, pending or finalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    pub hash: Hash,
    #[serde(flatten)]
    pub state: TxState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxState {
    /// In the node's mempool.
    Pending,
    /// In a finalized block, applied (`ok`) or refused by the chain with `error` (its fee
    /// and nonce spent all the same).
    Finalized { height: u64, index: u32, fee_paid: Amount, ok: bool, error: Option<String> },
}

/// `GET /v1/blocks/{height}`: a finalized block's header, its transactions with their
/// verdicts, and its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub height: u64,
    pub hash: Hash,
    pub parent: Hash,
    pub proposer: Address,
    pub time_ms: u64,
    pub tx_root: Hash,
    pub state_root: Hash,
    pub randomness: Hash,
    pub txs: Vec<TxSummary>,
    pub events: Vec<Event>,
}

/// A chain event with the height of its block, as the API lists a task's, a provider's
/// or an account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub height: u64,
    pub event: Event,
}

impl EventRecord {
    /// Records of `(height, event)` pairs, oldest first.
    pub fn list(events: Vec<(u64, Event)>) -> Vec<EventRecord> {
        events.into_iter().map(|(height, event)| EventRecord { height, event }).collect()
    }
}

/// A task with its id, as `GET /v1/tasks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: TaskId,
    #[serde(flatten)]
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    pub tasks: Vec<TaskView>,
}

/// `GET /v1/tasks/{id}`: the task, the name of its phase, and every event about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub view: TaskView,
    pub phase_name: String,
    pub events: Vec<EventRecord>,
}

/// A provider with its address, as `GET /v1/providers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub address: Address,
    #[serde(flatten)]
    pub provider: Provider,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderList {
    pub providers: Vec<ProviderView>,
}

/// `GET /v1/providers/{address}`: the provider and its recent awards, payments and slashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDetail {
    #[serde(flatten)]
    pub view: ProviderView,
    pub events: Vec<EventRecord>,
}

/// `GET /v1/accounts/{address}/events`: recent events naming the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyEvents {
    pub address: Address,
    pub events: Vec<EventRecord>,
}

/// A pool with its id, as `GET /v1/pools` and `GET /v1/pools/{id}` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    pub id: PoolId,
    #[serde(flatten)]
    pub pool: Pool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolList {
    pub pools: Vec<PoolView>,
}

/// The answer to `POST /v1/blobs`: the stored blob's hash and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    pub hash: BlobHash,
    pub size: u64,
}

/// The answer to `POST /v1/tasks/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedLogs {
    pub stored: usize,
    /// Entries the node had already.
    pub duplicates: usize,
}

/// `GET /v1/tasks/{id}/logs`: signed entries oldest first, and the cursor to read on from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    pub entries: Vec<SignedLogEntry>,
    pub next: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reads_back_from_its_code() {
        for refusal in Refusal::ALL {
            assert_eq!(Refusal::from_code(refusal.code()), Some(refusal));
            assert_eq!(serde_json::to_value(refusal).unwrap(), refusal.code());
        }
        assert_eq!(Refusal::from_code("rejected"), None);
    }

    #[test]
    fn a_transaction_reads_back_pending_or_finalized() {
        let pending = TxView { hash: Hash([1; 32]), state: TxState::Pending };
        let json = serde_json::to_value(&pending).unwrap();
        assert_eq!(json["status"], "pending");
        assert_eq!(serde_json::from_value::<TxView>(json).unwrap(), pending);
        let finalized = TxView {
            hash: Hash([2; 32]),
            state: TxState::Finalized {
                height: 7,
                index: 0,
                fee_paid: Amount::ogpu(1),
                ok: false,
                error: Some("no".into()),
            },
        };
        let json = serde_json::to_value(&finalized).unwrap();
        assert_eq!((json["status"].as_str(), json["height"].as_u64()), (Some("finalized"), Some(7)));
        assert_eq!(serde_json::from_value::<TxView>(json).unwrap(), finalized);
    }
}
