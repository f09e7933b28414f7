//! The provider agent: what a GPU provider runs. It finds and measures the machine's
//! devices into the profile registered on chain (`devices`), stakes and joins pools,
//! then follows the chain (`feed`) and acts on what concerns it (`agent`): sealed bids
//! priced by its policy (`pricing`), runs of awarded tasks and pool jobs on
//! `ogpu-runtime` (`run`) with their files moved through the blob store and
//! their progress streamed as signed log entries (`logs`), commits and reveals of results,
//! and, when it is chosen to verify, a re-run or, for proof of learning, a replay of one
//! training segment (`verify`). It talks to the node through `ogpu-client`, and every
//! transaction goes through one wallet of it.

pub mod agent;
pub mod config;
pub mod devices;
mod feed;
pub mod fit;
mod logs;
pub mod pricing;
mod run;
mod verify;

pub use agent::{Agent, AgentError};
pub use config::ProviderConfig;
