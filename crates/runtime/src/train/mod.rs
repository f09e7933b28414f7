//! The `train` runtime: trains a declared architecture with burn, checkpointing every K
//! steps so that proof of learning can replay any segment.
//!
//! # The program: a training config in TOML
//!
//! ```toml
//! seed = 1                 # every random choice derives from it
//! steps = 1200             # optimizer steps; or `epochs = N` (exactly one of the two)
//! batch_size = 64
//! checkpoint_every = 150   # K
//!
//! [architecture.mlp]       # or [architecture.cnn] or [architecture.char_transformer]
//! hidden = [64]            # hidden layer widths (may be empty)
//! activation = "relu"      # relu (default) | tanh | gelu
//!
//! [optimizer.adam]         # or [optimizer.sgd] with lr and momentum (default 0)
//! lr = 0.002               # beta1 = 0.9, beta2 = 0.999, eps = 1e-8 by default
//!
//! [data]
//! format = "csv"           # csv | npy | safetensors | text
//! file = "digits.csv.gz"   # a task input; gzip when the name ends in .gz
//! classes = 10
//! scale = 16.0             # features are divided by it (default 1)
//! train_rows = [0, 1500]   # [start, end) rows
//! eval_rows = [1500, 1797] # optional
//! ```
//!
//! - `cnn`: `channels = [8, 16]`, `kernel = 3` (odd), `image = [8, 8]` (height, width);
//!   each row's features are a `[features / (h * w), h, w]` image. Convolutions with "same"
//!   padding and ReLU, then a linear layer over the flattened maps.
//! - `char_transformer`: `layers`, `heads`, `dim` (a multiple of `heads`), `context`;
//!   next-byte prediction over `format = "text"` data (`file` only), where rows are byte
//!   positions: training samples are the windows of `context + 1` bytes inside
//!   `train_rows`, evaluation uses non-overlapping windows inside `eval_rows`, and the
//!   vocabulary is the 256 byte values. Pre-norm blocks, causal attention, no dropout.
//! - csv: no header, numbers separated by commas, the label (an integer class) in the last
//!   column. npy: `features = "x.npy"` (float32/64 `[rows, ...]`) and `labels = "y.npy"`
//!   (int32/64 `[rows]`). safetensors: `file`, and the tensor names `features` and `labels`.
//! - Each epoch visits the training samples in a fresh seeded permutation, in batches of
//!   `batch_size` (the last one of an epoch shorter); `steps` may end mid-epoch.
//!
//! The task's only argument is `device=cpu|wgpu|cuda` (default `cpu`); a backend this build
//! lacks is `Unsupported`, naming the feature.
//!
//! # Determinism and the trace
//!
//! Initial parameters and the data order come only from the seed (see `model` and
//! `data::Order`), so the same config on the same backend and CPU family gives the same
//! checkpoints bit for bit. Across backends (or CPU families) float sums differ in their
//! last bits and grow apart over steps; replay measures distance rather than equality.
//!
//! # Outputs
//!
//! - `checkpoints/NNNN.safetensors`: checkpoint i after `min(i * K, steps)` steps (0 is the
//!   initial model), with the optimizer state; see `checkpoint`.
//! - `model.safetensors`: the final parameters, named by path (`Mlp.layers.0.weight`).
//! - `metrics.json`: `steps`, `train_loss` (the last step's batch loss), and where there
//!   are eval rows `eval_loss`, `eval_accuracy`, `eval_correct` and `eval_samples`.
//! - `trace.json`: the trace root, the checkpoint hashes and the data order hash.
//!
//! `Outcome.trace` is the Merkle root (`ogpu_core::merkle`) over the checkpoints' blake3
//! hashes in order followed by the hash of the data order, and the number of checkpoints.
//! A verifier checks the delivered checkpoints against it with [`check_trace`], then runs
//! [`replay`] on its segment.
//!
//! # Limits
//!
//! `timeout_s` and the cancel flag are checked between steps; `memory_mb` bounds the
//! model's size (16 bytes a parameter: value, gradient, two optimizer moments) and what a
//! gzip file may inflate to; `fuel` is ignored. A failed or stopped run leaves the output
//! directory empty.

pub(crate) mod backend;
mod checkpoint;
pub(crate) mod config;
mod data;
mod model;
mod optim;
mod replay;
mod trainer;

use std::fs;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use ogpu_core::Hash;
use ogpu_core::spec::WorkloadKind;
use ogpu_core::tx::Trace;

use crate::digest::digest_dir;
use crate::{Job, Outcome, Progress, Runtime, TaskError, check_job};
use backend::{OnBackend, with_backend};
use checkpoint::{encode_model, file_name, trace_root};
use config::{Config, parse_args};
use data::{Dataset, Order};
use trainer::Trainer;

pub use checkpoint::file_name as checkpoint_file;
pub use replay::{Distances, check_trace, replay, replay_segment};

/// Trains models with burn. Holds nothing between jobs.
#[derive(Debug, Default)]
pub struct TrainRuntime;

impl TrainRuntime {
    pub fn new() -> TrainRuntime {
        TrainRuntime
    }
}

impl Runtime for TrainRuntime {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Train
    }

    fn accepts(&self, args: &[String], _gpus: u32) -> Result<(), TaskError> {
        backend::available(parse_args(args)?)
    }

    fn run(&self, job: &Job<'_>) -> Result<Outcome, TaskError> {
        check_job(WorkloadKind::Train, job)?;
        let started = Instant::now();
        let result = train(job, started);
        if result.is_err() {
            // Nothing half-written is delivered; the directory was empty when we started.
            clear(job.output);
        }
        let trace = result?;
        let compute_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let digest = digest_dir(job.output)?;
        Ok(Outcome {
            output: digest.hash,
            trace: Some(trace),
            files: digest.files,
            manifest: digest.manifest,
            compute_ms,
        })
    }
}

fn clear(output: &Path) {
    if let Ok(entries) = fs::read_dir(output) {
        for entry in entries.flatten() {
            let path = entry.path();
            // Best effort: the run already failed, and its error is what the caller needs.
            let _ = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        }
    }
}

/// The stream every random choice of a run draws from.
pub(crate) fn seed_hash(seed: u64) -> Hash {
    Hash::tagged("ogpu/train/seed", &[&seed.to_le_bytes()])
}

/// Steps `[start, end)` of segment `segment`: from checkpoint `segment` to the next.
pub(crate) fn steps_of_segment(config: &Config, segment: u32) -> Result<Range<u64>, TaskError> {
    let total = config.total_steps();
    let start = u64::from(segment).saturating_mul(config.checkpoint_every);
    if start >= total {
        return Err(TaskError::BadInput(format!(
            "segment {segment} does not exist: the run has {} segments",
            config.checkpoints() - 1
        )));
    }
    Ok(start..(start + config.checkpoint_every).min(total))
}

fn train(job: &Job<'_>, started: Instant) -> Result<Trace, TaskError> {
    let device = parse_args(job.args)?;
    let config = Config::parse(job.program)?;
    let memory = u64::from(job.limits.memory_mb) << 20;
    let dataset = Dataset::load(&config, job.inputs, memory)?;
    config.check_size(dataset.width(), job.limits.memory_mb)?;
    let checkpoints = job.output.join("checkpoints");
    fs::create_dir(&checkpoints).map_err(TaskError::io("creating", &checkpoints))?;
    with_backend(device, Run { job, config: &config, dataset: &dataset, started })
}

struct Run<'a> {
    job: &'a Job<'a>,
    config: &'a Config,
    dataset: &'a Dataset,
    started: Instant,
}

impl Run<'_> {
    fn write(&self, name: &str, bytes: &[u8]) -> Result<Hash, TaskError> {
        let path = self.job.output.join(name);
        fs::write(&path, bytes).map_err(TaskError::io("writing", &path))?;
        Ok(Hash::of_bytes(bytes))
    }

    fn check_time(&self) -> Result<(), TaskError> {
        if self.job.cancel.load(Ordering::Relaxed) {
            return Err(TaskError::Cancelled);
        }
        let limit = self.job.limits.timeout_s;
        if self.started.elapsed().as_secs_f64() >= f64::from(limit) {
            return Err(TaskError::Timeout { seconds: limit });
        }
        Ok(())
    }
}

impl OnBackend for Run<'_> {
    type Output = Trace;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Trace, TaskError> {
        let config = self.config;
        let seed = seed_hash(config.seed);
        let total = config.total_steps();
        let every = config.checkpoint_every;
        let mut order = Order::new(&seed, config.train_samples(), config.batch_size);
        let order_hash = order.clone().hash(total);
        let mut trainer = Trainer::<B>::new(config, self.dataset, &seed, &device)?;
        let mut checkpoints = vec![self.write(&file_name(0), &trainer.checkpoint(0)?.encode()?)?];
        let (mut loss, mut evaluation) = (f32::NAN, None);
        for step in 0..total {
            self.check_time()?;
            let indices = order.batch(step).to_vec();
            (trainer, loss) = trainer.step(self.dataset, &indices, step + 1)?;
            if !loss.is_finite() {
                return Err(TaskError::InvalidProgram(format!(
                    "training diverged: the loss is {loss} at step {}; lower the optimizer's lr",
                    step + 1
                )));
            }
            let done = step + 1;
            let mut metrics = vec![("loss", f64::from(loss))];
            if done % every == 0 || done == total {
                let bytes = trainer.checkpoint(done)?.encode()?;
                checkpoints.push(self.write(&file_name(done.div_ceil(every)), &bytes)?);
                // How the model does on rows it does not train on, as it learns.
                evaluation = trainer.evaluate(self.dataset)?;
                if let Some(evaluation) = &evaluation {
                    metrics.extend([("eval_loss", evaluation.loss), ("eval_accuracy", evaluation.accuracy())]);
                }
            }
            (self.job.progress)(Progress::Step { done, total, metrics });
        }
        self.check_time()?;
        let params = trainer.params()?;
        self.write("model.safetensors", &encode_model(total, &params)?)?;
        let mut metrics = serde_json::json!({ "steps": total, "train_loss": loss });
        // The last step is a checkpoint, so `evaluation` is of the final model.
        if let Some(evaluation) = evaluation {
            metrics["eval_loss"] = evaluation.loss.into();
            metrics["eval_accuracy"] = evaluation.accuracy().into();
            metrics["eval_correct"] = evaluation.correct.into();
            metrics["eval_samples"] = evaluation.samples.into();
            (self.job.progress)(Progress::Log(format!(
                "eval: loss {:.4}, {} of {} right ({:.2}%)",
                evaluation.loss,
                evaluation.correct,
                evaluation.samples,
                100.0 * evaluation.accuracy()
            )));
        }
        self.write("metrics.json", format!("{metrics:#}\n").as_bytes())?;
        let root = trace_root(&checkpoints, &order_hash);
        let trace = serde_json::json!({
            "root": root.to_hex(),
            "checkpoints": checkpoints.len(),
            "checkpoint_every": every,
            "steps": total,
            "checkpoint_hashes": checkpoints.iter().map(Hash::to_hex).collect::<Vec<_>>(),
            "data_order": order_hash.to_hex(),
        });
        self.write("trace.json", format!("{trace:#}\n").as_bytes())?;
        let count = u32::try_from(checkpoints.len()).map_err(|_| TaskError::BadInput("too many checkpoints".into()))?;
        Ok(Trace { root, checkpoints: count })
    }
}
