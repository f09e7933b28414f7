//! Signed chits and equivocation evidence, as they arrive in messages and transactions:
//! strict decoding, and checking evidence never panics and convicts only a signer of two
//! different messages for one slot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::encoding::decode_bounded;
use ogpu_core::vote::{Evidence, SignedChit};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(chit) = decode_bounded::<SignedChit>(bytes, 4096) {
        assert_eq!(borsh::to_vec(&chit).unwrap(), bytes);
        let _ = chit.verify();
    }
    if let Ok(evidence) = decode_bounded::<Evidence>(bytes, 16384) {
        assert_eq!(borsh::to_vec(&evidence).unwrap(), bytes);
        let chain = "ogpu-fuzz".parse().unwrap();
        if let (Ok(offence), Evidence::DoubleChit(a, b)) = (evidence.check(&chain), &evidence) {
            assert_eq!(offence.offender, a.voter);
            assert!(a.chit != b.chit && a.voter == b.voter);
        }
    }
});
