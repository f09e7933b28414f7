//! The wallet against a node served over HTTP in this process.

mod common;

use std::time::Duration;

use common::{Node, agent, free_port, genesis, transfer};
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
        let client = ogpu_client::Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        while client.status().unwrap().finalized_height < 1 {
            std::thread::sleep(Duration::from_millis(50));
        }
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
