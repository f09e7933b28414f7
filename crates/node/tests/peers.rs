//! Validators find each other however their processes start: a bootstrap peer that is
//! not listening yet when a node first dials it is dialed again until it answers.

mod common;

use std::time::Duration;

use ogpu_node::service::{NodeConfig, NodeHandle, Request};

async fn peers(node: &NodeHandle) -> usize {
    let (reply, answer) = tokio::sync::oneshot::channel();
    node.requests.send(Request::Status(reply)).await.unwrap();
    answer.await.unwrap().peers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_that_starts_late_is_dialed_again() {
    let (keys, genesis, dir) = (common::keys(2), common::genesis(2), tempfile::tempdir().unwrap());
    let ports = [common::free_port(), common::free_port()];
    let config = |i: usize, bootstrap: Vec<String>| NodeConfig {
        listen: format!("/ip4/127.0.0.1/tcp/{}", ports[i]),
        bootstrap,
        proposer_window_ms: 300,
        ..NodeConfig::default()
    };
    // The first node's only dial at start finds nothing listening.
    let early = config(0, vec![common::address(ports[1], &keys[1]).to_string()]);
    let (first, _stop_first) = common::start_node(early, &dir.path().join("v0"), keys[0].clone(), &genesis);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // The second knows no one: only the first node dialing again can join them.
    let (second, _stop_second) =
        common::start_node(config(1, vec![]), &dir.path().join("v1"), keys[1].clone(), &genesis);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while peers(&first).await == 0 || peers(&second).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the first node never dialed the late one again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while second.finalized.borrow().height < 3 {
        assert!(tokio::time::Instant::now() < deadline, "connected, but the two validators do not finalize");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
