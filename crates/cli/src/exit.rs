//! What `ogpu` exits with, so scripts can tell a failed task from a refused transaction
//! from a node they could not reach. `--help` and the README list the same codes.

use std::process::ExitCode;

use ogpu_client::transfer::TransferError;
use ogpu_client::{ClientError, ErrorKind, TaskError, WalletError};

pub const CODES: &str = "Exit codes: 0 done; 1 the task failed (ended without a result); 2 usage \
(bad arguments, files or specs, or something the node does not know); 3 refused by the \
chain or a node's mempool; 4 network (the API could not be reached).";

/// A task that ended without the result asked for.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskFailed(pub String);

/// The code for `error`, by the first cause in its chain that says what went wrong.
pub fn code(error: &anyhow::Error) -> ExitCode {
    let code = error.chain().find_map(|cause| {
        if cause.is::<TaskFailed>() {
            return Some(1);
        }
        let kind = cause
            .downcast_ref::<TaskError>()
            .map(TaskError::kind)
            .or_else(|| cause.downcast_ref::<TransferError>().map(TransferError::kind))
            .or_else(|| cause.downcast_ref::<WalletError>().map(WalletError::kind))
            .or_else(|| cause.downcast_ref::<ClientError>().map(ClientError::kind))?;
        match kind {
            ErrorKind::Refused => Some(3),
            ErrorKind::Network => Some(4),
            _ => None,
        }
    });
    ExitCode::from(code.unwrap_or(2))
}
