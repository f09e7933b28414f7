//! Whether a task fits this machine: a provider bids on, races for and verifies only what
//! it can finish within the spec's limits, since failing a task it took costs it stake.

use ogpu_core::spec::{DeviceKind, DeviceProfile, TaskSpec};

use crate::config::ProviderConfig;

/// Why a task does not fit, or `Ok` when it does: enough GPUs with the VRAM it asks for,
/// a slot's share of the machine's memory for its memory limit, and a time limit within
/// what the provider gives one task.
pub fn fits(spec: &TaskSpec, profile: &DeviceProfile, config: &ProviderConfig) -> Result<(), String> {
    let requirements = &spec.requirements;
    let gpus = profile.gpus().filter(|g| g.memory_mb >= requirements.min_vram_mb).count();
    if gpus < requirements.gpus as usize {
        return Err(format!("{} GPUs with {} MiB wanted, {gpus} here", requirements.gpus, requirements.min_vram_mb));
    }
    let memory_mb: u64 = profile.devices.iter().filter(|d| d.kind == DeviceKind::Cpu).map(|d| d.memory_mb).sum();
    let per_slot = memory_mb / config.slots.max(1) as u64;
    let limits = &spec.workload.limits;
    if u64::from(limits.memory_mb) > per_slot {
        return Err(format!("{} MiB of memory wanted, {per_slot} MiB a slot here", limits.memory_mb));
    }
    if limits.timeout_s > config.max_task_s {
        return Err(format!(
            "a time limit of {} s, over the {} s this provider gives a task",
            limits.timeout_s, config.max_task_s
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ogpu_core::spec::{Device, Limits, Requirements, Workload, WorkloadKind};
    use ogpu_core::{BlobHash, Hash};

    use super::*;

    fn machine(memory_mb: u64) -> DeviceProfile {
        let cpu = Device { kind: DeviceKind::Cpu, model: "cpu".into(), memory_mb, gflops: 10 };
        DeviceProfile { devices: vec![cpu], region: "eu".into(), reader: None }
    }

    fn spec(limits: Limits) -> TaskSpec {
        TaskSpec {
            name: "t".into(),
            workload: Workload {
                kind: WorkloadKind::Wasm,
                program: BlobHash(Hash::ZERO),
                inputs: Default::default(),
                args: vec![],
                env: Default::default(),
                training: None,
                limits,
            },
            market: ogpu_core::spec::Market::Auction { max_price: ogpu_core::Amount::ogpu(1), bid_window: 1 },
            requirements: Requirements::default(),
            deadline_blocks: 10,
            verification: Default::default(),
            private: None,
        }
    }

    /// Finding 18: the agent looked at GPUs alone and took tasks asking for more memory or
    /// a longer run than it had to give.
    #[test]
    fn a_task_fits_only_within_a_slots_memory_and_the_providers_time_limit() {
        let config = ProviderConfig { slots: 2, max_task_s: 600, ..ProviderConfig::default() };
        let limits = |memory_mb, timeout_s| Limits { memory_mb, timeout_s, ..Limits::default() };
        assert_eq!(fits(&spec(limits(4_000, 600)), &machine(8_000), &config), Ok(()));
        let too_big = fits(&spec(limits(4_001, 600)), &machine(8_000), &config).unwrap_err();
        assert!(too_big.contains("4000 MiB a slot"), "{too_big}");
        let too_long = fits(&spec(limits(1_000, 601)), &machine(8_000), &config).unwrap_err();
        assert!(too_long.contains("600 s"), "{too_long}");
        let gpu = Requirements { gpus: 1, ..Requirements::default() };
        let wants_gpu = TaskSpec { requirements: gpu, ..spec(limits(1, 1)) };
        assert!(fits(&wants_gpu, &machine(8_000), &config).is_err());
    }
}
