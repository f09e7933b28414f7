//! Key files: parsing never panics, and opening one never asks for more than the
//! bounded key-derivation costs (files over them are refused before any work).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::keystore::{Kdf, Keystore};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(file) = Keystore::from_json(text) else { return };
    let (max_memory, max_iterations, max_parallelism) = Kdf::MAX;
    let kdf = file.kdf;
    if kdf.memory_kib > max_memory || kdf.iterations > max_iterations || kdf.parallelism > max_parallelism {
        assert!(file.open("").is_err(), "costs over the maximum are refused");
    } else if kdf.memory_kib <= 1024 && kdf.iterations <= 2 {
        // Cheap enough to derive on every input.
        let _ = file.open("");
    }
});
