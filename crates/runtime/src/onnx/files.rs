//! The job's files: the inputs the arguments name, and the outputs written back. Names
//! come from the task, so they are held to plain file names (as input names in a task spec
//! are) and can never reach outside the job's directories.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::TaskError;

/// Whether `name` is a plain file name: letters, digits, '.', '_' and '-', not starting
/// with '.'.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The contents of the input `name`.
pub fn read_input(inputs: &Path, name: &str) -> Result<Vec<u8>, TaskError> {
    if !is_plain(name) {
        return Err(TaskError::BadInput(format!(
            "input file {name:?} is not a plain file name (letters, digits, '.', '_', '-')"
        )));
    }
    let path = inputs.join(name);
    std::fs::read(&path).map_err(|error| match error.kind() {
        ErrorKind::NotFound => TaskError::BadInput(format!(
            "the arguments name the input file {name:?}, but the task has no input of that name"
        )),
        _ => TaskError::io("reading", &path)(error),
    })
}

/// Writes the output file `name`.
pub fn write_output(output: &Path, name: &str, bytes: &[u8]) -> Result<(), TaskError> {
    if !is_plain(name) {
        return Err(TaskError::BadInput(format!(
            "output file {name:?} is not a plain file name (letters, digits, '.', '_', '-'); \
             pick outputs with plain names with output=NAME"
        )));
    }
    let path = output.join(name);
    // `create_new`: two outputs that would share a file are an error, not an overwrite.
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|error| match error.kind() {
        ErrorKind::AlreadyExists => TaskError::BadInput(format!("two outputs would both be written to {name}")),
        _ => TaskError::io("creating", &path)(error),
    })?;
    file.write_all(bytes).map_err(TaskError::io("writing", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_files() {
        for name in ["pixels.npy", "a-b_c.1", "X"] {
            assert!(is_plain(name), "{name}");
        }
        for name in ["", ".hidden", "../x", "a/b", "/etc/passwd", "a b", "é.npy", "c:d", &"x".repeat(256)] {
            assert!(!is_plain(name), "{name}");
        }
    }
}
