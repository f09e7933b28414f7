//! Genesis files: parsing and building the first state never panic, and a genesis that
//! builds writes back to TOML that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_chain::Genesis;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Ok(genesis) = Genesis::from_toml(text) else { return };
    if genesis.clone().into_state().is_ok() {
        assert_eq!(Genesis::from_toml(&genesis.to_toml()).unwrap(), genesis);
    }
});
