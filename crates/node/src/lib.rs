//! The OpenGPU Network node: the IO around the pure cores. It keeps the mempool, stores
//! blocks and state, talks to peers, and drives consensus and block production.
//!
pub mod blobs;
pub mod mempool;
pub mod net;
pub mod rate;
mod redial;
pub mod replica;
pub mod service;
pub mod store;
