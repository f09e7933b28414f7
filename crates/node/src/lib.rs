//! The OpenGPU Network node: the IO around the pure cores. It keeps the mempool, stores
//! blocks and state, talks to peers, and drives consensus and block production.
//!
//! Status: mempool, store, replica, libp2p transport and the node service are built;
//! block sync beyond header walks, the blob store, per-peer rate limits and metrics
//! come next.

pub mod mempool;
pub mod net;
pub mod replica;
pub mod service;
pub mod store;
