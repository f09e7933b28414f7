//! The `onnx` runtime: inference of an ONNX model with tract on the CPU, the reference
//! every verifier can run. The task's program is the `.onnx` file; its arguments declare
//! how the inputs feed the model and what to deliver, as `key=value` strings:
//!
//! - `pipeline=tensors` (the default): tensors in, tensors out.
//!   - `input=NAME:FILE` binds model input `NAME` to the task input `FILE`, a NumPy
//!     `.npy` file (little-endian float32, float64, int32 or int64, C order; see `npy`).
//!     `input=FILE` binds the model's only input. Every model input is bound once.
//!   - `output=NAME` (repeatable) picks the model outputs to deliver, in that order; by
//!     default all of them. Each is written as `NAME.npy` (so its name must be a plain
//!     file name). Integer outputs that tract computes as dimensions are written as int64.
//!   - Every input's first axis is the rows; `batch=N` rows run at a time, and the
//!     outputs' batches are joined along their first axis.
//! - `pipeline=sentence-embedding`: text in, sentence embeddings out.
//!   - `tokenizer=FILE`: a Hugging Face `tokenizer.json`; its truncation and padding token
//!     apply, but each batch is padded only to its longest line.
//!   - `text=FILE`: UTF-8 text, one sentence per line (no blank lines).
//!   - The model's inputs must be among `input_ids`, `attention_mask` and
//!     `token_type_ids` (int64 or int32), and include `input_ids`.
//!   - `output=NAME` picks the output holding the token states `[batch, tokens, hidden]`
//!     (default: the model's first output); `pooling=mean` (the only pooling) averages it
//!     over the real tokens, and `normalize=l2` (default) or `none` says whether each
//!     vector is then scaled to unit length.
//!   - The result is `embeddings.npy`: float32 `[lines, hidden]`.
//!   - `batch=N` lines run at a time.
//!
//! `batch` (default 32, at most 4096) is part of the result, not a tuning knob: the batch
//! shapes decide the padding and which kernels tract runs, so the same task gives the same
//! bytes on the same CPU whatever the machine's thread count. Batches run in parallel,
//! one per core (see `exec`). Across CPU families (AVX-512 against AVX2 or NEON) float
//! results may differ in the last bits; the reference cases hold within 1e-4.
//!
//! Limits: `timeout_s` and the cancel flag are checked between batches, so one batch is
//! the slack on both; `memory_mb` and `fuel` are not enforced here.
//!
//! Errors: a file that is not an ONNX model tract can read is `InvalidProgram`, an
//! operator tract lacks is `Unsupported`, and arguments or inputs that do not fit the
//! model (a missing file, a bad `.npy` header, a wrong shape or element type) are
//! `BadInput`, each naming what was found and what the model wants.

mod args;
mod embed;
mod exec;
pub(crate) mod files;
mod model;
pub mod npy;
mod tensors;

use std::time::Instant;

use ogpu_core::spec::WorkloadKind;

use crate::digest::digest_dir;
use crate::{Job, Outcome, Runtime, TaskError, check_job};
use args::{Pipeline, Task};
use embed::Embedding;
use model::{Model, Outputs};

/// Runs ONNX models with tract. Holds nothing between jobs: each job parses its model and
/// optimizes it for its batch shapes.
#[derive(Debug, Default)]
pub struct OnnxRuntime;

impl OnnxRuntime {
    pub fn new() -> OnnxRuntime {
        OnnxRuntime
    }
}

impl Runtime for OnnxRuntime {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Onnx
    }

    fn run(&self, job: &Job<'_>) -> Result<Outcome, TaskError> {
        check_job(WorkloadKind::Onnx, job)?;
        let started = Instant::now();
        let task = Task::parse(job.args)?;
        let wanted = match (&task.pipeline, task.outputs.as_slice()) {
            (Pipeline::Tensors { .. }, []) => Outputs::All,
            (Pipeline::SentenceEmbedding { .. }, []) => Outputs::First,
            (_, named) => Outputs::Named(named),
        };
        let model = Model::load(job.program, wanted)?;
        match &task.pipeline {
            Pipeline::Tensors { inputs } => tensors::run(&model, inputs, task.batch, job, started)?,
            Pipeline::SentenceEmbedding { tokenizer, text, normalize } => {
                Embedding { tokenizer, text, normalize: *normalize, batch: task.batch }.run(&model, job, started)?
            }
        }
        let compute_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let digest = digest_dir(job.output)?;
        Ok(Outcome { output: digest.hash, trace: None, files: digest.files, manifest: digest.manifest, compute_ms })
    }
}
