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

/// Whether what a test needs is here; see `ogpu_testkit::available!`.
pub fn available(what: &str, present: bool) -> bool {
    ogpu_testkit::available!(what, present)
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
