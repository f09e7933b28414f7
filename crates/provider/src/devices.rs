//! Device detection and calibration: the profile a provider registers on chain.
//!
//! NVIDIA GPUs are found through NVML, loaded at run time, so a machine without the
//! driver has no GPUs rather than an error and the binary needs no CUDA to build. Other
//! GPUs (AMD, Intel, Apple) are the adapters the wgpu backend can train on, where the
//! build has it. Every device's throughput is measured with a short matrix product: a
//! GPU's on the backend its training tasks would run on (where the build has it), the
//! CPU's with a cache-blocked loop of its own.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::time::{Duration, Instant};

use ogpu_core::spec::{Device, DeviceKind, DeviceProfile};
use ogpu_runtime::gpu::{Adapter, GpuTarget};

/// How long each device's throughput is measured for.
const CALIBRATION: Duration = Duration::from_millis(200);

/// Every device this machine offers: the NVIDIA GPUs NVML reports, the other GPUs wgpu
/// reports, then the CPU.
pub fn detect(region: &str) -> DeviceProfile {
    let nvidia = nvidia_gpus().unwrap_or_else(|why| {
        tracing::info!(%why, "no NVIDIA GPUs");
        Vec::new()
    });
    // NVML's order is CUDA's for the usual machine of identical GPUs (CUDA orders the
    // fastest first, NVML by PCI bus).
    let nvidia = nvidia.into_iter().enumerate().map(|(index, gpu)| measured(gpu, GpuTarget::Cuda(index)));
    let adapters = ogpu_runtime::gpu::wgpu_adapters();
    let others = other_gpus(&adapters).map(|(adapter, gpu)| measured(gpu, adapter.target()));
    let mut devices: Vec<Device> = nvidia.chain(others).collect();
    devices.push(cpu());
    DeviceProfile { devices, region: region.to_owned(), reader: None }
}

/// `gpu` with its measured throughput, or 0 (not measured) where this build has no
/// backend for it.
fn measured(gpu: Device, target: GpuTarget) -> Device {
    let gflops = ogpu_runtime::gpu::matmul_gflops(target, CALIBRATION).unwrap_or_else(|why| {
        tracing::info!(model = %gpu.model, %why, "throughput not measured");
        0
    });
    Device { gflops, ..gpu }
}

/// The CPU: its model name, memory, and measured single-precision throughput over all
/// cores.
pub fn cpu() -> Device {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    Device {
        kind: DeviceKind::Cpu,
        model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".into()),
        memory_mb: mem_total_kb(&meminfo).unwrap_or(0) / 1024,
        gflops: calibrate_cpu_gflops(CALIBRATION).saturating_mul(cores),
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    let line = cpuinfo.lines().find(|l| l.starts_with("model name"))?;
    let model = line.split_once(':')?.1.trim();
    // The chain takes model names of at most 64 characters.
    Some(model.chars().take(64).collect())
}

fn mem_total_kb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Single-core GFLOPS of a cache-blocked f32 matrix product, run for about `budget`.
pub fn calibrate_cpu_gflops(budget: Duration) -> u32 {
    ogpu_runtime::gpu::whole_gflops(cpu_flops(budget))
}

/// Single-core floating-point operations a second of that product.
fn cpu_flops(budget: Duration) -> f64 {
    const N: usize = 128;
    let a: Vec<f32> = (0..N * N).map(|i| (i % 7) as f32 * 0.5).collect();
    let b: Vec<f32> = (0..N * N).map(|i| (i % 5) as f32 * 0.25).collect();
    let mut c = vec![0f32; N * N];
    let start = Instant::now();
    let mut products = 0u64;
    while start.elapsed() < budget || products == 0 {
        c.fill(0.0);
        for i in 0..N {
            for k in 0..N {
                let aik = a[i * N + k];
                let row = &b[k * N..(k + 1) * N];
                for (cij, bkj) in c[i * N..(i + 1) * N].iter_mut().zip(row) {
                    *cij += aik * bkj;
                }
            }
        }
        std::hint::black_box(&c);
        products += 1;
    }
    products as f64 * 2.0 * (N * N * N) as f64 / start.elapsed().as_secs_f64()
}

/// The GPUs among wgpu's adapters that NVML does not report already, not yet measured.
/// wgpu does not say how much memory an adapter has, so it reads 0 (such a GPU meets no
/// VRAM requirement), and software rasterizers (Mesa's lavapipe) are not GPUs to sell.
fn other_gpus(adapters: &[Adapter]) -> impl Iterator<Item = (&Adapter, Device)> {
    adapters.iter().filter(|adapter| adapter.kind.is_gpu() && adapter.vendor != NVIDIA).map(|adapter| {
        let gpu =
            Device { kind: DeviceKind::Gpu, model: adapter.name.chars().take(64).collect(), memory_mb: 0, gflops: 0 };
        (adapter, gpu)
    })
}

/// NVIDIA's PCI vendor id.
const NVIDIA: u32 = 0x10de;

/// NVML's `nvmlMemory_t`.
#[repr(C)]
#[derive(Default)]
struct NvmlMemory {
    total: u64,
    free: u64,
    used: u64,
}

type NvmlInit = unsafe extern "C" fn() -> c_int;
type NvmlCount = unsafe extern "C" fn(*mut c_uint) -> c_int;
type NvmlHandle = unsafe extern "C" fn(c_uint, *mut *mut c_void) -> c_int;
type NvmlName = unsafe extern "C" fn(*mut c_void, *mut c_char, c_uint) -> c_int;
type NvmlMemoryInfo = unsafe extern "C" fn(*mut c_void, *mut NvmlMemory) -> c_int;

/// The NVIDIA GPUs NVML reports, not yet measured, or why there are none.
pub fn nvidia_gpus() -> Result<Vec<Device>, String> {
    // SAFETY: loading NVML runs its initializers, which are safe to run; every symbol
    // below is called with the signature NVML documents, on buffers of the sizes given.
    unsafe {
        let nvml = libloading::Library::new("libnvidia-ml.so.1").map_err(|e| e.to_string())?;
        let symbol = |name: &[u8]| -> Result<*const c_void, String> {
            nvml.get::<*const c_void>(name).map(|s| *s).map_err(|e| e.to_string())
        };
        let init: NvmlInit = std::mem::transmute(symbol(b"nvmlInit_v2\0")?);
        let shutdown: NvmlInit = std::mem::transmute(symbol(b"nvmlShutdown\0")?);
        let count: NvmlCount = std::mem::transmute(symbol(b"nvmlDeviceGetCount_v2\0")?);
        let handle: NvmlHandle = std::mem::transmute(symbol(b"nvmlDeviceGetHandleByIndex_v2\0")?);
        let name: NvmlName = std::mem::transmute(symbol(b"nvmlDeviceGetName\0")?);
        let memory: NvmlMemoryInfo = std::mem::transmute(symbol(b"nvmlDeviceGetMemoryInfo\0")?);
        if init() != 0 {
            return Err("nvmlInit failed".into());
        }
        let mut n: c_uint = 0;
        let mut gpus = Vec::new();
        if count(&mut n) == 0 {
            for index in 0..n {
                let mut device = std::ptr::null_mut();
                if handle(index, &mut device) != 0 {
                    continue;
                }
                let mut buffer = [0 as c_char; 96];
                let model = if name(device, buffer.as_mut_ptr(), buffer.len() as c_uint) == 0 {
                    std::ffi::CStr::from_ptr(buffer.as_ptr()).to_string_lossy().chars().take(64).collect()
                } else {
                    "NVIDIA GPU".to_owned()
                };
                let mut info = NvmlMemory::default();
                let memory_mb = if memory(device, &mut info) == 0 { info.total / (1024 * 1024) } else { 0 };
                gpus.push(Device { kind: DeviceKind::Gpu, model, memory_mb, gflops: 0 });
            }
        }
        shutdown();
        Ok(gpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_always_a_device_with_measured_throughput() {
        let profile = detect("local");
        let cpu = profile.devices.last().unwrap();
        assert_eq!(cpu.kind, DeviceKind::Cpu);
        assert!(cpu.gflops >= 1 && cpu.memory_mb > 0, "{cpu:?}");
        profile.validate().unwrap();
        // The registered figure is clamped to at least 1; the measurement itself must be
        // real: any CPU multiplies faster than 100 MFLOPS on one core.
        let measured = cpu_flops(Duration::from_millis(200));
        assert!(measured > 1e8, "{measured} flops a second");
    }

    #[test]
    fn gpus_other_than_nvidia_come_from_wgpu_and_software_adapters_are_not_gpus() {
        use ogpu_runtime::gpu::AdapterKind;
        let adapter =
            |name: &str, kind, vendor| Adapter { name: name.into(), kind, api: "vulkan".into(), vendor, index: 0 };
        let adapters = [
            adapter("AMD Radeon RX 7900 XTX", AdapterKind::Discrete, 0x1002),
            adapter("NVIDIA H100", AdapterKind::Discrete, NVIDIA),
            adapter("llvmpipe (LLVM 15.0.6, 256 bits)", AdapterKind::Software, 0x10005),
        ];
        let gpus: Vec<_> = other_gpus(&adapters).collect();
        assert_eq!(gpus.len(), 1, "NVIDIA's come from NVML, lavapipe is the CPU: {gpus:?}");
        let (adapter, gpu) = &gpus[0];
        assert_eq!((gpu.kind, gpu.model.as_str()), (DeviceKind::Gpu, "AMD Radeon RX 7900 XTX"));
        assert_eq!(adapter.target(), GpuTarget::Wgpu { kind: AdapterKind::Discrete, index: 0 });
    }

    #[test]
    fn proc_files_are_read_for_the_model_and_memory() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t: fpu\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13 64-Core Processor"));
        assert_eq!(mem_total_kb("MemTotal:       24578048 kB\nMemFree: 1 kB\n"), Some(24_578_048));
        assert_eq!(cpu_model("nothing"), None);
    }
}
