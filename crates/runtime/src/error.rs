//! Why a task did not produce a result, in words a client can act on.

use std::io;
use std::path::Path;

/// Why a run failed. The messages say what went wrong and, where the client can fix it,
/// what to change in the task spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("the program used up its fuel budget of {fuel}; raise workload.limits.fuel or do less work")]
    OutOfFuel { fuel: u64 },
    #[error("the program needed more than its memory limit of {limit_mb} MiB; raise workload.limits.memory_mb")]
    MemoryLimit { limit_mb: u32 },
    #[error("the program ran longer than its limit of {seconds} s; raise workload.limits.timeout_s")]
    Timeout { seconds: u32 },
    #[error("the task was cancelled")]
    Cancelled,
    #[error("the program left more than {files} files and directories or {bytes} bytes in its output")]
    OutputLimit { files: usize, bytes: u64 },
    #[error("the program exited with status {0}")]
    ExitCode(i32),
    #[error("the program trapped: {0}")]
    Trap(String),
    #[error("the program cannot be loaded: {0}")]
    InvalidProgram(String),
    /// The job handed to the runtime is malformed: the agent staged it wrong, or the task's
    /// arguments and inputs do not fit its program (the onnx runtime reads them itself).
    #[error("bad job: {0}")]
    BadInput(String),
    /// The program left something in its output directory that cannot be delivered.
    #[error("bad output: {0}")]
    BadOutput(String),
    #[error("not supported here: {0}")]
    Unsupported(String),
    #[error("i/o error: {0}")]
    Io(String),
}

impl TaskError {
    /// An `Io` error that names what was being done and to which path.
    pub(crate) fn io(doing: &str, path: &Path) -> impl FnOnce(io::Error) -> TaskError {
        let context = format!("{doing} {}", path.display());
        move |error| TaskError::Io(format!("{context}: {error}"))
    }
}

/// A tensor file that does not read is the job's fault: its inputs do not fit.
impl From<ogpu_tensors::TensorError> for TaskError {
    fn from(error: ogpu_tensors::TensorError) -> TaskError {
        TaskError::BadInput(error.to_string())
    }
}
