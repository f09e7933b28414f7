//! What `ogpu` exits with, so scripts can tell a failed task from a refused transaction
//! from a node they could not reach. `--help` and the README list the same codes.

use std::process::ExitCode;

use ogpu_client::{ClientError, WalletError};

pub const CODES: &str = "Exit codes: 0 done; 1 the task failed (ended without a result); 2 usage \
(bad arguments, files or specs, or something the node does not know); 3 refused by the \
chain or a node's mempool; 4 network (the API could not be reached).";

/// A task that ended without the result asked for.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskFailed(pub String);

/// A transaction the chain or a node's mempool refused, or one it would refuse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The code for `error`, by the first cause in its chain that says what went wrong.
pub fn code(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if cause.is::<TaskFailed>() {
            return ExitCode::from(1);
        }
        if cause.is::<Refused>() {
            return ExitCode::from(3);
        }
        let client = match cause.downcast_ref::<WalletError>() {
            Some(WalletError::Client(client)) => Some(client),
            _ => cause.downcast_ref::<ClientError>(),
        };
        match client {
            Some(ClientError::Transport { .. } | ClientError::BadAddress(_)) => return ExitCode::from(4),
            Some(refused) if refused.refusal().is_some() => return ExitCode::from(3),
            _ => {}
        }
    }
    ExitCode::from(2)
}
