//! What `ogpu` exits with, so scripts can tell a failed task from a refused transaction
//! from a node they could not reach. `--help` and the README list the same codes.

use std::process::ExitCode;

use ogpu_client::transfer::TransferError;
use ogpu_client::{ClientError, TaskError, WalletError};

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
    let code = error.chain().find_map(|cause| {
        if cause.is::<TaskFailed>() {
            return Some(1);
        }
        if cause.is::<Refused>() {
            return Some(3);
        }
        if let Some(task) = cause.downcast_ref::<TaskError>() {
            return task_code(task);
        }
        if let Some(TransferError::Blob { source, .. } | TransferError::Upload { source, .. }) = cause.downcast_ref() {
            return client_code(source);
        }
        if let Some(wallet) = cause.downcast_ref::<WalletError>() {
            return wallet_code(wallet);
        }
        cause.downcast_ref::<ClientError>().and_then(client_code)
    });
    ExitCode::from(code.unwrap_or(2))
}

fn task_code(error: &TaskError) -> Option<u8> {
    match error {
        TaskError::TooLittleBalance { .. } => Some(3),
        TaskError::Client(client)
        | TaskError::Transfer(
            TransferError::Blob { source: client, .. } | TransferError::Upload { source: client, .. },
        ) => client_code(client),
        TaskError::Wallet(wallet) => wallet_code(wallet),
        _ => None,
    }
}

fn wallet_code(error: &WalletError) -> Option<u8> {
    match error {
        WalletError::Refused { .. } => Some(3),
        WalletError::Client(client) => client_code(client),
        _ => None,
    }
}

fn client_code(error: &ClientError) -> Option<u8> {
    match error {
        ClientError::Transport { .. } | ClientError::BadAddress(_) => Some(4),
        refused if refused.refusal().is_some() => Some(3),
        _ => None,
    }
}
