//! A private task on a devnet of real processes: the client seals its program and input
//! and uploads only ciphertext; a provider agent, whose reader key is in its registered
//! profile, wins the auction, waits for the keys the client posts on chain, opens its
//! inputs with them, runs the task and is paid. Anyone else fetching the blobs gets
//! ciphertext that its keys do not open.

mod common;

use std::time::Duration;

use common::market::*;
use ogpu_chain::state::Outcome;
use ogpu_client::wallet::{Verdict, Wallet};
use ogpu_core::rng::DetRng;
use ogpu_core::sealed::{self, ContentKey, Envelope, ReaderSecret, SealError, key_context};
use ogpu_core::spec::TaskSpec;
use ogpu_core::tx::TxBody;
use ogpu_core::{Address, BlobHash, Hash, TaskId};

const SPEC: &str = r#"
name = "private-sum"
deadline_blocks = 30
[workload]
kind = "wasm"
program = "wasm-sum.wat"
inputs = { "numbers.txt" = "numbers.txt" }
limits = { fuel = 100000000, memory_mb = 16, timeout_s = 60 }
[market]
kind = "auction"
max_price = "0.01"
bid_window = 1
"#;

/// A blob as the client keeps it: its plaintext, its content key, and where the store has
/// the sealed copy.
struct Sealed {
    plain: Vec<u8>,
    key: ContentKey,
    hash: BlobHash,
}

fn seal_and_upload(devnet: &Devnet, plain: Vec<u8>, rng: &mut DetRng) -> Sealed {
    let key = ContentKey::generate(rng);
    let mut ciphertext = Vec::new();
    sealed::seal(&key, rng, &mut plain.as_slice(), &mut ciphertext).unwrap();
    let (hash, _) = devnet.client.upload_blob(ciphertext.as_slice()).unwrap();
    Sealed { plain, key, hash }
}

fn download(devnet: &Devnet, hash: &BlobHash) -> Vec<u8> {
    let mut bytes = Vec::new();
    devnet.client.download_blob(hash, &mut bytes).unwrap();
    bytes
}

#[test]
fn a_private_task_runs_on_inputs_only_its_executor_can_open() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (_dir, spec_path) = spec_dir(&["wasm-sum.wat", "numbers.txt"], SPEC);
    let plain_spec = ogpu_client::spec::resolve(&spec_path).unwrap().spec;
    let client_key = devnet.client_key();
    let mut rng = DetRng::new(&Hash::ZERO, "private task e2e", &[]);

    // The client seals each file under a key of its own and names the ciphertexts.
    let dir = spec_path.parent().unwrap();
    let program = seal_and_upload(&devnet, std::fs::read(dir.join("wasm-sum.wat")).unwrap(), &mut rng);
    let numbers = seal_and_upload(&devnet, std::fs::read(dir.join("numbers.txt")).unwrap(), &mut rng);
    let mut spec = TaskSpec { private: Some(ReaderSecret::derive(&client_key).public()), ..plain_spec };
    spec.workload.program = program.hash;
    spec.workload.inputs.insert("numbers.txt".into(), numbers.hash);
    let keys_by_blob = [(program.hash, &program.key), (numbers.hash, &numbers.key)];

    let wallet = Wallet::new(client_key, devnet.client.clone()).unwrap();
    let id = TaskId(wallet.settle(TxBody::SubmitTask { spec: spec.clone() }, "submitting").unwrap());
    let executor =
        wait_for("the award", Duration::from_secs(60), || devnet.task(&id).executors.first().map(|e| e.provider));

    // Keys go on chain to the winner alone, wrapped to the reader key it registered.
    let reader = devnet.client.provider(&executor).unwrap().view.provider.profile.reader.expect("a reader key");
    let envelopes: Vec<Envelope> = spec
        .workload
        .blobs()
        .map(|blob| {
            let key = keys_by_blob.iter().find(|(hash, _)| *hash == blob).unwrap().1;
            Envelope::wrap(key, &reader, &key_context(&id, &executor, &blob), &mut rng)
        })
        .collect();
    let posted =
        wallet.send_and_wait(TxBody::PostKeys { task: id, to: executor, keys: envelopes }, Duration::from_secs(30));
    assert_eq!(posted.unwrap(), Verdict::Applied);

    let Outcome::Completed { output } = devnet.wait_until_ended(&id, Duration::from_secs(90)) else {
        panic!("the private task did not complete: {:?}", devnet.events(&id));
    };
    let out = tempfile::tempdir().unwrap();
    ogpu_client::transfer::fetch(&devnet.client, &output, out.path()).unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("sum.txt")).unwrap(), "5050\n", "it ran on the opened input");
    assert!(devnet.slashes(&executor).is_empty());

    // What a stranger fetches is not the plaintext, and no key but the client's opens it.
    for blob in [&program, &numbers] {
        let fetched = download(&devnet, &blob.hash);
        assert!(!fetched.windows(blob.plain.len().min(16)).any(|w| blob.plain.starts_with(w)), "ciphertext only");
        let wrong = ContentKey::generate(&mut rng);
        let opened = sealed::open(&wrong, &mut fetched.as_slice(), &mut Vec::new());
        assert!(matches!(opened, Err(SealError::Chunk(_))), "{opened:?}");
        let mut plain = Vec::new();
        sealed::open(&blob.key, &mut fetched.as_slice(), &mut plain).unwrap();
        assert_eq!(plain, blob.plain);
    }
    let stranger = Address::of(&ogpu_core::SecretKey::from_name("stranger").public());
    assert!(!devnet.task(&id).keys.contains_key(&stranger));
}
