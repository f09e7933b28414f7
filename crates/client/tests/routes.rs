//! Every typed call of the client against a real node and its API: the server builds the
//! bodies from the same types the client reads, and the mempool's refusals arrive by name.

mod common;

use std::time::Duration;

use common::{Node, agent, client_once_finalizing, free_port, genesis, transfer};
use ogpu_api::Limits;
use ogpu_client::types::TxState;
use ogpu_client::{Refusal, TaskFilter, Verdict, Wallet};
use ogpu_core::tx::Transaction;
use ogpu_core::{Address, Amount, BlobHash, Hash, TaskId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_in_the_types_the_client_reads() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let genesis = genesis();
    let node = Node::start(data.path(), &genesis, port, 100).await;
    tokio::task::spawn_blocking(move || {
        let client = client_once_finalizing(port);
        let status = client.status().unwrap();
        assert_eq!((status.chain_id.as_str(), status.validators), ("ogpu-test", 1));
        let params = client.params().unwrap();
        assert_eq!(params, genesis.params);
        let validators = client.validators().unwrap().validators;
        let seated: Vec<_> = validators.iter().map(|v| (v.validator.key, v.validator.stake, v.active)).collect();
        let genesis_set: Vec<_> = genesis.validators.iter().map(|v| (v.public_key, v.stake, true)).collect();
        assert_eq!(seated, genesis_set);
        assert!(client.proposals().unwrap().proposals.is_empty());

        let me = Address::of(&agent().public());
        let account = client.account(&me).unwrap();
        assert_eq!((account.address, account.balance, account.nonce), (me, Amount::ogpu(100), 0));

        // A transfer through the wallet, then its record everywhere it shows.
        let wallet = Wallet::new(agent(), client.clone()).unwrap();
        let hash = wallet.send(transfer()).unwrap();
        assert_eq!(wallet.wait(&hash, "the transfer", Duration::from_secs(30)).unwrap(), Verdict::Applied);
        let TxState::Finalized { height, ok, fee_paid, .. } = client.tx(&hash).unwrap().state else {
            panic!("a finalized transaction reads as finalized");
        };
        assert!(ok);
        assert_eq!(fee_paid, params.min_fee, "the wallet pays the chain's minimum fee");
        let sent = client.account_txs(&me).unwrap().txs;
        assert_eq!(sent.iter().map(|t| (t.hash, t.kind.as_deref())).collect::<Vec<_>>(), [(hash, Some("transfer"))]);
        let block = client.block(height).unwrap();
        assert_eq!((block.height, block.txs.iter().map(|t| t.hash).collect::<Vec<_>>()), (height, vec![hash]));
        assert!(client.latest_block().unwrap().height >= height);
        assert!(client.account_events(&me).unwrap().events.is_empty(), "a transfer is no market event");

        // Refusals by name: nonce 0 is spent, and a forged signature.
        let spent = Transaction::sign(&agent(), genesis.chain_id.clone(), 0, params.min_fee, transfer());
        let refused = client.submit(&spent).unwrap_err();
        assert_eq!(refused.refusal(), Some(Refusal::NonceUsed), "{refused}");
        let mut forged = Transaction::sign(&agent(), genesis.chain_id.clone(), 1, params.min_fee, transfer());
        forged.signature.0[0] ^= 1;
        let verdicts = client.submit_batch(&[spent, forged]).unwrap();
        assert_eq!(verdicts.accepted, 0);
        let reasons: Vec<_> = verdicts.rejected.iter().map(|r| (r.index, r.error)).collect();
        assert_eq!(reasons, [(0, Refusal::NonceUsed), (1, Refusal::BadSignature)]);

        // The market is empty, and says so in the same types.
        assert!(client.tasks(&TaskFilter { client: Some(me), ..TaskFilter::default() }).unwrap().tasks.is_empty());
        assert!(client.providers(Some(10)).unwrap().providers.is_empty());
        assert!(client.pools(None).unwrap().pools.is_empty());
        let unknown = client.task(&TaskId(Hash([3; 32]))).unwrap_err();
        assert_eq!(unknown.api_error(), Some("unknown_task"), "{unknown}");

        // Blobs both ways, checked by hash.
        let bytes = b"the client's blob".to_vec();
        let (blob, size) = client.upload_blob(&bytes[..]).unwrap();
        assert_eq!((blob, size), (BlobHash(Hash::of_bytes(&bytes)), bytes.len() as u64));
        let mut back = Vec::new();
        client.download_blob(&blob, &mut back).unwrap();
        assert_eq!(back, bytes);
    })
    .await
    .unwrap();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_rate_limit_is_sent_again_when_the_api_says_so() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let limits = Limits { requests_per_s: 2, burst: 2, ..Limits::default() };
    let node = Node::start_with(data.path(), &genesis(), port, 100, limits).await;
    tokio::task::spawn_blocking(move || {
        let url = format!("http://127.0.0.1:{port}/v1/status");
        let raw = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let statuses: Vec<u16> = (0..3).map(|_| raw.get(&url).call().unwrap().status().as_u16()).collect();
        assert_eq!(statuses, [200, 200, 429], "a burst of 2 lets the third request through only later");
        let refused = raw.get(&url).call().unwrap();
        assert_eq!(refused.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));

        let client = ogpu_client::Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
        for i in 0..6 {
            client.status().unwrap_or_else(|error| panic!("request {i} over the limit: {error}"));
        }
    })
    .await
    .unwrap();
    node.stop().await;
}
