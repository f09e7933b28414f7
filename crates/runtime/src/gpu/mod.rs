//! Which GPUs this machine offers the runtimes' GPU backends, asked without touching them.
//!
//! Burn's wgpu and CUDA backends panic deep inside, on a thread of their own, when there
//! is no device; the train runtime turns that into a task error, but the agent's device
//! detection and the tests need to know beforehand. So this module asks the same places
//! the backends will: the Vulkan (or Metal) adapters wgpu enumerates, and whether the
//! CUDA driver library loads. [`matmul_gflops`] then measures one of them.

mod throughput;

pub use throughput::{GpuTarget, matmul_flops, matmul_gflops, whole_gflops};

/// A graphics adapter the wgpu backend can train on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    pub name: String,
    pub kind: AdapterKind,
    /// The graphics API it is reached through (`vulkan`, `metal`).
    pub api: String,
    /// The PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel; 0x10005 Mesa).
    pub vendor: u32,
    /// Its place among the adapters of its kind, in wgpu's order: how the wgpu backend
    /// addresses it.
    pub index: usize,
}

impl Adapter {
    /// This adapter as the wgpu backend addresses it.
    pub fn target(&self) -> GpuTarget {
        GpuTarget::Wgpu { kind: self.kind, index: self.index }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    /// A software rasterizer on the CPU, such as Mesa's lavapipe: a real device for tests,
    /// not a GPU to sell.
    Software,
    Other,
}

impl AdapterKind {
    pub fn is_gpu(self) -> bool {
        matches!(self, AdapterKind::Discrete | AdapterKind::Integrated | AdapterKind::Virtual)
    }
}

/// The adapters the wgpu backend sees, real GPUs first; empty when this build has no wgpu
/// backend or the machine no Vulkan driver.
#[cfg(feature = "wgpu")]
pub fn wgpu_adapters() -> Vec<Adapter> {
    use wgpu::{Backends, DeviceType, Instance, InstanceDescriptor};

    // The backend trains through Vulkan, or Metal on macOS (cubecl's automatic choice).
    let backends = Backends::VULKAN | Backends::METAL;
    let instance = Instance::new(InstanceDescriptor { backends, ..InstanceDescriptor::new_without_display_handle() });
    // Enumeration is synchronous on native targets; the future is ready when polled.
    let adapters = futures_lite::future::block_on(instance.enumerate_adapters(backends));
    let mut seen_of_kind = [0usize; 5];
    let mut found: Vec<Adapter> = adapters
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            let kind = match info.device_type {
                DeviceType::DiscreteGpu => AdapterKind::Discrete,
                DeviceType::IntegratedGpu => AdapterKind::Integrated,
                DeviceType::VirtualGpu => AdapterKind::Virtual,
                DeviceType::Cpu => AdapterKind::Software,
                DeviceType::Other => AdapterKind::Other,
            };
            let index = seen_of_kind[kind as usize];
            seen_of_kind[kind as usize] += 1;
            Adapter { name: info.name, kind, api: info.backend.to_str().to_string(), vendor: info.vendor, index }
        })
        .collect();
    found.sort_by_key(|adapter| adapter.kind as u8);
    found
}

#[cfg(not(feature = "wgpu"))]
pub fn wgpu_adapters() -> Vec<Adapter> {
    Vec::new()
}

/// Whether wgpu has any adapter, asked once per process (enumerating takes tens of
/// milliseconds, and a provider asks before every bid).
pub fn has_wgpu_adapter() -> bool {
    static ANY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANY.get_or_init(|| !wgpu_adapters().is_empty())
}

/// Whether the CUDA backend can start: this build has it and the driver library loads.
/// Asked once per process, like [`has_wgpu_adapter`]: a provider asks before every bid.
pub fn cuda_driver() -> bool {
    static LOADS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: loading the NVIDIA driver library runs its initializers, which is what the
    // backend itself does on first use; nothing is called through it here.
    *LOADS.get_or_init(|| cfg!(feature = "cuda") && unsafe { libloading::Library::new("libcuda.so.1") }.is_ok())
}
