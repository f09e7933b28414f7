//! The tract engine: the reference every verifier can run, on the CPU, in pure Rust.
//!
//! An ONNX graph is parsed once per job, checked for operators tract lacks, and turned
//! into optimized plans. A shape that several batches share gets a plan made for exactly
//! that shape: tract then folds the shape arithmetic and picks its kernels once, which
//! makes each run faster. A shape seen once runs on the general plan, optimized once for
//! the model's own free dimensions, since optimizing costs about half a batch: with text
//! padded per batch, most batches of a job have a length of their own.
//!
//! tract computes one batch on one thread, so batches run side by side, one worker per
//! core; when there are fewer batches than cores, each matrix product is also split across
//! a shared thread pool. None of this depends on the machine: each batch is computed alone,
//! tract splits products by output tiles, each summed whole by one thread, and which plan a
//! batch gets depends only on the batches, so the result is the same whatever the thread
//! count or the order batches finish in.

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Instant;

use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;

use super::engine::{Engine, Outputs, Port, PortType};
use super::exec;
use super::npy::{Array, DType};
use crate::{Job, TaskError};

// Arrays are handed to and from tract as raw bytes, which `.npy` stores little-endian.
const _: () = assert!(cfg!(target_endian = "little"), "the onnx runtime reads .npy data as native bytes");

/// The name NumPy and ONNX users know a tract element type by.
fn dtype_name(dtype: DatumType) -> String {
    match dtype {
        DatumType::F32 => "float32".into(),
        DatumType::F64 => "float64".into(),
        DatumType::I32 => "int32".into(),
        DatumType::I64 => "int64".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

type Plan = Arc<TypedRunnableModel>;
type Shapes = Vec<(DatumType, Vec<usize>)>;
/// One slot per set of input shapes, filled by the first batch that needs it while the
/// others of that shape wait.
type PlanSlot = Arc<OnceLock<Result<Plan, TaskError>>>;

pub struct TractModel {
    graph: InferenceModel,
    inputs: Vec<Port>,
    /// The names of the outputs the plans compute, in order.
    outputs: Vec<String>,
    plans: Mutex<HashMap<Shapes, PlanSlot>>,
    /// The plan for the model's own (free) input shapes, made on first use.
    general: OnceLock<Result<Plan, TaskError>>,
}

impl TractModel {
    /// Parses `program` and keeps the `wanted` outputs, so the branches computing no
    /// wanted output are never run.
    pub fn load(program: &[u8], wanted: Outputs<'_>) -> Result<TractModel, TaskError> {
        let mut graph = guarded(|| tract_onnx::onnx().model_for_read(&mut &program[..]))
            .map_err(|error| TaskError::InvalidProgram(format!("not an ONNX model tract can read: {error}")))?;
        if let Some(node) = graph.nodes().iter().find(|node| node.op_is::<UnimplementedOp>()) {
            let op = node.op.name();
            let op = op.strip_prefix("Unimplemented(").and_then(|op| op.strip_suffix(')')).unwrap_or(&op);
            return Err(TaskError::Unsupported(format!(
                "the model uses the operator {op} (node {:?}), which tract does not implement",
                node.name
            )));
        }
        let declared = graph.output_outlets().map_err(invalid)?.to_vec();
        let names: Vec<String> = declared.iter().map(|&outlet| outlet_name(&graph, outlet)).collect();
        let outputs = wanted.pick(&names)?;
        let selected: Vec<OutletId> =
            outputs.iter().filter_map(|name| names.iter().position(|n| n == name)).map(|i| declared[i]).collect();
        graph.select_output_outlets(&selected).map_err(invalid)?;
        let inputs = graph
            .input_outlets()
            .map_err(invalid)?
            .iter()
            .map(|&outlet| port(&graph, outlet))
            .collect::<Result<_, _>>()?;
        Ok(TractModel { graph, inputs, outputs, plans: Mutex::default(), general: OnceLock::new() })
    }

    /// Runs the model on one batch (one tensor per model input, in the model's order), with
    /// its matrix products on `executor`; `specialize` asks for a plan made for this
    /// batch's shapes.
    fn run_batch(
        &self,
        inputs: TVec<TValue>,
        executor: &Executor,
        specialize: bool,
    ) -> Result<TVec<TValue>, TaskError> {
        let plan = self.plan(&inputs, specialize)?;
        let outputs = guarded(|| multithread_tract_scope(executor.clone(), || plan.run(inputs)))
            .map_err(|error| TaskError::Trap(format!("the model failed: {error}")))?;
        // The pipelines index the outputs by position in `self.outputs`.
        match outputs.len() == self.outputs.len() {
            true => Ok(outputs),
            false => {
                Err(TaskError::Trap(format!("the model gave {} outputs, not {}", outputs.len(), self.outputs.len())))
            }
        }
    }

    fn plan(&self, inputs: &[TValue], specialize: bool) -> Result<Plan, TaskError> {
        let key = shapes(inputs);
        // A model whose free dimensions tract cannot optimize symbolically still runs, on
        // plans for each shape.
        if !specialize && let Ok(plan) = self.general.get_or_init(|| self.optimize(&key, false)) {
            return Ok(plan.clone());
        }
        let slot = {
            // A poisoned lock only means another batch panicked while holding it; the map
            // is still whole.
            let mut plans = self.plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            plans.entry(key.clone()).or_default().clone()
        };
        slot.get_or_init(|| self.optimize(&key, true)).clone()
    }

    /// A plan for inputs of these element types and, when `exact`, exactly these shapes;
    /// otherwise for the shapes the model declares.
    fn optimize(&self, shapes: &[(DatumType, Vec<usize>)], exact: bool) -> Result<Plan, TaskError> {
        let described: Vec<String> =
            shapes.iter().map(|(dtype, shape)| format!("{} {shape:?}", dtype_name(*dtype))).collect();
        guarded(|| {
            let mut graph = self.graph.clone();
            for (index, (dtype, shape)) in shapes.iter().enumerate() {
                let fact = match exact {
                    true => InferenceFact::dt_shape(*dtype, shape.as_slice()),
                    false => graph.input_fact(index)?.clone().with_datum_type(*dtype),
                };
                graph.set_input_fact(index, fact)?;
            }
            graph.into_optimized()?.into_runnable()
        })
        .map_err(|error| {
            TaskError::InvalidProgram(format!("the model cannot run on inputs {}: {error}", described.join(", ")))
        })
    }
}

impl Engine for TractModel {
    fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn run(&self, batches: Vec<Vec<Array>>, job: &Job<'_>, started: Instant) -> Result<Vec<Vec<Array>>, TaskError> {
        let batches: Vec<TVec<TValue>> = batches
            .iter()
            .map(|batch| batch.iter().map(|array| to_tensor(array).map(IntoTValue::into_tvalue)).collect())
            .collect::<Result<_, _>>()?;
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let executor = match batches.len() < cores {
            true => products_pool(cores)?,
            false => Executor::SingleThread,
        };
        let mut seen: HashMap<Shapes, usize> = HashMap::new();
        for batch in &batches {
            *seen.entry(shapes(batch)).or_default() += 1;
        }
        let specialize: Vec<bool> =
            batches.iter().map(|batch| seen.get(&shapes(batch)).is_some_and(|&n| n > 1)).collect();
        exec::run(batches, cores, job, started, |index, batch| {
            let outputs = self.run_batch(batch, &executor, specialize[index])?;
            outputs.iter().zip(&self.outputs).map(|(tensor, name)| to_array(name, tensor)).collect()
        })
    }
}

/// A pool of `threads` for tract's matrix products.
fn products_pool(threads: usize) -> Result<Executor, TaskError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|n| format!("ogpu-onnx-{n}"))
        .build()
        .map_err(|error| TaskError::Io(format!("starting the inference threads: {error}")))?;
    Ok(Executor::MultiThread(Arc::new(pool)))
}

fn to_tensor(array: &Array) -> Result<Tensor, TaskError> {
    fn decode<T: Datum + Copy, const N: usize>(array: &Array, from: fn([u8; N]) -> T) -> TractResult<Tensor> {
        let values: Vec<T> = array.data.as_chunks::<N>().0.iter().map(|&bytes| from(bytes)).collect();
        Tensor::from_shape(&array.shape, &values)
    }
    match array.dtype {
        DType::F32 => decode(array, f32::from_le_bytes),
        DType::F64 => decode(array, f64::from_le_bytes),
        DType::I32 => decode(array, i32::from_le_bytes),
        DType::I64 => decode(array, i64::from_le_bytes),
    }
    .map_err(|error| TaskError::BadInput(format!("{error:#}")))
}

fn to_array(name: &str, tensor: &Tensor) -> Result<Array, TaskError> {
    let unsupported = || {
        TaskError::Unsupported(format!(
            "output {name:?} is {}, which is not written as .npy here",
            dtype_name(tensor.datum_type())
        ))
    };
    // tract computes some integer outputs (an ArgMax's, say) as symbolic dimensions.
    let tensor = match tensor.datum_type() {
        DatumType::TDim => tensor.cast_to::<i64>().map_err(|_| unsupported())?,
        _ => Cow::Borrowed(tensor),
    };
    let dtype = npy_dtype(tensor.datum_type()).ok_or_else(unsupported)?;
    let view = tensor.as_plain_ram().ok_or_else(unsupported)?;
    Ok(Array { dtype, shape: tensor.shape().to_vec(), data: view.as_bytes().to_vec() })
}

fn npy_dtype(dtype: DatumType) -> Option<DType> {
    match dtype {
        DatumType::F32 => Some(DType::F32),
        DatumType::F64 => Some(DType::F64),
        DatumType::I32 => Some(DType::I32),
        DatumType::I64 => Some(DType::I64),
        _ => None,
    }
}

/// The element type and shape of each input: what a plan is made for.
fn shapes(inputs: &[TValue]) -> Shapes {
    inputs.iter().map(|t| (t.datum_type(), t.shape().to_vec())).collect()
}

fn invalid(error: TractError) -> TaskError {
    TaskError::InvalidProgram(format!("{error:#}"))
}

/// The ONNX name of an outlet: the value name its producer gave it.
fn outlet_name(graph: &InferenceModel, outlet: OutletId) -> String {
    match graph.outlet_label(outlet) {
        Some(label) => label.to_string(),
        None => graph.node(outlet.node).name.clone(),
    }
}

fn port(graph: &InferenceModel, outlet: OutletId) -> Result<Port, TaskError> {
    let fact = graph.outlet_fact(outlet).map_err(invalid)?;
    let shape = match fact.shape.is_open() {
        true => None,
        false => Some(
            fact.shape
                .dims()
                .map(|d| d.concretize().and_then(|d| d.as_i64()).and_then(|d| usize::try_from(d).ok()))
                .collect(),
        ),
    };
    let dtype = match fact.datum_type.concretize() {
        None => PortType::Any,
        Some(dtype) => npy_dtype(dtype).map_or_else(|| PortType::Other(dtype_name(dtype)), PortType::Is),
    };
    Ok(Port { name: graph.node(outlet.node).name.clone(), dtype, shape })
}

/// Runs a tract call, turning its errors and any panic inside it into text: malformed
/// models can reach assertions deep in tract, and no model may bring the provider down.
fn guarded<T>(call: impl FnOnce() -> TractResult<T>) -> Result<T, String> {
    match panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(format!("tract panicked: {message}"))
        }
    }
}
