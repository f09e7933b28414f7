//! Errors as the API reports them: a status and a JSON body `{error, detail}` naming the
//! problem, so a client can act on it.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ogpu_node::service::{NodeHandle, Request};
use tokio::sync::oneshot;

/// The body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, as a word a program can match on (`invalid_parameter`, ...).
    error: String,
    /// What went wrong, for people.
    detail: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

impl ApiError {
    pub fn bad_request(error: &'static str, detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, error, detail: detail.to_string() }
    }

    pub fn not_found(error: &'static str, detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, error, detail: detail.to_string() }
    }

    pub fn forbidden(error: &'static str, detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, error, detail: detail.to_string() }
    }

    pub fn too_many(error: &'static str, detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::TOO_MANY_REQUESTS, error, detail: detail.to_string() }
    }

    pub fn too_large(detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, error: "too_large", detail: detail.to_string() }
    }

    /// A failure on this side (storage); the detail is logged, not hidden.
    pub fn internal(detail: impl ToString) -> ApiError {
        let detail = detail.to_string();
        tracing::error!(%detail, "API request failed");
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, error: "internal", detail }
    }

    /// The node cannot serve this now (a limit is reached); trying later may work.
    pub fn unavailable_because(error: &'static str, detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, error, detail: detail.to_string() }
    }

    pub fn unavailable() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "node_unavailable",
            detail: "the node is shutting down".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.error.into(), detail: self.detail })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(rejection.body_text()),
            status => ApiError { status, error: "invalid_json", detail: rejection.body_text() },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, error: "invalid_query", detail: rejection.body_text() }
    }
}

/// Runs `read` on the node's store on a blocking thread: redb reads are disk IO, which
/// must not hold up the threads that serve every other request.
pub async fn read_store<T: Send + 'static>(
    node: &NodeHandle,
    read: impl FnOnce(&ogpu_node::store::Store) -> Result<T, ogpu_node::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = node.store.clone();
    match tokio::task::spawn_blocking(move || read(&store)).await {
        Ok(result) => result.map_err(ApiError::internal),
        Err(error) => Err(ApiError::internal(format!("a store read stopped: {error}"))),
    }
}

/// Parses a path or query value, naming the field when it does not parse.
pub fn parse<T: std::str::FromStr>(field: &'static str, text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| ApiError::bad_request("invalid_parameter", format!("{field}: {e}")))
}

/// Sends a request to the node and waits for its answer.
pub async fn ask<T>(node: &NodeHandle, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    node.requests.send(request(reply)).await.map_err(|_| ApiError::unavailable())?;
    answer.await.map_err(|_| ApiError::unavailable())
}
