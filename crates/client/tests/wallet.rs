//! The wallet against a node served over HTTP in this process.

mod common;

use std::time::Duration;

use common::{Node, agent, client_once_finalizing, free_port, genesis, transfer};
use ogpu_client::types::TxState;
use ogpu_client::wallet::{Verdict, Wallet};

/// Finding 7: the wallet re-read its nonce only when the node refused a transaction. A
/// transaction it sent that then disappeared (here: the node restarted before a block took
/// it) left a gap, and everything the agent sent after it waited behind the gap forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_resynchronises_when_a_transaction_it_sent_disappears() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    // Blocks an hour apart after the first: the first transaction waits in the mempool.
    let genesis = genesis();
    let node = Node::start(data.path(), &genesis, port, 3_600_000).await;
    let wallet = tokio::task::spawn_blocking(move || {
        let client = client_once_finalizing(port);
        let wallet = Wallet::new(agent(), client.clone()).unwrap();
        let sent = wallet.send(transfer()).unwrap();
        assert_eq!(client.tx(&sent).unwrap().state, TxState::Pending);
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

/// Found in review: the wallet read the chain's minimum fee once, when it was made. After
/// governance raised it, every transaction the wallet sent was refused `fee_too_low` until
/// the program built a new wallet. It now re-reads the fee once when the node says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_pays_a_minimum_fee_raised_by_governance() {
    use ogpu_core::tx::{ParamChange, ParamKey};
    use ogpu_core::{Address, Amount, SecretKey};

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let validator = SecretKey::from_name("client-test-validator");
    let mut genesis = genesis();
    genesis.params.voting_blocks = 3;
    genesis
        .allocations
        .push(ogpu_chain::genesis::Allocation { address: Address::of(&validator.public()), amount: Amount::ogpu(10) });
    let raised = genesis.params.min_fee.checked_mul(3).unwrap();
    let node = Node::start(data.path(), &genesis, port, 100).await;
    let verdict = tokio::task::spawn_blocking(move || {
        let client = client_once_finalizing(port);
        let wallet = Wallet::new(agent(), client.clone()).unwrap();
        // The only validator proposes, and its own vote carries the proposal.
        let governor = Wallet::new(validator, client.clone()).unwrap();
        let change = ParamChange { key: ParamKey::MinFee, value: raised.base_units() };
        governor.settle(ogpu_core::tx::TxBody::Propose { change }, "the proposal").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while client.params().unwrap().min_fee != raised {
            assert!(std::time::Instant::now() < deadline, "the proposal did not pass");
            std::thread::sleep(Duration::from_millis(50));
        }
        wallet.send_and_wait(transfer(), Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(verdict.unwrap(), Verdict::Applied);
    node.stop().await;
}
