//! One run of a task on a worker thread: stage the program and inputs from the blob
//! store, run them on the runtime for their kind with progress streamed as signed log
//! entries, then (for executors) upload the outputs or (for verifiers) compare them with
//! each executor's result before reporting back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;

use ogpu_client::private::BlobKeys;
use ogpu_client::transfer::{self, TransferError};
use ogpu_client::wallet::Wallet;
use ogpu_core::spec::{Ratio, TaskSpec};
use ogpu_core::tx::VerificationReport;
use ogpu_core::{BlobHash, TaskId};
use ogpu_runtime::{ContainerSettings, Job, Outcome, Progress, Runtimes};

use crate::agent::Input;
use crate::logs::TaskLog;
use crate::verify::{self, Subject};

/// What a worker hands back to the decision loop.
pub(crate) enum Done {
    /// A run of the task: its outcome, or why it failed.
    Ran(Result<Ran, String>),
    /// A private task whose blobs do not open with the keys this worker was given.
    Unreadable(String),
    /// A verifier's run or a proof-of-learning check: a report on each executor it could
    /// judge.
    Checked(Vec<VerificationReport>),
}

/// Runs `work` on a thread of its own with the task's signed log, then removes `dir` and
/// hands what it did back through `done`.
pub(crate) fn on_worker(
    task: TaskId,
    dir: PathBuf,
    wallet: Arc<Wallet>,
    done: Sender<Input>,
    work: impl FnOnce(&TaskLog) -> Done + Send + 'static,
) {
    std::thread::spawn(move || {
        let log = TaskLog::new(task, wallet);
        let result = work(&log);
        log.flush();
        let _ = std::fs::remove_dir_all(&dir);
        let _ = done.send(Input::Finished { task, done: result });
    });
}

/// A finished run: its outcome, and where the sealed copy of a private task's result lies.
pub(crate) struct Ran {
    pub outcome: Outcome,
    pub sealed: Option<BlobHash>,
}

pub(crate) struct RunRequest {
    pub task: TaskId,
    pub spec: TaskSpec,
    /// A directory of the run's own; removed when the run ends.
    pub dir: PathBuf,
    pub purpose: Purpose,
    /// A private task's blob keys.
    pub keys: Option<BlobKeys>,
    pub cancel: Arc<AtomicBool>,
}

/// What a run's outputs are for.
pub(crate) enum Purpose {
    /// An executor's or racer's result: uploaded for the client.
    Deliver,
    /// A verifier's run: compared with each executor's result, within `tolerance`.
    Compare { subjects: Vec<Subject>, tolerance: Ratio },
}

pub(crate) fn spawn(request: RunRequest, wallet: Arc<Wallet>, runtimes: Arc<Runtimes>, done: Sender<Input>) {
    let (task, dir) = (request.task, request.dir.clone());
    on_worker(task, dir, wallet.clone(), done, move |log| match execute(&request, &wallet, &runtimes, log) {
        Ok(ran) => {
            log.finished(ran.outcome.output);
            match &request.purpose {
                Purpose::Deliver => Done::Ran(Ok(ran)),
                Purpose::Compare { subjects, tolerance } => {
                    Done::Checked(verify::compare(&request, subjects, *tolerance, &ran.outcome, wallet.client(), log))
                }
            }
        }
        Err(Failure::Unreadable(reason)) => {
            log.failed(&reason);
            Done::Unreadable(reason)
        }
        Err(Failure::Other(reason)) => {
            log.failed(&reason);
            Done::Ran(Err(reason))
        }
    });
}

enum Failure {
    /// A sealed blob does not open: the task cannot be run by anyone holding these keys.
    Unreadable(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure::Other(reason)
    }
}

fn execute(request: &RunRequest, wallet: &Wallet, runtimes: &Runtimes, log: &TaskLog) -> Result<Ran, Failure> {
    let (input_dir, output_dir) = (request.dir.join("input"), request.dir.join("output"));
    // A run left behind by an agent that was killed is started over.
    let _ = std::fs::remove_dir_all(&request.dir);
    std::fs::create_dir_all(&output_dir).map_err(|e| format!("creating {}: {e}", output_dir.display()))?;
    let program =
        transfer::stage(wallet.client(), &request.spec, request.keys.as_ref(), &input_dir).map_err(|e| match e {
            TransferError::Sealed { .. } => Failure::Unreadable(e.to_string()),
            e => Failure::Other(e.to_string()),
        })?;
    log.started();
    let progress = |progress: Progress| match progress {
        Progress::Log(line) => log.line("stderr", &line),
        Progress::Step { done, total, metrics } => log.step(done, total, &metrics),
    };
    let workload = &request.spec.workload;
    let job = Job {
        kind: workload.kind,
        program: &program,
        inputs: &input_dir,
        output: &output_dir,
        args: &workload.args,
        container: ContainerSettings::of(&request.spec),
        limits: workload.limits,
        progress: &progress,
        cancel: &request.cancel,
    };
    let outcome = runtimes.run(&job).map_err(|e| e.to_string())?;
    if let Purpose::Compare { .. } = request.purpose {
        return Ok(Ran { outcome, sealed: None });
    }
    // A private task's result is sealed for the task's parties alone.
    let seal = match &request.keys {
        None => None,
        Some(keys) => Some(
            keys.result_key(&request.task, &request.spec, &wallet.address())
                .ok_or_else(|| "the task's keys hold none for its program".to_string())?,
        ),
    };
    let sealed = transfer::deliver(wallet.client(), &output_dir, &outcome.files, &outcome.manifest, seal.as_ref())
        .map_err(|e| e.to_string())?;
    Ok(Ran { outcome, sealed })
}
