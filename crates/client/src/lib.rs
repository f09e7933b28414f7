//! `ogpu-client`, the OpenGPU Network's Rust SDK: a blocking client of a node's API.
//!
//! - `types`: every request and response body of the API, defined once (the server,
//!   `ogpu-api`, builds the same types).
//! - `routes`: one typed call per route on [`Client`], over the transport in `http`.
//! - `wallet`: signs and sends an account's transactions with one nonce sequence, the
//!   fee the chain asks for, and waits for their verdicts.
//! - `spec`: task specs as people write them, naming files by path, resolved to the spec
//!   the chain takes (hashes) and the files to upload.
//! - `transfer`: a task's files through the blob store, each checked by its hash.
//! - `onnx`: the input names of an ONNX model, checked before paying to run it.
//! - `task`: submitting a resolved spec (uploading what the store lacks) and a
//!   [`TaskHandle`] to wait for the task, read its progress and logs, fetch its result and
//!   cancel it.
//!
//! Its dependencies are the chain's pure types, an HTTP/1.1 client and serde: no server,
//! networking stack or database.

mod http;
pub mod onnx;
mod routes;
pub mod spec;
pub mod task;
pub mod transfer;
pub mod types;
pub mod wallet;

pub use http::{Client, ClientError, EventStream, FeedItem, SseEvent};
pub use routes::TaskFilter;
pub use task::{TaskError, TaskHandle};
pub use types::{EventRecord, Refusal};
pub use wallet::{Verdict, Wallet, WalletError};
