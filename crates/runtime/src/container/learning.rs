//! Proof of learning for containers, by a convention the program follows
//! (docs/containers.md). The runtime names a directory in `OGPU_CHECKPOINT_DIR` (the
//! result's `checkpoints/`), the task's steps S in `OGPU_STEPS` and its interval K in
//! `OGPU_CHECKPOINT_EVERY`; the program takes S steps and writes what it has after step s,
//! for s = 0, K, 2K, ... and S, as the files of the directory `$OGPU_CHECKPOINT_DIR/s`. A verifier's run also sets
//! `OGPU_RESUME_FROM` (a copy of checkpoint s, at `/ogpu/resume/s`) and `OGPU_STOP_AT` (s'):
//! the program loads the checkpoint, takes steps s+1 to s', writes checkpoint s' and stops.
//!
//! The trace is a Merkle tree over the checkpoints in step order, each leaf the hash of its
//! step and its files (path within the checkpoint, size and hash): a verifier checks it
//! against the result's manifest alone, then fetches the two checkpoints of its segment.
//! The steps are the task's, so an executor cannot shorten the run it is checked on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ogpu_core::manifest::OutputFile;
use ogpu_core::spec::Training;
use ogpu_core::tx::Trace;
use ogpu_core::{Hash, merkle};

use crate::{Checkpointing, TaskError};

/// The result's directory of checkpoints, and where the program finds it.
pub const DIR: &str = "checkpoints";
pub const DIR_VARIABLE: &str = "OGPU_CHECKPOINT_DIR";
pub const EVERY_VARIABLE: &str = "OGPU_CHECKPOINT_EVERY";
pub const STEPS_VARIABLE: &str = "OGPU_STEPS";
/// A verifier's run: the checkpoint to start from, and the step to stop at.
pub const RESUME_VARIABLE: &str = "OGPU_RESUME_FROM";
pub const STOP_VARIABLE: &str = "OGPU_STOP_AT";

/// One checkpoint of a run, as its result lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The steps taken before it.
    pub step: u64,
    /// Its files, with their paths in the result (`checkpoints/STEP/...`), in path order.
    pub files: Vec<OutputFile>,
    /// Its leaf in the trace.
    pub hash: Hash,
}

impl Checkpoint {
    /// Where the checkpoint of `step` lies in a result.
    pub fn dir(step: u64) -> String {
        format!("{DIR}/{step}")
    }

    /// A file's path within its checkpoint.
    pub fn relative<'a>(&self, file: &'a OutputFile) -> &'a str {
        let prefix = Checkpoint::dir(self.step);
        file.path.strip_prefix(&prefix).and_then(|rest| rest.strip_prefix('/')).unwrap_or(&file.path)
    }

    fn leaf(step: u64, files: &[OutputFile]) -> Hash {
        let prefix = format!("{}/", Checkpoint::dir(step));
        let mut parts: Vec<Vec<u8>> = vec![step.to_le_bytes().to_vec()];
        for file in files {
            let relative = file.path.strip_prefix(&prefix).unwrap_or(&file.path);
            parts.extend([relative.as_bytes().to_vec(), file.size.to_le_bytes().to_vec(), file.hash.0.0.to_vec()]);
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Hash::tagged("ogpu/container/checkpoint", &parts)
    }
}

/// Readies a run to checkpoint: makes the result's `checkpoints/` in `output`, puts a
/// replay's starting checkpoint in `runtime` (the sandbox's `runtime_mount`), and names
/// them to the program in `env`.
pub(super) fn prepare(
    checkpointing: &Checkpointing,
    output: &Path,
    runtime: &Path,
    runtime_mount: &str,
    env: &mut BTreeMap<String, String>,
) -> Result<(), TaskError> {
    let dir = output.join(DIR);
    std::fs::create_dir(&dir).map_err(TaskError::io("creating", &dir))?;
    env.insert(DIR_VARIABLE.into(), format!("/output/{DIR}"));
    env.insert(EVERY_VARIABLE.into(), checkpointing.training.checkpoint_every.to_string());
    env.insert(STEPS_VARIABLE.into(), checkpointing.training.steps.to_string());
    if let Some(resume) = checkpointing.resume {
        let step = resume.step.to_string();
        let from = runtime.join("resume").join(&step);
        copy_tree(resume.from, &from)?;
        env.insert(RESUME_VARIABLE.into(), format!("{runtime_mount}/resume/{step}"));
        env.insert(STOP_VARIABLE.into(), resume.stop_at.to_string());
    }
    Ok(())
}

/// What a run that checkpointed leaves in its result `files`: a whole run's trace, or
/// nothing for a replay that wrote the checkpoint it was to stop at.
pub(super) fn finish(checkpointing: &Checkpointing, files: &[OutputFile]) -> Result<Option<Trace>, TaskError> {
    let Some(resume) = checkpointing.resume else {
        return trace(&checkpoints(files, &checkpointing.training)?).map(Some);
    };
    let stop = format!("{}/", Checkpoint::dir(resume.stop_at));
    match files.iter().any(|file| file.path.starts_with(&stop)) {
        true => Ok(None),
        false => Err(TaskError::InvalidProgram(format!(
            "resumed from step {} with {STOP_VARIABLE}={}, the program wrote no checkpoint {}: it does not follow the \
             checkpoint convention (docs/containers.md)",
            resume.step, resume.stop_at, resume.stop_at
        ))),
    }
}

/// Copies the directories and plain files under `from` (the verifier's own download) to
/// the new directory `to`, readable by the sandbox's user whatever this process's umask.
fn copy_tree(from: &Path, to: &Path) -> Result<(), TaskError> {
    std::fs::create_dir_all(to).map_err(TaskError::io("creating", to))?;
    set_mode(to, 0o755)?;
    for entry in std::fs::read_dir(from).map_err(TaskError::io("reading", from))? {
        let entry = entry.map_err(TaskError::io("reading", from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(TaskError::io("reading", &source))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target).map_err(TaskError::io("copying", &source))?;
            set_mode(&target, 0o644)?;
        } else {
            return Err(TaskError::Io(format!("{} is neither a file nor a directory", source.display())));
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), TaskError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(TaskError::io("setting the mode of", path))
}

/// The longest path a checkpoint's file may have within it, and the longest name in it:
/// a verifier writes them under a directory of its own.
const MAX_PATH: usize = 1024;
const MAX_NAME: usize = 255;

/// The checkpoints among a result's `files`, in step order, checked against the
/// convention and the task's `training`: directories named by the steps 0, K, 2K, ... and
/// the last step, each of plain files a verifier can write back where they were (no file
/// twice, none where another has a directory, no path too long).
pub fn checkpoints(files: &[OutputFile], training: &Training) -> Result<Vec<Checkpoint>, TaskError> {
    let refuse = |why: String| {
        TaskError::InvalidProgram(format!(
            "{why}: proof of learning needs a program that follows the checkpoint convention (docs/containers.md)"
        ))
    };
    let mut by_step: BTreeMap<u64, Vec<OutputFile>> = BTreeMap::new();
    let mut paths = BTreeSet::new();
    for file in files {
        let Some(rest) = file.path.strip_prefix(DIR).and_then(|rest| rest.strip_prefix('/')) else { continue };
        let step = match rest.split_once('/') {
            Some((name, _)) => name.parse::<u64>().ok().filter(|step| step.to_string() == name),
            None => None,
        };
        let step = step.ok_or_else(|| {
            refuse(format!("{} is not in a directory named by a step (${DIR_VARIABLE}/STEP/...)", file.path))
        })?;
        let within = rest.split_once('/').map_or("", |(_, within)| within);
        if within.len() > MAX_PATH || within.split('/').any(|name| name.len() > MAX_NAME) {
            return Err(refuse(format!("{}: a path in a checkpoint is at most {MAX_PATH} bytes", file.path)));
        }
        if !paths.insert(file.path.as_str()) {
            return Err(refuse(format!("{} is listed twice", file.path)));
        }
        by_step.entry(step).or_default().push(file.clone());
    }
    if let Some(path) = paths.iter().find(|path| path.match_indices('/').any(|(at, _)| paths.contains(&path[..at]))) {
        return Err(refuse(format!("{path} lies under a file")));
    }
    let steps: Vec<u64> = by_step.keys().copied().collect();
    let expected: Vec<u64> = training.checkpoint_steps().collect();
    if steps != expected {
        let (every, last) = (training.checkpoint_every, training.steps);
        return Err(refuse(format!(
            "the program wrote {} checkpoint(s) to ${DIR_VARIABLE} ({}), and the task's training makes {} (after \
             step 0, every {every} steps, and the last, {last})",
            steps.len(),
            few(&steps),
            expected.len()
        )));
    }
    Ok(by_step
        .into_iter()
        .map(|(step, files)| Checkpoint { step, hash: Checkpoint::leaf(step, &files), files })
        .collect())
}

/// Steps for a message: all of a few, the ends of many.
fn few(steps: &[u64]) -> String {
    match steps {
        [] => "none".into(),
        [first, .., last] if steps.len() > 6 => format!("steps {first}, ..., {last}"),
        _ => format!("steps {steps:?}"),
    }
}

/// The trace over `checkpoints`, as [`checkpoints`] returned them.
pub fn trace(checkpoints: &[Checkpoint]) -> Result<Trace, TaskError> {
    let leaves: Vec<Hash> = checkpoints.iter().map(|checkpoint| checkpoint.hash).collect();
    let count = u32::try_from(leaves.len()).map_err(|_| TaskError::BadInput("too many checkpoints".into()))?;
    Ok(Trace { root: merkle::root(&leaves), checkpoints: count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogpu_core::BlobHash;

    fn file(path: &str, byte: u8) -> OutputFile {
        OutputFile { path: path.into(), size: 4, hash: BlobHash(Hash([byte; 32])) }
    }

    fn steps(files: &[OutputFile], steps: u64, every: u64) -> Result<Vec<u64>, String> {
        let training = Training { steps, checkpoint_every: every };
        checkpoints(files, &training).map(|c| c.iter().map(|c| c.step).collect()).map_err(|e| e.to_string())
    }

    #[test]
    fn checkpoints_are_the_ones_the_tasks_training_makes() {
        let run = [file("model.npy", 9), file("checkpoints/0/w.npy", 1), file("checkpoints/10/w.npy", 2)];
        assert_eq!(steps(&run, 10, 10), Ok(vec![0, 10]));
        let short = [file("checkpoints/0/w.npy", 1), file("checkpoints/10/w.npy", 2), file("checkpoints/13/w.npy", 3)];
        assert_eq!(steps(&short, 13, 10), Ok(vec![0, 10, 13]));
        let found = checkpoints(&short, &Training { steps: 13, checkpoint_every: 10 }).unwrap();
        assert_eq!(found[2].relative(&found[2].files[0]), "w.npy");

        let refused = [
            (vec![file("checkpoints/0/w.npy", 1)], "wrote 1 checkpoint(s)"),
            (
                vec![file("checkpoints/0/w", 1), file("checkpoints/5/w", 2), file("checkpoints/10/w", 2)],
                "steps [0, 5, 10]",
            ),
            (vec![file("checkpoints/0/w", 1), file("checkpoints/20/w", 2)], "steps [0, 20]"),
            (vec![file("checkpoints/0/w", 1), file("checkpoints/010/w", 2)], "checkpoints/010/w is not in a directory"),
            (vec![file("checkpoints/0/w", 1), file("checkpoints/w", 2)], "checkpoints/w is not in a directory"),
            (vec![file("checkpoints/0/w", 1), file("checkpoints/0/w", 1), file("checkpoints/10/w", 2)], "listed twice"),
            (vec![file("checkpoints/0/w", 1), file("checkpoints/0/w/x", 1), file("checkpoints/10/w", 2)], "lies under"),
            (vec![file("checkpoints/0/w", 1), file(&format!("checkpoints/10/{}", "x".repeat(256)), 2)], "at most 1024"),
        ];
        for (files, expected) in refused {
            let error = steps(&files, 10, 10).unwrap_err();
            assert!(error.contains(expected) && error.contains("checkpoint convention"), "{error}");
        }
        // A run stopped early is not the task's, however well its checkpoints line up.
        let early = [file("checkpoints/0/w", 1), file("checkpoints/1/w", 2)];
        let error = steps(&early, 600, 100).unwrap_err();
        assert!(error.contains("the task's training makes 7"), "{error}");
    }

    #[test]
    fn the_trace_binds_each_checkpoints_step_names_and_contents() {
        let run = vec![file("checkpoints/0/w.npy", 1), file("checkpoints/10/w.npy", 2)];
        let root = |files: &[OutputFile]| {
            let steps = files.last().map_or(0, |f| f.path.split('/').nth(1).unwrap().parse().unwrap());
            trace(&checkpoints(files, &Training { steps, checkpoint_every: 10 }).unwrap()).unwrap()
        };
        let honest = root(&run);
        assert_eq!(honest.checkpoints, 2);
        let mut other_bytes = run.clone();
        other_bytes[1].hash = BlobHash(Hash([3; 32]));
        let mut other_name = run.clone();
        other_name[1].path = "checkpoints/10/v.npy".into();
        let other_step = vec![file("checkpoints/0/w.npy", 1), file("checkpoints/7/w.npy", 2)];
        for forged in [other_bytes, other_name, other_step] {
            assert_ne!(root(&forged).root, honest.root, "{forged:?}");
        }
    }
}
