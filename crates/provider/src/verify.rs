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
use ogpu_runtime::{TaskError, train};

use crate::agent::Input;
use crate::logs::TaskLog;
use crate::run::{Done, on_worker};

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
    // A private task's result is read through its sealed copy, with the key every party
    // to the task can derive.
    let sealed = match (&request.keys, subject.sealed) {
        (None, _) => None,
        (Some(_), None) => return Err(Unchecked::Fault("the private result has no sealed copy".into())),
        (Some(keys), Some(index)) => {
            let key = keys.result_key(&request.task, &request.spec, &subject.executor);
            Some((index, key.ok_or_else(|| Unchecked::Here("no key for the task's program".into()))?))
        }
    };
    let delivered = Delivered::open(client, &claim.output, sealed).map_err(judged_transfer)?;
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
