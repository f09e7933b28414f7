//! What kind of failure an error is, for callers that answer each kind one way: the CLI's
//! exit codes, the Python SDK's exception classes.

use crate::task::TaskError;
use crate::transfer::TransferError;
use crate::{ClientError, WalletError};

/// The kinds of failure a caller tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// What the caller handed over is unusable (a file too large, a blob the store lacks);
    /// nothing was sent.
    BadInput,
    /// The chain or a node's mempool refused the transaction, or would have (too little
    /// balance).
    Refused,
    /// The API could not be reached.
    Network,
    /// A wait ran out of time; what was waited for may still happen.
    Timeout,
    /// The task ended without the result asked for.
    TaskFailed,
    /// Anything else: the API answered with an error of its own (an unknown task, say), or
    /// an answer or file could not be read.
    Other,
}

impl ClientError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Transport { .. } | ClientError::BadAddress(_) => ErrorKind::Network,
            refused if refused.refusal().is_some() => ErrorKind::Refused,
            _ => ErrorKind::Other,
        }
    }
}

impl WalletError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WalletError::Client(error) => error.kind(),
            WalletError::Refused { .. } => ErrorKind::Refused,
            WalletError::Timeout { .. } => ErrorKind::Timeout,
            WalletError::ChainId(_) => ErrorKind::Other,
        }
    }
}

impl TransferError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.client_error().map_or(ErrorKind::Other, ClientError::kind)
    }
}

impl TaskError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TaskError::Client(error) => error.kind(),
            TaskError::Wallet(error) => error.kind(),
            TaskError::Transfer(error) => error.kind(),
            TaskError::TooBig { .. }
            | TaskError::NotStored(_)
            | TaskError::NotAFile(_)
            | TaskError::Private(_)
            | TaskError::PrivatePool
            | TaskError::Overflow => ErrorKind::BadInput,
            TaskError::Keys(_) | TaskError::KeysNotKept { .. } => ErrorKind::Other,
            TaskError::TooLittleBalance { .. } => ErrorKind::Refused,
            TaskError::Timeout { .. } => ErrorKind::Timeout,
            TaskError::NoResult { .. } => ErrorKind::TaskFailed,
        }
    }
}
