//! The OpenGPU Network state machine: `apply_block(state, block) -> (state, outcome)`.
//!
//! Deterministic by construction: no IO, no clock, no ambient randomness. Everything a
//! block's execution depends on arrives in the block (its height, time, proposer and
//! VRF randomness) or is already in the state, so every node computes the same state
//! root from the same block.

mod bank;
pub mod error;
mod exec;
pub mod genesis;
mod governance;
mod market;
pub mod params;
pub mod receipt;
mod settle;
pub mod snapshot;
mod staking;
pub mod state;
mod verify;

pub use error::{BlockError, Ineligible, TxError};
pub use exec::{
    MAX_BLOCK_TIME_STEP_MS, MAX_TXS_PER_BLOCK, NoneVerified, VerifiedSignatures, apply_block, apply_block_with,
    next_block_time, propose_block, propose_block_with,
};
pub use genesis::{Genesis, GenesisError};
pub use market::{MAX_REASON, Reservation, reservation};
pub use params::Params;
pub use receipt::{BlockOutcome, Event, Receipt};
pub use state::State;
