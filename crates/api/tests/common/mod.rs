//! A one-validator node in this process with the API in front of it, and what tests do
//! with it: sign transactions, follow them to finality, make requests.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use ogpu_chain::Genesis;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_core::encoding::Canonical;
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, Hash, SecretKey};
use ogpu_node::service::{self, NodeConfig};
use serde_json::Value;
use tokio::sync::oneshot;
use tower::ServiceExt;

pub fn client() -> SecretKey {
    SecretKey::from_name("api-test-client")
}

/// Funded to register, stake and join a pool.
pub fn provider() -> SecretKey {
    SecretKey::from_name("api-test-provider")
}

pub fn genesis() -> Genesis {
    // Pool jobs stay open for commits for long, so tests can act in the window.
    let params = ogpu_chain::Params { max_blob_bytes: 1 << 20, pool_commit_blocks: 1_000, ..Default::default() };
    let funded = |key: SecretKey, ogpu| Allocation { address: Address::of(&key.public()), amount: Amount::ogpu(ogpu) };
    Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: 0,
        params,
        allocations: vec![funded(client(), 100), funded(provider(), 1_000)],
        validators: vec![GenesisValidator {
            public_key: SecretKey::from_name("api-test-validator").public(),
            stake: Amount::ogpu(10_000),
        }],
    }
}

/// A transaction on the test chain at the lowest fee.
pub fn tx(key: &SecretKey, nonce: u64, body: TxBody) -> Transaction {
    Transaction::sign(key, "ogpu-test".parse().unwrap(), nonce, genesis().params.min_fee, body)
}

pub fn hex(tx: &Transaction) -> String {
    ogpu_core::hex::encode(&tx.encode())
}

pub struct Api {
    pub router: Router,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

pub fn start() -> Api {
    start_with(ogpu_api::Limits::default())
}

pub fn start_with(limits: ogpu_api::Limits) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_name("api-test-validator");
    let config = NodeConfig { proposer_window_ms: 100, ..NodeConfig::default() };
    let (handle, node) = service::start(config, dir.path().to_path_buf(), key, genesis()).unwrap();
    let (stop, shutdown) = oneshot::channel();
    tokio::spawn(node.run(shutdown));
    Api { router: ogpu_api::router_with(handle, limits), _stop: stop, _dir: dir }
}

impl Api {
    pub async fn call(&self, method: &str, uri: &str, body: impl Into<Body>) -> (StatusCode, Vec<u8>) {
        let request = Request::builder().method(method).uri(uri).body(body.into()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (status, to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec())
    }

    pub async fn json(&self, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let (status, bytes) = self.call(method, uri, body.to_owned()).await;
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}"));
        (status, value)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.json("GET", uri, "").await
    }

    pub async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}")))
    }

    /// Admits the transaction to the mempool.
    pub async fn submit(&self, tx: &Transaction) {
        let (status, body) = self.post("/v1/txs", &format!(r#"{{"tx":"{}"}}"#, hex(tx))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["tx"], tx.hash().to_string());
    }

    /// Waits until the transaction is in a finalized block; returns its record.
    pub async fn finalized(&self, hash: Hash) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, record) = self.get(&format!("/v1/txs/{hash}")).await;
            assert_eq!(status, StatusCode::OK, "a submitted transaction is pending or finalized: {record}");
            if record["status"] == "finalized" {
                return record;
            }
            assert!(tokio::time::Instant::now() < deadline, "not finalized in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
