//! The `onnx` runtime: inference of an ONNX model. The task's program is the `.onnx` file;
//! its arguments declare how the inputs feed the model, what runs it and what to deliver,
//! as `key=value` strings:
//!
//! - `engine=tract` (the default): tract on the CPU, in pure Rust, the reference every
//!   verifier can run. `engine=ort`: onnxruntime, 1.4 times faster on MiniLM on our 2-core
//!   machine (docs/benchmarks.md), where the provider has its library (ogpu-runtime's `ort` feature, and a
//!   `libonnxruntime.so` the provider names). `device=cuda` (with `engine=ort`) runs on
//!   onnxruntime's CUDA execution provider (the `cuda` feature). The engine is part of the
//!   result: engines agree within float tolerance, not bit for bit.
//! - `pipeline=tensors` (the default): tensors in, tensors out.
//!   - `input=NAME:FILE` binds model input `NAME` to the task input `FILE`: a NumPy
//!     `.npy` file (little-endian float32, float64, int32 or int64, C order; see `npy`),
//!     or a `.safetensors` file, whose tensor named `NAME` (or only tensor) is taken.
//!     `input=FILE` binds the model's only input. Every model input is bound once.
//!   - `output=NAME` (repeatable) picks the model outputs to deliver, in that order; by
//!     default all of them. Each is written as `NAME.npy`, or with `format=safetensors` as
//!     `NAME.safetensors` holding one tensor `NAME` (so its name must be a plain file
//!     name). Integer outputs that tract computes as dimensions are written as int64.
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
//!   - The result is `embeddings.npy` (or `embeddings.safetensors` with
//!     `format=safetensors`): float32 `[lines, hidden]`.
//!   - `batch=N` lines run at a time.
//!
//! `batch` (default 32, at most 4096) is part of the result, not a tuning knob: the batch
//! shapes decide the padding and which kernels run, so the same task gives the same bytes
//! on the same CPU whatever the machine's thread count. tract runs batches in parallel, one
//! per core; onnxruntime runs them in turn, each on every core. Across CPU families
//! (AVX-512 against AVX2 or NEON) float results may differ in the last bits; the reference
//! cases hold within 1e-4.
//!
//! Limits: `timeout_s` and the cancel flag are checked between batches, so one batch is
//! the slack on both; `memory_mb` and `fuel` are not enforced here.
//!
//! Errors: a file that is not an ONNX model the engine can read is `InvalidProgram`, an
//! operator the engine lacks is `Unsupported`, as is an engine or device this provider
//! does not have, and arguments or inputs that do not fit the model (a missing file, a bad
//! `.npy` header, a wrong shape or element type) are `BadInput`, each naming what was found
//! and what the model wants.

mod args;
mod embed;
mod engine;
mod exec;
pub(crate) mod files;
/// The `.npy` reader and writer, where the runtime's tests and benchmarks have found it.
pub use ogpu_tensors::npy;
#[cfg(feature = "ort")]
mod ort;
pub(crate) use ogpu_tensors::files as tensor_file;
mod tensors;
mod tract;

use std::time::Instant;

use ogpu_core::spec::WorkloadKind;

use crate::digest::digest_dir;
use crate::{Job, Libraries, Outcome, Runtime, TaskError, check_job};
use args::{EngineChoice, Pipeline, Task};
use embed::Embedding;
use engine::{Engine, Outputs};
#[cfg(feature = "ort")]
pub use ort::OrtLibrary;

#[cfg(not(feature = "ort"))]
const NO_ORT: &str = "engine=ort: this provider's build has no onnxruntime (ogpu-runtime's ort feature)";

/// Runs ONNX models. Holds nothing between jobs but the onnxruntime library, when it has
/// one: each job loads its model and prepares it for its batch shapes.
#[derive(Debug, Default)]
pub struct OnnxRuntime {
    #[cfg(feature = "ort")]
    onnxruntime: Option<OrtLibrary>,
}

impl OnnxRuntime {
    /// With tract only.
    pub fn new() -> OnnxRuntime {
        OnnxRuntime::default()
    }

    /// With onnxruntime as well, for `engine=ort`.
    #[cfg(feature = "ort")]
    pub fn with_onnxruntime(library: OrtLibrary) -> OnnxRuntime {
        OnnxRuntime { onnxruntime: Some(library) }
    }

    /// With the onnxruntime library `libraries` names, if any.
    pub fn with_libraries(libraries: &Libraries) -> Result<OnnxRuntime, TaskError> {
        match &libraries.onnxruntime {
            None => Ok(OnnxRuntime::new()),
            #[cfg(feature = "ort")]
            Some(path) => Ok(OnnxRuntime::with_onnxruntime(OrtLibrary::load(path)?)),
            #[cfg(not(feature = "ort"))]
            Some(path) => Err(TaskError::Unsupported(format!(
                "onnxruntime ({}) is configured, but this build has no onnxruntime (ogpu-runtime's ort feature)",
                path.display()
            ))),
        }
    }

    fn load(&self, program: &[u8], choice: EngineChoice, wanted: Outputs<'_>) -> Result<Box<dyn Engine>, TaskError> {
        match choice {
            EngineChoice::Tract => Ok(Box::new(tract::TractModel::load(program, wanted)?)),
            EngineChoice::Ort { cuda } => self.load_ort(program, cuda, wanted),
        }
    }

    #[cfg(feature = "ort")]
    fn load_ort(&self, program: &[u8], cuda: bool, wanted: Outputs<'_>) -> Result<Box<dyn Engine>, TaskError> {
        Ok(Box::new(ort::OrtModel::load(self.ort_library()?, program, wanted, cuda)?))
    }

    #[cfg(not(feature = "ort"))]
    fn load_ort(&self, _program: &[u8], _cuda: bool, _wanted: Outputs<'_>) -> Result<Box<dyn Engine>, TaskError> {
        Err(TaskError::Unsupported(NO_ORT.into()))
    }

    #[cfg(feature = "ort")]
    fn ort_library(&self) -> Result<&OrtLibrary, TaskError> {
        self.onnxruntime.as_ref().ok_or_else(|| {
            TaskError::Unsupported("engine=ort: this provider has no onnxruntime library configured".into())
        })
    }

    /// Whether `choice` can run here at all: the engine is built and configured and, for
    /// CUDA, there is a driver (whether onnxruntime's CUDA provider then starts is known
    /// only once a model is loaded).
    fn available(&self, choice: EngineChoice) -> Result<(), TaskError> {
        match choice {
            EngineChoice::Tract => Ok(()),
            #[cfg(feature = "ort")]
            EngineChoice::Ort { cuda } => {
                self.ort_library()?;
                match !cuda || crate::gpu::cuda_driver() {
                    true => Ok(()),
                    false => Err(TaskError::Unsupported("device=cuda: this provider has no CUDA driver".into())),
                }
            }
            #[cfg(not(feature = "ort"))]
            EngineChoice::Ort { .. } => Err(TaskError::Unsupported(NO_ORT.into())),
        }
    }
}

impl Runtime for OnnxRuntime {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Onnx
    }

    fn accepts(&self, args: &[String], _gpus: u32) -> Result<(), TaskError> {
        self.available(Task::parse(args)?.engine)
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
        let model = self.load(job.program, task.engine, wanted)?;
        match &task.pipeline {
            Pipeline::Tensors { inputs } => {
                tensors::run(model.as_ref(), inputs, task.batch, task.format, job, started)?
            }
            Pipeline::SentenceEmbedding { tokenizer, text, normalize } => {
                let (normalize, batch, format) = (*normalize, task.batch, task.format);
                let embedding = Embedding { tokenizer, text, normalize, batch, format };
                embedding.run(model.as_ref(), job, started)?
            }
        }
        let compute_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let digest = digest_dir(job.output)?;
        Ok(Outcome { output: digest.hash, trace: None, files: digest.files, manifest: digest.manifest, compute_ms })
    }
}
