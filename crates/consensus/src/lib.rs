//! Snowman consensus, weighted by stake, as a sans-IO engine.
//!
//! The engine takes inputs (messages, ticks, locally built blocks, the chain's verdict on
//! received blocks, new validator sets) with the current time, and returns outputs
//! (messages to send, timers to set, blocks to verify or build, blocks accepted and
//! rejected, evidence of equivocation). It owns no socket, clock or ambient randomness, so
//! the simulator in `ogpu-sim` and the real node drive it the same way and a seed
//! replays a run exactly.
//!
//! Our modifications to Avalanche's Snowman: chits are signed (two different answers to
//! one poll are slashable evidence), proposers are scheduled per height from the parent's
//! VRF randomness with time windows, and validators are sampled by units of stake.

mod engine;
mod message;
mod params;
mod schedule;
mod snowball;
mod validators;

pub use engine::{Engine, EngineState, Genesis, Input, Output, SigningRecord};
pub use message::Message;
pub use params::{Params, ParamsError};
pub use schedule::proposer_schedule;
pub use validators::{Member, ValidatorSet};
