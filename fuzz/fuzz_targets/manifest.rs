//! Result manifests, which verifiers, clients and nodes read from blobs anyone can
//! upload: parsing never panics, and only the canonical form of a file list parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::manifest;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(files) = manifest::parse(bytes) {
        assert_eq!(manifest::write(&files), bytes);
        for file in &files {
            assert!(manifest::check_path(&file.path).is_ok());
        }
    }
});
