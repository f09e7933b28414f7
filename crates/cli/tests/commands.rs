//! Commands that run without a network: `ogpu task run-local` runs a spec on this machine's
//! runtimes, its files found by hash; `ogpu provider detect` measures the devices.

use std::path::Path;
use std::process::Command;

fn ogpu(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ogpu")).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name).display().to_string()
}

#[test]
fn the_wasm_example_runs_locally_and_delivers_its_sum() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().display().to_string();
    let (ok, stdout, stderr) = ogpu(&["task", "run-local", &example("wasm-sum.toml"), "--out", &out_dir, "-o", "json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["name"], "wasm-sum");
    assert_eq!(std::fs::read_to_string(out.path().join("sum.txt")).unwrap(), "5050\n");
    let (_, again, _) = ogpu(&["task", "run-local", &example("wasm-sum.toml"), "-o", "json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(report["output"], again["output"], "the output hash is deterministic");
}

/// A container task from a spec that names its image archive by path, run locally in the
/// sandbox (skipped, saying so, where bubblewrap or busybox is missing).
#[test]
fn a_container_spec_runs_its_image_locally() {
    let present = Path::new("/usr/bin/bwrap").is_file() && Path::new(ogpu_testkit::images::BUSYBOX).is_file();
    if !ogpu_testkit::available!("bubblewrap", present) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({ "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"] });
    ogpu_testkit::images::busybox(dir.path(), config);
    std::fs::write(dir.path().join("numbers.txt"), "1\n2\n3\n").unwrap();
    let spec = dir.path().join("count.toml");
    std::fs::write(
        &spec,
        r#"
name = "count"
deadline_blocks = 20
[workload]
kind = "container"
program = "busybox.oci.tar"
inputs = { "numbers.txt" = "numbers.txt" }
args = ["wc -l < /input/numbers.txt > /output/count.txt"]
[market]
kind = "auction"
max_price = "0.01"
bid_window = 2
"#,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = ogpu(&[
        "task",
        "run-local",
        &spec.display().to_string(),
        "--out",
        &out.path().display().to_string(),
        "-o",
        "json",
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(std::fs::read_to_string(out.path().join("count.txt")).unwrap(), "3\n");
    let (ok, checked, stderr) = ogpu(&["spec", "check", "-o", "json", &spec.display().to_string()]);
    assert!(ok, "{stderr}");
    let checked: serde_json::Value = serde_json::from_str(&checked).unwrap();
    assert_eq!(checked["private"], true, "a container auction is private unless it says");
    assert_eq!(checked["spec"]["workload"]["limits"]["memory_mb"], 4096);
}

#[test]
fn the_digits_training_example_reaches_91_percent_on_unseen_rows_locally() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().display().to_string();
    let (ok, stdout, stderr) =
        ogpu(&["task", "run-local", &example("digits-train.toml"), "--out", &out_dir, "-o", "json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["trace"]["checkpoints"], 9);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap()).unwrap();
    let accuracy = metrics["eval_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.91, "{accuracy} on rows 1500..1796 ({metrics})");
    assert!(stderr.contains("step 1200/1200"), "progress is shown as it trains");
}

#[test]
fn spec_check_shows_the_hashes_a_spec_resolves_to_and_what_it_reserves() {
    let (ok, stdout, stderr) = ogpu(&["spec", "check", &example("wasm-sum.toml"), "-o", "json"]);
    assert!(ok, "{stderr}");
    let checked: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let program = blake3::hash(&std::fs::read(example("wasm-sum.wat")).unwrap()).to_hex().to_string();
    assert_eq!(checked["spec"]["workload"]["program"], program.as_str(), "{checked}");
    // A 0.01 cap for each of 3 replicas: 0.0306 escrow with the 2% protocol fee, 0.0015 for
    // three dispute verifiers (5% of the cap each) and a 0.003 trust lock (10%).
    assert_eq!((&checked["escrow"], &checked["trust_lock"]), (&"0.0306".into(), &"0.003".into()), "{checked}");
    assert_eq!(checked["total"], "0.0351", "{checked}");
    let (ok, stdout, _) = ogpu(&["spec", "check", &example("wasm-sum.toml")]);
    assert!(ok && stdout.contains("reserves 0.0351 oGPU"), "{stdout}");
}

#[test]
fn a_spec_whose_files_are_missing_or_malformed_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(example("wasm-sum.toml")).unwrap();
    let copied = dir.path().join("task.toml");
    std::fs::write(&copied, &spec).unwrap();
    let (ok, _, stderr) = ogpu(&["task", "run-local", &copied.display().to_string()]);
    assert!(!ok);
    assert!(stderr.contains("workload.program names") && stderr.contains("wasm-sum.wat"), "{stderr}");

    for file in ["wasm-sum.wat", "numbers.txt"] {
        std::fs::copy(example(file), dir.path().join(file)).unwrap();
    }
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, spec.replace("kind = \"wasm\"", "kind = \"quantum\"")).unwrap();
    let (ok, _, stderr) = ogpu(&["task", "run-local", &broken.display().to_string()]);
    assert!(!ok);
    assert!(stderr.contains("not a valid task spec"), "{stderr}");
}

#[test]
fn provider_detect_lists_the_cpu_with_its_measured_throughput() {
    let (ok, stdout, stderr) = ogpu(&["provider", "detect", "-o", "json"]);
    assert!(ok, "{stderr}");
    let profile: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let devices = profile["devices"].as_array().unwrap();
    let cpu = devices.last().unwrap();
    assert_eq!(cpu["kind"], "cpu");
    assert!(cpu["gflops"].as_u64().unwrap() >= 1, "{cpu}");
}

/// Finding 20: `node run` opened the validator key with an empty password whenever
/// OGPU_PASSWORD was unset, so a forgotten variable silently ran a node (and a key sealed
/// without a password went unnoticed). Unset, it now asks on a terminal or refuses.
#[test]
fn node_run_without_a_password_and_no_terminal_refuses() {
    use ogpu_chain::Genesis;
    use ogpu_chain::genesis::GenesisValidator;
    use ogpu_core::keystore::{Kdf, Keystore};
    use ogpu_core::{Amount, SecretKey};

    let data = tempfile::tempdir().unwrap();
    let key = SecretKey::from_name("password-test-validator");
    let genesis = Genesis {
        chain_id: "ogpu-test".parse().unwrap(),
        genesis_time_ms: 0,
        params: Default::default(),
        allocations: vec![],
        validators: vec![GenesisValidator { public_key: key.public(), stake: Amount::ogpu(10_000) }],
    };
    std::fs::write(data.path().join("genesis.toml"), genesis.to_toml()).unwrap();
    let sealed = Keystore::seal(&key, "", Kdf::DEVNET, &mut rand_core::OsRng).unwrap();
    std::fs::write(data.path().join("validator.key"), sealed.to_json()).unwrap();

    let mut node = Command::new(env!("CARGO_BIN_EXE_ogpu"))
        .args(["node", "run", "--data"])
        .arg(data.path())
        .env_remove("OGPU_PASSWORD")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = node.kill();
            panic!("the node started without a password");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success() && stderr.contains("OGPU_PASSWORD"), "{stderr}");
}

/// Scripts tell failures apart by the exit code: 2 for usage (arguments clap refuses, a
/// hash that is not one), 4 for a node that cannot be reached, 0 for what needs no node.
#[test]
fn exit_codes_say_what_kind_of_failure_it_was() {
    let code = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ogpu"))
            .args(args)
            .env("OGPU_API", "http://127.0.0.1:9")
            .env_remove("OGPU_KEY")
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.bin");
    std::fs::write(&file, b"bytes").unwrap();
    let file = file.to_str().unwrap();

    assert_eq!(code(&["blob", "hash", file]).0, Some(0));
    let (unreachable, stderr) = code(&["blob", "put", file]);
    assert_eq!(unreachable, Some(4), "{stderr}");
    assert!(stderr.contains("cannot reach the API"), "{stderr}");
    assert_eq!(code(&["wallet", "balance", "not-an-address"]).0, Some(2), "clap refuses the argument");
    let (bad_hash, stderr) = code(&["blob", "get", "zz", file]);
    assert_eq!(bad_hash, Some(2), "{stderr}");
    assert!(stderr.contains("is not a blob hash"), "{stderr}");

    let help = Command::new(env!("CARGO_BIN_EXE_ogpu")).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes: 0 done"));
}
