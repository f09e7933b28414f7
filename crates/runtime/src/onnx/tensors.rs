//! The `tensors` pipeline: each model input read from an `.npy` file and split into
//! batches along its first axis (the rows), and each chosen output written back as
//! `<output name>.npy` with its batches joined again in order.

use std::borrow::Cow;
use std::time::Instant;

use tract_onnx::prelude::*;

use super::model::{Model, dtype_name, quoted_list};
use super::npy::{self, Array, DType};
use super::{exec, files};
use crate::{Job, TaskError};

// Tensors are handed to and from tract as raw bytes, which `.npy` stores little-endian.
const _: () = assert!(cfg!(target_endian = "little"), "the onnx runtime reads .npy data as native bytes");

pub fn run(
    model: &Model,
    bindings: &[(Option<String>, String)],
    batch: usize,
    job: &Job<'_>,
    started: Instant,
) -> Result<(), TaskError> {
    let files = bind(model, bindings)?;
    let mut tensors = Vec::with_capacity(files.len());
    for file in &files {
        let array = npy::read(&files::read_input(job.inputs, file)?)
            .map_err(|error| TaskError::BadInput(format!("{file}: {error}")))?;
        tensors.push(to_tensor(&array).map_err(|error| TaskError::BadInput(format!("{file}: {error:#}")))?);
    }
    let rows = batch_rows(&files, &tensors)?;
    let mut batches = Vec::new();
    for start in (0..rows).step_by(batch) {
        let end = rows.min(start + batch);
        let mut inputs = TVec::new();
        for ((tensor, port), file) in tensors.iter().zip(&model.inputs).zip(&files) {
            let part =
                tensor.slice(0, start, end).map_err(|error| TaskError::BadInput(format!("{file}: {error:#}")))?;
            port.check(part.datum_type(), part.shape()).map_err(|wanted| {
                TaskError::BadInput(format!(
                    "input {:?} from {file} is {} {:?} in a batch of {} rows, but {wanted}",
                    port.name,
                    dtype_name(part.datum_type()),
                    part.shape(),
                    end - start
                ))
            })?;
            inputs.push(part.into_tvalue());
        }
        batches.push(inputs);
    }
    let results = exec::run(model, batches, job, started)?;
    for (index, name) in model.outputs.iter().enumerate() {
        let parts: Vec<&Tensor> = results.iter().map(|outputs| &*outputs[index]).collect();
        let joined = join(name, &parts, rows, batch)?;
        files::write_output(job.output, &format!("{name}.npy"), &npy::write(&to_array(name, &joined)?))?;
    }
    Ok(())
}

/// The input file for each model input, in the model's order.
fn bind(model: &Model, bindings: &[(Option<String>, String)]) -> Result<Vec<String>, TaskError> {
    let names: Vec<String> = model.inputs.iter().map(|port| port.name.clone()).collect();
    if let [(None, file)] = bindings {
        return match names.len() {
            1 => Ok(vec![file.clone()]),
            _ => Err(TaskError::BadInput(format!(
                "the model has {} inputs ({}); bind each with input=NAME:FILE",
                names.len(),
                quoted_list(&names)
            ))),
        };
    }
    let mut files: Vec<Option<String>> = vec![None; names.len()];
    for (name, file) in bindings {
        let Some(name) = name else {
            return Err(TaskError::BadInput(format!("input={file} needs the model input's name: input=NAME:{file}")));
        };
        let Some(index) = names.iter().position(|n| n == name) else {
            return Err(TaskError::BadInput(format!(
                "the model has no input {name:?}; its inputs are {}",
                quoted_list(&names)
            )));
        };
        if files[index].replace(file.clone()).is_some() {
            return Err(TaskError::BadInput(format!("model input {name:?} is bound twice")));
        }
    }
    files
        .into_iter()
        .zip(&names)
        .map(|(file, name)| {
            file.ok_or_else(|| {
                TaskError::BadInput(format!("model input {name:?} is not bound to a file (input={name}:FILE)"))
            })
        })
        .collect()
}

/// The number of rows every input has along its first axis.
fn batch_rows(files: &[String], tensors: &[Tensor]) -> Result<usize, TaskError> {
    let mut rows = None;
    for (file, tensor) in files.iter().zip(tensors) {
        let Some(&first) = tensor.shape().first() else {
            return Err(TaskError::BadInput(format!(
                "{file} holds a scalar; inputs need a first axis of rows to batch"
            )));
        };
        if first == 0 {
            return Err(TaskError::BadInput(format!("{file} has no rows")));
        }
        match rows {
            Some((rows, ref other)) if rows != first => {
                return Err(TaskError::BadInput(format!("{file} has {first} rows but {other} has {rows}")));
            }
            _ => rows = Some((first, file.clone())),
        }
    }
    Ok(rows.map_or(0, |(rows, _)| rows))
}

/// One output's batches joined along the first axis.
fn join(name: &str, parts: &[&Tensor], rows: usize, batch: usize) -> Result<Tensor, TaskError> {
    if let [only] = parts {
        return Ok((*only).clone());
    }
    for (index, part) in parts.iter().enumerate() {
        let expected = batch.min(rows - index * batch);
        if part.shape().first() != Some(&expected) {
            return Err(TaskError::BadInput(format!(
                "output {name:?} is {:?} for a batch of {expected} rows: it has no batch axis, so batches cannot be \
                 joined; run all {rows} rows in one batch (batch={rows})",
                part.shape()
            )));
        }
    }
    Tensor::stack_tensors(0, parts).map_err(|error| TaskError::BadOutput(format!("joining output {name:?}: {error:#}")))
}

fn to_tensor(array: &Array) -> TractResult<Tensor> {
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
    let dtype = match tensor.datum_type() {
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::I32 => DType::I32,
        DatumType::I64 => DType::I64,
        _ => return Err(unsupported()),
    };
    let view = tensor.as_plain_ram().ok_or_else(unsupported)?;
    Ok(Array { dtype, shape: tensor.shape().to_vec(), data: view.as_bytes().to_vec() })
}
