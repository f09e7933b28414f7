//! Transactions: `{chain_id, sender, nonce, fee, body, signature}`.
//!
//! The signature covers everything but itself under the `ogpu/tx` domain, so a
//! transaction cannot be replayed on another chain (chain id) or twice on this one (nonce).

use borsh::{BorshDeserialize, BorshSerialize};

use crate::address::Address;
use crate::amount::Amount;
use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::encoding::Canonical;
use crate::hash::Hash;
use crate::ids::{BlobHash, ChainId, PoolId, ProposalId, TaskId};
use crate::sealed::Envelope;
use crate::spec::{DeviceProfile, PoolSpec, TaskSpec};
use crate::vote::Evidence;

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    pub chain_id: ChainId,
    pub sender: PublicKey,
    pub nonce: u64,
    pub fee: Amount,
    pub body: TxBody,
    pub signature: Signature,
}

impl Canonical for Transaction {
    const MAX_ENCODED_LEN: usize = 64 * 1024;
}

/// Which stake an amount is bonded as: validating blocks, or the trust lock of a provider.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum StakeRole {
    Validator,
    Provider,
}

/// Every action an account can take on chain.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxBody {
    Transfer {
        to: Address,
        amount: Amount,
    },
    Stake {
        role: StakeRole,
        amount: Amount,
    },
    /// Starts unbonding; the amount stays slashable until it is withdrawn.
    Unstake {
        role: StakeRole,
        amount: Amount,
    },
    /// Pays out every unbonding entry of the sender whose period has passed.
    Withdraw,
    RegisterProvider {
        profile: DeviceProfile,
    },
    UpdateProvider {
        profile: DeviceProfile,
    },
    SubmitTask {
        spec: TaskSpec,
    },
    CancelTask {
        task: TaskId,
    },
    /// A sealed bid: [`bid_commitment`] of the price.
    CommitBid {
        task: TaskId,
        commitment: Hash,
    },
    RevealBid {
        task: TaskId,
        price: Amount,
        salt: Hash,
    },
    /// The awarded provider says it has started; a winner that does not is slashed.
    StartTask {
        task: TaskId,
    },
    CreatePool {
        spec: PoolSpec,
    },
    JoinPool {
        pool: PoolId,
        stake: Amount,
    },
    LeavePool {
        pool: PoolId,
    },
    /// A sealed result: [`result_commitment`] of the claim.
    CommitResult {
        task: TaskId,
        commitment: Hash,
    },
    RevealResult {
        task: TaskId,
        claim: ResultClaim,
        salt: Hash,
        /// A private task's result, sealed: the index blob of the sealed manifest and
        /// files (see `ogpu_core::manifest::write_sealed_index`). `None` for every other task.
        sealed: Option<BlobHash>,
    },
    Report {
        task: TaskId,
        report: VerificationReport,
    },
    Challenge {
        task: TaskId,
        bond: Amount,
    },
    Evidence {
        evidence: Box<Evidence>,
    },
    Propose {
        change: ParamChange,
    },
    Vote {
        proposal: ProposalId,
        approve: bool,
    },
    /// Raises an auction task's price cap to `max_price` before its award, for the round
    /// under way and any later one, reserving what the higher cap adds.
    TopUpTask {
        task: TaskId,
        max_price: Amount,
    },
    /// A private task's client gives one worker (an awarded executor or a chosen verifier)
    /// the keys of the task's blobs: one envelope per blob in the order of
    /// `Workload::blobs` (the program, then the inputs by name), each wrapped to the
    /// worker's reader key.
    PostKeys {
        task: TaskId,
        to: Address,
        keys: Vec<Envelope>,
    },
    /// An executor of a private task that cannot read it (its keys or a blob do not open)
    /// gives it back: the task ends with `reason`, nobody is paid, nobody slashed.
    DeclineTask {
        task: TaskId,
        reason: String,
    },
}

impl TxBody {
    /// The body's kind in snake case, as the API and CLI name it.
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::Transfer { .. } => "transfer",
            TxBody::Stake { .. } => "stake",
            TxBody::Unstake { .. } => "unstake",
            TxBody::Withdraw => "withdraw",
            TxBody::RegisterProvider { .. } => "register_provider",
            TxBody::UpdateProvider { .. } => "update_provider",
            TxBody::SubmitTask { .. } => "submit_task",
            TxBody::CancelTask { .. } => "cancel_task",
            TxBody::CommitBid { .. } => "commit_bid",
            TxBody::RevealBid { .. } => "reveal_bid",
            TxBody::StartTask { .. } => "start_task",
            TxBody::CreatePool { .. } => "create_pool",
            TxBody::JoinPool { .. } => "join_pool",
            TxBody::LeavePool { .. } => "leave_pool",
            TxBody::CommitResult { .. } => "commit_result",
            TxBody::RevealResult { .. } => "reveal_result",
            TxBody::Report { .. } => "report",
            TxBody::Challenge { .. } => "challenge",
            TxBody::Evidence { .. } => "evidence",
            TxBody::Propose { .. } => "propose",
            TxBody::Vote { .. } => "vote",
            TxBody::TopUpTask { .. } => "top_up_task",
            TxBody::PostKeys { .. } => "post_keys",
            TxBody::DeclineTask { .. } => "decline_task",
        }
    }
}

/// What a provider claims it computed: the output blob and, for training, the root of its
/// checkpoint trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ResultClaim {
    pub output: Hash,
    pub trace: Option<Trace>,
}

/// A proof-of-learning trace: a Merkle root over the blake3 hashes of `checkpoints`
/// checkpoints (and the data order), taken every K steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct Trace {
    pub root: Hash,
    pub checkpoints: u32,
}

/// A verifier's finding about one executor's result. For proof of learning it carries the
/// distance measured between the replayed and the committed checkpoint, in millionths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct VerificationReport {
    pub subject: Address,
    pub pass: bool,
    pub distance_ppm: u32,
}

/// The chain parameters that governance may change.
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
pub enum ParamKey {
    MinFee,
    MinValidatorStake,
    MinProviderStake,
    UnbondingBlocks,
    EpochBlocks,
    BidRevealBlocks,
    StartTimeoutBlocks,
    ResultRevealBlocks,
    VerifyBlocks,
    ChallengeBlocks,
    PoolCommitBlocks,
    VotingBlocks,
    JailBlocks,
    ProtocolFeeBps,
    VerifierFeeBps,
    ReplicaFeeBps,
    ClientLockBps,
    StartSlashBps,
    FaultSlashBps,
    EquivocationSlashBps,
    ChallengeBond,
    MaxAuctionRounds,
    MaxBlobBytes,
}

impl ParamKey {
    /// Every governable parameter, so validation and tests can walk them all.
    pub const ALL: [ParamKey; 23] = [
        ParamKey::MinFee,
        ParamKey::MinValidatorStake,
        ParamKey::MinProviderStake,
        ParamKey::UnbondingBlocks,
        ParamKey::EpochBlocks,
        ParamKey::BidRevealBlocks,
        ParamKey::StartTimeoutBlocks,
        ParamKey::ResultRevealBlocks,
        ParamKey::VerifyBlocks,
        ParamKey::ChallengeBlocks,
        ParamKey::PoolCommitBlocks,
        ParamKey::VotingBlocks,
        ParamKey::JailBlocks,
        ParamKey::ProtocolFeeBps,
        ParamKey::VerifierFeeBps,
        ParamKey::ReplicaFeeBps,
        ParamKey::ClientLockBps,
        ParamKey::StartSlashBps,
        ParamKey::FaultSlashBps,
        ParamKey::EquivocationSlashBps,
        ParamKey::ChallengeBond,
        ParamKey::MaxAuctionRounds,
        ParamKey::MaxBlobBytes,
    ];

    /// Whether the value is an amount of oGPU (in base units); the others are counts of
    /// blocks, basis points, rounds or bytes.
    pub fn is_amount(self) -> bool {
        matches!(
            self,
            ParamKey::MinFee | ParamKey::MinValidatorStake | ParamKey::MinProviderStake | ParamKey::ChallengeBond
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize, serde::Deserialize)]
pub struct ParamChange {
    pub key: ParamKey,
    pub value: u128,
}

/// The bytes a sender signs: the transaction without its signature, domain separated.
fn signing_bytes(chain_id: &ChainId, sender: &PublicKey, nonce: u64, fee: Amount, body: &TxBody) -> Vec<u8> {
    let mut bytes = b"ogpu/tx/v1".to_vec();
    (chain_id, sender, nonce, fee, body).serialize(&mut bytes).expect("writing to a Vec cannot fail");
    bytes
}

impl Transaction {
    pub fn sign(key: &SecretKey, chain_id: ChainId, nonce: u64, fee: Amount, body: TxBody) -> Transaction {
        let sender = key.public();
        let signature = key.sign(&signing_bytes(&chain_id, &sender, nonce, fee, &body));
        Transaction { chain_id, sender, nonce, fee, body, signature }
    }

    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_bytes(&self.chain_id, &self.sender, self.nonce, self.fee, &self.body)
    }

    pub fn sender_address(&self) -> Address {
        Address::of(&self.sender)
    }

    /// The transaction id: blake3 of its whole encoding, signature included.
    pub fn hash(&self) -> Hash {
        Hash::tagged("ogpu/tx-id", &[&self.encode()])
    }
}

/// Whether each transaction's signature verifies: one batch check for the common case
/// where all do, then one by one to find the culprits.
pub fn verify_signatures(txs: &[&Transaction]) -> Vec<bool> {
    let messages: Vec<Vec<u8>> = txs.iter().map(|tx| tx.signing_bytes()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = txs.iter().map(|tx| tx.signature).collect();
    let keys: Vec<PublicKey> = txs.iter().map(|tx| tx.sender).collect();
    if crate::crypto::verify_batch(&refs, &signatures, &keys).is_ok() {
        return vec![true; txs.len()];
    }
    txs.iter().zip(&messages).map(|(tx, message)| tx.sender.verify(message, &tx.signature).is_ok()).collect()
}

/// The sealed form of a bid. Binding the bidder's address means nobody can copy another's
/// sealed bid and reveal it as their own.
pub fn bid_commitment(task: &TaskId, bidder: &Address, price: Amount, salt: &Hash) -> Hash {
    Hash::tagged("ogpu/bid", &[&task.0.0, &bidder.0, &price.base_units().to_le_bytes(), &salt.0])
}

/// The sealed form of a result, bound to the provider for the same reason.
pub fn result_commitment(task: &TaskId, provider: &Address, claim: &ResultClaim, salt: &Hash) -> Hash {
    let claim = borsh::to_vec(claim).expect("writing to a Vec cannot fail");
    Hash::tagged("ogpu/result", &[&task.0.0, &provider.0, &claim, &salt.0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> Transaction {
        let key = SecretKey::from_name("alice");
        let body = TxBody::Transfer { to: Address([7; 20]), amount: Amount::ogpu(3) };
        Transaction::sign(&key, "ogpu-test".parse().unwrap(), 0, Amount::from_base_units(1000), body)
    }

    #[test]
    fn signature_covers_every_field() {
        let tx = transfer();
        assert_eq!(tx.sender.verify(&tx.signing_bytes(), &tx.signature), Ok(()));
        let mut other_chain = tx.clone();
        other_chain.chain_id = "ogpu-main".parse().unwrap();
        let mut other_nonce = tx.clone();
        other_nonce.nonce = 1;
        let mut other_fee = tx.clone();
        other_fee.fee = Amount::ZERO;
        for changed in [other_chain, other_nonce, other_fee] {
            assert!(changed.sender.verify(&changed.signing_bytes(), &changed.signature).is_err());
        }
    }

    #[test]
    fn commitments_bind_the_committer() {
        let task = TaskId(Hash::of_bytes(b"t"));
        let salt = Hash::of_bytes(b"salt");
        let price = Amount::ogpu(1);
        assert_ne!(
            bid_commitment(&task, &Address([1; 20]), price, &salt),
            bid_commitment(&task, &Address([2; 20]), price, &salt)
        );
        let claim = ResultClaim { output: Hash::of_bytes(b"out"), trace: None };
        assert_ne!(
            result_commitment(&task, &Address([1; 20]), &claim, &salt),
            result_commitment(&task, &Address([2; 20]), &claim, &salt)
        );
    }

    #[test]
    fn decoding_a_transaction_round_trips_and_rejects_garbage() {
        let tx = transfer();
        assert_eq!(Transaction::decode(&tx.encode()), Ok(tx.clone()));
        let mut bytes = tx.encode();
        bytes.push(0);
        assert!(Transaction::decode(&bytes).is_err());
        assert!(Transaction::decode(&[0xff; 100]).is_err());
        assert!(Transaction::decode(&vec![0; 70_000]).is_err());
    }
}
