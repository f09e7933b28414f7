//! Blocks: a header `{height, parent, proposer, time, tx_root, state_root, randomness}`
//! signed by its proposer, and the transactions it orders.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::encoding::Canonical;
use crate::hash::Hash;
use crate::ids::ChainId;
use crate::merkle;
use crate::tx::Transaction;
use crate::vrf::VrfProof;

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    pub chain_id: ChainId,
    pub height: u64,
    pub parent: Hash,
    pub proposer: PublicKey,
    /// Milliseconds since the Unix epoch, as the proposer saw it; informative only; the
    /// protocol counts windows in blocks.
    pub time_ms: u64,
    pub tx_root: Hash,
    /// The root of the state after this block's transactions.
    pub state_root: Hash,
    /// The proposer's VRF output on the parent's randomness (see [`vrf_input`]).
    pub randomness: Hash,
    pub randomness_proof: VrfProof,
}

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        Hash::tagged("ogpu/header", &[&borsh::to_vec(self).expect("writing to a Vec cannot fail")])
    }

    pub fn sign(self, key: &SecretKey) -> SignedHeader {
        let signature = key.sign(&header_signing_bytes(&self.hash()));
        SignedHeader { header: self, signature }
    }
}

fn header_signing_bytes(hash: &Hash) -> Vec<u8> {
    [b"ogpu/header-sig/v1".as_slice(), &hash.0].concat()
}

/// The input of the proposer's VRF at `height`: a chain of outputs back to genesis, which
/// no proposer can steer.
pub fn vrf_input(chain_id: &ChainId, height: u64, parent_randomness: &Hash) -> Vec<u8> {
    Hash::tagged("ogpu/vrf-input", &[chain_id.as_str().as_bytes(), &height.to_le_bytes(), &parent_randomness.0])
        .0
        .to_vec()
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedHeader {
    pub header: BlockHeader,
    pub signature: Signature,
}

impl SignedHeader {
    pub fn verify(&self) -> Result<(), crate::crypto::SignatureError> {
        self.header.proposer.verify(&header_signing_bytes(&self.header.hash()), &self.signature)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub signed: SignedHeader,
    pub txs: Vec<Transaction>,
}

impl Canonical for Block {
    const MAX_ENCODED_LEN: usize = 16 * 1024 * 1024;
}

impl Block {
    pub fn header(&self) -> &BlockHeader {
        &self.signed.header
    }

    pub fn hash(&self) -> Hash {
        self.signed.header.hash()
    }
}

/// The Merkle root over the ids of `txs`, in block order.
pub fn tx_root(txs: &[Transaction]) -> Hash {
    let ids: Vec<Hash> = txs.iter().map(Transaction::hash).collect();
    tx_root_of_ids(&ids)
}

/// [`tx_root`] from ids already computed, for callers that need the ids too.
pub fn tx_root_of_ids(ids: &[Hash]) -> Hash {
    merkle::root(ids)
}
