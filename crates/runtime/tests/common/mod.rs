//! What the runtime tests share: a job's directories as the agent stages them, the rule
//! for tests that need a device or library this machine may lack, and how a refusal is
//! checked.

#![allow(dead_code, reason = "each test binary uses the part it needs")]

use std::fs;

use ogpu_runtime::TaskError;

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

/// Whether what a test needs (a GPU backend, a library such as onnxruntime, the shared
/// data set) is here. Without it the test says so and skips, unless `OGPU_TEST_REQUIRE`
/// names it (CI names what it installs), where it fails rather than skips in silence.
/// Every skip goes through here, and is also written to the file `OGPU_SKIP_LOG` names,
/// for CI to list at the end: a skip must not look like a pass.
pub fn available(what: &str, present: bool) -> bool {
    let required = std::env::var("OGPU_TEST_REQUIRE").unwrap_or_default();
    let required = required.split(',').any(|name| name.trim() == what);
    assert!(present || !required, "OGPU_TEST_REQUIRE names {what}, but this machine has none");
    if !present {
        let test = std::thread::current().name().unwrap_or("a test").to_string();
        println!("skipped: {test}: no {what} on this machine");
        if let Some(log) = std::env::var_os("OGPU_SKIP_LOG") {
            use std::io::Write;
            let mut file = fs::OpenOptions::new().create(true).append(true).open(log).expect("the skip log opens");
            writeln!(file, "{} {test}: no {what}", env!("CARGO_CRATE_NAME")).expect("the skip log is written");
        }
    }
    present
}

/// Asserts that `result` is an error of the kind `wanted` whose message says `words`.
pub fn refused(result: Result<impl std::fmt::Debug, TaskError>, wanted: fn(&TaskError) -> bool, words: &str) {
    match result {
        Err(error) if wanted(&error) && error.to_string().contains(words) => {}
        other => panic!("expected an error saying {words:?}, got {other:?}"),
    }
}

pub fn invalid_program(error: &TaskError) -> bool {
    matches!(error, TaskError::InvalidProgram(_))
}

pub fn bad_input(error: &TaskError) -> bool {
    matches!(error, TaskError::BadInput(_))
}

pub fn bad_output(error: &TaskError) -> bool {
    matches!(error, TaskError::BadOutput(_))
}

pub fn unsupported(error: &TaskError) -> bool {
    matches!(error, TaskError::Unsupported(_))
}
