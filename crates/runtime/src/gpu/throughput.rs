//! How fast a GPU multiplies f32 matrices, measured on the backend its training tasks run
//! on: the throughput a provider registers on chain for it.

use std::time::Duration;

use super::AdapterKind;
use crate::TaskError;
use crate::train::backend::catching_panics;
use crate::train::config::DeviceKind;

/// One GPU, as the training backends address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuTarget {
    /// The `index`-th wgpu adapter of its kind, in wgpu's order.
    Wgpu { kind: AdapterKind, index: usize },
    /// The CUDA device with this ordinal.
    Cuda(usize),
}

impl GpuTarget {
    fn backend(self) -> DeviceKind {
        match self {
            GpuTarget::Wgpu { .. } => DeviceKind::Wgpu,
            GpuTarget::Cuda(_) => DeviceKind::Cuda,
        }
    }
}

/// Side of the square matrices multiplied: 2 GFLOP a product, large enough that a GPU's
/// throughput rather than its launch latency is measured.
const SIDE: usize = 1024;

/// The floating-point operations a second `target` sustains multiplying 1024x1024 f32
/// matrices, over about `budget` after one untimed product (which compiles the kernels),
/// or why it cannot be measured.
pub fn matmul_flops(target: GpuTarget, budget: Duration) -> Result<f64, TaskError> {
    let backend = target.backend();
    let (products, elapsed) = catching_panics(backend, || match target {
        GpuTarget::Wgpu { kind, index } => wgpu(kind, index, budget),
        GpuTarget::Cuda(index) => cuda(index, budget),
    })?;
    Ok(products as f64 * 2.0 * (SIDE * SIDE * SIDE) as f64 / elapsed.as_secs_f64())
}

/// [`matmul_flops`] as the whole GFLOPS a device profile registers: at least 1 for a device
/// that computed at all.
pub fn matmul_gflops(target: GpuTarget, budget: Duration) -> Result<u32, TaskError> {
    matmul_flops(target, budget).map(whole_gflops)
}

/// Operations a second as whole GFLOPS, at least 1.
pub fn whole_gflops(flops: f64) -> u32 {
    (flops / 1e9).round().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Chains products by the identity (each depends on the last, so none is skipped and the
/// values stay finite), in rounds that double while a round is short of an eighth of the
/// budget, so a slow device is not given more work than the budget and a fast one is
/// measured over many products per synchronization. Returns the products timed and the
/// time they took.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn measure<B: burn::tensor::backend::Backend>(
    device: &B::Device,
    budget: Duration,
) -> Result<(u64, Duration), TaskError> {
    use burn::tensor::Tensor;
    use std::time::Instant;

    let sync = |device: &B::Device| {
        B::sync(device).map_err(|e| TaskError::Trap(format!("the GPU failed while being measured: {e:?}")))
    };
    let identity = Tensor::<B, 2>::eye(SIDE, device);
    let mut product = Tensor::<B, 2>::full([SIDE, SIDE], 0.5, device).matmul(identity.clone());
    sync(device)?;
    let (mut products, mut round_size) = (0u64, 1u64);
    let start = Instant::now();
    while products == 0 || start.elapsed() < budget {
        let round = Instant::now();
        for _ in 0..round_size {
            product = product.matmul(identity.clone());
        }
        sync(device)?;
        products += round_size;
        if round.elapsed() < budget / 8 {
            round_size *= 2;
        }
    }
    Ok((products, start.elapsed()))
}

#[cfg(feature = "wgpu")]
fn wgpu(kind: AdapterKind, index: usize, budget: Duration) -> Result<(u64, Duration), TaskError> {
    use burn::backend::wgpu::{Wgpu, WgpuDevice};
    // The backend panics on a thread of its own when asked for an adapter it lacks.
    if !super::wgpu_adapters().iter().any(|adapter| adapter.kind == kind && adapter.index == index) {
        return Err(TaskError::Unsupported(format!("no {kind:?} wgpu adapter {index} on this machine")));
    }
    let device = match kind {
        AdapterKind::Discrete => WgpuDevice::DiscreteGpu(index),
        AdapterKind::Integrated => WgpuDevice::IntegratedGpu(index),
        AdapterKind::Virtual => WgpuDevice::VirtualGpu(index),
        // The backend opens only the first software adapter.
        AdapterKind::Software if index == 0 => WgpuDevice::Cpu,
        AdapterKind::Software | AdapterKind::Other => {
            return Err(TaskError::Unsupported(format!("the wgpu backend cannot open the {kind:?} adapter {index}")));
        }
    };
    measure::<Wgpu>(&device, budget)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_kind: AdapterKind, _index: usize, _budget: Duration) -> Result<(u64, Duration), TaskError> {
    Err(crate::train::backend::not_built(DeviceKind::Wgpu))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize, budget: Duration) -> Result<(u64, Duration), TaskError> {
    use burn::backend::cuda::{Cuda, CudaDevice};
    if !super::cuda_driver() {
        return Err(TaskError::Unsupported("no CUDA driver on this machine".into()));
    }
    measure::<Cuda>(&CudaDevice::new(index), budget)
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize, _budget: Duration) -> Result<(u64, Duration), TaskError> {
    Err(crate::train::backend::not_built(DeviceKind::Cuda))
}
