//! End to end: `ogpu devnet` starts four validator processes on loopback; transfers sent to
//! the API are finalized, and once the devnet is stopped every validator's store holds
//! the same state root at the same height.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ogpu_chain::Genesis;
use ogpu_client::Client;
use ogpu_core::keystore::Keystore;
use ogpu_core::tx::{Transaction, TxBody};
use ogpu_core::{Address, Amount, Hash};
use ogpu_node::store::Store;

fn api(port: u16) -> Client {
    Client::new(&format!("http://127.0.0.1:{port}")).unwrap()
}

/// Stops the devnet (and with it every validator) when the test ends, pass or fail.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_devnet(data: &std::path::Path) -> (Devnet, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_ogpu"))
        .args([
            "devnet",
            "--dashboard",
            "127.0.0.1:0",
            "--validators",
            "4",
            "--providers",
            "0",
            "--api",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(data)
        .spawn()
        .unwrap();
    (Devnet(child), port)
}

fn finalized_height(port: u16) -> u64 {
    api(port).status().map_or(0, |status| status.finalized_height)
}

/// Sends `count` transfers of 1 oGPU from the demo client, nonces from `first`.
fn send_transfers(data: &std::path::Path, port: u16, first: u64, count: u64, to: Address) {
    let client =
        Keystore::from_json(&std::fs::read_to_string(data.join("client.key")).unwrap()).unwrap().open("").unwrap();
    let genesis = Genesis::from_toml(&std::fs::read_to_string(data.join("genesis.toml")).unwrap()).unwrap();
    for nonce in first..first + count {
        let body = TxBody::Transfer { to, amount: Amount::ogpu(1) };
        let tx = Transaction::sign(&client, genesis.chain_id.clone(), nonce, genesis.params.min_fee, body);
        assert_eq!(api(port).submit(&tx).unwrap(), tx.hash());
    }
}

fn balance(port: u16, of: Address) -> Option<Amount> {
    api(port).account(&of).ok().map(|account| account.balance)
}

/// Opens every validator's store (the devnet must be stopped) and checks they agree.
fn assert_one_state_root(data: &std::path::Path) -> u64 {
    let genesis = Genesis::from_toml(&std::fs::read_to_string(data.join("genesis.toml")).unwrap()).unwrap();
    let stores: Vec<Store> =
        (0..4).map(|i| Store::open(&data.join(format!("validator-{i}/chain.redb")), &genesis, 100).unwrap()).collect();
    let common = stores.iter().map(|s| s.finalized_height().unwrap()).min().unwrap();
    let roots: Vec<_> = stores.iter().map(|s| s.block(common).unwrap().unwrap().header().state_root).collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "one state root at height {common}: {roots:?}");
    common
}

#[test]
fn four_validator_processes_finalize_transfers_with_one_state_root() {
    let data = tempfile::tempdir().unwrap();
    let (devnet, port) = start_devnet(data.path());
    wait_for("the first finalized blocks", Duration::from_secs(60), || finalized_height(port) >= 2);
    let recipient = Address([7; 20]);
    send_transfers(data.path(), port, 0, 10, recipient);
    wait_for("the transfers to be finalized", Duration::from_secs(60), || {
        balance(port, recipient) == Some(Amount::ogpu(10))
    });
    blobs_go_up_and_come_back_by_hash(port);

    drop(devnet);
    assert!(assert_one_state_root(data.path()) >= 2, "every validator finalized blocks");
}

/// `ogpu` with this devnet's API; its standard output, or its error.
fn ogpu(port: u16, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_ogpu"))
        .args(args)
        .env("OGPU_API", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    if output.status.success() { Ok(text(output.stdout)) } else { Err(text(output.stderr)) }
}

/// `ogpu blob hash` gives offline the address `put` stores a file under, and `get` brings
/// back the same bytes; a missing file or a directory is refused by name.
fn blobs_go_up_and_come_back_by_hash(port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weights.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let blob = |args: &[&std::ffi::OsStr]| {
        let mut all: Vec<&std::ffi::OsStr> = vec!["blob".as_ref()];
        all.extend_from_slice(args);
        ogpu(port, &all)
    };
    let hashed = blob(&["hash".as_ref(), file.as_os_str()]).unwrap();
    let put = blob(&["put".as_ref(), file.as_os_str()]).unwrap();
    assert_eq!(put, hashed);
    assert_eq!(put, format!("{} 200000 bytes\n", Hash::of_bytes(&bytes)));

    let back = dir.path().join("back.bin");
    let hash = put.split(' ').next().unwrap();
    blob(&["get".as_ref(), format!("blake3:{hash}").as_ref(), back.as_os_str()]).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);

    let missing = blob(&["put".as_ref(), dir.path().join("nothing").as_os_str()]).unwrap_err();
    assert!(missing.contains("cannot open") && missing.contains("nothing"), "{missing}");
    let directory = blob(&["put".as_ref(), dir.path().as_os_str()]).unwrap_err();
    assert!(directory.contains("is not a regular file"), "{directory}");
    let unknown = dir.path().join("unknown.bin");
    let absent = blob(&["get".as_ref(), Hash([5; 32]).to_string().as_ref(), unknown.as_os_str()]).unwrap_err();
    assert!(absent.contains("unknown_blob"), "{absent}");
    assert!(!unknown.exists(), "a failed download leaves no file");
}

#[test]
fn a_validator_killed_mid_stream_restarts_from_its_store_and_catches_up() {
    kill_and_restart_validator_3(false);
}

#[test]
fn a_validator_that_joins_late_syncs_from_genesis() {
    kill_and_restart_validator_3(true);
}

/// Kills validator 3 with SIGKILL while transfers flow and restarts it, from its store
/// or (`wipe`) from nothing, as a validator joining late would.
fn kill_and_restart_validator_3(wipe: bool) {
    let data = tempfile::tempdir().unwrap();
    let (devnet, port) = start_devnet(data.path());
    wait_for("the first finalized blocks", Duration::from_secs(60), || finalized_height(port) >= 2);
    let victim = data.path().join("validator-3");
    let recipient = Address([8; 20]);
    send_transfers(data.path(), port, 0, 5, recipient);
    let pids = common::pids_running(&victim.display().to_string());
    assert_eq!(pids.len(), 1, "one process runs validator-3");
    Command::new("kill").args(["-KILL", &pids[0].to_string()]).status().unwrap();
    if wipe {
        wait_for("validator-3 to exit", Duration::from_secs(10), || {
            common::pids_running(&victim.display().to_string()).is_empty()
        });
        std::fs::remove_file(victim.join("chain.redb")).unwrap();
    }
    send_transfers(data.path(), port, 5, 5, recipient);
    wait_for("the three others to finalize everything", Duration::from_secs(60), || {
        balance(port, recipient) == Some(Amount::ogpu(10))
    });
    let before_restart = finalized_height(port);
    let own_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let restarted = Command::new(env!("CARGO_BIN_EXE_ogpu"))
        .args(["node", "run", "--api", &format!("127.0.0.1:{own_port}"), "--data"])
        .arg(&victim)
        .env("OGPU_PASSWORD", "")
        .spawn()
        .unwrap();
    let _restarted = Devnet(restarted);
    // The restarted validator itself must finalize past where the others were when it came
    // back, asked through its own API: watching only the others would pass by chance.
    let genesis = Genesis::from_toml(&std::fs::read_to_string(data.path().join("genesis.toml")).unwrap()).unwrap();
    wait_for("the restarted validator to catch up", Duration::from_secs(120), || {
        finalized_height(own_port) >= before_restart + 2
    });
    drop(_restarted);
    drop(devnet);
    {
        let store = Store::open(&victim.join("chain.redb"), &genesis, 100).unwrap();
        let state = store.load(genesis).unwrap();
        assert!(state.height >= before_restart, "validator-3 caught up to {} from its store", state.height);
        assert_eq!(state.balance(&recipient), Amount::ogpu(10), "no finalized transfer is lost");
    }
    assert_one_state_root(data.path());
}
