//! The onnxruntime engine (`engine=ort`): the fast engine on CPUs, and the CUDA path on
//! NVIDIA GPUs (`device=cuda`), through `ort` with the library loaded at run time from a
//! file the provider names, so nothing is downloaded or linked at build time.
//!
//! A session uses every core for each batch (onnxruntime splits its kernels itself), so
//! batches run one after another, in order. Deterministic compute is on: the same model,
//! inputs and machine give the same bytes. Other engines, and other CPU families, agree
//! within float tolerance only.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::engine::{Engine, Outputs, Port, PortType};
use super::exec;
use super::npy::{Array, DType, Element};
use crate::{Job, TaskError};

/// onnxruntime, loaded. The library allows one environment per process, so every
/// [`OrtLibrary`] of a process is the same one, from the same file.
#[derive(Debug, Clone)]
pub struct OrtLibrary {
    environment: Environment,
    path: PathBuf,
}

/// The library this process loaded; only a success is kept, so a wrong path can be fixed
/// by trying again.
static LOADED: Mutex<Option<OrtLibrary>> = Mutex::new(None);

impl OrtLibrary {
    /// Loads `libonnxruntime.so` (1.22 or later) from `path`; once loaded, the same path
    /// gives the same library and any other is refused.
    pub fn load(path: &Path) -> Result<OrtLibrary, TaskError> {
        let cannot =
            |why: String| TaskError::Unsupported(format!("cannot load onnxruntime from {}: {why}", path.display()));
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(library) = loaded.as_ref() {
            return match library.path == path {
                true => Ok(library.clone()),
                false => Err(cannot(format!("this process loaded it from {} already", library.path.display()))),
            };
        }
        // Any other ort call before a successful load would panic looking for the library.
        let builder = ort::init_from(path).map_err(|error| cannot(error.to_string()))?;
        let environment =
            builder.with_name("ogpu").with_telemetry(false).build().map_err(|error| cannot(error.to_string()))?;
        let library = OrtLibrary { environment, path: path.to_owned() };
        *loaded = Some(library.clone());
        Ok(library)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A model in an onnxruntime session.
pub struct OrtModel {
    /// A run needs the session to itself.
    session: Mutex<Session>,
    inputs: Vec<Port>,
    outputs: Vec<String>,
}

impl OrtModel {
    /// Loads `program` for the CPU or, with `cuda`, for onnxruntime's CUDA execution
    /// provider (an error if it cannot start, never a quiet fall back to the CPU).
    pub fn load(library: &OrtLibrary, program: &[u8], wanted: Outputs<'_>, cuda: bool) -> Result<OrtModel, TaskError> {
        let internal = |error: ort::Error| TaskError::Unsupported(format!("onnxruntime: {error}"));
        let mut builder = options(library).map_err(internal)?;
        if cuda {
            builder = with_cuda(builder)?;
        }
        let session = builder.commit_from_memory(program).map_err(|error| {
            // onnxruntime reports an unknown operator as an invalid graph; its words tell.
            let unknown_op = error.message().contains("No Op registered for");
            match error.code() == ort::ErrorCode::NotImplemented || unknown_op {
                true => TaskError::Unsupported(format!("the model uses what onnxruntime does not implement: {error}")),
                false => TaskError::InvalidProgram(format!("not an ONNX model onnxruntime can load: {error}")),
            }
        })?;
        let inputs = session.inputs().iter().map(|input| port(input.name(), input.dtype())).collect();
        let declared: Vec<String> = session.outputs().iter().map(|output| output.name().to_string()).collect();
        let outputs = wanted.pick(&declared)?;
        Ok(OrtModel { session: Mutex::new(session), inputs, outputs })
    }

    fn run_batch(&self, batch: Vec<Array>) -> Result<Vec<Array>, TaskError> {
        let failed = |error: ort::Error| TaskError::Trap(format!("the model failed: {error}"));
        let mut feed: Vec<(String, DynValue)> = Vec::with_capacity(batch.len());
        for (port, array) in self.inputs.iter().zip(batch) {
            feed.push((port.name.clone(), to_value(array).map_err(failed)?));
        }
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(feed).map_err(failed)?;
        self.outputs
            .iter()
            .map(|name| {
                let value =
                    outputs.get(name.as_str()).ok_or_else(|| TaskError::BadOutput(format!("no output {name:?}")))?;
                to_array(name, value)
            })
            .collect()
    }
}

impl Engine for OrtModel {
    fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn run(&self, batches: Vec<Vec<Array>>, job: &Job<'_>, started: Instant) -> Result<Vec<Vec<Array>>, TaskError> {
        exec::run(batches, 1, job, started, |_, batch| self.run_batch(batch))
    }
}

/// Session options: every core for each batch, all graph optimizations, deterministic
/// kernels.
fn options(library: &OrtLibrary) -> ort::Result<SessionBuilder> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Session::builder(&library.environment)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        .with_deterministic_compute(true)?)
}

#[cfg(feature = "cuda")]
fn with_cuda(builder: SessionBuilder) -> Result<SessionBuilder, TaskError> {
    let cuda = ort::ep::CUDA::default().build().error_on_failure();
    builder.with_execution_providers([cuda]).map_err(|error| {
        TaskError::Unsupported(format!(
            "device=cuda: onnxruntime's CUDA execution provider cannot start ({}); the library must come from \
             onnxruntime-gpu, with CUDA and cuDNN on the library path",
            ort::Error::<()>::from(error)
        ))
    })
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(_builder: SessionBuilder) -> Result<SessionBuilder, TaskError> {
    Err(TaskError::Unsupported(
        "device=cuda: this provider's build has no CUDA support (ogpu-runtime's cuda feature)".into(),
    ))
}

fn port(name: &str, dtype: &ValueType) -> Port {
    let (dtype, shape) = match dtype {
        ValueType::Tensor { ty, shape, .. } => {
            let dtype = npy_dtype(*ty).map_or_else(|| PortType::Other(ty.to_string()), PortType::Is);
            // onnxruntime marks a free dimension as -1.
            let dims = shape.iter().map(|&d| usize::try_from(d).ok()).collect();
            (dtype, Some(dims))
        }
        other => (PortType::Other(format!("{other:?}")), None),
    };
    Port { name: name.to_string(), dtype, shape }
}

fn npy_dtype(ty: TensorElementType) -> Option<DType> {
    match ty {
        TensorElementType::Float32 => Some(DType::F32),
        TensorElementType::Float64 => Some(DType::F64),
        TensorElementType::Int32 => Some(DType::I32),
        TensorElementType::Int64 => Some(DType::I64),
        _ => None,
    }
}

fn to_value(array: Array) -> ort::Result<DynValue> {
    fn tensor<T: Element + ort::value::PrimitiveTensorElementType + std::fmt::Debug + 'static>(
        array: &Array,
    ) -> ort::Result<DynValue> {
        let values = array.values::<T>().unwrap_or_default();
        Ok(Tensor::from_array((array.shape.clone(), values))?.into_dyn())
    }
    match array.dtype {
        DType::F32 => tensor::<f32>(&array),
        DType::F64 => tensor::<f64>(&array),
        DType::I32 => tensor::<i32>(&array),
        DType::I64 => tensor::<i64>(&array),
    }
}

fn to_array(name: &str, value: &DynValue) -> Result<Array, TaskError> {
    fn extract<T: Element + ort::value::PrimitiveTensorElementType>(value: &DynValue) -> ort::Result<Array> {
        let (shape, values) = value.try_extract_tensor::<T>()?;
        let shape: Vec<usize> = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        Ok(Array::of(&shape, values))
    }
    let ty = value.dtype().tensor_type();
    let array = match ty.and_then(npy_dtype) {
        Some(DType::F32) => extract::<f32>(value),
        Some(DType::F64) => extract::<f64>(value),
        Some(DType::I32) => extract::<i32>(value),
        Some(DType::I64) => extract::<i64>(value),
        None => {
            let what = ty.map_or_else(|| "not a tensor".to_string(), |ty| ty.to_string());
            return Err(TaskError::Unsupported(format!(
                "output {name:?} is {what}, which is not written as .npy here"
            )));
        }
    };
    array.map_err(|error| TaskError::BadOutput(format!("reading output {name:?}: {error}")))
}
