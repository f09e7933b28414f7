//! Tensors in a task's files: NumPy `.npy` (see `npy`) or safetensors. An input's format
//! is its file name's ending; the outputs' is the task's `format=` argument (`npy` by
//! default), each output `<name>.npy` or `<name>.safetensors` holding one tensor named as
//! the output.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::npy::{self, Array, DType};

/// A tensor file that cannot be read or written, naming the file and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {why}")]
pub struct TensorError {
    pub file: String,
    pub why: String,
}

/// How output tensors are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Npy,
    Safetensors,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "npy" => Some(Format::Npy),
            "safetensors" => Some(Format::Safetensors),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Safetensors => "safetensors",
        }
    }
}

/// The tensor in input `file` (its bytes) for the model input `name`: a `.safetensors`
/// file gives its tensor of that name, or its only tensor; any other file is read as `.npy`.
pub fn read(file: &str, bytes: &[u8], name: &str) -> Result<Array, TensorError> {
    let bad = |why: String| TensorError { file: file.to_string(), why };
    if !file.ends_with(".safetensors") {
        return npy::read(bytes).map_err(|error| bad(error.to_string()));
    }
    let tensors = SafeTensors::deserialize(bytes).map_err(|error| bad(format!("not a safetensors file: {error}")))?;
    let mut names = tensors.names();
    names.sort_unstable();
    let chosen = match (tensors.tensor(name), names.as_slice()) {
        (Ok(view), _) => view,
        (Err(_), [only]) => tensors.tensor(only).map_err(|error| bad(error.to_string()))?,
        (Err(_), _) => return Err(bad(format!("no tensor named {name:?} among {names:?}"))),
    };
    let dtype = element_type(chosen.dtype()).ok_or_else(|| {
        bad(format!("the tensor is {:?}; inputs are float32, float64, int32 or int64", chosen.dtype()))
    })?;
    Ok(Array { dtype, shape: chosen.shape().to_vec(), data: chosen.data().to_vec() })
}

/// The element type of a safetensors tensor, where it is one a task's tensors can have.
pub fn element_type(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F64 => Some(DType::F64),
        Dtype::I32 => Some(DType::I32),
        Dtype::I64 => Some(DType::I64),
        _ => None,
    }
}

/// [`element_type`]'s inverse.
fn safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
    }
}

/// The file name and bytes of output `name` in `format`.
pub fn write(format: Format, name: &str, array: &Array) -> Result<(String, Vec<u8>), TensorError> {
    let file = format!("{name}.{}", format.extension());
    let bytes = match format {
        Format::Npy => npy::write(array),
        Format::Safetensors => {
            let dtype = safetensors_dtype(array.dtype);
            let failed = |error: safetensors::SafeTensorError| TensorError {
                file: file.clone(),
                why: format!("writing {name:?} as safetensors: {error}"),
            };
            let view = TensorView::new(dtype, array.shape.clone(), &array.data).map_err(failed)?;
            safetensors::serialize([(name, view)], None::<HashMap<String, String>>).map_err(failed)?
        }
    };
    Ok((file, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_round_trips_through_either_format() {
        let array = Array::of(&[2, 3], &[1.5f32, -2.0, 0.0, 4.25, 5.0, 6.0]);
        for format in [Format::Npy, Format::Safetensors] {
            let (file, bytes) = write(format, "probabilities", &array).unwrap();
            assert_eq!(read(&file, &bytes, "probabilities").unwrap(), array, "{file}");
            assert_eq!(read(&file, &bytes, "other").unwrap(), array, "a file's only tensor binds to any input");
        }
    }

    #[test]
    fn a_safetensors_input_must_name_its_tensor_or_hold_one() {
        let (a, b) = (Array::of(&[1], &[1i64]), Array::of(&[1], &[2i64]));
        let views = [("a", &a), ("b", &b)]
            .map(|(name, array)| (name, TensorView::new(Dtype::I64, array.shape.clone(), &array.data).unwrap()));
        let bytes = safetensors::serialize(views, None::<HashMap<String, String>>).unwrap();
        assert_eq!(read("x.safetensors", &bytes, "b").unwrap(), b);
        let error = read("x.safetensors", &bytes, "c").unwrap_err().to_string();
        assert!(error.contains("no tensor named \"c\" among [\"a\", \"b\"]"), "{error}");
        let error = read("x.safetensors", b"junk", "a").unwrap_err().to_string();
        assert!(error.contains("x.safetensors: not a safetensors file"), "{error}");
        let half = [0u8; 4];
        let view = TensorView::new(Dtype::F16, vec![2], &half).unwrap();
        let bytes = safetensors::serialize([("a", view)], None::<HashMap<String, String>>).unwrap();
        let error = read("x.safetensors", &bytes, "a").unwrap_err().to_string();
        assert!(error.contains("the tensor is F16"), "{error}");
    }
}
