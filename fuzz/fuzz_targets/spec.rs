//! Task and pool specs as clients write them, in TOML and JSON: parsing never panics, and
//! a spec that parses and validates reads back the same through either format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ogpu_core::spec::{PoolSpec, TaskSpec};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    for spec in [TaskSpec::from_toml(text).ok(), TaskSpec::from_json(text).ok()].into_iter().flatten() {
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(TaskSpec::from_json(&json).unwrap(), spec, "{json}");
        let toml = toml::to_string(&spec).unwrap();
        assert_eq!(TaskSpec::from_toml(&toml).unwrap(), spec, "{toml}");
    }
    let pools = [toml::from_str::<PoolSpec>(text).ok(), serde_json::from_str::<PoolSpec>(text).ok()];
    for pool in pools.into_iter().flatten() {
        if pool.validate().is_ok() {
            let json = serde_json::to_string(&pool).unwrap();
            assert_eq!(serde_json::from_str::<PoolSpec>(&json).unwrap(), pool);
        }
    }
});
