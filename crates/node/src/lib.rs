//! The OpenGPU Network node: the IO around the pure cores. It keeps the mempool, stores
//! blocks and state, talks to peers, and drives consensus and block production.
//!
//! Status: the mempool is built; storage, networking and block production come next.

pub mod mempool;
pub mod store;
