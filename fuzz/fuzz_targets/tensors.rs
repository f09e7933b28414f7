//! The tensor files of task inputs and outputs: `.npy` and safetensors. Reading never
//! panics, and what reads writes back to a file that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_tensors::{Format, files, npy};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(array) = npy::read(bytes) {
        assert_eq!(npy::read(&npy::write(&array)).unwrap(), array);
    }
    if let Ok(array) = files::read("input.safetensors", bytes, "x") {
        let (file, written) = files::write(Format::Safetensors, "x", &array).unwrap();
        assert_eq!(files::read(&file, &written, "x").unwrap(), array);
    }
});
