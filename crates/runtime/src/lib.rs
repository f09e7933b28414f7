//! Runtimes: what runs a task's program on a provider.
//!
//! Every workload kind (`wasm`, `onnx` and `train`) implements [`Runtime`]: it
//! takes a [`Job`] (the program bytes, a directory of named inputs, an empty directory for
//! outputs, arguments and limits) and fills the output directory, returning an
//! [`Outcome`] whose hash executors commit to and replicas compare. The interface is
//! synchronous and blocking: the provider agent calls it from a blocking thread, passes
//! a flag to cancel it and a callback for live progress.
//!
//! This crate knows no network, no chain and no blob store: the agent stages inputs as
//! files and uploads the outputs; a runtime only turns one directory into another.

pub mod container;
mod digest;
mod error;
pub mod gpu;
pub mod onnx;
mod registry;
pub mod train;
pub mod wasm;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use ogpu_core::Hash;
use ogpu_core::spec::{Limits, TaskSpec, Training, WorkloadKind};
use ogpu_core::tx::Trace;

pub use container::ContainerRuntime;
pub use digest::{DirDigest, MAX_OUTPUT_BYTES, MAX_OUTPUT_FILES, OutputFile, digest_dir, hash_dir, parse_manifest};
pub use error::TaskError;
pub use onnx::OnnxRuntime;
pub use registry::{Libraries, Runtimes};
pub use train::TrainRuntime;
pub use wasm::WasmRuntime;

/// One run of a program.
pub struct Job<'a> {
    pub kind: WorkloadKind,
    /// The module, model or training configuration.
    pub program: &'a [u8],
    /// A directory holding each named input blob as a file under its name.
    pub inputs: &'a Path,
    /// An empty directory the runtime writes the outputs into.
    pub output: &'a Path,
    pub args: &'a [String],
    /// What only a container takes (the default for other kinds).
    pub container: ContainerSettings<'a>,
    pub limits: Limits,
    /// Called with progress as it happens, from the calling thread or from a helper
    /// thread of the runtime (hence `Sync`). Advisory: it never changes the result.
    pub progress: &'a (dyn Fn(Progress) + Sync),
    /// Set by the agent to stop the run; the runtime then returns
    /// [`TaskError::Cancelled`] promptly.
    pub cancel: &'a AtomicBool,
}

/// What a container's run takes besides a job's program, inputs, arguments and limits.
#[derive(Debug, Clone, Copy)]
pub struct ContainerSettings<'a> {
    /// Environment variables for its command, over the image's.
    pub env: &'a BTreeMap<String, String>,
    /// Its checkpoints, for proof of learning (a train config sets its own).
    pub checkpoints: Option<Checkpointing<'a>>,
    /// The GPUs the task asks for (`requirements.gpus`): above 0, the command is given the
    /// machine's NVIDIA devices and driver. (Other runtimes pick a device by their args.)
    pub gpus: u32,
}

/// No environment: what a job of another kind has.
static NO_ENV: BTreeMap<String, String> = BTreeMap::new();

impl Default for ContainerSettings<'_> {
    fn default() -> Self {
        ContainerSettings { env: &NO_ENV, checkpoints: None, gpus: 0 }
    }
}

impl ContainerSettings<'_> {
    /// A whole run of the task `spec`.
    pub fn of(spec: &TaskSpec) -> ContainerSettings<'_> {
        ContainerSettings {
            env: &spec.workload.env,
            checkpoints: spec.workload.training.map(|training| Checkpointing { training, resume: None }),
            gpus: spec.requirements.gpus,
        }
    }
}

/// How a container trains and checkpoints (see `container::learning`).
#[derive(Debug, Clone, Copy)]
pub struct Checkpointing<'a> {
    /// Its steps, and how many apart its checkpoints are.
    pub training: Training,
    /// A verifier's replay of one segment; `None` for a whole run.
    pub resume: Option<Resume<'a>>,
}

/// Where a replay starts and stops.
#[derive(Debug, Clone, Copy)]
pub struct Resume<'a> {
    /// The files of the checkpoint to start from.
    pub from: &'a Path,
    /// The step that checkpoint was taken at.
    pub step: u64,
    /// The step to stop at, writing its checkpoint.
    pub stop_at: u64,
}

/// What a running task reports along the way.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A line the program wrote for people (for a WASI module, its standard error).
    Log(String),
    /// `done` of `total` steps (training steps, inference batches), with what was measured
    /// at this one: a training step's `loss`, and at each checkpoint `eval_loss` and
    /// `eval_accuracy` on the held-out rows.
    Step { done: u64, total: u64, metrics: Vec<(&'static str, f64)> },
}

/// What a successful run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// [`hash_dir`] of the output directory: what the executor commits to.
    pub output: Hash,
    /// The checkpoint trace that proof of learning replays (its Merkle root and the number
    /// of checkpoints); `None` for runtimes that do not train.
    pub trace: Option<Trace>,
    /// The delivered files, sorted by path.
    pub files: Vec<OutputFile>,
    /// The manifest listing them, whose blob hash is `output`.
    pub manifest: Vec<u8>,
    /// Wall-clock time of the run, for pricing and reputation; not part of the result.
    pub compute_ms: u64,
}

/// A way to run one kind of workload.
pub trait Runtime: Send + Sync {
    fn kind(&self) -> WorkloadKind;

    /// Runs `job` to completion, failure, timeout or cancellation. Never panics on any
    /// program or input.
    fn run(&self, job: &Job<'_>) -> Result<Outcome, TaskError>;

    /// Whether this runtime, in this build on this machine, can run jobs with `args` (a
    /// backend, engine or device they ask for) and `gpus` (see [`ContainerSettings::gpus`]), without
    /// running anything: what a provider asks before it bids, since a task it then cannot
    /// run would cost it its stake.
    fn accepts(&self, args: &[String], gpus: u32) -> Result<(), TaskError> {
        let _ = (args, gpus);
        Ok(())
    }
}

/// The name a task spec uses for `kind`, for messages.
pub(crate) fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Wasm => "wasm",
        WorkloadKind::Onnx => "onnx",
        WorkloadKind::Train => "train",
        WorkloadKind::Container => "container",
    }
}

/// What every runtime checks before it starts: the job is of its kind, it was not
/// cancelled already, and the output directory is empty (the output hash covers
/// everything in it).
pub(crate) fn check_job(runtime: WorkloadKind, job: &Job<'_>) -> Result<(), TaskError> {
    if job.kind != runtime {
        return Err(TaskError::Unsupported(format!(
            "the {} runtime cannot run a {} task",
            kind_name(runtime),
            kind_name(job.kind)
        )));
    }
    let mut entries = std::fs::read_dir(job.output).map_err(|error| {
        TaskError::BadInput(format!("cannot read the output directory {}: {error}", job.output.display()))
    })?;
    if entries.next().is_some() {
        return Err(TaskError::BadInput(format!("the output directory {} is not empty", job.output.display())));
    }
    if job.container.checkpoints.is_some() && runtime != WorkloadKind::Container {
        return Err(TaskError::Unsupported(format!(
            "the {} runtime takes no checkpoint interval: its program sets its own",
            kind_name(runtime)
        )));
    }
    if job.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(TaskError::Cancelled);
    }
    Ok(())
}
