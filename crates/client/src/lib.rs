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
//! - `kind`: [`ErrorKind`], the kind of failure each error is (refused, network, ...).
//! - `ledger`: what a provider's events add up to (earnings by task, reason and block;
//!   slashes).
//!
//! Its dependencies are the chain's pure types, an HTTP/1.1 client and serde: no server,
//! networking stack or database.
//!
//! # Example
//!
//! A spec names its program and inputs by path; resolving it hashes them, giving the spec
//! the chain takes and the files to upload:
//!
//! ```
//! use std::error::Error;
//! use std::path::Path;
//!
//! use ogpu_client::spec::{self, ResolvedSpec};
//! use ogpu_client::{Client, TaskError, Wallet};
//! use ogpu_core::{BlobHash, Hash, SecretKey};
//!
//! # fn main() -> Result<(), Box<dyn Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("sum.wat"), "(module)")?;
//! std::fs::write(dir.path().join("numbers.txt"), "1\n2\n")?;
//! let spec_file = dir.path().join("sum.toml");
//! std::fs::write(
//!     &spec_file,
//!     r#"
//! name = "sum"
//! deadline_blocks = 10
//!
//! [workload]
//! kind = "wasm"
//! program = "sum.wat"
//! inputs = { "numbers.txt" = "numbers.txt" }
//! limits = { fuel = 1000, memory_mb = 16, timeout_s = 10 }
//!
//! [market]
//! kind = "auction"
//! max_price = "0.01"
//! bid_window = 2
//! "#,
//! )?;
//!
//! let resolved = spec::resolve(&spec_file)?;
//! let program = BlobHash(Hash::of_bytes(b"(module)"));
//! assert_eq!(resolved.spec.workload.program, program);
//! assert!(resolved.files.contains_key(&program), "a local file, to upload");
//! # Ok(())
//! # }
//!
//! /// Submits the task from `key`'s account (uploading the files the node's store
//! /// lacks, sealed if the spec is private), follows it to its end (handing a private
//! /// task's keys to its workers) and downloads its result into `out`. It needs a
//! /// running node, so this example compiles it without calling it.
//! fn run(key: SecretKey, resolved: &ResolvedSpec, out: &Path) -> Result<(), TaskError> {
//!     let client = Client::new("http://127.0.0.1:8080")?;
//!     let wallet = Wallet::new(key, client)?;
//!     let task = ogpu_client::task::submit(&wallet, resolved, |upload| {
//!         println!("{}: {} of {:?} bytes", upload.path.display(), upload.done, upload.size);
//!     })?;
//!     let outcome = task.follow_delivering(&wallet, None, |height, event| println!("#{height} {event:?}"))?;
//!     println!("task {} ended: {outcome:?}", task.id());
//!     for path in task.result(out, Some(&wallet))? {
//!         println!("{}", path.display());
//!     }
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

mod http;
mod kind;
pub mod ledger;
pub mod onnx;
pub mod private;
mod routes;
pub mod spec;
pub mod task;
pub mod transfer;
pub mod types;
pub mod wallet;

pub use http::{Client, ClientError, EventStream, FeedItem, SseEvent};
pub use kind::ErrorKind;
pub use routes::TaskFilter;
pub use task::{TaskError, TaskHandle};
pub use types::{EventRecord, Refusal};
pub use wallet::{Verdict, Wallet, WalletError};
