//! A container task on a devnet of real processes: the client's image archive (busybox,
//! built by the test) is named by path in its spec, sealed and uploaded by `ogpu task
//! submit` (a container auction is private by default), run by a provider agent in its
//! sandbox, and its result opened by `ogpu task result`. Skipped, saying so, where
//! bubblewrap or busybox is missing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::market::*;
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

#[test]
fn a_container_task_runs_in_a_providers_sandbox_and_its_sealed_result_opens() {
    let present = Path::new("/usr/bin/bwrap").is_file() && Path::new(ogpu_testkit::images::BUSYBOX).is_file();
    if !ogpu_testkit::available!("bubblewrap", present) {
        return;
    }
    let _one = ONE_DEVNET_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let devnet = Devnet::start();
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({ "Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"] });
    ogpu_testkit::images::busybox(dir.path(), config);
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
