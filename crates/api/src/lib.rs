//! The REST API under `/v1`, served next to a node. The only crate that knows HTTP and
//! JSON: it turns requests into calls on the node's handle and the node's answers into
//! JSON, and every bad request into a 4xx with a JSON body that says what was wrong.
//!
//! Status: status, accounts and transaction submission are served; blocks, tasks,
//! providers, pools, blobs, the event feed, OpenAPI and metrics come next.

use std::str::FromStr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ogpu_core::Address;
use ogpu_core::encoding::Canonical;
use ogpu_core::tx::Transaction;
use ogpu_node::service::{NodeHandle, Request};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;

/// An error as the API reports it: a status and a JSON body naming the problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

impl ApiError {
    fn bad_request(error: &'static str, detail: impl ToString) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, error, detail: detail.to_string() }
    }

    fn unavailable() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "node_unavailable",
            detail: "the node is shutting down".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.error, "detail": self.detail }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError { status: rejection.status(), error: "invalid_json", detail: rejection.body_text() }
    }
}

pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/txs", post(submit))
        .route("/v1/txs/batch", post(submit_batch))
        .fallback(|| async {
            ApiError { status: StatusCode::NOT_FOUND, error: "not_found", detail: "no such route".into() }
        })
        .with_state(node)
}

async fn ask<T>(node: &NodeHandle, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    node.requests.send(request(reply)).await.map_err(|_| ApiError::unavailable())?;
    answer.await.map_err(|_| ApiError::unavailable())
}

async fn status(State(node): State<NodeHandle>) -> Result<Json<serde_json::Value>, ApiError> {
    let status = ask(&node, Request::Status).await?;
    Ok(Json(serde_json::to_value(status).map_err(|e| ApiError::bad_request("internal", e))?))
}

#[derive(Serialize)]
struct AccountView {
    address: String,
    balance: String,
    nonce: u64,
}

async fn account(State(node): State<NodeHandle>, Path(address): Path<String>) -> Result<Json<AccountView>, ApiError> {
    let address = Address::from_str(&address).map_err(|e| ApiError::bad_request("invalid_address", e))?;
    let account = node.finalized.borrow().account(&address);
    Ok(Json(AccountView { address: address.to_string(), balance: account.balance.to_string(), nonce: account.nonce }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// The transaction's canonical encoding, hex.
    tx: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    /// Canonical encodings, hex; at most 10,000.
    txs: Vec<String>,
}

/// Submits many transactions at once; each gets its own verdict.
async fn submit_batch(
    State(node): State<NodeHandle>,
    body: Result<Json<BatchBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body?;
    if body.txs.len() > 10_000 {
        return Err(ApiError::bad_request("batch_too_large", "at most 10000 transactions per batch"));
    }
    let txs = body
        .txs
        .iter()
        .enumerate()
        .map(|(i, hex)| {
            let bytes = ogpu_core::hex::decode(hex)
                .ok_or_else(|| ApiError::bad_request("invalid_hex", format!("txs[{i}] is not hex")))?;
            Transaction::decode(&bytes)
                .map_err(|e| ApiError::bad_request("malformed_transaction", format!("txs[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = ask(&node, |reply| Request::Submit(txs, reply)).await?;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let rejected: Vec<_> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| json!({ "index": i, "error": e.to_string() })))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": accepted, "rejected": rejected }))))
}

async fn submit(
    State(node): State<NodeHandle>,
    body: Result<Json<SubmitBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body?;
    let bytes =
        ogpu_core::hex::decode(&body.tx).ok_or_else(|| ApiError::bad_request("invalid_hex", "`tx` must be hex"))?;
    let tx = Transaction::decode(&bytes).map_err(|e| ApiError::bad_request("malformed_transaction", e))?;
    match ask(&node, |reply| Request::Submit(vec![tx], reply)).await?.pop() {
        Some(Ok(hash)) => Ok((StatusCode::ACCEPTED, Json(json!({ "tx": hash.to_string() })))),
        Some(Err(rejection)) => Err(ApiError::bad_request("rejected", rejection)),
        None => Err(ApiError::unavailable()),
    }
}
