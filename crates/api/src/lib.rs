//! The REST API under `/v1`, served next to a node. The server side of HTTP and JSON: it
//! turns requests into calls on the node's handle and reads of its store, the node's
//! answers into the bodies `ogpu_client::types` defines (the client reads the same
//! types), and every bad request into a 4xx with a JSON body `{error, detail}` that says
//! what was wrong.
//!
//! Besides the chain's records: `/v1/events` (server-sent events of finalized blocks and
//! chain events), `/v1/tasks/{id}/logs` (providers' signed log lines, kept in memory and
//! streamed live), `/metrics` (Prometheus) and `/openapi.json` (the OpenAPI document of
//! all of it); and at `/` the explorer's read-only pages (`explorer`), which read `/v1`.

mod blobs;
mod chain;
mod error;
mod explorer;
mod feed;
mod limits;
mod logs;
mod market;
mod metrics;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use limits::Guard;
use logs::TaskLogs;
use ogpu_client::types::{BatchBody, SubmitBody};
use ogpu_node::service::NodeHandle;
use utoipa::OpenApi;

pub use error::ApiError;
pub use limits::Limits;

/// The API's OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "OpenGPU Network node API", description = "Chain, market and blob endpoints of an OpenGPU node"),
    paths(
        chain::status,
        chain::params,
        chain::proposals,
        chain::validators,
        chain::account,
        chain::account_txs,
        chain::submit,
        chain::submit_batch,
        chain::tx,
        chain::block,
        chain::latest_block,
        market::tasks,
        market::task,
        logs::post,
        logs::read,
        logs::stream,
        market::providers,
        market::provider,
        market::party_events,
        market::pools,
        market::pool,
        blobs::upload,
        blobs::download,
        feed::events,
        metrics::metrics,
    ),
    components(schemas(SubmitBody, BatchBody, error::ErrorBody)),
    modifiers(&ErrorResponses)
)]
pub struct ApiDoc;

/// Adds to every operation the errors any request may get, so the document says all a
/// client can get back: 400 for a malformed parameter, 429 past the client's allowance,
/// 503 when the node is at a limit, and for operations with a JSON body 413, 415 and 422.
/// Every error body is an [`error::ErrorBody`].
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |why: &str| {
            let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            ResponseBuilder::new().description(why).content("application/json", body).build()
        };
        let always = [
            ("400", "A malformed path or query parameter"),
            ("429", "Over the client's request allowance"),
            ("503", "The node is at a limit (requests in progress, streams, time) or shutting down"),
        ];
        let with_json_body = [
            ("413", "A body over the limit"),
            ("415", "A body that is not JSON"),
            ("422", "JSON that is not the body expected"),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let json_body =
                    operation.request_body.as_ref().is_some_and(|body| body.content.contains_key("application/json"));
                let extra = if json_body { &with_json_body[..] } else { &[] };
                for (code, why) in always.iter().chain(extra) {
                    operation.responses.responses.entry(code.to_string()).or_insert_with(|| error(why).into());
                }
            }
        }
    }
}

/// A batch of 10,000 hex-encoded transfers is about 4 MB of JSON.
const BATCH_BODY_BYTES: usize = 16 << 20;

/// What handlers share: the node, the task logs this API keeps beside it, and the limits
/// on what callers may take.
#[derive(Clone)]
struct AppState {
    node: NodeHandle,
    logs: Arc<TaskLogs>,
    guard: Arc<Guard>,
}

impl FromRef<AppState> for Arc<Guard> {
    fn from_ref(state: &AppState) -> Arc<Guard> {
        state.guard.clone()
    }
}

impl FromRef<AppState> for NodeHandle {
    fn from_ref(state: &AppState) -> NodeHandle {
        state.node.clone()
    }
}

impl FromRef<AppState> for Arc<TaskLogs> {
    fn from_ref(state: &AppState) -> Arc<TaskLogs> {
        state.logs.clone()
    }
}

/// The API with the default [`Limits`]. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`, so each client's allowance is
/// counted by its address.
pub fn router(node: NodeHandle) -> Router {
    router_with(node, Limits::default())
}

pub fn router_with(node: NodeHandle, limits: Limits) -> Router {
    let guard = Arc::new(Guard::new(limits));
    Router::new()
        .route("/v1/status", get(chain::status))
        .route("/v1/params", get(chain::params))
        .route("/v1/proposals", get(chain::proposals))
        .route("/v1/validators", get(chain::validators))
        .route("/v1/accounts/{address}", get(chain::account))
        .route("/v1/accounts/{address}/txs", get(chain::account_txs))
        .route("/v1/accounts/{address}/events", get(market::party_events))
        .route("/v1/txs", post(chain::submit))
        .route("/v1/txs/batch", post(chain::submit_batch).layer(DefaultBodyLimit::max(BATCH_BODY_BYTES)))
        .route("/v1/txs/{hash}", get(chain::tx))
        .route("/v1/blocks/latest", get(chain::latest_block))
        .route("/v1/blocks/{height}", get(chain::block))
        .route("/v1/tasks", get(market::tasks))
        .route("/v1/tasks/{id}", get(market::task))
        .route("/v1/tasks/{id}/logs", get(logs::read).post(logs::post).layer(DefaultBodyLimit::max(logs::BODY_BYTES)))
        .route("/v1/tasks/{id}/logs/stream", get(logs::stream))
        .route("/v1/providers", get(market::providers))
        .route("/v1/providers/{address}", get(market::provider))
        .route("/v1/pools", get(market::pools))
        .route("/v1/pools/{id}", get(market::pool))
        // The blob writer enforces the chain's size limit while streaming.
        .route("/v1/blobs", post(blobs::upload).layer(DefaultBodyLimit::disable()))
        .route("/v1/blobs/{hash}", get(blobs::download))
        .route("/v1/events", get(feed::events))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/", get(explorer::page))
        .route("/assets/{*path}", get(explorer::assets))
        .fallback(|| async { ApiError::not_found("not_found", "no such route") })
        .layer(axum::middleware::from_fn_with_state(guard.clone(), limits::guard))
        .with_state(AppState { node, logs: Arc::default(), guard })
}
