//! Segment replay, what a proof-of-learning verifier runs: load the committed checkpoint
//! that starts a segment, take the segment's steps on the same batches, and measure how far
//! the result lands from the committed checkpoint that ends it.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use ogpu_core::Hash;
use ogpu_core::tx::Trace;

use crate::TaskError;
use crate::train::backend::{OnBackend, with_backend};
use crate::train::checkpoint::{Checkpoint, Tensors, file_name, trace_root};
use crate::train::config::{Config, parse_args};
use crate::train::data::{Dataset, Order};
use crate::train::trainer::Trainer;
use crate::train::{seed_hash, steps_of_segment};

/// What a gzip dataset may inflate to on replay: the verifier has no job limits to go by,
/// and the executor's run was bounded by its own.
const REPLAY_MAX_BYTES: u64 = 4 << 30;

/// How far replayed parameters are from committed ones, over all parameters as one vector.
/// Zero on the backend that produced the checkpoints; floats make other backends differ a
/// little, a wrong or forged segment a lot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distances {
    /// Euclidean distance.
    pub l2: f64,
    /// The largest difference of one parameter.
    pub linf: f64,
    /// One minus the cosine of the angle between the two vectors: 0 when they point the
    /// same way, 1 when orthogonal (or either is zero), 2 when opposite.
    pub cosine: f64,
    /// `l2` over the committed vector's length: a scale-free figure to hold to a tolerance.
    pub relative_l2: f64,
}

/// Replays segment `segment` (steps `segment * K` up to the next checkpoint) of the run the
/// training config `program` and `args` describe, with the inputs in `inputs`, from the
/// delivered checkpoints in `checkpoints` (the run's `checkpoints/` directory, holding at
/// least `NNNN.safetensors` for the segment's two ends), and measures the distance between
/// the replayed parameters and the committed end checkpoint.
pub fn replay_segment(
    program: &[u8],
    args: &[String],
    inputs: &Path,
    checkpoints: &Path,
    segment: u32,
) -> Result<Distances, TaskError> {
    // A segment the run does not have is named as such, not as a missing file.
    steps_of_segment(&Config::parse(program)?, segment)?;
    let read = |index: u64| {
        // `file_name` is relative to the output directory, which holds `checkpoints/`.
        let name = file_name(index);
        let path = checkpoints.join(name.trim_start_matches("checkpoints/"));
        std::fs::read(&path)
            .map_err(|error| TaskError::BadInput(format!("cannot read checkpoint {}: {error}", path.display())))
    };
    let index = u64::from(segment);
    replay(program, args, inputs, &read(index)?, &read(index + 1)?, segment)
}

/// Checks that `checkpoints` (every checkpoint's blake3 hash, in order) with the data
/// order of the run `program` describes make the `claimed` trace: what lets a verifier
/// trust the two checkpoints it replays between.
pub fn check_trace(program: &[u8], claimed: &Trace, checkpoints: &[Hash]) -> Result<(), TaskError> {
    let config = Config::parse(program)?;
    let mut order = Order::new(&seed_hash(config.seed), config.train_samples(), config.batch_size);
    let root = trace_root(checkpoints, &order.hash(config.total_steps()));
    let expected = config.checkpoints();
    match (root == claimed.root, u64::from(claimed.checkpoints) == expected, checkpoints.len() as u64 == expected) {
        (true, true, true) => Ok(()),
        _ => Err(TaskError::BadOutput(format!(
            "the {} delivered checkpoints and the data order do not make the committed trace of {} checkpoints (the \
             run has {expected})",
            checkpoints.len(),
            claimed.checkpoints
        ))),
    }
}

/// [`replay_segment`] with the two checkpoints' bytes at hand.
pub fn replay(
    program: &[u8],
    args: &[String],
    inputs: &Path,
    start: &[u8],
    end: &[u8],
    segment: u32,
) -> Result<Distances, TaskError> {
    let device = parse_args(args)?;
    let config = Config::parse(program)?;
    let dataset = Dataset::load(&config, inputs, REPLAY_MAX_BYTES)?;
    let steps = steps_of_segment(&config, segment)?;
    let (start, end) = (Checkpoint::decode(start)?, Checkpoint::decode(end)?);
    for (which, checkpoint, step) in [("first", &start, steps.start), ("last", &end, steps.end)] {
        if checkpoint.step != step {
            return Err(TaskError::BadInput(format!(
                "segment {segment} runs steps {}..{}, but its {which} checkpoint is of step {}",
                steps.start, steps.end, checkpoint.step
            )));
        }
    }
    let replayed = with_backend(device, Replay { config: &config, dataset: &dataset, start, steps })?;
    distances(&replayed, &end.params)
}

struct Replay<'a> {
    config: &'a Config,
    dataset: &'a Dataset,
    start: Checkpoint,
    steps: std::ops::Range<u64>,
}

impl OnBackend for Replay<'_> {
    type Output = Tensors;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Tensors, TaskError> {
        let mut trainer = Trainer::<B>::load(self.config, self.dataset, self.start, &device)?;
        let seed = seed_hash(self.config.seed);
        let mut order = Order::new(&seed, self.config.train_samples(), self.config.batch_size);
        for step in self.steps {
            let indices = order.batch(step).to_vec();
            trainer = trainer.step(self.dataset, &indices, step + 1)?.0;
        }
        trainer.params()
    }
}

/// The distances between two sets of parameters with the same names and shapes.
pub fn distances(replayed: &Tensors, committed: &Tensors) -> Result<Distances, TaskError> {
    let (mut diff2, mut linf, mut dot, mut a2, mut b2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    if replayed.len() != committed.len() {
        return Err(TaskError::BadInput(format!(
            "the committed checkpoint has {} parameters, the replayed model {}",
            committed.len(),
            replayed.len()
        )));
    }
    for (name, (shape, a)) in replayed {
        let Some((committed_shape, b)) = committed.get(name) else {
            return Err(TaskError::BadInput(format!("the committed checkpoint lacks parameter {name}")));
        };
        if committed_shape != shape || a.len() != b.len() {
            return Err(TaskError::BadInput(format!(
                "the committed checkpoint's {name} has shape {committed_shape:?}, not {shape:?}"
            )));
        }
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x), f64::from(y));
            let d = x - y;
            // A NaN in a forged checkpoint must not hide as a small distance.
            let d = if d.is_nan() { f64::INFINITY } else { d };
            diff2 += d * d;
            linf = linf.max(d.abs());
            dot += x * y;
            a2 += x * x;
            b2 += y * y;
        }
    }
    let l2 = diff2.sqrt();
    let norms = a2.sqrt() * b2.sqrt();
    let cosine = if norms > 0.0 && norms.is_finite() { (1.0 - dot / norms).max(0.0) } else { 1.0 };
    let relative_l2 = if b2 > 0.0 { l2 / b2.sqrt() } else { l2 };
    Ok(Distances { l2, linf, cosine, relative_l2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(values: &[f32]) -> Tensors {
        Tensors::from([("w".to_string(), (vec![values.len()], values.to_vec()))])
    }

    #[test]
    fn equal_parameters_are_at_distance_zero_and_others_are_not() {
        let a = tensors(&[1.0, -2.0, 3.0]);
        assert_eq!(distances(&a, &a).unwrap(), Distances { l2: 0.0, linf: 0.0, cosine: 0.0, relative_l2: 0.0 });
        let d = distances(&tensors(&[1.0, -2.0, 5.0]), &a).unwrap();
        assert_eq!((d.l2, d.linf), (2.0, 2.0));
        assert!(d.cosine > 0.0 && d.relative_l2 > 0.5);
        let opposite = distances(&tensors(&[-1.0, 2.0, -3.0]), &a).unwrap();
        assert!((opposite.cosine - 2.0).abs() < 1e-12);
        let nan = distances(&tensors(&[f32::NAN, -2.0, 3.0]), &a).unwrap();
        assert!(nan.l2.is_infinite());
        assert!(distances(&tensors(&[1.0]), &a).is_err());
    }
}
