//! The model: an ONNX graph parsed once per job, checked for operators tract lacks, and
//! turned into optimized plans. A shape that several batches share gets a plan made for
//! exactly that shape: tract then folds the shape arithmetic and picks its kernels once,
//! which makes each run faster. A shape seen once runs on the general plan, optimized once
//! for the model's own free dimensions, since optimizing costs about half a batch: with
//! text padded per batch, most batches of a job have a length of their own.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;

use crate::TaskError;

/// A model input as the graph declares it.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    /// `None` when the graph leaves it open.
    pub dtype: Option<DatumType>,
    /// Each dimension fixed or free (`None`); the whole shape `None` when even the rank is
    /// open.
    pub shape: Option<Vec<Option<usize>>>,
}

impl Port {
    /// Whether a tensor of `dtype` and `shape` fits, and if not, what the model wants.
    pub fn check(&self, dtype: DatumType, shape: &[usize]) -> Result<(), String> {
        let dtype_fits = self.dtype.is_none_or(|wanted| wanted == dtype);
        let shape_fits = self.shape.as_ref().is_none_or(|dims| {
            dims.len() == shape.len() && dims.iter().zip(shape).all(|(want, &got)| want.is_none_or(|w| w == got))
        });
        match dtype_fits && shape_fits {
            true => Ok(()),
            false => Err(format!("the model wants {}", self.describe())),
        }
    }

    /// `float32 [?, 64]`: the declared type and shape, `?` where free.
    pub fn describe(&self) -> String {
        let mut text = self.dtype.map_or("any type".to_string(), dtype_name);
        match &self.shape {
            None => text.push_str(" of any shape"),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
                let _ = write!(text, " [{}]", dims.join(", "));
            }
        }
        text
    }
}

/// The name NumPy and ONNX users know a tract element type by.
pub fn dtype_name(dtype: DatumType) -> String {
    match dtype {
        DatumType::F32 => "float32".into(),
        DatumType::F64 => "float64".into(),
        DatumType::I32 => "int32".into(),
        DatumType::I64 => "int64".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Which of the model's declared outputs to compute.
#[derive(Debug, Clone, Copy)]
pub enum Outputs<'a> {
    All,
    First,
    /// By name, in this order.
    Named(&'a [String]),
}

type Plan = Arc<TypedRunnableModel>;
pub type Shapes = Vec<(DatumType, Vec<usize>)>;
/// One slot per set of input shapes, filled by the first batch that needs it while the
/// others of that shape wait.
type PlanSlot = Arc<OnceLock<Result<Plan, TaskError>>>;

pub struct Model {
    graph: InferenceModel,
    pub inputs: Vec<Port>,
    /// The names of the outputs the plans compute, in order.
    pub outputs: Vec<String>,
    plans: Mutex<HashMap<Shapes, PlanSlot>>,
    /// The plan for the model's own (free) input shapes, made on first use.
    general: OnceLock<Result<Plan, TaskError>>,
}

impl Model {
    /// Parses `program` and keeps the `wanted` outputs, so the branches computing no
    /// wanted output are never run.
    pub fn load(program: &[u8], wanted: Outputs<'_>) -> Result<Model, TaskError> {
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
        let outputs = match wanted {
            _ if names.is_empty() => return Err(TaskError::InvalidProgram("the model declares no outputs".into())),
            Outputs::All => names.clone(),
            Outputs::First => names[..1].to_vec(),
            Outputs::Named(wanted) => wanted.to_vec(),
        };
        let mut selected = Vec::with_capacity(outputs.len());
        for name in &outputs {
            let Some(index) = names.iter().position(|n| n == name) else {
                return Err(TaskError::BadInput(format!(
                    "the model has no output {name:?}; its outputs are {}",
                    quoted_list(&names)
                )));
            };
            selected.push(declared[index]);
        }
        graph.select_output_outlets(&selected).map_err(invalid)?;
        let inputs = graph
            .input_outlets()
            .map_err(invalid)?
            .iter()
            .map(|&outlet| port(&graph, outlet))
            .collect::<Result<_, _>>()?;
        Ok(Model { graph, inputs, outputs, plans: Mutex::default(), general: OnceLock::new() })
    }

    /// Runs the model on one batch (one tensor per model input, in the model's order), with
    /// its matrix products on `executor`; `specialize` asks for a plan made for this
    /// batch's shapes.
    pub fn run(&self, inputs: TVec<TValue>, executor: &Executor, specialize: bool) -> Result<TVec<TValue>, TaskError> {
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

/// The element type and shape of each input: what a plan is made for.
pub fn shapes(inputs: &[TValue]) -> Shapes {
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
    Ok(Port { name: graph.node(outlet.node).name.clone(), dtype: fact.datum_type.concretize(), shape })
}

pub fn quoted_list(names: &[String]) -> String {
    names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
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
