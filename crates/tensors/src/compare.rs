//! How far apart two copies of a result file are, for a verifier that compares an
//! executor's result with its own within a tolerance: floating-point work on different
//! machines (GPUs, thread counts, libraries) rarely gives the same bits.
//!
//! Files with the same bytes are at distance 0. Otherwise only their floating-point
//! numbers may differ, and everything else about them must be the same:
//! - tensors (`.npy`, `.safetensors`): the same tensors, element types and shapes, integer
//!   tensors equal, infinities and NaNs in the same places; the distance is the relative
//!   L2 distance of a tensor's float elements, ‖theirs − mine‖ / ‖mine‖, as proof of
//!   learning measures checkpoints, the largest of a file's tensors (so that a small tensor
//!   beside large ones cannot be replaced whole);
//! - JSON (`.json`): the same structure, strings, booleans, nulls and integers; the
//!   distance is the largest relative difference of one other number, |a − b| / max(|a|,
//!   |b|, 1e-9) (numbers nearer 0 than 1e-9 compared absolutely), since a metrics file
//!   mixes numbers of every size (a step count beside a loss).
//!
//! Any other file must be the same bytes.

use std::collections::BTreeSet;

use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use serde_json::Value;

use crate::npy::{self, Array, DType};

/// Why two copies of a file are not the same but for their numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Incomparable(String);

fn differ(why: impl Into<String>) -> Incomparable {
    Incomparable(why.into())
}

/// The distance from `mine` to `theirs`, two copies of the result file `path` (see the
/// module's documentation); never NaN, infinite where a number is.
pub fn distance(path: &str, mine: &[u8], theirs: &[u8]) -> Result<f64, Incomparable> {
    if mine == theirs {
        return Ok(0.0);
    }
    let extension = path.rsplit_once('.').map(|(_, extension)| extension);
    match extension {
        Some("npy") => npy_distance(mine, theirs),
        Some("safetensors") => safetensors_distance(mine, theirs),
        Some("json") => json_distance(mine, theirs),
        _ => Err(differ("the bytes differ, and only .npy, .safetensors and .json files may differ in their numbers")),
    }
}

/// Sums for a relative L2 distance.
#[derive(Default)]
struct L2 {
    difference: f64,
    reference: f64,
}

impl L2 {
    fn add(&mut self, mine: f64, theirs: f64) {
        if !mine.is_finite() || !theirs.is_finite() {
            // The same infinity or NaN in both is the same result and weighs nothing (an
            // infinite reference would make every other difference vanish); any other
            // pair with one is infinitely far.
            let same = mine == theirs || (mine.is_nan() && theirs.is_nan());
            if !same {
                self.difference = f64::INFINITY;
            }
            return;
        }
        self.difference += (theirs - mine) * (theirs - mine);
        self.reference += mine * mine;
    }

    fn relative(&self) -> f64 {
        let distance = match self.reference > 0.0 {
            true => (self.difference / self.reference).sqrt(),
            false => self.difference.sqrt(),
        };
        if distance.is_nan() { f64::INFINITY } else { distance }
    }

    /// Adds two tensors of one type and shape: float elements by value, integer ones
    /// only when they are equal.
    fn add_tensors(&mut self, what: &str, mine: &Array, theirs: &Array) -> Result<(), Incomparable> {
        if mine.dtype != theirs.dtype || mine.shape != theirs.shape {
            return Err(differ(format!(
                "{what} is {} {:?} here and {} {:?} there",
                mine.dtype, mine.shape, theirs.dtype, theirs.shape
            )));
        }
        let pairs: Vec<(f64, f64)> = match mine.dtype {
            DType::F32 => {
                mine.values::<f32>().into_iter().flatten().map(f64::from).zip(floats::<f32>(theirs)).collect()
            }
            DType::F64 => mine.values::<f64>().into_iter().flatten().zip(floats::<f64>(theirs)).collect(),
            DType::I32 | DType::I64 if mine.data == theirs.data => Vec::new(),
            DType::I32 | DType::I64 => return Err(differ(format!("{what} holds integers, and they differ"))),
        };
        for (a, b) in pairs {
            self.add(a, b);
        }
        Ok(())
    }
}

fn floats<T: npy::Element + Into<f64>>(array: &Array) -> impl Iterator<Item = f64> {
    array.values::<T>().into_iter().flatten().map(Into::into)
}

fn npy_distance(mine: &[u8], theirs: &[u8]) -> Result<f64, Incomparable> {
    let read = |bytes, whose| npy::read(bytes).map_err(|error| differ(format!("{whose} copy: {error}")));
    let mut l2 = L2::default();
    l2.add_tensors("the array", &read(mine, "this")?, &read(theirs, "the other")?)?;
    Ok(l2.relative())
}

fn safetensors_distance(mine: &[u8], theirs: &[u8]) -> Result<f64, Incomparable> {
    let read = |bytes, whose| {
        SafeTensors::deserialize(bytes).map_err(|error| differ(format!("{whose} copy is no safetensors file: {error}")))
    };
    let (mine, theirs) = (read(mine, "this")?, read(theirs, "the other")?);
    let names = |file: &SafeTensors| file.names().into_iter().map(str::to_string).collect::<BTreeSet<_>>();
    if names(&mine) != names(&theirs) {
        return Err(differ(format!("the tensors are {:?} here and {:?} there", names(&mine), names(&theirs))));
    }
    let mut farthest = 0f64;
    for name in names(&mine) {
        let what = format!("tensor {name:?}");
        let (a, b) = (mine.tensor(&name), theirs.tensor(&name));
        let (a, b) = a.and_then(|a| Ok((a, b?))).map_err(|error| differ(format!("{what}: {error}")))?;
        if a.dtype() != b.dtype() || a.shape() != b.shape() {
            let (a, b) = ((a.dtype(), a.shape()), (b.dtype(), b.shape()));
            return Err(differ(format!("{what} is {a:?} here and {b:?} there")));
        }
        match crate::files::element_type(a.dtype()) {
            Some(dtype) => {
                let array =
                    |view: &TensorView| Array { dtype, shape: view.shape().to_vec(), data: view.data().to_vec() };
                let mut l2 = L2::default();
                l2.add_tensors(&what, &array(&a), &array(&b))?;
                farthest = farthest.max(l2.relative());
            }
            // Other types (half floats among them) are compared by their bits.
            None if a.data() == b.data() => {}
            None => return Err(differ(format!("{what} ({:?}) differs, and only float32 and float64 may", a.dtype()))),
        }
    }
    Ok(farthest)
}

fn json_distance(mine: &[u8], theirs: &[u8]) -> Result<f64, Incomparable> {
    let read = |bytes, whose| {
        serde_json::from_slice::<Value>(bytes).map_err(|error| differ(format!("{whose} copy is no JSON: {error}")))
    };
    let mut worst = 0f64;
    json_walk(&read(mine, "this")?, &read(theirs, "the other")?, "", &mut worst)?;
    Ok(worst)
}

/// JSON numbers nearer 0 than this are compared by their absolute difference.
const NEAR_ZERO: f64 = 1e-9;

/// Walks two JSON values side by side, keeping the largest relative difference of a
/// number in `worst`.
fn json_walk(mine: &Value, theirs: &Value, at: &str, worst: &mut f64) -> Result<(), Incomparable> {
    let at_or_top = || if at.is_empty() { "the top".to_string() } else { at.to_string() };
    match (mine, theirs) {
        // Integers (counts, class ids, steps) are exact, as in integer tensors.
        (Value::Number(a), Value::Number(b)) if !a.is_f64() && !b.is_f64() => match a == b {
            true => Ok(()),
            false => Err(differ(format!("{} is the integer {a} here and {b} there", at_or_top()))),
        },
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            let relative = match a == b {
                true => 0.0,
                false => (a - b).abs() / a.abs().max(b.abs()).max(NEAR_ZERO),
            };
            *worst = worst.max(if relative.is_nan() { f64::INFINITY } else { relative });
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().try_for_each(|(i, (a, b))| json_walk(a, b, &format!("{at}[{i}]"), worst))
        }
        (Value::Object(a), Value::Object(b)) if a.keys().eq(b.keys()) => {
            a.iter().zip(b.values()).try_for_each(|((key, a), b)| json_walk(a, b, &format!("{at}.{key}"), worst))
        }
        (a, b) if a == b => Ok(()),
        _ => Err(differ(format!("{} differs in more than its numbers", at_or_top()))),
    }
}

#[cfg(test)]
mod tests {
    use safetensors::Dtype;

    use super::*;

    fn npy_of(values: &[f32]) -> Vec<u8> {
        npy::write(&Array::of(&[values.len()], values))
    }

    fn safetensors_of(tensors: &[(&str, Dtype, &[f32])]) -> Vec<u8> {
        let bytes: Vec<(String, Vec<u8>, Dtype, usize)> = tensors
            .iter()
            .map(|(name, dtype, values)| {
                let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                // Half floats: each f32 given is two of them.
                let count = if *dtype == Dtype::BF16 { 2 * values.len() } else { values.len() };
                (name.to_string(), data, *dtype, count)
            })
            .collect();
        let views: Vec<(String, TensorView)> = bytes
            .iter()
            .map(|(name, data, dtype, n)| (name.clone(), TensorView::new(*dtype, vec![*n], data).unwrap()))
            .collect();
        safetensors::tensor::serialize(views, None).unwrap()
    }

    #[test]
    fn the_same_bytes_are_at_zero_and_other_files_must_be_the_same_bytes() {
        assert_eq!(distance("model.bin", b"abc", b"abc"), Ok(0.0));
        assert!(distance("model.bin", b"abc", b"abd").unwrap_err().0.contains("only .npy"));
        assert!(distance("labels.txt", b"1\n", b"1.0\n").is_err());
    }

    #[test]
    fn arrays_are_as_far_apart_as_their_relative_l2_distance_and_must_agree_in_shape_and_type() {
        let mine = npy_of(&[3.0, 4.0]);
        let d = distance("out.npy", &mine, &npy_of(&[3.0, 4.05])).unwrap();
        assert!((d - 0.01).abs() < 1e-6, "{d}");
        let shorter = distance("out.npy", &mine, &npy_of(&[3.0])).unwrap_err();
        assert!(shorter.0.contains("[2]") && shorter.0.contains("[1]"), "{shorter}");
        let doubles = npy::write(&Array::of(&[2], &[3.0f64, 4.0]));
        assert!(distance("out.npy", &mine, &doubles).unwrap_err().0.contains("float64"));
        let ints = |v: &[i64]| npy::write(&Array::of(&[v.len()], v));
        assert_eq!(distance("labels.npy", &ints(&[1, 2]), &ints(&[1, 2])), Ok(0.0));
        assert!(distance("labels.npy", &ints(&[1, 2]), &ints(&[1, 3])).unwrap_err().0.contains("integers"));
        assert!(distance("out.npy", &mine, b"not npy").unwrap_err().0.contains("the other copy"));
    }

    #[test]
    fn nan_and_infinity_match_themselves_and_nothing_else_and_hide_no_other_difference() {
        let d = distance("out.npy", &npy_of(&[f32::NAN, 1.0]), &npy_of(&[f32::NAN, 1.01])).unwrap();
        assert!((d - 0.01).abs() < 1e-6, "{d}");
        assert_eq!(distance("out.npy", &npy_of(&[0.5, 1.0]), &npy_of(&[f32::NAN, 1.0])), Ok(f64::INFINITY));
        // Review finding: the same infinity in both made the reference infinite, and every
        // other difference vanished into it.
        let inf = |rest: f32| npy_of(&[f32::INFINITY, rest]);
        assert_eq!(distance("out.npy", &inf(1.0), &inf(2.0)), Ok(1.0));
        assert_eq!(distance("out.npy", &inf(1.0), &npy_of(&[1e30, 1.0])), Ok(f64::INFINITY));
    }

    #[test]
    fn safetensors_are_compared_over_all_their_float_tensors_together() {
        let mine = safetensors_of(&[("w", Dtype::F32, &[3.0, 0.0]), ("b", Dtype::F32, &[4.0])]);
        let near = safetensors_of(&[("w", Dtype::F32, &[3.0, 0.0]), ("b", Dtype::F32, &[4.05])]);
        let d = distance("model.safetensors", &mine, &near).unwrap();
        assert!((d - 0.0125).abs() < 1e-6, "each tensor on its own: {d}");
        // Review finding: pooled with the large tensors, a small one could be replaced whole.
        let big: Vec<f32> = vec![100.0; 1000];
        let mine = safetensors_of(&[("w", Dtype::F32, &big), ("head", Dtype::F32, &[1.0])]);
        let swapped = safetensors_of(&[("w", Dtype::F32, &big), ("head", Dtype::F32, &[-1.0])]);
        assert_eq!(distance("model.safetensors", &mine, &swapped), Ok(2.0));
        let renamed = safetensors_of(&[("w", Dtype::F32, &[3.0, 0.0]), ("bias", Dtype::F32, &[4.0])]);
        assert!(distance("model.safetensors", &mine, &renamed).unwrap_err().0.contains("bias"));
        let halves = safetensors_of(&[("w", Dtype::F32, &[3.0, 0.0]), ("b", Dtype::BF16, &[4.0, 4.0])]);
        let halves_too = safetensors_of(&[("w", Dtype::F32, &[3.0, 0.0]), ("b", Dtype::BF16, &[4.0, 4.5])]);
        assert!(distance("model.safetensors", &halves, &halves_too).unwrap_err().0.contains("BF16"));
    }

    #[test]
    fn json_metrics_may_differ_in_each_number_by_its_relative_difference_and_in_nothing_else() {
        let mine = br#"{"steps": 100, "loss": 0.5, "eval": {"accuracy": 0.9, "labels": ["a", "b"]}}"#;
        let near = br#"{"steps": 100, "loss": 0.501, "eval": {"accuracy": 0.9, "labels": ["a", "b"]}}"#;
        let d = distance("metrics.json", mine, near).unwrap();
        assert!((d - 0.001 / 0.501).abs() < 1e-9, "{d}");
        let cases: [&[u8]; 4] = [
            br#"{"steps": 100, "loss": 0.5, "eval": {"accuracy": 0.9, "labels": ["a", "c"]}}"#,
            br#"{"steps": 100, "loss": 0.5, "eval": {"accuracy": 0.9}}"#,
            br#"{"steps": 100, "loss": "0.5", "eval": {"accuracy": 0.9, "labels": ["a", "b"]}}"#,
            br#"{"steps": 100, "loss": 0.5, "eval": {"accuracy": 0.9, "labels": ["a", "b", "c"]}}"#,
        ];
        for theirs in cases {
            let refused = distance("metrics.json", mine, theirs).unwrap_err();
            assert!(refused.0.contains("differs in more than its numbers"), "{refused}");
        }
        assert!(distance("metrics.json", mine, b"{").unwrap_err().0.contains("no JSON"));
        // Review findings: integers are exact, and numbers near 0 are compared absolutely.
        let recount = br#"{"steps": 101, "loss": 0.5, "eval": {"accuracy": 0.9, "labels": ["a", "b"]}}"#;
        assert!(distance("metrics.json", mine, recount).unwrap_err().0.contains("integer 100 here and 101"));
        let d = distance("metrics.json", br#"{"a": 0.0}"#, br#"{"a": 1e-12}"#).unwrap();
        assert!((d - 1e-3).abs() < 1e-12, "{d}");
    }
}
