//! A one-validator node with its API, in the test's process, for the client to talk to.

#![allow(dead_code, reason = "each test binary uses the part it needs")]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ogpu_api::Limits;
use ogpu_chain::Genesis;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, Amount, SecretKey};
use ogpu_node::service::{self, NodeConfig};
use tokio::sync::oneshot;

/// The funded account the tests sign with.
pub fn agent() -> SecretKey {
    SecretKey::from_name("client-test-agent")
}

/// Genesis now: a block's time may pass its parent's by at most an hour, so a chain born
/// in 1970 would propose catch-up blocks back to back whatever its block interval.
pub fn genesis() -> Genesis {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: now_ms,
        params: Default::default(),
        allocations: vec![Allocation { address: Address::of(&agent().public()), amount: Amount::ogpu(100) }],
        validators: vec![GenesisValidator {
            public_key: SecretKey::from_name("client-test-validator").public(),
            stake: Amount::ogpu(10_000),
        }],
    }
}

/// A one-validator node with its API on `port`, proposing a block at most every
/// `block_ms`.
pub struct Node {
    stop: Option<oneshot::Sender<()>>,
    api: tokio::task::JoinHandle<()>,
}

impl Node {
    pub async fn start(data: &Path, genesis: &Genesis, port: u16, block_ms: u64) -> Node {
        Node::start_with(data, genesis, port, block_ms, Limits::default()).await
    }

    /// A node whose API keeps to `limits`, served as the node binary serves it: with each
    /// caller's address, which the per-address allowance is kept by.
    pub async fn start_with(data: &Path, genesis: &Genesis, port: u16, block_ms: u64, limits: Limits) -> Node {
        let config = NodeConfig { min_block_interval_ms: block_ms, ..NodeConfig::default() };
        let key = SecretKey::from_name("client-test-validator");
        let (handle, node) = service::start(config, data.to_path_buf(), key, genesis.clone()).unwrap();
        let (stop, shutdown) = oneshot::channel();
        tokio::spawn(node.run(shutdown));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let service = ogpu_api::router_with(handle, limits).into_make_service_with_connect_info::<SocketAddr>();
        let api = tokio::spawn(async move {
            let _ = axum::serve(listener, service).await;
        });
        Node { stop: Some(stop), api }
    }

    pub async fn stop(mut self) {
        self.api.abort();
        let _ = self.api.await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A transfer of 1 oGPU from the agent.
pub fn transfer() -> TxBody {
    TxBody::Transfer { to: Address([4; 20]), amount: Amount::ogpu(1) }
}

/// A client of the API on `port`, once the node behind it has finalized a block (call it
/// from a blocking thread).
pub fn client_once_finalizing(port: u16) -> ogpu_client::Client {
    let client = ogpu_client::Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    while client.status().map_or(0, |s| s.finalized_height) < 1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    client
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
