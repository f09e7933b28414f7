//! One model and its optimizer state on one backend: initialize or load a checkpoint,
//! take steps on batches the data order names, evaluate, and save. Both the executor's run
//! and a verifier's replay drive this, so they take exactly the same steps.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use ogpu_core::Hash;

use crate::TaskError;
use crate::train::checkpoint::{Checkpoint, Tensors};
use crate::train::config::Config;
use crate::train::data::{Dataset, Samples};
use crate::train::model::{Input, Net, cross_entropy};
use crate::train::optim::{Collect, Load, State, Update, floats, slots};

/// Samples per evaluation batch (windows, for text): bounds the memory evaluation takes.
const EVAL_BATCH: usize = 256;

pub struct Trainer<B: AutodiffBackend> {
    net: Net<B>,
    state: State<B::InnerBackend>,
    device: B::Device,
}

/// Evaluation over the eval rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Predictions that were right, of `samples`.
    pub correct: u64,
    /// Predictions scored: rows, or for text every position of every window.
    pub samples: u64,
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples as f64
    }
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A freshly initialized model with zero optimizer state.
    pub fn new(config: &Config, dataset: &Dataset, seed: &Hash, device: &B::Device) -> Result<Trainer<B>, TaskError> {
        let net = Net::new(&config.architecture, dataset.width(), config.data.classes(), seed, device)?;
        let mut shapes = Collect::shapes();
        net.visit(&mut shapes);
        let shapes = shapes.params.into_iter().map(|(path, (shape, _))| (path, shape)).collect();
        let state = State::zeros(config.optimizer, &shapes, device);
        Ok(Trainer { net, state, device: device.clone() })
    }

    /// The model and optimizer state a checkpoint holds, checked against the config.
    pub fn load(
        config: &Config,
        dataset: &Dataset,
        checkpoint: Checkpoint,
        device: &B::Device,
    ) -> Result<Trainer<B>, TaskError> {
        // The fresh model only gives the structure; every value is then replaced.
        let fresh = Trainer::<B>::new(config, dataset, &Hash::of_bytes(b"structure"), device)?;
        let mut load = Load::new(checkpoint.params);
        let net = fresh.net.map(&mut load);
        if let Some(error) = load.error {
            return Err(error);
        }
        if let Some(extra) = load.params.keys().next() {
            return Err(TaskError::BadInput(format!(
                "the checkpoint has a parameter {extra} the config's model lacks"
            )));
        }
        let mut state = fresh.state;
        let wanted = slots(config.optimizer);
        let mut stored = checkpoint.state;
        for (path, vectors) in state.by_path.iter_mut() {
            for (slot, vector) in wanted.iter().zip(vectors.iter_mut()) {
                let count = vector.dims()[0];
                let Some((_, values)) = stored.get_mut(*slot).and_then(|tensors| tensors.remove(path)) else {
                    return Err(TaskError::BadInput(format!("the checkpoint lacks the optimizer state {slot}/{path}")));
                };
                if values.len() != count {
                    return Err(TaskError::BadInput(format!("the checkpoint's {slot}/{path} has the wrong size")));
                }
                *vector = Tensor::from_data(TensorData::new(values, [count]), device);
            }
        }
        if let Some((slot, path)) = stored.iter().find_map(|(slot, t)| t.keys().next().map(|path| (slot, path))) {
            return Err(TaskError::BadInput(format!(
                "the checkpoint has optimizer state {slot}/{path} the config lacks"
            )));
        }
        Ok(Trainer { net, state, device: device.clone() })
    }

    /// One optimizer step (the `step`-th, from 1) on the training samples `indices`;
    /// returns the batch's loss before the step.
    pub fn step(self, dataset: &Dataset, indices: &[u32], step: u64) -> Result<(Trainer<B>, f32), TaskError> {
        let rows = indices.iter().map(|&i| dataset.train.start + i as usize);
        let (input, targets) = batch::<B>(dataset, rows, &self.device);
        let loss = cross_entropy(self.net.forward(input)?, targets);
        let value: f32 = loss.clone().into_scalar().elem();
        let grads = loss.backward();
        let Trainer { net, mut state, device } = self;
        let mut update = Update::<B> { grads, state: &mut state, step, path: Vec::new(), error: None };
        let net = net.map(&mut update);
        if let Some(error) = update.error {
            return Err(error);
        }
        Ok((Trainer { net, state, device }, value))
    }

    /// Loss and accuracy over the eval rows, on the model without gradients.
    pub fn evaluate(&self, dataset: &Dataset) -> Result<Option<Evaluation>, TaskError> {
        if dataset.eval.is_empty() {
            return Ok(None);
        }
        let net = self.net.valid();
        let (mut loss_sum, mut correct, mut samples) = (0.0f64, 0i64, 0u64);
        for chunk in dataset.eval.chunks(EVAL_BATCH) {
            let (input, targets) = batch::<B::InnerBackend>(dataset, chunk.iter().copied(), &self.device);
            let count = targets.dims()[0];
            let logits = net.forward(input)?;
            let predicted = logits.clone().argmax(1).reshape([count]);
            correct += predicted.equal(targets.clone()).int().sum().into_scalar().elem::<i64>();
            let loss: f32 = cross_entropy(logits, targets).into_scalar().elem();
            loss_sum += f64::from(loss) * count as f64;
            samples += count as u64;
        }
        let correct = u64::try_from(correct).unwrap_or(0);
        Ok(Some(Evaluation { loss: loss_sum / samples as f64, correct, samples }))
    }

    /// The parameters by path.
    pub fn params(&self) -> Result<Tensors, TaskError> {
        let mut collect = Collect::default();
        self.net.visit(&mut collect);
        match collect.error {
            Some(error) => Err(error),
            None => Ok(collect.params),
        }
    }

    /// A checkpoint after `step` steps.
    pub fn checkpoint(&self, step: u64) -> Result<Checkpoint, TaskError> {
        let params = self.params()?;
        let mut state = std::collections::BTreeMap::new();
        for (index, slot) in self.state.slots.iter().enumerate() {
            let mut tensors = Tensors::new();
            for (path, vectors) in &self.state.by_path {
                let shape = params.get(path).map(|(shape, _)| shape.clone()).unwrap_or_default();
                tensors.insert(path.clone(), (shape, floats(vectors[index].to_data())?));
            }
            state.insert(slot.to_string(), tensors);
        }
        Ok(Checkpoint { step, params, state })
    }
}

/// The model inputs and class targets for `rows` (for text, window starts).
fn batch<B: Backend>(
    dataset: &Dataset,
    rows: impl Iterator<Item = usize>,
    device: &B::Device,
) -> (Input<B>, Tensor<B, 1, Int>) {
    match &dataset.samples {
        Samples::Dense { features, width, labels } => {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for row in rows {
                x.extend_from_slice(&features[row * width..(row + 1) * width]);
                y.push(i64::from(labels[row]));
            }
            let count = y.len();
            let x = Tensor::from_data(TensorData::new(x, [count, *width]), device);
            (Input::Dense(x), Tensor::from_data(TensorData::new(y, [count]), device))
        }
        Samples::Text { bytes, context } => {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for start in rows {
                x.extend(bytes[start..start + context].iter().map(|&b| i64::from(b)));
                y.extend(bytes[start + 1..start + context + 1].iter().map(|&b| i64::from(b)));
            }
            let count = y.len() / context;
            let x = Tensor::from_data(TensorData::new(x, [count, *context]), device);
            (Input::Tokens(x), Tensor::from_data(TensorData::new(y, [count * context]), device))
        }
    }
}
