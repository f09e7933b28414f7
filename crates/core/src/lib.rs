//! Core types of the OpenGPU Network: what every other crate speaks.
//!
//! Ids, amounts, keys, signatures, hashes, the canonical binary encoding, transactions,
//! blocks, consensus votes, task specs and providers' signed task logs. Nothing here does
//! IO, reads a clock or draws ambient randomness: whatever needs entropy (key generation,
//! keystore salts) takes an RNG from the caller.

pub mod address;
pub mod amount;
pub mod block;
pub mod crypto;
pub mod encoding;
pub mod hash;
pub mod hex;
pub mod ids;
pub mod keystore;
pub mod manifest;
pub mod merkle;
pub mod rng;
pub mod sealed;
mod serde_text;
pub mod spec;
pub mod tasklog;
pub mod tx;
pub mod vote;
pub mod vrf;

#[cfg(test)]
mod testing;

pub use address::Address;
pub use amount::Amount;
pub use block::{Block, BlockHeader};
pub use crypto::{PublicKey, SecretKey, Signature};
pub use hash::Hash;
pub use ids::{BlobHash, ChainId, PoolId, ProposalId, TaskId};
pub use tx::{Transaction, TxBody};
