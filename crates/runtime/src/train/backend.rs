//! The backends a job can train on, chosen by the task's `device=` argument among those
//! this build has: the CPU (burn's ndarray backend) always, wgpu and CUDA behind the
//! `wgpu` and `cuda` features.
//!
//! Burn reports some failures by panicking (a GPU backend without a usable device, a
//! shape it cannot handle). A job must end in an error, never take the agent down, so
//! work on a backend runs under `catch_unwind` and a panic becomes a [`TaskError`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::backend::Autodiff;
use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayDevice;
use burn::tensor::backend::AutodiffBackend;

use crate::TaskError;
use crate::train::config::DeviceKind;

/// Work generic over the backend, run by [`with_backend`].
pub trait OnBackend {
    type Output;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<Self::Output, TaskError>;
}

/// Runs `work` on the backend `kind` names, or says which feature the build lacks.
pub fn with_backend<W: OnBackend>(kind: DeviceKind, work: W) -> Result<W::Output, TaskError> {
    let result = catch_unwind(AssertUnwindSafe(|| match kind {
        DeviceKind::Cpu => work.run::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu),
        DeviceKind::Wgpu => wgpu(work),
        DeviceKind::Cuda => cuda(work),
    }));
    result.unwrap_or_else(|panic| {
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
    Err(TaskError::Unsupported(
        "device=wgpu: this provider's build has no wgpu backend (ogpu-runtime's wgpu feature)".into(),
    ))
}

#[cfg(feature = "cuda")]
fn cuda<W: OnBackend>(work: W) -> Result<W::Output, TaskError> {
    use burn::backend::cuda::{Cuda, CudaDevice};
    work.run::<Autodiff<Cuda>>(CudaDevice::default())
}

#[cfg(not(feature = "cuda"))]
fn cuda<W: OnBackend>(_work: W) -> Result<W::Output, TaskError> {
    Err(TaskError::Unsupported(
        "device=cuda: this provider's build has no CUDA backend (ogpu-runtime's cuda feature)".into(),
    ))
}
