//! Verifiers' judgements. A verifier that runs the task again compares its result with
//! each executor's ([`compare`]): the same output passes, and under the policy's tolerance
//! so does one whose files differ from its own only in their floating-point numbers, by
//! no more than the tolerance (`ogpu_tensors::compare`).
//!
//! Proof-of-learning checks. A verifier chosen for a training task does not train it all
//! again: it replays the one segment the chain picked for it (checkpoint i to i+1) from
//! the executor's delivered checkpoint i, and measures how far it lands from the
//! executor's checkpoint i+1. Before that it checks that the delivered checkpoints make
//! the trace the executor committed on chain (with the data order the config implies, for
//! the train runtime), so the two it replays between are the committed ones. A container
//! is replayed by running its image from checkpoint i until the step of i+1
//! (`ogpu_runtime::container::learning`), its files compared as a verifier's own run is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

use ogpu_client::private::BlobKeys;
use ogpu_client::transfer::{self, Delivered, TransferError};
use ogpu_client::wallet::Wallet;
use ogpu_client::{Client, ClientError};
use ogpu_core::manifest::OutputFile;
use ogpu_core::spec::{Ratio, TaskSpec, WorkloadKind};
use ogpu_core::tx::{ResultClaim, Trace, VerificationReport};
use ogpu_core::{Address, BlobHash, Hash, TaskId};
use ogpu_runtime::container::learning::{self, Checkpoint};
use ogpu_runtime::{Checkpointing, ContainerSettings, Job, Outcome, Progress, Resume, Runtimes, TaskError, train};

use crate::agent::Input;
use crate::logs::TaskLog;
use crate::run::{Done, RunRequest, on_worker};

pub(crate) struct CheckRequest {
    pub task: TaskId,
    pub spec: TaskSpec,
    /// A directory of the check's own; removed when it ends.
    pub dir: PathBuf,
    pub segment: u32,
    /// The task's tolerance: the most relative L2 distance that passes.
    pub tolerance: Ratio,
    /// The executors and what they claimed.
    pub subjects: Vec<Subject>,
    /// A private task's blob keys.
    pub keys: Option<BlobKeys>,
    /// Set to stop a container's replay.
    pub cancel: Arc<AtomicBool>,
}

/// An executor whose result is checked.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub executor: Address,
    pub claim: ResultClaim,
    /// Where the sealed copy of a private task's result lies.
    pub sealed: Option<BlobHash>,
}

/// Why an executor's segment was not checked.
enum Unchecked {
    /// The executor's doing: its result or trace is missing, malformed or not what it
    /// committed. It fails.
    Fault(String),
    /// Something on this side (the network, this machine's runtimes): no report, since a
    /// verifier's trouble is no evidence against the executor.
    Here(String),
}

/// Where a replayed segment landed: how far from the executor's checkpoint, and how that
/// was measured.
struct Landing {
    distance: f64,
    detail: String,
}

pub(crate) fn spawn(request: CheckRequest, wallet: Arc<Wallet>, runtimes: Arc<Runtimes>, done: Sender<Input>) {
    let (task, dir) = (request.task, request.dir.clone());
    on_worker(task, dir, wallet.clone(), done, move |log| {
        Done::Checked(check(&request, wallet.client(), &runtimes, log))
    });
}

fn check(request: &CheckRequest, client: &Client, runtimes: &Runtimes, log: &TaskLog) -> Vec<VerificationReport> {
    let input_dir = request.dir.join("input");
    let program = match transfer::stage(client, &request.spec, request.keys.as_ref(), &input_dir) {
        Ok(program) => program,
        Err(error) => {
            log.failed(&format!("staging the task: {error}"));
            return Vec::new();
        }
    };
    log.started();
    let mut reports = Vec::new();
    for (index, subject_of_check) in request.subjects.iter().enumerate() {
        let subject = &subject_of_check.executor;
        let report = |pass: bool, distance_ppm: u32| VerificationReport { subject: *subject, pass, distance_ppm };
        let segment = Segment { request, client, program: &program, inputs: &input_dir, subject: subject_of_check };
        let landed = match request.spec.workload.kind {
            WorkloadKind::Container => segment.replay_container(runtimes, &request.dir.join(index.to_string()), log),
            _ => segment.replay_training(),
        };
        match landed {
            Ok(Landing { distance, detail }) => {
                let ppm = parts_per_million(distance);
                let pass = ppm <= request.tolerance.parts_per_million();
                log.line("verify", &format!("{subject}: segment {} lands at {detail}", request.segment));
                reports.push(report(pass, ppm));
            }
            Err(Unchecked::Fault(why)) => {
                log.line("verify", &format!("{subject}: {why}"));
                reports.push(report(false, u32::MAX));
            }
            Err(Unchecked::Here(why)) => tracing::warn!(task = %request.task, %subject, %why, "cannot check"),
        }
    }
    reports
}

/// Reports on each executor's result against this verifier's own run, `mine`, of
/// `request`'s task.
pub(crate) fn compare(
    request: &RunRequest,
    subjects: &[Subject],
    tolerance: Ratio,
    mine: &Outcome,
    client: &Client,
    log: &TaskLog,
) -> Vec<VerificationReport> {
    let output_dir = request.dir.join("output");
    let mut reports = Vec::new();
    for subject in subjects {
        let executor = subject.executor;
        let judged = match subject.claim.output == mine.output {
            true => Ok(0.0),
            false if tolerance.parts_per_million() == 0 => Err(Unchecked::Fault("its result is not this run's".into())),
            false => {
                let keys = request.keys.as_ref();
                delivered(client, &request.task, &request.spec, keys, subject)
                    .and_then(|theirs| distance(&theirs, theirs.files(), &mine.files, &output_dir))
            }
        };
        let report = match judged {
            Ok(distance) => {
                let ppm = parts_per_million(distance);
                log.line("verify", &format!("{executor}: its result is at {distance:e} from this run's"));
                VerificationReport { subject: executor, pass: ppm <= tolerance.parts_per_million(), distance_ppm: ppm }
            }
            Err(Unchecked::Fault(why)) => {
                log.line("verify", &format!("{executor}: {why}"));
                VerificationReport { subject: executor, pass: false, distance_ppm: u32::MAX }
            }
            Err(Unchecked::Here(why)) => {
                tracing::warn!(task = %request.task, subject = %executor, %why, "cannot compare");
                continue;
            }
        };
        reports.push(report);
    }
    reports
}

/// How far an executor's delivered `their_files` (of `delivered`) are from this run's
/// `my_files` in `my_dir`: the farthest of them, which must be the same files.
fn distance(
    delivered: &Delivered,
    their_files: &[OutputFile],
    my_files: &[OutputFile],
    my_dir: &Path,
) -> Result<f64, Unchecked> {
    let paths = |files: &[OutputFile]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    if paths(their_files) != paths(my_files) {
        let (theirs, mine) = (paths(their_files), paths(my_files));
        let stray = theirs.iter().chain(&mine).find(|path| !(theirs.contains(path) && mine.contains(path)));
        return Err(Unchecked::Fault(format!("its files are not this run's (first apart: {stray:?})")));
    }
    let mut farthest = 0f64;
    for (their_file, my_file) in their_files.iter().zip(my_files) {
        if their_file.hash == my_file.hash {
            continue;
        }
        // Read whole to be compared: a copy far larger than this run's is refused unread.
        if their_file.size > my_file.size.saturating_mul(2).saturating_add(1 << 20) {
            let (theirs, mine) = (their_file.size, my_file.size);
            return Err(Unchecked::Fault(format!("{}: {theirs} bytes against this run's {mine}", my_file.path)));
        }
        let path = my_dir.join(&my_file.path);
        let my_bytes = std::fs::read(&path).map_err(|e| Unchecked::Here(format!("reading {}: {e}", path.display())))?;
        let mut their_bytes = Vec::new();
        delivered
            .read_into(&their_file.hash, &mut their_bytes, Path::new(&their_file.path))
            .map_err(judged_transfer)?;
        let apart = ogpu_tensors::compare::distance(&my_file.path, &my_bytes, &their_bytes)
            .map_err(|why| Unchecked::Fault(format!("{}: {why}", my_file.path)))?;
        farthest = farthest.max(apart);
    }
    Ok(farthest)
}

/// An executor's delivered result; a private task's is read through its sealed copy, with
/// the key every party to the task can derive.
fn delivered<'a>(
    client: &'a Client,
    task: &TaskId,
    spec: &TaskSpec,
    keys: Option<&BlobKeys>,
    subject: &Subject,
) -> Result<Delivered<'a>, Unchecked> {
    let sealed = match (keys, subject.sealed) {
        (None, _) => None,
        (Some(_), None) => return Err(Unchecked::Fault("the private result has no sealed copy".into())),
        (Some(keys), Some(index)) => {
            let key = keys.result_key(task, spec, &subject.executor);
            Some((index, key.ok_or_else(|| Unchecked::Here("no key for the task's program".into()))?))
        }
    };
    Delivered::open(client, &subject.claim.output, sealed).map_err(judged_transfer)
}

/// A distance as the chain takes it: millionths, rounded up; anything not finite is as far
/// as can be.
fn parts_per_million(relative: f64) -> u32 {
    match relative.is_finite() {
        true => (relative * 1e6).ceil().clamp(0.0, f64::from(u32::MAX)) as u32,
        false => u32::MAX,
    }
}

/// One executor's segment to check.
struct Segment<'a> {
    request: &'a CheckRequest,
    client: &'a Client,
    program: &'a [u8],
    inputs: &'a Path,
    subject: &'a Subject,
}

impl Segment<'_> {
    /// The executor's claimed trace and delivered result.
    fn claimed(&self) -> Result<(Trace, Delivered<'_>), Unchecked> {
        let Some(trace) = self.subject.claim.trace else {
            return Err(Unchecked::Fault("the claim has no trace".into()));
        };
        let request = self.request;
        let delivered = delivered(self.client, &request.task, &request.spec, request.keys.as_ref(), self.subject)?;
        Ok((trace, delivered))
    }

    /// The train runtime's segment, replayed from its checkpoint files.
    fn replay_training(&self) -> Result<Landing, Unchecked> {
        let (trace, delivered) = self.claimed()?;
        let by_path: BTreeMap<&str, Hash> =
            delivered.files().iter().map(|file| (file.path.as_str(), file.hash.0)).collect();
        let checkpoints = (0..u64::from(trace.checkpoints))
            .map(|index| {
                let path = train::checkpoint_file(index);
                by_path.get(path.as_str()).copied().ok_or_else(|| Unchecked::Fault(format!("the result lacks {path}")))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        train::check_trace(self.program, &trace, &checkpoints).map_err(judged)?;
        let at = |index: u32| {
            let hash = checkpoints.get(index as usize).copied();
            hash.ok_or_else(|| Unchecked::Fault(format!("the trace has no checkpoint {index}")))
        };
        let read = |hash: Hash| {
            let mut bytes = Vec::new();
            delivered.read_into(&BlobHash(hash), &mut bytes, Path::new("a checkpoint")).map_err(judged_transfer)?;
            Ok::<_, Unchecked>(bytes)
        };
        let segment = self.request.segment;
        let (start, end) = (read(at(segment)?)?, read(at(segment + 1)?)?);
        let args = &self.request.spec.workload.args;
        let distances = train::replay(self.program, args, self.inputs, &start, &end, segment).map_err(judged)?;
        Ok(Landing { distance: distances.relative_l2, detail: format!("{distances:?}") })
    }

    /// A container's segment: its image run from the executor's checkpoint to the next
    /// one's step in `dir`, the checkpoint it writes compared with the executor's.
    fn replay_container(&self, runtimes: &Runtimes, dir: &Path, log: &TaskLog) -> Result<Landing, Unchecked> {
        let (trace, delivered) = self.claimed()?;
        let workload = &self.request.spec.workload;
        let training = workload.training.ok_or_else(|| Unchecked::Here("the spec declares no training".into()))?;
        let checkpoints = learning::checkpoints(delivered.files(), &training).map_err(judged)?;
        if learning::trace(&checkpoints).map_err(judged)? != trace {
            return Err(Unchecked::Fault("its delivered checkpoints do not make the trace it committed".into()));
        }
        let segment = self.request.segment as usize;
        let (Some(start), Some(end)) = (checkpoints.get(segment), checkpoints.get(segment + 1)) else {
            return Err(Unchecked::Fault(format!("the trace has no segment {segment}")));
        };
        // Anything a check cut short left there is not this one's.
        let _ = std::fs::remove_dir_all(dir);
        let (from, output) = (dir.join("resume"), dir.join("output"));
        for file in &start.files {
            delivered.write_file(file, &from.join(start.relative(file))).map_err(judged_transfer)?;
        }
        std::fs::create_dir_all(&output).map_err(|e| Unchecked::Here(format!("creating {}: {e}", output.display())))?;
        let progress = |progress: Progress| {
            if let Progress::Log(line) = progress {
                log.line("stderr", &line);
            }
        };
        let resume = Resume { from: &from, step: start.step, stop_at: end.step };
        let job = Job {
            kind: workload.kind,
            program: self.program,
            inputs: self.inputs,
            output: &output,
            args: &workload.args,
            container: ContainerSettings {
                checkpoints: Some(Checkpointing { training, resume: Some(resume) }),
                ..ContainerSettings::of(&self.request.spec)
            },
            limits: workload.limits,
            progress: &progress,
            cancel: &self.request.cancel,
        };
        let replayed = runtimes.run(&job).map_err(judged)?;
        let stop = format!("{}/", Checkpoint::dir(end.step));
        let mine: Vec<OutputFile> = replayed.files.into_iter().filter(|file| file.path.starts_with(&stop)).collect();
        let distance = distance(&delivered, &end.files, &mine, &output)?;
        Ok(Landing { distance, detail: format!("step {} at {distance:e} from its checkpoint", end.step) })
    }
}

/// Whose fault it is that the executor's delivered result cannot be read: the executor's
/// when the network does not have it (it was never delivered), or what it delivered is not
/// what it claimed or does not open; this side's otherwise.
fn judged_transfer(error: TransferError) -> Unchecked {
    let undelivered = error.client_error().and_then(ClientError::api_error) == Some("unknown_blob");
    match error {
        TransferError::Manifest(_) | TransferError::Sealed { .. } => Unchecked::Fault(error.to_string()),
        _ if undelivered => Unchecked::Fault(format!("the delivered result is not in the blob store: {error}")),
        _ => Unchecked::Here(error.to_string()),
    }
}

/// Whose fault a failed check or replay is: this machine's when it cannot run the work,
/// the executor's when what it delivered does not hold up.
fn judged(error: TaskError) -> Unchecked {
    match error {
        TaskError::Unsupported(_) | TaskError::Io(_) | TaskError::Cancelled | TaskError::Timeout { .. } => {
            Unchecked::Here(error.to_string())
        }
        _ => Unchecked::Fault(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::parts_per_million;

    #[test]
    fn distances_round_up_to_millionths_and_nan_is_as_far_as_can_be() {
        assert_eq!(parts_per_million(0.0), 0);
        assert_eq!(parts_per_million(1e-7), 1, "any distance at all is at least one millionth");
        assert_eq!(parts_per_million(0.01), 10_000);
        assert_eq!(parts_per_million(1e12), u32::MAX);
        assert_eq!(parts_per_million(f64::NAN), u32::MAX);
        assert_eq!(parts_per_million(f64::INFINITY), u32::MAX);
    }
}
