//! Transactions as they arrive from peers and the API: decoding is strict, so what
//! decodes encodes back to the same bytes, and its signature check never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::Transaction;
use ogpu_core::encoding::Canonical;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(tx) = Transaction::decode(bytes) {
        assert_eq!(tx.encode(), bytes, "one encoding per transaction");
        let _ = ogpu_core::tx::verify_signatures(&[&tx]);
        let _ = tx.hash();
    }
});
