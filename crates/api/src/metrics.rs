//! `/metrics` in the Prometheus text format, from the node's status.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use ogpu_node::service::{NodeHandle, Request};

use crate::error::{ApiError, ask};

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(node): State<NodeHandle>) -> Result<impl IntoResponse, ApiError> {
    let status = ask(&node, Request::Status).await?;
    let gauges: [(&str, &str, u64); 6] = [
        ("ogpu_height", "Height of the last finalized block", status.height),
        ("ogpu_finalized_height", "Height of the last finalized block", status.finalized_height),
        ("ogpu_validators", "Validators in the current epoch", status.validators as u64),
        ("ogpu_peers", "Connected peers", status.peers as u64),
        ("ogpu_mempool_txs", "Transactions waiting in the mempool", status.mempool as u64),
        ("ogpu_finalized_txs_total", "Transactions finalized since the node started", status.finalized_txs),
    ];
    let mut text = String::new();
    for (name, help, value) in gauges {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
