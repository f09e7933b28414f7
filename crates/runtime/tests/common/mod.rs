//! What the runtime tests share: a job's directories as the agent stages them, and the rule
//! for tests that need a device or library this machine may lack.

use std::fs;

/// A temporary directory with `input/` holding `inputs` and an empty `output/`.
pub fn staged(inputs: &[(&str, &[u8])]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("input")).unwrap();
    fs::create_dir(root.path().join("output")).unwrap();
    for (name, contents) in inputs {
        fs::write(root.path().join("input").join(name), contents).unwrap();
    }
    root
}

/// Whether a test of `device` (a GPU backend, or a library such as onnxruntime) can run
/// here. Without it the test says so and skips, unless `OGPU_TEST_REQUIRE` names it (CI
/// names what it installs), where a missing device fails rather than skips in silence.
#[allow(dead_code, reason = "not every test binary has a device to ask for")]
pub fn device_present(device: &str, present: bool) -> bool {
    let required = std::env::var("OGPU_TEST_REQUIRE").unwrap_or_default();
    let required = required.split(',').any(|name| name.trim() == device);
    assert!(present || !required, "OGPU_TEST_REQUIRE names {device}, but this machine has none");
    if !present {
        println!("skipped: no {device} on this machine");
    }
    present
}
