//! Blobs move between nodes over libp2p: a node fetches what a peer has and checks it
//! against its hash; a peer serving corrupt bytes gets nothing stored.

mod common;

use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use ogpu_core::encoding::Canonical;
use ogpu_core::{BlobHash, Hash, SecretKey};
use ogpu_node::blobs::{CHUNK_BYTES, ChunkAnswer, ChunkRequest};
use ogpu_node::net::{self, BehaviourEvent};
use ogpu_node::service::{NodeHandle, Request};
use tokio::sync::oneshot;

async fn fetch(node: &NodeHandle, hash: BlobHash) -> Result<(), String> {
    let (reply, answer) = oneshot::channel();
    node.requests.send(Request::FetchBlob(hash, reply)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), answer).await.expect("an answer within 30 s").unwrap()
}

/// Fetches `hash` through `node` once it is connected to `peers` peers, so that a peer
/// that just dialled it is among those asked.
async fn fetch_with_peers(node: &NodeHandle, hash: BlobHash, peers: usize) -> Result<(), String> {
    loop {
        let (reply, answer) = oneshot::channel();
        node.requests.send(Request::Status(reply)).await.unwrap();
        if answer.await.unwrap().peers >= peers {
            return fetch(node, hash).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node is connected to the others.
async fn connected(network: &common::Network) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for node in &network.nodes {
        loop {
            let (reply, answer) = oneshot::channel();
            node.requests.send(Request::Status(reply)).await.unwrap();
            if answer.await.unwrap().peers + 1 >= network.nodes.len() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the nodes did not connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fetches_a_peers_blob_in_chunks_and_checks_it() {
    let network = common::start(2);
    connected(&network).await;
    let bytes: Vec<u8> = (0..2 * CHUNK_BYTES + 123).map(|i| (i * 7 % 256) as u8).collect();
    let hash = network.nodes[0].blobs.put(&bytes, u64::MAX).unwrap();
    assert!(!network.nodes[1].blobs.contains(&hash));
    fetch(&network.nodes[1], hash).await.unwrap();
    let (first, len) = network.nodes[1].blobs.chunk(&hash, 0).unwrap().unwrap();
    assert_eq!(len, bytes.len() as u64);
    assert_eq!(first, bytes[..CHUNK_BYTES]);
    let absent = BlobHash(Hash::of_bytes(b"nobody has this"));
    let error = fetch(&network.nodes[1], absent).await.unwrap_err();
    assert!(error.contains("does not have it"), "{error}");
}

/// `ogpu bench blobs` found it: a peer over its rate allowance answered "not here", so a
/// blob larger than the allowance's burst could never be fetched from a peer at full speed
/// (256 MiB against a 128 MiB burst by default). A peer that has served a blob's earlier
/// chunks is now waited for, and the fetch goes at the rate the peer allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_larger_than_a_peers_burst_allowance_is_fetched_at_its_rate() {
    use ogpu_node::service::NodeConfig;

    let config = NodeConfig { peer_bytes_per_s: 2 * CHUNK_BYTES as u64, ..NodeConfig::default() };
    let network = common::start_configured(2, &common::genesis(2), config);
    connected(&network).await;
    let bytes: Vec<u8> = (0..10 * CHUNK_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let hash = network.nodes[0].blobs.put(&bytes, u64::MAX).unwrap();
    fetch(&network.nodes[1], hash).await.unwrap();
    assert!(network.nodes[1].blobs.contains(&hash));
}

/// A lying peer named `name` connects to validator 1, which then fetches `hash` with the
/// liar among the peers it asks; the liar answers each chunk request with `answer` (given
/// how many it answered before). Returns the network (still running), the fetch's result
/// and how often the liar was asked, within `limit`.
async fn fetch_from_a_liar(
    name: &str,
    hash: BlobHash,
    limit: Duration,
    mut answer: impl FnMut(usize, ChunkRequest) -> ChunkAnswer,
) -> (common::Network, Result<(), String>, usize) {
    let network = common::start(2);
    connected(&network).await;
    let mut liar = net::build_swarm(&SecretKey::from_name(name), "ogpu-test", false).unwrap();
    liar.dial(common::address(network.ports[1], &common::keys(2)[1])).unwrap();
    let victim = network.nodes[1].clone();
    let (done, mut finished) = oneshot::channel();
    let mut done = Some(done);
    let mut asked = 0;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the fetch did not end; the liar answered {asked} times");
        tokio::select! {
            event = liar.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { .. } => {
                    if let Some(done) = done.take() {
                        let victim = victim.clone();
                        tokio::spawn(async move { done.send(fetch_with_peers(&victim, hash, 2).await) });
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Blobs(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    let lie = answer(asked, ChunkRequest::decode(&request).unwrap());
                    asked += 1;
                    let _ = liar.behaviour_mut().blobs.send_response(channel, lie.encode());
                }
                _ => {}
            },
            result = &mut finished => return (network, result.unwrap(), asked),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_corrupt_bytes_gets_nothing_stored() {
    let wanted = b"the real bytes".to_vec();
    let hash = BlobHash(Hash::of_bytes(&wanted));
    let (network, result, asked) = fetch_from_a_liar("liar", hash, Duration::from_secs(30), |_, request| {
        assert_eq!(request.hash, hash);
        ChunkAnswer(Some((wanted.len() as u64, b"the fake bytes".to_vec())))
    })
    .await;
    let error = result.unwrap_err();
    assert!(error.contains("no peer could provide it"), "{error}");
    assert!(asked > 0, "the fetch asked the lying peer");
    let victim = &network.nodes[1];
    assert!(!victim.blobs.contains(&hash), "nothing was stored under the hash");
    assert!(!victim.blobs.contains(&BlobHash(Hash::of_bytes(b"the fake bytes"))));
}

/// Finding 13: a peer that answers a large blob's chunks a byte at a time would hold the
/// fetch forever; a chunk must be exactly as long as the announced length leaves, so the
/// fetch moves on (here: to no one, and fails) at the first short chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_trickling_short_chunks_does_not_hold_a_fetch() {
    let hash = BlobHash(Hash::of_bytes(b"a blob nobody will finish"));
    let (network, result, asked) = fetch_from_a_liar("trickler", hash, Duration::from_secs(20), |answered, _| {
        ChunkAnswer(Some((3 * CHUNK_BYTES as u64, vec![answered as u8])))
    })
    .await;
    let error = result.unwrap_err();
    assert!(error.contains("no peer could provide it"), "{error}");
    assert!(asked > 0, "the fetch asked the trickling peer");
    assert!(!network.nodes[1].blobs.contains(&hash));
}

/// Finding 8: `POST /v1/blobs` (and any transfer) kept whatever it was given, forever. A
/// blob nothing on chain refers to is collected after the grace period; a task's program
/// stays as long as the task does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_nothing_on_chain_refers_to_are_collected_after_the_grace_period() {
    use ogpu_core::spec::TaskSpec;
    use ogpu_core::tx::{Transaction, TxBody};
    use ogpu_node::service::NodeConfig;

    let config = NodeConfig { proposer_window_ms: 300, blob_grace_s: 1, ..NodeConfig::default() };
    let network = common::start_configured(2, &common::genesis(2), config);
    let node = &network.nodes[0];
    let program = node.blobs.put(b"(module)", u64::MAX).unwrap();
    let stray = node.blobs.put(b"nobody asked for this", u64::MAX).unwrap();
    let spec = TaskSpec::from_toml(&format!(
        "name = \"pinned\"\ndeadline_blocks = 1000\n[workload]\nkind = \"wasm\"\nprogram = \"{program}\"\n\
         [market]\nkind = \"auction\"\nmax_price = \"0.01\"\nbid_window = 500\n[verification]\npolicy = \"none\""
    ))
    .unwrap();
    let genesis = common::genesis(2);
    let submit =
        Transaction::sign(&common::client(), genesis.chain_id, 0, genesis.params.min_fee, TxBody::SubmitTask { spec });
    let (reply, answer) = oneshot::channel();
    node.requests.send(Request::Submit(vec![submit.clone()], reply)).await.unwrap();
    assert!(answer.await.unwrap()[0].is_ok());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while node.store.tx(&submit.hash()).unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the task was not finalized");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while node.blobs.contains(&stray) {
        assert!(tokio::time::Instant::now() < deadline, "the stray blob was never collected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(node.blobs.contains(&program), "the task's program is kept");
}
