//! Providers' signed task log entries as the API takes them (JSON): parsing, validating
//! and checking a signature never panic, and an entry reads back as it was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::tasklog::SignedLogEntry;

fuzz_target!(|bytes: &[u8]| {
    let Ok(entries) = serde_json::from_slice::<Vec<SignedLogEntry>>(bytes) else { return };
    for entry in &entries {
        let _ = entry.entry.validate();
        let _ = entry.verify();
        let json = serde_json::to_string(entry).unwrap();
        assert_eq!(&serde_json::from_str::<SignedLogEntry>(&json).unwrap(), entry, "{json}");
    }
});
