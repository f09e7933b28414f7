//! The agent's wallet against a node served over HTTP in this process.

use std::path::Path;
use std::time::Duration;

use ogpu_chain::Genesis;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, Amount, SecretKey};
use ogpu_node::service::{self, NodeConfig};
use ogpu_provider::wallet::{Verdict, Wallet};
use tokio::sync::oneshot;

fn agent() -> SecretKey {
    SecretKey::from_name("wallet-test-agent")
}

/// Genesis now: a block's time may pass its parent's by at most an hour, so a chain born
/// in 1970 would propose catch-up blocks back to back whatever its block interval.
fn genesis() -> Genesis {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: now_ms,
        params: Default::default(),
        allocations: vec![Allocation { address: Address::of(&agent().public()), amount: Amount::ogpu(100) }],
        validators: vec![GenesisValidator {
            public_key: SecretKey::from_name("wallet-test-validator").public(),
            stake: Amount::ogpu(10_000),
        }],
    }
}

/// A one-validator node with its API on `port`, proposing a block at most every
/// `block_ms`.
struct Node {
    stop: Option<oneshot::Sender<()>>,
    api: tokio::task::JoinHandle<()>,
}

impl Node {
    async fn start(data: &Path, genesis: &Genesis, port: u16, block_ms: u64) -> Node {
        let config = NodeConfig { min_block_interval_ms: block_ms, ..NodeConfig::default() };
        let key = SecretKey::from_name("wallet-test-validator");
        let (handle, node) = service::start(config, data.to_path_buf(), key, genesis.clone()).unwrap();
        let (stop, shutdown) = oneshot::channel();
        tokio::spawn(node.run(shutdown));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let router = ogpu_api::router(handle);
        let api = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Node { stop: Some(stop), api }
    }

    async fn stop(mut self) {
        self.api.abort();
        let _ = self.api.await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn transfer() -> TxBody {
    TxBody::Transfer { to: Address([4; 20]), amount: Amount::ogpu(1) }
}

/// Finding 7: the wallet re-read its nonce only when the node refused a transaction. A
/// transaction it sent that then disappeared (here: the node restarted before a block took
/// it) left a gap, and everything the agent sent after it waited behind the gap forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_resynchronises_when_a_transaction_it_sent_disappears() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Blocks an hour apart after the first: the first transaction waits in the mempool.
    let genesis = genesis();
    let node = Node::start(data.path(), &genesis, port, 3_600_000).await;
    let wallet = tokio::task::spawn_blocking(move || {
        let client = ogpu_api::client::Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let height = || client.get::<serde_json::Value>("/v1/status").unwrap()["finalized_height"].as_u64();
        while height() < Some(1) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let wallet = Wallet::new(agent(), client.clone()).unwrap();
        let sent = wallet.send(transfer()).unwrap();
        let status = client.get::<serde_json::Value>(&format!("/v1/txs/{sent}")).unwrap();
        assert_eq!(status["status"], "pending");
        wallet
    })
    .await
    .unwrap();
    node.stop().await;

    let node = Node::start(data.path(), &genesis, port, 100).await;
    let verdict =
        tokio::task::spawn_blocking(move || wallet.send_and_wait(transfer(), Duration::from_secs(20))).await.unwrap();
    assert_eq!(verdict.unwrap(), Verdict::Applied, "the transaction after the lost one was finalized");
    node.stop().await;
}
