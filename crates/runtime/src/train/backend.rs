//! The backends a job can train on, chosen by the task's `device=` argument among those
//! this build has: the CPU (burn's ndarray backend) always, wgpu and CUDA behind the
//! `wgpu` and `cuda` features.
//!
//! Burn reports some failures by panicking (a GPU backend without a usable device, a
//! shape it cannot handle). A job must end in an error, never take the agent down, so a
//! backend is first asked for ([`available`]: this build has it and the machine a device
//! for it), and work on it runs under `catch_unwind`, a panic becoming a [`TaskError`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::backend::Autodiff;
use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::backend::AutodiffBackend;

use crate::train::config::DeviceKind;
use crate::{TaskError, gpu};

/// Work generic over the backend, run by [`with_backend`].
pub trait OnBackend {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output, TaskError>;
}

/// Whether this build and machine can train on `kind`, and if not, why.
pub fn available(kind: DeviceKind) -> Result<(), TaskError> {
    let built = match kind {
        DeviceKind::Cpu => true,
        DeviceKind::Wgpu => cfg!(feature = "wgpu"),
        DeviceKind::Cuda => cfg!(feature = "cuda"),
    };
    let present = match kind {
        DeviceKind::Cpu => true,
        DeviceKind::Wgpu => gpu::has_wgpu_adapter(),
        DeviceKind::Cuda => gpu::cuda_driver(),
    };
    match (built, present) {
        (false, _) => Err(not_built(kind)),
        (true, false) => Err(TaskError::Unsupported(format!(
            "device={}: this provider has no device for it (no {})",
            kind.name(),
            if kind == DeviceKind::Wgpu { "Vulkan or Metal adapter" } else { "CUDA driver" }
        ))),
        (true, true) => Ok(()),
    }
}

pub(crate) fn not_built(kind: DeviceKind) -> TaskError {
    TaskError::Unsupported(format!(
        "device={0}: this provider's build has no {0} backend (ogpu-runtime's {0} feature)",
        kind.name()
    ))
}

/// Runs `work` on the backend `kind` names, or says why it cannot.
pub fn with_backend<W: OnBackend>(kind: DeviceKind, work: W) -> Result<W::Output, TaskError> {
    available(kind)?;
    catching_panics(kind, || match kind {
        DeviceKind::Cpu => work.run::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu),
        DeviceKind::Wgpu => wgpu(work),
        DeviceKind::Cuda => cuda(work),
    })
}

/// Runs `work` on the backend `kind`, a panic in it becoming a task error.
pub(crate) fn catching_panics<T>(
    kind: DeviceKind,
    work: impl FnOnce() -> Result<T, TaskError>,
) -> Result<T, TaskError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(TaskError::Trap(format!("the {} backend failed: {message}", kind.name())))
    })
}

#[cfg(feature = "wgpu")]
fn wgpu<W: OnBackend>(work: W) -> Result<W::Output, TaskError> {
    use burn::backend::wgpu::{Wgpu, WgpuDevice};
    work.run::<Autodiff<Wgpu>>(WgpuDevice::default())
}

#[cfg(not(feature = "wgpu"))]
fn wgpu<W: OnBackend>(_work: W) -> Result<W::Output, TaskError> {
    Err(not_built(DeviceKind::Wgpu))
}

#[cfg(feature = "cuda")]
fn cuda<W: OnBackend>(work: W) -> Result<W::Output, TaskError> {
    use burn::backend::cuda::{Cuda, CudaDevice};
    work.run::<Autodiff<Cuda>>(CudaDevice::default())
}

#[cfg(not(feature = "cuda"))]
fn cuda<W: OnBackend>(_work: W) -> Result<W::Output, TaskError> {
    Err(not_built(DeviceKind::Cuda))
}
