//! The `tensors` pipeline: each model input read from an `.npy` file and split into
//! batches along its first axis (the rows), and each chosen output written back as
//! `<output name>.npy` with its batches joined again in order.

use std::time::Instant;

use super::engine::{Engine, quoted_list};
use super::files;
use super::npy::Array;
use super::tensor_file::{self, Format};
use crate::{Job, TaskError};

pub fn run(
    model: &dyn Engine,
    bindings: &[(Option<String>, String)],
    batch: usize,
    format: Format,
    job: &Job<'_>,
    started: Instant,
) -> Result<(), TaskError> {
    let files = bind(model, bindings)?;
    let mut arrays = Vec::with_capacity(files.len());
    for (file, port) in files.iter().zip(model.inputs()) {
        arrays.push(tensor_file::read(file, &files::read_input(job.inputs, file)?, &port.name)?);
    }
    let rows = batch_rows(&files, &arrays)?;
    let mut batches = Vec::new();
    for start in (0..rows).step_by(batch) {
        let end = rows.min(start + batch);
        let mut inputs = Vec::with_capacity(arrays.len());
        for ((array, port), file) in arrays.iter().zip(model.inputs()).zip(&files) {
            let part = array.rows(start, end);
            port.check(part.dtype, &part.shape).map_err(|wanted| {
                TaskError::BadInput(format!(
                    "input {:?} from {file} is {} {:?} in a batch of {} rows, but {wanted}",
                    port.name,
                    part.dtype,
                    part.shape,
                    end - start
                ))
            })?;
            inputs.push(part);
        }
        batches.push(inputs);
    }
    let mut by_output: Vec<Vec<Array>> = model.outputs().iter().map(|_| Vec::new()).collect();
    for outputs in model.run(batches, job, started)? {
        for (parts, array) in by_output.iter_mut().zip(outputs) {
            parts.push(array);
        }
    }
    for (name, parts) in model.outputs().iter().zip(by_output) {
        let (file, bytes) = tensor_file::write(format, name, &join(name, parts, rows, batch)?)
            .map_err(|e| TaskError::BadOutput(e.to_string()))?;
        files::write_output(job.output, &file, &bytes)?;
    }
    Ok(())
}

/// The input file for each model input, in the model's order.
fn bind(model: &dyn Engine, bindings: &[(Option<String>, String)]) -> Result<Vec<String>, TaskError> {
    let names: Vec<String> = model.inputs().iter().map(|port| port.name.clone()).collect();
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
fn batch_rows(files: &[String], arrays: &[Array]) -> Result<usize, TaskError> {
    let mut rows = None;
    for (file, array) in files.iter().zip(arrays) {
        let Some(&first) = array.shape.first() else {
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
fn join(name: &str, mut parts: Vec<Array>, rows: usize, batch: usize) -> Result<Array, TaskError> {
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    for (index, part) in parts.iter().enumerate() {
        let expected = batch.min(rows - index * batch);
        if part.shape.first() != Some(&expected) {
            return Err(TaskError::BadInput(format!(
                "output {name:?} is {:?} for a batch of {expected} rows: it has no batch axis, so batches cannot be \
                 joined; run all {rows} rows in one batch (batch={rows})",
                part.shape
            )));
        }
    }
    Array::join_rows(&parts)
        .ok_or_else(|| TaskError::BadOutput(format!("output {name:?} changes type or shape from batch to batch")))
}
