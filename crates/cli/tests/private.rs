//! A private task on a devnet of real processes, through the CLI as a client uses it:
//! `ogpu task submit` seals the program and input, uploads only ciphertext, and hands the
//! keys to the provider that wins the auction, wrapped to the reader key in its registered
//! profile; the provider opens its inputs, runs the task, seals its result for the task's
//! parties and is paid; `ogpu task result` opens it. A stranger fetching the blobs gets
//! ciphertext, and cannot fetch the result at all. (The private training task with proof
//! of learning is `ai_tasks.rs`: training is private by default.)

mod common;

use std::time::Duration;

use common::market::*;
use ogpu_chain::Event;
use ogpu_chain::state::Outcome;
use ogpu_client::private::KeysError;
use ogpu_client::task::{TaskError, TaskHandle};
use ogpu_client::wallet::Wallet;
use ogpu_core::manifest::parse_sealed_index;
use ogpu_core::rng::DetRng;
use ogpu_core::sealed::{self, ContentKey, SealError};
use ogpu_core::{Address, BlobHash, Hash};

const SPEC: &str = r#"
name = "private-sum"
deadline_blocks = 30
private = true
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

fn download(devnet: &Devnet, hash: &BlobHash) -> Vec<u8> {
    let mut bytes = Vec::new();
    devnet.client.download_blob(hash, &mut bytes).unwrap();
    bytes
}

/// What a stranger gets: bytes that are not `plain`, and that a key of its own does not
/// open.
fn assert_ciphertext(sealed_blob: &[u8], plain: &[u8]) {
    assert!(!sealed_blob.windows(plain.len().min(16)).any(|w| plain.starts_with(w)), "plaintext shows through");
    let wrong = ContentKey::generate(&mut DetRng::new(&Hash::ZERO, "a stranger's key", &[]));
    let opened = sealed::open(&wrong, &mut &sealed_blob[..], &mut Vec::new());
    assert!(matches!(opened, Err(SealError::Chunk(0))), "{opened:?}");
}

#[test]
fn a_private_task_runs_on_inputs_and_yields_a_result_only_its_parties_can_open() {
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let (dir, spec_path) = spec_dir(&["wasm-sum.wat", "numbers.txt"], SPEC);
    let checked = devnet.ogpu(&["spec", "check", "-o", "json", spec_path.to_str().unwrap()]);
    assert_success(&checked);
    let checked: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(checked["private"], true);

    let submitted = devnet.ogpu(&["task", "submit", spec_path.to_str().unwrap()]);
    assert_success(&submitted);
    let id = submitted_id(&submitted);
    let Outcome::Completed { output } = devnet.wait_until_ended(&id, Duration::from_secs(60)) else {
        panic!("the private task did not complete: {:?}", devnet.events(&id));
    };
    let task = devnet.task(&id);
    let executor = task.executors[0].provider;
    let handed: Vec<Address> = devnet
        .events(&id)
        .iter()
        .filter_map(|e| match e {
            Event::KeysPosted { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(handed, [task.client, executor], "submit kept the client's copy, then handed the winner its keys");
    assert!(devnet.slashes(&executor).is_empty());

    // The client opens the result with its own key.
    let out = tempfile::tempdir().unwrap();
    let fetched = devnet.ogpu(&["task", "result", &id.to_string(), "--out", out.path().to_str().unwrap()]);
    assert_success(&fetched);
    assert_eq!(std::fs::read_to_string(out.path().join("sum.txt")).unwrap(), "5050\n", "it ran on the opened input");

    // A stranger gets ciphertext for the program and the input, and no result: the store
    // holds only its sealed copies, listed by an index that names nothing.
    for (blob, file) in
        [(task.spec.workload.program, "wasm-sum.wat"), (task.spec.workload.inputs["numbers.txt"], "numbers.txt")]
    {
        assert_ciphertext(&download(&devnet, &blob), &std::fs::read(dir.path().join(file)).unwrap());
    }
    assert!(!devnet.client.has_blob(&BlobHash(output)).unwrap(), "the plain result is nowhere in the store");
    let index = task.executors[0].sealed.expect("the executor revealed a sealed copy");
    let copies = parse_sealed_index(&download(&devnet, &index)).unwrap();
    let names: Vec<&str> = copies.iter().map(|copy| copy.path.as_str()).collect();
    assert_eq!(names, ["0", "1"], "the sealed manifest, then sum.txt");
    assert_ciphertext(&download(&devnet, &copies[1].hash), b"5050\n");
    let stranger = Address::of(&ogpu_core::SecretKey::from_name("stranger").public());
    assert!(!task.keys.contains_key(&stranger));

    // Nobody but its client opens the result: a stranger's wallet is refused by name.
    let stranger_wallet = Wallet::new(ogpu_core::SecretKey::from_name("stranger"), devnet.client.clone()).unwrap();
    let refused = TaskHandle::new(devnet.client.clone(), id).result(out.path(), Some(&stranger_wallet));
    assert!(matches!(refused, Err(TaskError::Keys(KeysError::NotPosted(who))) if who == stranger), "{refused:?}");
}
