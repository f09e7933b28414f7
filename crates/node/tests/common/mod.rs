//! A network of validators running the node service over real libp2p on loopback, in
//! this process.
#![allow(dead_code)]

use std::net::TcpListener;

use libp2p::Multiaddr;
use ogpu_chain::Genesis;
use ogpu_chain::genesis::{Allocation, GenesisValidator};
use ogpu_core::{Amount, SecretKey};
use ogpu_node::net;
use ogpu_node::service::{self, NodeConfig, NodeHandle};
use tokio::sync::oneshot;

pub fn keys(n: usize) -> Vec<SecretKey> {
    (0..n).map(|i| SecretKey::from_name(&format!("network-test-{i}"))).collect()
}

/// An account funded at genesis, to send transactions from.
pub fn client() -> SecretKey {
    SecretKey::from_name("network-test-client")
}

pub fn genesis(n: usize) -> Genesis {
    Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: 0,
        params: Default::default(),
        allocations: vec![Allocation {
            address: ogpu_core::Address::of(&client().public()),
            amount: Amount::ogpu(1_000),
        }],
        validators: keys(n)
            .iter()
            .map(|k| GenesisValidator { public_key: k.public(), stake: Amount::ogpu(10_000) })
            .collect(),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn address(port: u16, key: &SecretKey) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", net::peer_id_of(&key.public()).unwrap()).parse().unwrap()
}

/// Running validators: their handles, listen ports, and what stops them when dropped.
pub struct Network {
    pub nodes: Vec<NodeHandle>,
    pub ports: Vec<u16>,
    _stops: Vec<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// Starts `n` validators that know each other. Call from a tokio runtime.
pub fn start(n: usize) -> Network {
    start_nodes(n, &genesis(n))
}

/// Starts a node for each of the first `n` keys, with `genesis`, each knowing the others.
/// Keys beyond the genesis validators run nodes that follow the chain until they stake.
pub fn start_nodes(n: usize, genesis: &Genesis) -> Network {
    start_configured(n, genesis, NodeConfig { proposer_window_ms: 300, ..NodeConfig::default() })
}

/// [`start_nodes`] with `config` for every node (its addresses are filled in).
pub fn start_configured(n: usize, genesis: &Genesis, config: NodeConfig) -> Network {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let (mut nodes, mut stops) = (Vec::new(), Vec::new());
    for (i, key) in keys(n).into_iter().enumerate() {
        let config = NodeConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{}", ports[i]),
            bootstrap: (0..n).filter(|j| *j != i).map(|j| address(ports[j], &keys(n)[j]).to_string()).collect(),
            ..config.clone()
        };
        let (handle, stop) = start_node(config, &dir.path().join(format!("v{i}")), key, genesis);
        nodes.push(handle);
        stops.push(stop);
    }
    Network { nodes, ports, _stops: stops, _dir: dir }
}

/// Starts one node with its data in `data`; it runs until the sender is dropped.
pub fn start_node(
    config: NodeConfig,
    data: &std::path::Path,
    key: SecretKey,
    genesis: &Genesis,
) -> (NodeHandle, oneshot::Sender<()>) {
    std::fs::create_dir_all(data).unwrap();
    let (stop, shutdown) = oneshot::channel();
    let (handle, node) = service::start(config, data.to_path_buf(), key, genesis.clone()).unwrap();
    tokio::spawn(node.run(shutdown));
    (handle, stop)
}
