//! Errors as the pages read them: a status and `{error, detail, field}`, where `field`
//! names the control the message belongs beside (`market.max_price`, `files`, ...).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ogpu_client::spec::SpecError;
use ogpu_client::{ClientError, ErrorKind, TaskError, WalletError};

#[derive(Debug, serde::Serialize)]
pub struct DashError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    detail: String,
    field: Option<String>,
}

impl DashError {
    pub fn new(status: StatusCode, error: &str, detail: impl ToString) -> DashError {
        DashError { status, error: error.into(), detail: detail.to_string(), field: None }
    }

    pub fn bad_input(error: &str, detail: impl ToString) -> DashError {
        DashError::new(StatusCode::BAD_REQUEST, error, detail)
    }

    pub fn not_found(error: &str, detail: impl ToString) -> DashError {
        DashError::new(StatusCode::NOT_FOUND, error, detail)
    }

    /// The same error, shown beside `field`.
    pub fn at(mut self, field: &str) -> DashError {
        self.field = Some(field.into());
        self
    }

    /// A failure of this process (a thread that died, a file it could not write).
    pub fn internal(detail: impl ToString) -> DashError {
        let detail = detail.to_string();
        tracing::error!(%detail, "dashboard request failed");
        DashError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    fn of_kind(kind: ErrorKind, error: &str, detail: impl ToString) -> DashError {
        let status = match kind {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::Refused | ErrorKind::TaskFailed => StatusCode::CONFLICT,
            ErrorKind::Network | ErrorKind::Other => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        };
        DashError::new(status, error, detail)
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<ClientError> for DashError {
    fn from(error: ClientError) -> DashError {
        match &error {
            // What the node does not know, the dashboard does not either.
            ClientError::Api { status: 404, error: name, .. } => DashError::not_found(&name.clone(), &error),
            ClientError::Api { error: name, .. } => DashError::of_kind(error.kind(), &name.clone(), &error),
            _ => DashError::of_kind(error.kind(), "node", &error),
        }
    }
}

impl From<WalletError> for DashError {
    fn from(error: WalletError) -> DashError {
        match error {
            WalletError::Client(error) => error.into(),
            other => DashError::of_kind(other.kind(), "transaction", &other),
        }
    }
}

impl From<TaskError> for DashError {
    fn from(error: TaskError) -> DashError {
        let field = match &error {
            TaskError::TooLittleBalance { .. } => Some("market.max_price"),
            TaskError::TooBig { .. } | TaskError::NotStored(_) => Some("files"),
            _ => None,
        };
        let dash = match error {
            TaskError::Client(error) => error.into(),
            TaskError::Wallet(error) => error.into(),
            other => DashError::of_kind(other.kind(), other.name(), &other),
        };
        match field {
            Some(field) => dash.at(field),
            None => dash,
        }
    }
}

impl From<SpecError> for DashError {
    fn from(error: SpecError) -> DashError {
        let field = error.field().unwrap_or("spec").to_string();
        DashError::bad_input("invalid_spec", &error).at(&field)
    }
}
