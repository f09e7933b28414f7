//! End to end: `ogpu devnet` starts four validator processes on loopback; transfers sent to
//! the API are finalized, and once the devnet is stopped every validator's store holds
//! the same state root at the same height.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ogpu_chain::Genesis;
use ogpu_core::encoding::Canonical;
use ogpu_core::keystore::Keystore;
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount};
use ogpu_node::store::Store;

fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1)?.to_string();
    Some((status, body))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// Stops the devnet (and with it every validator) when the test ends, pass or fail.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn four_validator_processes_finalize_transfers_with_one_state_root() {
    let data = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_ogpu"))
        .args(["devnet", "--validators", "4", "--api", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data.path())
        .spawn()
        .unwrap();
    let devnet = Devnet(child);
    let height = || {
        http(port, "GET", "/v1/status", "").map_or(0, |(_, body)| json(&body)["finalized_height"].as_u64().unwrap_or(0))
    };
    wait_for("the first finalized blocks", Duration::from_secs(60), || height() >= 2);

    let client = Keystore::from_json(&std::fs::read_to_string(data.path().join("client.key")).unwrap())
        .unwrap()
        .open("")
        .unwrap();
    let genesis = Genesis::from_toml(&std::fs::read_to_string(data.path().join("genesis.toml")).unwrap()).unwrap();
    let recipient = Address([7; 20]);
    for nonce in 0..10 {
        let body = TxBody::Transfer { to: recipient, amount: Amount::ogpu(1) };
        let tx = Transaction::sign(&client, genesis.chain_id.clone(), nonce, genesis.params.min_fee, body);
        let hex = ogpu_core::hex::encode(&tx.encode());
        let (status, body) = http(port, "POST", "/v1/txs", &format!("{{\"tx\":\"{hex}\"}}")).unwrap();
        assert_eq!(status, 202, "{body}");
    }
    let balance = || {
        http(port, "GET", &format!("/v1/accounts/{recipient}"), "")
            .map(|(_, body)| json(&body)["balance"].as_str().unwrap_or("").to_string())
    };
    wait_for("the transfers to be finalized", Duration::from_secs(60), || balance().as_deref() == Some("10"));

    let (status, body) = http(port, "POST", "/v1/txs", "{\"tx\": \"zz\"}").unwrap();
    assert_eq!((status, json(&body)["error"].as_str()), (400, Some("invalid_hex")));
    let (status, body) = http(port, "POST", "/v1/txs", "not json").unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(json(&body)["error"].is_string());
    let (status, _) = http(port, "GET", "/v1/accounts/nonsense", "").unwrap();
    assert_eq!(status, 400);

    drop(devnet);
    let stores: Vec<Store> = (0..4)
        .map(|i| Store::open(&data.path().join(format!("validator-{i}/chain.redb")), &genesis, 100).unwrap())
        .collect();
    let common = stores.iter().map(|s| s.finalized_height().unwrap()).min().unwrap();
    assert!(common >= 2, "every validator finalized blocks");
    let roots: Vec<_> = stores.iter().map(|s| s.block(common).unwrap().unwrap().header().state_root).collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "one state root at height {common}: {roots:?}");
}
