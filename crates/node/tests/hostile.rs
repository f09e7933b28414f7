//! Four validators run the node service over real libp2p on loopback, in one process; a
//! hostile peer connects and sends malformed, oversized and replayed messages. It is
//! disconnected, and the validators keep finalizing.

use std::net::TcpListener;
use std::time::Duration;

use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::swarm::SwarmEvent;
use ogpu_chain::Genesis;
use ogpu_chain::genesis::GenesisValidator;
use ogpu_core::encoding::Canonical;
use ogpu_core::{Amount, SecretKey};
use ogpu_node::net;
use ogpu_node::service::{self, NodeConfig};
use tokio::sync::oneshot;

fn keys() -> Vec<SecretKey> {
    (0..4).map(|i| SecretKey::from_name(&format!("hostile-test-{i}"))).collect()
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: 0,
        params: Default::default(),
        allocations: vec![],
        validators: keys()
            .iter()
            .map(|k| GenesisValidator { public_key: k.public(), stake: Amount::ogpu(10_000) })
            .collect(),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn address(port: u16, key: &SecretKey) -> Multiaddr {
    format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", net::peer_id_of(&key.public()).unwrap()).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_is_dropped_and_the_validators_keep_finalizing() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut heights = Vec::new();
    let mut stops = Vec::new();
    for (i, key) in keys().into_iter().enumerate() {
        let config = NodeConfig {
            listen: format!("/ip4/127.0.0.1/tcp/{}", ports[i]),
            bootstrap: (0..4).filter(|j| *j != i).map(|j| address(ports[j], &keys()[j]).to_string()).collect(),
            proposer_window_ms: 300,
            ..NodeConfig::default()
        };
        let data = dir.path().join(format!("v{i}"));
        std::fs::create_dir_all(&data).unwrap();
        let (stop, shutdown) = oneshot::channel();
        let (handle, node) = service::start(config, data, key, genesis()).unwrap();
        tokio::spawn(node.run(shutdown));
        heights.push(handle);
        stops.push(stop);
    }

    let hostile = SecretKey::from_name("hostile");
    let mut swarm = net::build_swarm(&hostile, "ogpu-test", false).unwrap();
    let target = net::peer_id_of(&keys()[0].public()).unwrap();
    swarm.dial(address(ports[0], &keys()[0])).unwrap();
    let garbage: Vec<Vec<u8>> = vec![vec![0xff; 64], vec![], vec![7; 3], vec![0; net::MAX_FRAME + 1]];
    let replayed = ogpu_node::replica::WireMessage::GetBlock(ogpu_core::Hash::ZERO).encode();
    let mut disconnected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !disconnected && tokio::time::Instant::now() < deadline {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
                    for frame in &garbage {
                        swarm.behaviour_mut().direct.send_request(&target, frame.clone());
                    }
                    for _ in 0..3 {
                        swarm.behaviour_mut().direct.send_request(&target, replayed.clone());
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == target => disconnected = true,
                _ => {}
            },
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    assert!(disconnected, "the validator hung up on the peer that sent garbage");

    let start = heights[0].finalized.borrow().height;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while heights.iter().any(|h| h.finalized.borrow().height < start + 5) {
        assert!(tokio::time::Instant::now() < deadline, "the validators stopped finalizing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at: u64 = heights.iter().map(|h| h.finalized.borrow().height).min().unwrap();
    assert!(at >= start + 5);
    for stop in stops {
        let _ = stop.send(());
    }
}
