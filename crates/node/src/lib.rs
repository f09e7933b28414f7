//! The OpenGPU Network node: the IO around the pure cores. It keeps the mempool, stores
//! blocks and state, talks to peers, and drives consensus and block production.
//!
//! Status: the mempool, the store and the replica (consensus, chain, mempool and store
//! wired together, tested over a simulated network) are built; the libp2p transport,
//! the process around it and the API come next.

pub mod mempool;
pub mod replica;
pub mod store;
