//! What the pipelines need of an inference engine, so that they run the same on tract (the
//! reference every verifier has) and on onnxruntime (the fast engine, and the GPU path):
//! a loaded model's input ports and output names, and batches of arrays run through it.

use std::fmt::Write as _;
use std::time::Instant;

use super::npy::{Array, DType};
use crate::{Job, TaskError};

/// A model loaded on an engine, with the outputs the task wants selected.
pub trait Engine: Sync {
    /// The model's inputs, in the order every batch gives them.
    fn inputs(&self) -> &[Port];

    /// The names of the outputs each batch gives, in order.
    fn outputs(&self) -> &[String];

    /// Runs every batch (one array per input) and returns each batch's outputs (one array
    /// per output), in batch order. Stops between batches on cancellation or the time
    /// limit, and reports each finished batch as a step (see `exec`).
    fn run(&self, batches: Vec<Vec<Array>>, job: &Job<'_>, started: Instant) -> Result<Vec<Vec<Array>>, TaskError>;
}

/// Which of the model's declared outputs to compute.
#[derive(Debug, Clone, Copy)]
pub enum Outputs<'a> {
    All,
    First,
    /// By name, in this order.
    Named(&'a [String]),
}

impl Outputs<'_> {
    /// The names picked from the model's `declared` outputs, or what is wrong.
    pub fn pick(self, declared: &[String]) -> Result<Vec<String>, TaskError> {
        match self {
            _ if declared.is_empty() => Err(TaskError::InvalidProgram("the model declares no outputs".into())),
            Outputs::All => Ok(declared.to_vec()),
            Outputs::First => Ok(declared[..1].to_vec()),
            Outputs::Named(wanted) => match wanted.iter().find(|name| !declared.contains(name)) {
                Some(name) => Err(TaskError::BadInput(format!(
                    "the model has no output {name:?}; its outputs are {}",
                    quoted_list(declared)
                ))),
                None => Ok(wanted.to_vec()),
            },
        }
    }
}

/// A model input as the graph declares it.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub dtype: PortType,
    /// Each dimension fixed or free (`None`); the whole shape `None` when even the rank is
    /// open.
    pub shape: Option<Vec<Option<usize>>>,
}

/// The element type a model input takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortType {
    /// Left open by the graph.
    Any,
    Is(DType),
    /// A type the `.npy` inputs cannot hold, by the name ONNX users know it by.
    Other(String),
}

impl Port {
    /// Whether an array of `dtype` and `shape` fits, and if not, what the model wants.
    pub fn check(&self, dtype: DType, shape: &[usize]) -> Result<(), String> {
        let dtype_fits = match &self.dtype {
            PortType::Any => true,
            PortType::Is(wanted) => *wanted == dtype,
            PortType::Other(_) => false,
        };
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
        let mut text = match &self.dtype {
            PortType::Any => "any type".to_string(),
            PortType::Is(dtype) => dtype.to_string(),
            PortType::Other(name) => name.clone(),
        };
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

pub fn quoted_list(names: &[String]) -> String {
    names.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
}
