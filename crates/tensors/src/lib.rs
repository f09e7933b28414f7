//! The tensor files a task's inputs and outputs are made of: NumPy `.npy` (`npy`) and
//! safetensors (`files`). Its own crate, with nothing heavy beside it, because every side
//! of the network reads them: the onnx and train runtimes on a provider, a client's SDK
//! writing inputs and reading results, and the fuzzers that feed them hostile bytes.

pub mod compare;
pub mod files;
pub mod npy;

pub use files::{Format, TensorError};
pub use npy::{Array, DType, Element, NpyError};
