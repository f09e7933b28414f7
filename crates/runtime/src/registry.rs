//! The runtimes a provider has, by workload kind, so the agent can tell which tasks it can
//! bid for and dispatch a job without knowing the runtimes themselves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ogpu_core::spec::WorkloadKind;

use crate::{ContainerRuntime, Job, OnnxRuntime, Outcome, Runtime, TaskError, TrainRuntime, WasmRuntime, kind_name};

/// What a provider's machine adds to the runtimes: libraries loaded at run time, and room
/// on disk.
#[derive(Debug, Clone, Default)]
pub struct Libraries {
    /// A `libonnxruntime.so` (1.22 or later) for the onnx runtime's `engine=ort`; needs the
    /// `ort` feature.
    pub onnxruntime: Option<PathBuf>,
    /// Where container images are unpacked and kept; no container runtime without it.
    pub image_cache: Option<PathBuf>,
}

#[derive(Default)]
pub struct Runtimes {
    by_kind: BTreeMap<WorkloadKind, Box<dyn Runtime>>,
}

impl Runtimes {
    /// No runtimes at all.
    pub fn new() -> Runtimes {
        Runtimes::default()
    }

    /// Every runtime this build offers, with the machine's `libraries`.
    pub fn with_defaults(libraries: &Libraries) -> Result<Runtimes, TaskError> {
        let mut runtimes = Runtimes::new();
        runtimes.insert(Box::new(WasmRuntime::new()?));
        runtimes.insert(Box::new(OnnxRuntime::with_libraries(libraries)?));
        runtimes.insert(Box::new(TrainRuntime::new()));
        if let Some(cache) = &libraries.image_cache {
            runtimes.insert(Box::new(ContainerRuntime::new(cache)?));
        }
        Ok(runtimes)
    }

    /// Adds `runtime` for its kind, returning the one it replaces.
    pub fn insert(&mut self, runtime: Box<dyn Runtime>) -> Option<Box<dyn Runtime>> {
        self.by_kind.insert(runtime.kind(), runtime)
    }

    pub fn get(&self, kind: WorkloadKind) -> Option<&dyn Runtime> {
        self.by_kind.get(&kind).map(|runtime| runtime.as_ref())
    }

    /// The kinds offered, in a stable order.
    pub fn kinds(&self) -> impl Iterator<Item = WorkloadKind> + '_ {
        self.by_kind.keys().copied()
    }

    /// Runs `job` on the runtime for its kind.
    pub fn run(&self, job: &Job<'_>) -> Result<Outcome, TaskError> {
        let runtime = self
            .get(job.kind)
            .ok_or_else(|| TaskError::Unsupported(format!("this provider has no {} runtime", kind_name(job.kind))))?;
        runtime.run(job)
    }
}
