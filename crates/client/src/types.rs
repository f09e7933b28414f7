//! The API's request and response bodies, defined once: the server (`ogpu-api`) builds
//! them and the client reads them, so the two cannot drift apart. Records of the chain
//! (tasks, providers, pools, events) are `ogpu-chain`'s own types, listed with their id.

use ogpu_chain::Event;
use ogpu_chain::state::{Pool, Proposal, Provider, Task, Validator};
use ogpu_core::tasklog::SignedLogEntry;
use ogpu_core::{Address, Amount, BlobHash, Hash, PoolId, ProposalId, TaskId};
use serde::{Deserialize, Serialize};

/// `GET /v1/status`: the node's view of the chain and the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The chain's id, which every transaction must be signed for.
    pub chain_id: String,
    /// The node's chain height; it reports its finalized height here, as in
    /// `finalized_height`.
    pub height: u64,
    /// The height of the newest finalized block.
    pub finalized_height: u64,
    /// How many validators are in the active set.
    pub validators: usize,
    /// How many peers the node is connected to now.
    pub peers: usize,
    /// How many transactions wait in the node's mempool.
    pub mempool: usize,
    /// Transactions finalized since the node started.
    pub finalized_txs: u64,
    /// The peer-to-peer addresses (multiaddrs) the node listens on.
    pub listen: Vec<String>,
}

/// `GET /v1/accounts/{address}`: the nonce an account's next transaction takes, and its
/// money by where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account asked about.
    pub address: Address,
    /// What it may spend.
    pub balance: Amount,
    /// The nonce its next transaction must carry.
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
    /// The transaction's hash.
    pub hash: Hash,
    /// The signer's address; absent, like every field below, without a record.
    pub sender: Option<Address>,
    /// The nonce it carried.
    pub nonce: Option<u64>,
    /// The fee it offered; what was charged is in [`TxState::Finalized`].
    pub fee: Option<Amount>,
    /// The body's kind (`transfer`, `submit_task`, ...).
    pub kind: Option<String>,
    /// The height of the block that holds it.
    pub height: Option<u64>,
    /// Why the chain refused it, if it did.
    pub error: Option<String>,
}

/// `GET /v1/accounts/{address}/txs`: the account's latest finalized transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTxs {
    /// The account asked about.
    pub address: Address,
    /// The transactions it sent, oldest first: at most its latest 100.
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
    /// The transaction's hash, by which `GET /v1/txs/{hash}` follows it.
    pub tx: Hash,
}

/// The answer to `POST /v1/txs/batch`: how many were admitted, and why each other was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchVerdicts {
    /// How many the mempool admitted.
    pub accepted: usize,
    /// Each one it refused, in batch order.
    pub rejected: Vec<BatchRefusal>,
}

/// One transaction of a batch that the mempool refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRefusal {
    /// The transaction's place in the batch.
    pub index: usize,
    /// Why it was refused.
    pub error: Refusal,
    /// The mempool's explanation, with the numbers (next nonce, minimum fee, ...).
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
    /// The signature does not verify against the sender's key.
    BadSignature,
    /// The account has used this nonce.
    NonceUsed,
    /// Too many nonces past the account's next one.
    NonceTooFarAhead,
    /// The fee is below the chain's minimum fee.
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
    /// Every refusal there is, in declaration order.
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
    /// The transaction's hash.
    pub hash: Hash,
    /// Where it stands; its fields sit beside `hash` in the JSON.
    #[serde(flatten)]
    pub state: TxState,
}

/// Where a transaction stands, tagged in the JSON by `status`: `pending` or `finalized`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxState {
    /// In the node's mempool.
    Pending,
    /// In a finalized block, applied (`ok`) or refused by the chain with `error` (its fee
    /// and nonce spent all the same).
    Finalized {
        /// The height of the block that holds it.
        height: u64,
        /// Its place among that block's transactions.
        index: u32,
        /// The fee charged; zero when the chain refused it before charging (a stale
        /// nonce, a fee below the minimum or more than the balance).
        fee_paid: Amount,
        /// Whether the chain applied it: `true` exactly when `error` is absent.
        ok: bool,
        /// Why the chain refused it, when it did.
        error: Option<String>,
    },
}

/// `GET /v1/blocks/{height}`: a finalized block's header, its transactions with their
/// verdicts, and its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    /// The block's height.
    pub height: u64,
    /// The hash of its header.
    pub hash: Hash,
    /// The hash of the block before it.
    pub parent: Hash,
    /// The address of the validator that proposed it.
    pub proposer: Address,
    /// When the proposer made it, in ms since the Unix epoch; informative only, as the
    /// protocol counts windows in blocks.
    pub time_ms: u64,
    /// The Merkle root of its transactions' hashes, in block order.
    pub tx_root: Hash,
    /// The root of the state after its transactions.
    pub state_root: Hash,
    /// The proposer's VRF output, the randomness the chain draws from at this height.
    pub randomness: Hash,
    /// Its transactions in block order, each with the chain's verdict.
    pub txs: Vec<TxSummary>,
    /// The chain events it produced, in order.
    pub events: Vec<Event>,
}

/// A chain event with the height of its block, as the API lists a task's, a provider's
/// or an account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The height of the block that produced the event.
    pub height: u64,
    /// The event itself.
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
    /// The task's id: the hash of the transaction that submitted it.
    pub id: TaskId,
    /// The task as the finalized state holds it; its fields sit beside `id` in the JSON.
    #[serde(flatten)]
    pub task: Task,
}

/// `GET /v1/tasks`: the tasks that match the filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskList {
    /// In task id order, at most the filter's limit.
    pub tasks: Vec<TaskView>,
}

/// `GET /v1/tasks/{id}`: the task, the name of its phase, and every event about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The task with its id; its fields sit at the top level of the JSON.
    #[serde(flatten)]
    pub view: TaskView,
    /// The name of its phase (`bidding`, `executing`, ..., `done`).
    pub phase_name: String,
    /// Every event about it, oldest first.
    pub events: Vec<EventRecord>,
}

/// A provider with its address, as `GET /v1/providers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    /// The provider's account address.
    pub address: Address,
    /// Its device profile, stake, reputation and jail term; its fields sit beside
    /// `address` in the JSON.
    #[serde(flatten)]
    pub provider: Provider,
}

/// `GET /v1/providers`: registered providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderList {
    /// In address order, at most the limit asked for.
    pub providers: Vec<ProviderView>,
}

/// `GET /v1/providers/{address}`: the provider and its recent awards, payments and slashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDetail {
    /// The provider with its address; its fields sit at the top level of the JSON.
    #[serde(flatten)]
    pub view: ProviderView,
    /// Events naming it, oldest first: at most its latest 100.
    pub events: Vec<EventRecord>,
}

/// `GET /v1/accounts/{address}/events`: recent events naming the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyEvents {
    /// The account asked about.
    pub address: Address,
    /// Up to its latest 100 events naming it (awards, payments, slashes), oldest first.
    pub events: Vec<EventRecord>,
}

/// A pool with its id, as `GET /v1/pools` and `GET /v1/pools/{id}` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    /// The pool's id.
    pub id: PoolId,
    /// Its owner, spec and subscribers' stakes; its fields sit beside `id` in the JSON.
    #[serde(flatten)]
    pub pool: Pool,
}

/// `GET /v1/pools`: the pools on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolList {
    /// In id order, at most the limit asked for.
    pub pools: Vec<PoolView>,
}

/// The answer to `POST /v1/blobs`: the stored blob's hash and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlob {
    /// The blake3 hash of its bytes, by which it is fetched.
    pub hash: BlobHash,
    /// Its length in bytes.
    pub size: u64,
}

/// The answer to `POST /v1/tasks/{id}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedLogs {
    /// Entries the node kept from this request.
    pub stored: usize,
    /// Entries the node had already.
    pub duplicates: usize,
}

/// `GET /v1/tasks/{id}/logs`: signed entries oldest first, and the cursor to read on from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// Kept entries from the cursor asked for on, exactly as signed; empty when there
    /// are none.
    pub entries: Vec<SignedLogEntry>,
    /// The cursor to ask for next: one past the last entry's, or the one asked for when
    /// there were none.
    pub next: u64,
}

/// A validator with its address, as `GET /v1/validators` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorView {
    /// The validator's account.
    pub address: Address,
    /// Its signing key, bonded stake and jail term.
    pub validator: Validator,
    /// Whether it is in the current epoch's validator set (it votes and proposes).
    pub active: bool,
}

/// `GET /v1/validators`: every bonded validator, in order of address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorList {
    /// In order of address.
    pub validators: Vec<ValidatorView>,
}

/// A proposal to change a parameter, with its id, as `GET /v1/proposals` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalView {
    /// The proposal's id: the hash of the transaction that made it.
    pub id: ProposalId,
    /// What it changes, who proposed it, when voting ends and the votes so far. Nested,
    /// not flattened: serde cannot read a flattened `u128` (the change's value) back.
    pub proposal: Proposal,
}

/// `GET /v1/proposals`: every proposal still being voted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalList {
    /// In order of id.
    pub proposals: Vec<ProposalView>,
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
