//! A container task on a devnet of real processes: the client's image archive (busybox,
//! built by the test) is named by path in its spec, sealed and uploaded by `ogpu task
//! submit` (a container auction is private by default), run by a provider agent in its
//! sandbox, and its result opened by `ogpu task result`; a spot-checked container whose
//! metrics differ a little from run to run passes under a tolerance and fails without one.
//! Skipped, saying so, where bubblewrap or busybox is missing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::market::*;
use ogpu_chain::Event;
use ogpu_chain::state::Outcome;

const SPEC: &str = r#"
name = "count-lines"
deadline_blocks = 30
[workload]
kind = "container"
program = "busybox.oci.tar"
inputs = { "numbers.txt" = "numbers.txt" }
args = ["wc -l < /input/numbers.txt > /output/count.txt"]
limits = { memory_mb = 256, timeout_s = 60 }
[market]
kind = "auction"
max_price = "0.01"
bid_window = 1
"#;

fn available() -> bool {
    let present = Path::new("/usr/bin/bwrap").is_file() && Path::new(ogpu_testkit::images::BUSYBOX).is_file();
    ogpu_testkit::available!("bubblewrap", present)
}

/// A directory holding the busybox image, its command `sh -c ARGS`.
fn image_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({ "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"] });
    ogpu_testkit::images::busybox(dir.path(), config);
    dir
}

#[test]
fn a_container_task_runs_in_a_providers_sandbox_and_its_sealed_result_opens() {
    if !available() {
        return;
    }
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let dir = image_dir();
    std::fs::write(dir.path().join("numbers.txt"), "1\n2\n3\n").unwrap();
    let spec = dir.path().join("count.toml");
    std::fs::write(&spec, SPEC).unwrap();

    let submitted = devnet.ogpu(&["task", "submit", spec.to_str().unwrap()]);
    assert_success(&submitted);
    let id = submitted_id(&submitted);
    let Outcome::Completed { .. } = devnet.wait_until_ended(&id, Duration::from_secs(90)) else {
        panic!("the container task did not complete: {:?}", devnet.events(&id));
    };
    let task = devnet.task(&id);
    assert!(task.spec.private.is_some(), "a container auction is private by default");
    let out = tempfile::tempdir().unwrap();
    let fetched = devnet.ogpu(&["task", "result", &id.to_string(), "--out", out.path().to_str().unwrap()]);
    assert_success(&fetched);
    assert_eq!(std::fs::read_to_string(out.path().join("count.txt")).unwrap(), "3\n");
}

/// Metrics whose loss differs in its fourth significant digit and beyond from run to run
/// (busybox's `$RANDOM`, twice), as a GPU's floating point does.
const NOISY: &str = r#"
name = "noisy-metrics"
deadline_blocks = 40
private = false
[workload]
kind = "container"
program = "busybox.oci.tar"
args = ["echo \"{\\\"steps\\\": 10, \\\"loss\\\": 0.500$RANDOM$RANDOM}\" > /output/metrics.json"]
limits = { memory_mb = 256, timeout_s = 60 }
[market]
kind = "auction"
max_price = "0.01"
bid_window = 1
[verification]
policy = "spot_check"
p = 1
"#;

#[test]
fn a_spot_check_passes_metrics_within_the_tolerance_and_fails_them_without_one() {
    if !available() {
        return;
    }
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let dir = image_dir();
    let submit = |name: &str, spec: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, spec).unwrap();
        let submitted = devnet.ogpu(&["task", "submit", path.to_str().unwrap()]);
        assert_success(&submitted);
        submitted_id(&submitted)
    };
    let tolerant = submit("tolerant.toml", format!("{NOISY}tolerance = 0.01\n"));
    let exact = submit("exact.toml", NOISY.to_string());
    let verdicts = |id| -> Vec<(ogpu_core::Address, bool)> {
        let events = devnet.events(id);
        events
            .iter()
            .filter_map(|e| if let Event::Verdict { executor, pass, .. } = e { Some((*executor, *pass)) } else { None })
            .collect()
    };

    let outcome = devnet.wait_until_ended(&tolerant, Duration::from_secs(120));
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}: {:?}", devnet.events(&tolerant));
    let passed: Vec<bool> = verdicts(&tolerant).into_iter().map(|(_, pass)| pass).collect();
    assert_eq!(passed, [true], "{:?}", devnet.events(&tolerant));

    // Without a tolerance the verifier's own run is other bytes: the executor fails, and
    // is slashed for it.
    let (executor, pass) =
        wait_for("a verdict on the exact task", Duration::from_secs(120), || verdicts(&exact).first().copied());
    assert!(!pass, "{:?}", devnet.events(&exact));
    assert!(!devnet.slashes(&executor).is_empty(), "{:?}", devnet.events(&exact));
}
