//! Checkpoints as safetensors files, and the trace over them.
//!
//! A checkpoint holds everything the next steps depend on: the parameters (`param/PATH`),
//! the optimizer's state (`adam_m/PATH` and `adam_v/PATH`, or `momentum/PATH`), and the
//! step in the header's metadata. Its bytes are a pure function of those values: the
//! safetensors writer orders tensors by name, and the metadata has a single key (a map of
//! several would be written in a random order). A checkpoint's blake3 hash is its blob
//! address and its leaf in the trace.

use std::collections::BTreeMap;

use ogpu_core::{Hash, merkle};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::TaskError;

/// The one metadata key, and the first word of its value: what the file is.
const META_KEY: &str = "ogpu-train";
const CHECKPOINT: &str = "checkpoint-v1";
const MODEL: &str = "model-v1";

/// Tensors by name: shape and float32 values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// What a checkpoint file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The number of optimizer steps taken before it.
    pub step: u64,
    /// Parameters by path.
    pub params: Tensors,
    /// Optimizer state by slot, then by parameter path.
    pub state: BTreeMap<String, Tensors>,
}

fn bytes_of(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write(kind: &str, step: u64, tensors: &[(String, &[usize], Vec<u8>)]) -> Result<Vec<u8>, TaskError> {
    let failed = |error: safetensors::SafeTensorError| {
        TaskError::Unsupported(format!("internal: cannot write a safetensors file: {error}"))
    };
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| TensorView::new(Dtype::F32, shape.to_vec(), bytes).map(|view| (name.clone(), view)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failed)?;
    let metadata = std::collections::HashMap::from([(META_KEY.to_string(), format!("{kind} step={step}"))]);
    safetensors::serialize(views, Some(metadata)).map_err(failed)
}

impl Checkpoint {
    pub fn encode(&self) -> Result<Vec<u8>, TaskError> {
        let mut tensors = Vec::new();
        for (path, (shape, values)) in &self.params {
            tensors.push((format!("param/{path}"), shape.as_slice(), bytes_of(values)));
        }
        for (slot, by_path) in &self.state {
            for (path, (shape, values)) in by_path {
                tensors.push((format!("{slot}/{path}"), shape.as_slice(), bytes_of(values)));
            }
        }
        write(CHECKPOINT, self.step, &tensors)
    }

    /// Reads a checkpoint back, refusing anything [`Checkpoint::encode`] would not write.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, TaskError> {
        let bad = |why: String| TaskError::BadInput(format!("not a training checkpoint: {why}"));
        let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|error| bad(error.to_string()))?;
        let header = metadata.metadata().as_ref().and_then(|map| map.get(META_KEY)).cloned().unwrap_or_default();
        let step = header
            .strip_prefix(CHECKPOINT)
            .and_then(|rest| rest.strip_prefix(" step="))
            .and_then(|step| step.parse().ok())
            .ok_or_else(|| bad(format!("its header says {header:?}")))?;
        let file = SafeTensors::deserialize(bytes).map_err(|error| bad(error.to_string()))?;
        let mut checkpoint = Checkpoint { step, params: Tensors::new(), state: BTreeMap::new() };
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", view.dtype())));
            }
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let tensor = (view.shape().to_vec(), values);
            match name.split_once('/') {
                Some(("param", path)) => {
                    checkpoint.params.insert(path.to_string(), tensor);
                }
                Some((slot, path)) => {
                    checkpoint.state.entry(slot.to_string()).or_default().insert(path.to_string(), tensor);
                }
                None => return Err(bad(format!("a tensor is named {name:?}"))),
            }
        }
        Ok(checkpoint)
    }
}

/// The final parameters, named by path alone, for whoever uses the model.
pub fn encode_model(step: u64, params: &Tensors) -> Result<Vec<u8>, TaskError> {
    let tensors: Vec<_> =
        params.iter().map(|(path, (shape, values))| (path.clone(), shape.as_slice(), bytes_of(values))).collect();
    write(MODEL, step, &tensors)
}

/// The name of checkpoint `index` under the output directory.
pub fn file_name(index: u64) -> String {
    format!("checkpoints/{index:04}.safetensors")
}

/// The trace root: a Merkle tree over the checkpoints' blake3 hashes in order, then the
/// hash of the data order.
pub fn trace_root(checkpoints: &[Hash], data_order: &Hash) -> Hash {
    let leaves: Vec<Hash> = checkpoints.iter().chain([data_order]).copied().collect();
    merkle::root(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let params = Tensors::from([
            ("Mlp.layers.0.weight".to_string(), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            ("Mlp.layers.0.bias".to_string(), (vec![3], vec![0.5, -0.5, 0.0])),
        ]);
        let zeros = params.iter().map(|(k, (s, v))| (k.clone(), (s.clone(), vec![0.0; v.len()]))).collect();
        Checkpoint { step: 7, params, state: BTreeMap::from([("momentum".to_string(), zeros)]) }
    }

    #[test]
    fn a_checkpoint_reads_back_and_encodes_to_the_same_bytes() {
        let bytes = sample().encode().unwrap();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), sample());
        assert_eq!(sample().encode().unwrap(), bytes);
    }

    #[test]
    fn other_safetensors_files_are_not_checkpoints() {
        let model = encode_model(7, &sample().params).unwrap();
        let error = Checkpoint::decode(&model).unwrap_err().to_string();
        assert!(error.contains("its header says \"model-v1 step=7\""), "{error}");
        assert!(Checkpoint::decode(b"garbage").is_err());
        assert!(Checkpoint::decode(&[]).is_err());
    }
}
