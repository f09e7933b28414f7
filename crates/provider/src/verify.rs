//! Verifiers' judgements. A verifier that runs the task again compares its result with
//! each executor's ([`compare`]): the same output passes, and under the policy's tolerance
//! so does one whose files differ from its own only in their floating-point numbers, by
//! no more than the tolerance (`ogpu_tensors::compare`).
//!
//! Proof-of-learning checks. A verifier chosen for a training task does not train it all
//! again: it replays the one segment the chain picked for it (checkpoint i to i+1) from
//! the executor's delivered checkpoint i, and measures how far it lands from the
//! executor's checkpoint i+1. Before that it checks that the delivered checkpoints, with
//! the data order the config implies, make the trace the executor committed on chain, so
//! the two it replays between are the committed ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Sender;

use ogpu_client::private::BlobKeys;
use ogpu_client::transfer::{self, Delivered, TransferError};
use ogpu_client::wallet::Wallet;
use ogpu_client::{Client, ClientError};
use ogpu_core::spec::{Ratio, TaskSpec};
use ogpu_core::tx::{ResultClaim, VerificationReport};
use ogpu_core::{Address, BlobHash, Hash, TaskId};
use ogpu_runtime::{Outcome, TaskError, train};

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

pub(crate) fn spawn(request: CheckRequest, wallet: Arc<Wallet>, done: Sender<Input>) {
    let (task, dir) = (request.task, request.dir.clone());
    on_worker(task, dir, wallet.clone(), done, move |log| Done::Checked(check(&request, wallet.client(), log)));
}

fn check(request: &CheckRequest, client: &Client, log: &TaskLog) -> Vec<VerificationReport> {
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
    for subject_of_check in &request.subjects {
        let subject = &subject_of_check.executor;
        let report = |pass: bool, distance_ppm: u32| VerificationReport { subject: *subject, pass, distance_ppm };
        match check_one(request, client, &program, &input_dir, subject_of_check) {
            Ok(distances) => {
                let ppm = parts_per_million(distances.relative_l2);
                let pass = ppm <= request.tolerance.parts_per_million();
                log.line("verify", &format!("{subject}: segment {} lands at {distances:?}", request.segment));
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
                    .and_then(|theirs| distance(&theirs, mine, &output_dir))
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

/// How far an executor's delivered result is from this run's outputs in `output_dir`: the
/// farthest of its files, which must be the same files.
fn distance(theirs: &Delivered, mine: &Outcome, output_dir: &Path) -> Result<f64, Unchecked> {
    let paths = |files: &[ogpu_core::manifest::OutputFile]| files.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    if paths(theirs.files()) != paths(&mine.files) {
        let (theirs, mine) = (paths(theirs.files()), paths(&mine.files));
        let stray = theirs.iter().chain(&mine).find(|path| !(theirs.contains(path) && mine.contains(path)));
        return Err(Unchecked::Fault(format!("its files are not this run's (first apart: {stray:?})")));
    }
    let mut farthest = 0f64;
    for (their_file, my_file) in theirs.files().iter().zip(&mine.files) {
        if their_file.hash == my_file.hash {
            continue;
        }
        // Read whole to be compared: a copy far larger than this run's is refused unread.
        if their_file.size > my_file.size.saturating_mul(2).saturating_add(1 << 20) {
            let (theirs, mine) = (their_file.size, my_file.size);
            return Err(Unchecked::Fault(format!("{}: {theirs} bytes against this run's {mine}", my_file.path)));
        }
        let path = output_dir.join(&my_file.path);
        let my_bytes = std::fs::read(&path).map_err(|e| Unchecked::Here(format!("reading {}: {e}", path.display())))?;
        let mut their_bytes = Vec::new();
        theirs.read_into(&their_file.hash, &mut their_bytes, Path::new(&their_file.path)).map_err(judged_transfer)?;
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

fn check_one(
    request: &CheckRequest,
    client: &Client,
    program: &[u8],
    inputs: &Path,
    subject: &Subject,
) -> Result<train::Distances, Unchecked> {
    let claim = &subject.claim;
    let Some(trace) = claim.trace else { return Err(Unchecked::Fault("the claim has no trace".into())) };
    let delivered = delivered(client, &request.task, &request.spec, request.keys.as_ref(), subject)?;
    let files = delivered.files();
    let by_path: BTreeMap<&str, Hash> = files.iter().map(|file| (file.path.as_str(), file.hash.0)).collect();
    let checkpoints = (0..u64::from(trace.checkpoints))
        .map(|index| {
            let path = train::checkpoint_file(index);
            by_path.get(path.as_str()).copied().ok_or_else(|| Unchecked::Fault(format!("the result lacks {path}")))
        })
        .collect::<Result<Vec<Hash>, _>>()?;
    train::check_trace(program, &trace, &checkpoints).map_err(judged)?;
    let at = |index: u32| {
        let hash = checkpoints.get(index as usize).copied();
        hash.ok_or_else(|| Unchecked::Fault(format!("the trace has no checkpoint {index}")))
    };
    let read = |hash: Hash| {
        let mut bytes = Vec::new();
        delivered.read_into(&BlobHash(hash), &mut bytes, Path::new("a checkpoint")).map_err(judged_transfer)?;
        Ok::<_, Unchecked>(bytes)
    };
    let start = read(at(request.segment)?)?;
    let end = read(at(request.segment + 1)?)?;
    let args = &request.spec.workload.args;
    train::replay(program, args, inputs, &start, &end, request.segment).map_err(judged)
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
