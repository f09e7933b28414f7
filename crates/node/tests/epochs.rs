//! Validator sets change at epoch boundaries, and the transport follows them.

mod common;

use std::time::Duration;

use ogpu_chain::genesis::Allocation;
use ogpu_core::tx::{StakeRole, Transaction, TxBody};
use ogpu_core::{Address, Amount};
use ogpu_node::service::Request;

/// Finding 17: the transport's map from validators to peers was fixed at start, so a
/// validator seated in a later epoch was never sent a query. Four genesis validators and
/// a fifth node that stakes; once the fifth is seated it must be asked, which shows in the
/// lease on poll numbers it records before answering. It stakes as much as each of the
/// others: polls sample by stake, and a small stake is asked too rarely for a bounded wait.
/// Then every replica must reach the leader's height: one used to be left behind at an
/// epoch boundary for good, since queries naming another epoch were dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_seated_in_a_later_epoch_is_polled() {
    let mut genesis = common::genesis(4);
    genesis.params.epoch_blocks = 4;
    let newcomer = common::keys(5)[4].clone();
    let stake = genesis.validators[0].stake;
    genesis.allocations.push(Allocation { address: Address::of(&newcomer.public()), amount: Amount::ogpu(20_000) });
    let network = common::start_nodes(5, &genesis);

    let stake = TxBody::Stake { role: StakeRole::Validator, amount: stake };
    let tx = Transaction::sign(&newcomer, genesis.chain_id.clone(), 0, genesis.params.min_fee, stake);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (reply, answer) = tokio::sync::oneshot::channel();
        network.nodes[0].requests.send(Request::Submit(vec![tx.clone()], reply)).await.unwrap();
        if answer.await.unwrap()[0].is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stake was never admitted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seated = |node: &ogpu_node::service::NodeHandle| {
        node.finalized.borrow().active_set.contains_key(&Address::of(&newcomer.public()))
    };
    while !network.nodes.iter().any(seated) {
        assert!(tokio::time::Instant::now() < deadline, "the newcomer was never seated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newcomer_node = &network.nodes[4];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while newcomer_node.store.signing_record().unwrap().answer_lease_ms == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nobody polled the validator seated in epoch 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No replica is left behind at an epoch boundary: every one reaches what the leader
    // had finalized by now.
    let height = |node: &ogpu_node::service::NodeHandle| node.finalized.borrow().height;
    let target = network.nodes.iter().map(height).max().unwrap();
    while network.nodes.iter().any(|node| height(node) < target) {
        let heights: Vec<u64> = network.nodes.iter().map(height).collect();
        assert!(tokio::time::Instant::now() < deadline, "replicas left behind: {heights:?}, the leader at {target}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
