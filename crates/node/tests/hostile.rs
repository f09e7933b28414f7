//! Four validators run the node service over real libp2p on loopback, in one process; a
//! hostile peer connects and sends malformed, oversized and replayed messages. It is
//! disconnected, and the validators keep finalizing.

mod common;

use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use ogpu_core::SecretKey;
use ogpu_core::encoding::Canonical;
use ogpu_node::net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_is_dropped_and_the_validators_keep_finalizing() {
    let network = common::start(4);
    let (heights, ports, keys) = (&network.nodes, &network.ports, common::keys(4));

    let hostile = SecretKey::from_name("hostile");
    let mut swarm = net::build_swarm(&hostile, "ogpu-test", false).unwrap();
    let target = net::peer_id_of(&keys[0].public()).unwrap();
    swarm.dial(common::address(ports[0], &keys[0])).unwrap();
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
}
