//! A deterministic network simulator for `ogpu-consensus`.
//!
//! Virtual time, one seeded random stream, a measured round-trip matrix between ten AWS
//! regions, jitter, message loss, scripted partitions that heal, skewed stake, and
//! byzantine validators (an equivocating proposer, an equivocating voter, a mute node and
//! a balancing attacker). Validators run the real engine with real keys, signatures and
//! VRF randomness; only the wire is simulated. The same seed replays the same run, which
//! the trace hash shows.

mod actor;
mod latency;
mod world;

pub use actor::Strategy;
pub use latency::{LatencyError, LatencyMatrix};
pub use world::{Config, Partition, Report, StakeDistribution, percentile, run, stakes};
