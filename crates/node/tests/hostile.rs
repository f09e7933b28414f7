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

/// Whether `node` holds `tx` in its mempool.
async fn pending(node: &ogpu_node::service::NodeHandle, tx: ogpu_core::Hash) -> bool {
    let (reply, answer) = tokio::sync::oneshot::channel();
    node.requests.send(ogpu_node::service::Request::Pending(tx, reply)).await.unwrap();
    answer.await.unwrap()
}

/// Finding 5: a gossiped batch is judged before gossipsub forwards it. A peer that relays
/// a transaction with a forged signature, or more transactions than a message may carry,
/// is struck and disconnected, and nothing of its batches reaches the other validators,
/// not even the genuine transaction beside the forged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_batch_with_a_forged_signature_is_not_forwarded_and_its_relay_is_dropped() {
    use ogpu_core::tx::{Transaction, TxBody};
    use ogpu_node::replica::{MAX_GOSSIP_TXS, WireMessage};

    let network = common::start(4);
    let (ports, keys) = (&network.ports, common::keys(4));
    let chain: ogpu_core::ChainId = "ogpu-test".parse().unwrap();
    let fee = ogpu_chain::Params::default().min_fee;
    let transfer = |nonce| {
        let body = TxBody::Transfer { to: ogpu_core::Address([3; 20]), amount: ogpu_core::Amount::ogpu(1) };
        Transaction::sign(&common::client(), chain.clone(), nonce, fee, body)
    };
    let genuine = transfer(0);
    let mut forged = transfer(1);
    forged.signature.0[9] ^= 1;
    let batches = [
        vec![genuine.clone(), forged.clone()],
        vec![transfer(2); MAX_GOSSIP_TXS + 1],
        vec![transfer(3), forged.clone()],
    ];

    let hostile = SecretKey::from_name("hostile-relay");
    let mut swarm = net::build_swarm(&hostile, "ogpu-test", false).unwrap();
    let target = net::peer_id_of(&keys[0].public()).unwrap();
    swarm.dial(common::address(ports[0], &keys[0])).unwrap();
    let topic = net::topic("ogpu-test");
    let mut sent = 0;
    let mut disconnected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !disconnected && tokio::time::Instant::now() < deadline {
        tokio::select! {
            event = swarm.select_next_some() => {
                if matches!(event, SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == target) {
                    disconnected = true;
                }
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                // Publishing fails until the validator has joined the hostile peer's mesh.
                if sent < batches.len() {
                    let message = WireMessage::Txs(batches[sent].clone()).encode();
                    if swarm.behaviour_mut().gossipsub.publish(topic.clone(), message).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
    }
    assert_eq!(sent, batches.len(), "every batch was published");
    assert!(disconnected, "the validator hung up on the peer that relayed forged and oversized batches");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, node) in network.nodes.iter().enumerate() {
        assert!(!pending(node, genuine.hash()).await, "validator {i} took a transaction from a forged batch");
    }
}

/// Finding 12: a peer asking for finalized blocks made the node read each from disk on
/// its consensus task, as often as it liked. Reads are now charged to the peer's
/// allowance before any IO (and by the answer's size after), so some 900 requests for one
/// block over 3 s get a burst's and three seconds' worth of answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_asking_for_finalized_blocks_is_served_within_its_allowance() {
    use libp2p::request_response;
    use ogpu_node::replica::WireMessage;
    use ogpu_node::service::NodeConfig;

    let config = NodeConfig { proposer_window_ms: 300, serve_bytes_per_s: 64 << 10, ..NodeConfig::default() };
    let network = common::start_configured(2, &common::genesis(2), config);
    let keys = common::keys(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while network.nodes[0].finalized.borrow().height < 1 {
        assert!(tokio::time::Instant::now() < deadline, "nothing was finalized");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let block = network.nodes[0].store.block(1).unwrap().unwrap();
    let request = WireMessage::GetBlock(block.hash()).encode();

    let mut swarm = net::build_swarm(&SecretKey::from_name("reader"), "ogpu-test", false).unwrap();
    let target = net::peer_id_of(&keys[0].public()).unwrap();
    swarm.dial(common::address(network.ports[0], &keys[0])).unwrap();
    let (mut answers, mut asked, mut asked_at) = (0, 0, None);
    let mut waves = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while asked_at.is_none_or(|at: tokio::time::Instant| at.elapsed() < Duration::from_secs(3)) {
        assert!(tokio::time::Instant::now() < deadline, "never connected");
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target && asked_at.is_none() => {
                    asked_at = Some(tokio::time::Instant::now());
                }
                SwarmEvent::Behaviour(net::BehaviourEvent::Direct(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let _ = swarm.behaviour_mut().direct.send_response(channel, Vec::new());
                    if matches!(WireMessage::decode(&request), Ok(WireMessage::Block(_))) {
                        answers += 1;
                    }
                }
                _ => {}
            },
            // Waves of requests, which libp2p takes 100 at a time.
            _ = waves.tick() => {
                if asked_at.is_some() {
                    for _ in 0..30 {
                        swarm.behaviour_mut().direct.send_request(&target, request.clone());
                        asked += 1;
                    }
                }
            }
        }
    }
    // 128 KiB of burst at 4 KiB a request, and 64 KiB a second after.
    assert!((1..=120).contains(&answers), "{answers} of {asked} requests for a finalized block answered");
}
