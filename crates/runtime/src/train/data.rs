//! The dataset a config describes, read from the job's inputs into memory, and the seeded
//! order its training samples are visited in.
//!
//! Every reader is strict and names the file, line and column of what it refuses: a
//! dataset is the client's, and a guess (a skipped row, a label taken modulo the classes)
//! would train a different model than the one they asked for.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use ogpu_core::Hash;
use ogpu_core::rng::DetRng;

use crate::TaskError;
use crate::onnx::files::read_input;
use crate::onnx::npy::{self, DType};
use crate::onnx::tensor_file;
use crate::train::config::{Architecture, Config, Data, Rows};

/// The samples of a dataset, all in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Rows of `width` float features (already scaled) and a class label each.
    Dense { features: Vec<f32>, width: usize, labels: Vec<u32> },
    /// Bytes of text; a sample is a window of `context + 1` bytes starting at a position.
    Text { bytes: Vec<u8>, context: usize },
}

/// The dataset of a run: its samples and which of them train and evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub samples: Samples,
    /// Rows (text: window starts) the training samples are drawn from.
    pub train: Range<usize>,
    /// Rows (text: non-overlapping window starts) the model is evaluated on.
    pub eval: Vec<usize>,
}

impl Dataset {
    /// Reads the dataset `config` names from the job's `inputs` directory; `max_bytes` bounds
    /// what a gzip file may inflate to.
    pub fn load(config: &Config, inputs: &Path, max_bytes: u64) -> Result<Dataset, TaskError> {
        let (samples, rows) = match &config.data {
            Data::Csv { file, classes, scale, .. } => {
                let bytes = read_input(inputs, file)?;
                let text = if file.ends_with(".gz") { gunzip(file, &bytes, max_bytes)? } else { bytes };
                let (features, width, labels) = parse_csv(file, &text, *classes, *scale)?;
                let rows = labels.len();
                (Samples::Dense { features, width, labels }, rows)
            }
            Data::Npy { features, labels, classes, scale, .. } => {
                let read = |name: &str| {
                    npy::read(&read_input(inputs, name)?)
                        .map_err(|error| TaskError::BadInput(format!("{name}: {error}")))
                };
                let (x, y) = (read(features)?, read(labels)?);
                let features = Tensor { name: features, dtype: x.dtype, shape: x.shape, data: &x.data };
                let labels = Tensor { name: labels, dtype: y.dtype, shape: y.shape, data: &y.data };
                dense(features, labels, *classes, *scale)?
            }
            Data::Safetensors { file, features, labels, classes, scale, .. } => {
                let bytes = read_input(inputs, file)?;
                let tensors = safetensors::SafeTensors::deserialize(&bytes)
                    .map_err(|error| TaskError::BadInput(format!("{file} is not a safetensors file: {error}")))?;
                let get = |name: &str| {
                    tensors.tensor(name).map_err(|_| {
                        TaskError::BadInput(format!("{file} has no tensor {name:?}; it has {:?}", tensors.names()))
                    })
                };
                let (x, y) = (get(features)?, get(labels)?);
                let features =
                    Tensor { name: features, dtype: dtype(file, &x)?, shape: x.shape().to_vec(), data: x.data() };
                let labels =
                    Tensor { name: labels, dtype: dtype(file, &y)?, shape: y.shape().to_vec(), data: y.data() };
                dense(features, labels, *classes, *scale)?
            }
            Data::Text { file, .. } => {
                let bytes = read_input(inputs, file)?;
                let rows = bytes.len();
                let context = match config.architecture {
                    Architecture::CharTransformer { context, .. } => context,
                    _ => 0,
                };
                (Samples::Text { bytes, context }, rows)
            }
        };
        let within = |range: Rows, field: &str| {
            if range[1] > rows {
                return Err(TaskError::BadInput(format!(
                    "data.{field} is [{}, {}), but the data has {rows} {}",
                    range[0],
                    range[1],
                    if matches!(samples, Samples::Text { .. }) { "bytes" } else { "rows" }
                )));
            }
            Ok(range[0]..range[1])
        };
        let train = within(config.data.train_rows(), "train_rows")?;
        let eval = match config.data.eval_rows() {
            None => Vec::new(),
            Some(range) => {
                let range = within(range, "eval_rows")?;
                match &samples {
                    Samples::Dense { .. } => range.collect(),
                    // Non-overlapping windows, so evaluation costs one pass over the range.
                    Samples::Text { context, .. } => {
                        range.clone().step_by(*context).filter(|start| start + context < range.end).collect()
                    }
                }
            }
        };
        let train = match &samples {
            Samples::Dense { .. } => train,
            Samples::Text { context, .. } => train.start..train.end - context,
        };
        Ok(Dataset { samples, train, eval })
    }

    /// The width of one sample's features (for text, the context).
    pub fn width(&self) -> usize {
        match &self.samples {
            Samples::Dense { width, .. } => *width,
            Samples::Text { context, .. } => *context,
        }
    }
}

/// A tensor as read from a file, before it is checked to be features or labels.
struct Tensor<'a> {
    name: &'a str,
    dtype: DType,
    shape: Vec<usize>,
    data: &'a [u8],
}

fn dtype(file: &str, view: &safetensors::tensor::TensorView<'_>) -> Result<DType, TaskError> {
    tensor_file::element_type(view.dtype()).ok_or_else(|| {
        TaskError::BadInput(format!(
            "{file} holds a tensor of {:?}; features must be F32 or F64 and labels I32 or I64",
            view.dtype()
        ))
    })
}

/// Checks and converts features `[rows, ...]` and labels `[rows]` from `.npy` or
/// safetensors.
fn dense(features: Tensor<'_>, labels: Tensor<'_>, classes: usize, scale: f32) -> Result<(Samples, usize), TaskError> {
    let Some((&rows, rest)) = features.shape.split_first() else {
        return Err(TaskError::BadInput(format!("{} is a scalar; features must be [rows, ...]", features.name)));
    };
    let width: usize = rest.iter().product();
    if width == 0 || rows == 0 {
        return Err(TaskError::BadInput(format!("{} has shape {:?}: no features", features.name, features.shape)));
    }
    if labels.shape != [rows] {
        return Err(TaskError::BadInput(format!(
            "{} has shape {:?}; labels must be [{rows}], one per row of {}",
            labels.name, labels.shape, features.name
        )));
    }
    let values: Vec<f32> = match features.dtype {
        DType::F32 => features.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        DType::F64 => features
            .data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        other => {
            return Err(TaskError::BadInput(format!(
                "{} is {other}; features must be float32 or float64",
                features.name
            )));
        }
    };
    if values.len() != rows * width {
        return Err(TaskError::BadInput(format!("{} holds fewer values than its shape says", features.name)));
    }
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        return Err(TaskError::BadInput(format!(
            "{} row {} holds {}; features must be finite",
            features.name,
            at / width,
            values[at]
        )));
    }
    let raw: Vec<i64> = match labels.dtype {
        DType::I32 => {
            labels.data.chunks_exact(4).map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()
        }
        DType::I64 => labels
            .data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        other => {
            return Err(TaskError::BadInput(format!("{} is {other}; labels must be int32 or int64", labels.name)));
        }
    };
    if raw.len() != rows {
        return Err(TaskError::BadInput(format!("{} holds fewer labels than its shape says", labels.name)));
    }
    let labels = raw
        .iter()
        .enumerate()
        .map(|(row, &label)| class(label, classes).ok_or_else(|| bad_label(labels.name, row, label, classes)))
        .collect::<Result<Vec<_>, _>>()?;
    let features = values.into_iter().map(|v| v / scale).collect();
    Ok((Samples::Dense { features, width, labels }, rows))
}

fn class(label: i64, classes: usize) -> Option<u32> {
    u32::try_from(label).ok().filter(|&l| (l as usize) < classes)
}

fn bad_label(file: &str, row: usize, label: impl std::fmt::Display, classes: usize) -> TaskError {
    TaskError::BadInput(format!(
        "{file} row {row}: label {label} is not a class 0..{classes}; raise data.classes or fix the label"
    ))
}

/// Inflates a gzip file, refusing one that would grow past `max_bytes` (a small file can
/// inflate to gigabytes).
fn gunzip(file: &str, bytes: &[u8], max_bytes: u64) -> Result<Vec<u8>, TaskError> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut text)
        .map_err(|error| TaskError::BadInput(format!("{file} is not a gzip file: {error}")))?;
    if text.len() as u64 > max_bytes {
        return Err(TaskError::BadInput(format!(
            "{file} inflates to more than {max_bytes} bytes, the job's memory limit"
        )));
    }
    Ok(text)
}

/// Parses CSV without a header: numbers separated by commas, one row per line, the label
/// (an integer class) in the last column, every row as wide as the first.
fn parse_csv(file: &str, text: &[u8], classes: usize, scale: f32) -> Result<(Vec<f32>, usize, Vec<u32>), TaskError> {
    let text =
        std::str::from_utf8(text).map_err(|error| TaskError::BadInput(format!("{file} is not UTF-8 text: {error}")))?;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            return Err(TaskError::BadInput(format!("{file} line {line_no} is empty")));
        }
        let columns: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some((label, values)) = columns.split_last() else { continue };
        let expected = *width.get_or_insert(values.len());
        if values.is_empty() || values.len() != expected {
            return Err(TaskError::BadInput(format!(
                "{file} line {line_no} has {} columns; every row needs the {} of the first, features then the label",
                columns.len(),
                expected + 1
            )));
        }
        for (column, value) in values.iter().enumerate() {
            let number: f32 = value.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
                TaskError::BadInput(format!("{file} line {line_no} column {}: {value:?} is not a number", column + 1))
            })?;
            features.push(number / scale);
        }
        let class = label.parse::<i64>().ok().and_then(|l| class(l, classes));
        labels.push(class.ok_or_else(|| bad_label(file, index, format!("{label:?}"), classes))?);
    }
    let Some(width) = width else {
        return Err(TaskError::BadInput(format!("{file} has no rows")));
    };
    Ok((features, width, labels))
}

/// The seeded order training samples are visited in: each epoch a fresh permutation of
/// the training samples, cut into batches of `batch` (the last one of an epoch shorter when
/// the samples do not divide evenly). It depends on nothing but the seed and the counts,
/// so a verifier derives the same batches for any step without the run before it.
#[derive(Debug, Clone)]
pub struct Order {
    seed: Hash,
    samples: usize,
    batch: usize,
    epoch: Option<(u64, Vec<u32>)>,
}

/// The domain of the data order hash, the last leaf of a run's trace.
const ORDER_DOMAIN: &str = "ogpu/train/data-order v1";

impl Order {
    pub fn new(seed: &Hash, samples: usize, batch: usize) -> Order {
        Order { seed: *seed, samples, batch, epoch: None }
    }

    fn batches_per_epoch(&self) -> u64 {
        self.samples.div_ceil(self.batch) as u64
    }

    /// The sample indices (offsets into the training range) of step `step`'s batch.
    pub fn batch(&mut self, step: u64) -> &[u32] {
        let per_epoch = self.batches_per_epoch().max(1);
        let (epoch, within) = (step / per_epoch, (step % per_epoch) as usize);
        if self.epoch.as_ref().is_none_or(|(current, _)| *current != epoch) {
            self.epoch = Some((epoch, permutation(&self.seed, epoch, self.samples)));
        }
        let order = self.epoch.as_ref().map_or(&[][..], |(_, order)| order.as_slice());
        let start = (within * self.batch).min(order.len());
        &order[start..(start + self.batch).min(order.len())]
    }

    /// The hash of the whole order over `steps` steps: every batch's indices in turn.
    pub fn hash(&mut self, steps: u64) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(ORDER_DOMAIN);
        for value in [self.samples as u64, self.batch as u64, steps] {
            hasher.update(&value.to_le_bytes());
        }
        for step in 0..steps {
            let batch = self.batch(step);
            hasher.update(&(batch.len() as u32).to_le_bytes());
            for index in batch {
                hasher.update(&index.to_le_bytes());
            }
        }
        Hash(*hasher.finalize().as_bytes())
    }
}

/// A Fisher-Yates shuffle of `0..n` from the stream for `epoch`.
fn permutation(seed: &Hash, epoch: u64, n: usize) -> Vec<u32> {
    let mut rng = DetRng::new(seed, "ogpu/train/order", &[&epoch.to_le_bytes()]);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u128 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_read_scaled_with_labels_last() {
        let (features, width, labels) = parse_csv("d.csv", b"0,16,1\n8, 4 ,0\n", 2, 16.0).unwrap();
        assert_eq!((features, width, labels), (vec![0.0, 1.0, 0.5, 0.25], 2, vec![1, 0]));
    }

    #[test]
    fn csv_mistakes_name_the_line_and_column() {
        let error = |text: &[u8]| parse_csv("d.csv", text, 3, 1.0).unwrap_err().to_string();
        assert!(error(b"1,2,0\n1,x,0\n").contains("d.csv line 2 column 2: \"x\" is not a number"));
        assert!(error(b"1,2,0\n1,0\n").contains("d.csv line 2 has 2 columns"));
        assert!(error(b"1,2,3\n").contains("label \"3\" is not a class 0..3"));
        assert!(error(b"1,2,-1\n").contains("is not a class"));
        assert!(error(b"1,2,0.5\n").contains("is not a class"));
        assert!(error(b"").contains("has no rows"));
        assert!(error(b"1,2,0\n\n1,2,0\n").contains("line 2 is empty"));
        assert!(error(b"\xff,1\n").contains("not UTF-8"));
        assert!(error(b"inf,2,0\n").contains("is not a number"));
    }

    #[test]
    fn gzip_inflates_within_a_limit() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&[b'1'; 10_000]).unwrap();
        let gz = encoder.finish().unwrap();
        assert_eq!(gunzip("d.gz", &gz, 10_000).unwrap().len(), 10_000);
        assert!(gunzip("d.gz", &gz, 9_999).unwrap_err().to_string().contains("inflates to more than"));
        assert!(gunzip("d.gz", b"plain text", 100).unwrap_err().to_string().contains("not a gzip file"));
    }

    #[test]
    fn the_order_is_a_fresh_permutation_each_epoch_and_depends_on_the_seed() {
        let seed = Hash::of_bytes(b"seed");
        let mut order = Order::new(&seed, 10, 4);
        let epoch0: Vec<u32> = (0..3).flat_map(|step| order.batch(step).to_vec()).collect();
        assert_eq!(order.batch(2).len(), 2, "the last batch of an epoch is shorter");
        let mut sorted = epoch0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let epoch1: Vec<u32> = (3..6).flat_map(|step| order.batch(step).to_vec()).collect();
        assert_ne!(epoch0, epoch1);
        // Any step can be asked for out of order and gives the same batch.
        assert_eq!(Order::new(&seed, 10, 4).batch(4), &epoch1[4..8]);
        let hash = order.hash(6);
        assert_eq!(Order::new(&seed, 10, 4).hash(6), hash);
        assert_ne!(Order::new(&Hash::of_bytes(b"other"), 10, 4).hash(6), hash);
        assert_ne!(Order::new(&seed, 10, 4).hash(5), hash);
    }
}
