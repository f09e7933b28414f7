//! Tasks, providers and pools: records from the finalized state, with their history
//! from the node's event indexes.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use ogpu_chain::Event;
use ogpu_core::{Address, PoolId, TaskId};
use ogpu_node::service::NodeHandle;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, parse, read_store};

/// A list's default and largest length.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
pub struct TaskQuery {
    /// Only tasks of this client.
    client: Option<String>,
    /// Only tasks in this phase: bidding, executing, revealing, racing, verifying, challengeable, done.
    phase: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

fn limit(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(ApiError::bad_request("invalid_parameter", "limit: must be at least 1")),
        n => Ok(n.min(MAX_LIMIT)),
    }
}

/// A record with its id (or address) first.
fn with_id(id_key: &str, id: impl Serialize, record: impl Serialize) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(record).map_err(ApiError::internal)?;
    if let Value::Object(map) = &mut value {
        map.insert(id_key.into(), serde_json::to_value(id).map_err(ApiError::internal)?);
    }
    Ok(value)
}

/// Up to `limit` records, each with its id under `id_key`.
fn list<K: Serialize, V: Serialize>(
    records: impl Iterator<Item = (K, V)>,
    id_key: &str,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    records.take(limit).map(|(id, record)| with_id(id_key, id, record)).collect()
}

fn history(events: Vec<(u64, Event)>) -> Vec<Value> {
    events.into_iter().map(|(height, event)| json!({ "height": height, "event": event })).collect()
}

#[utoipa::path(get, path = "/v1/tasks", params(TaskQuery), responses((status = 200, description = "Tasks, with phase and escrow")))]
pub async fn tasks(
    State(node): State<NodeHandle>,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let client = query.client.as_deref().map(|c| parse::<Address>("client", c)).transpose()?;
    let limit = limit(query.limit)?;
    let state = node.finalized.borrow().clone();
    let matching = state
        .tasks
        .iter()
        .filter(|(_, t)| client.is_none_or(|c| t.client == c))
        .filter(|(_, t)| query.phase.as_deref().is_none_or(|p| t.phase.name() == p));
    let tasks = list(matching, "id", limit)?;
    Ok(Json(json!({ "tasks": tasks })))
}

#[utoipa::path(get, path = "/v1/tasks/{id}", params(("id" = String, Path, description = "Task id, hex")),
    responses((status = 200, description = "The task and every event about it"), (status = 404, description = "No such task")))]
pub async fn task(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = TaskId(parse("id", &id)?);
    let task = node.finalized.borrow().tasks.get(&id).cloned();
    let task = task.ok_or_else(|| ApiError::not_found("unknown_task", format!("no task {id}")))?;
    let mut view = with_id("id", id, &task)?;
    view["phase_name"] = json!(task.phase.name());
    view["events"] = json!(history(read_store(&node, move |store| store.task_events(&id)).await?));
    Ok(Json(view))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/providers", params(ListQuery), responses((status = 200, description = "Registered providers")))]
pub async fn providers(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(query?.0.limit)?;
    let state = node.finalized.borrow().clone();
    let providers = list(state.providers.iter(), "address", limit)?;
    Ok(Json(json!({ "providers": providers })))
}

/// Events listed with an account or provider, newest last.
const PARTY_EVENTS: usize = 100;

#[utoipa::path(get, path = "/v1/providers/{address}", params(("address" = String, Path)),
    responses((status = 200, description = "Device profile, stake, reputation and recent awards, payments and slashes"), (status = 404, description = "Not a provider")))]
pub async fn provider(State(node): State<NodeHandle>, Path(address): Path<String>) -> Result<Json<Value>, ApiError> {
    let address: Address = parse("address", &address)?;
    let provider = node.finalized.borrow().providers.get(&address).cloned();
    let provider =
        provider.ok_or_else(|| ApiError::not_found("unknown_provider", format!("{address} is not a provider")))?;
    let mut view = with_id("address", address, provider)?;
    let events = read_store(&node, move |store| store.party_events(&address, PARTY_EVENTS)).await?;
    view["events"] = json!(history(events));
    Ok(Json(view))
}

#[utoipa::path(get, path = "/v1/accounts/{address}/events", params(("address" = String, Path)),
    responses((status = 200, description = "Recent events naming the account")))]
pub async fn party_events(
    State(node): State<NodeHandle>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let address: Address = parse("address", &address)?;
    let events = read_store(&node, move |store| store.party_events(&address, PARTY_EVENTS)).await?;
    Ok(Json(json!({ "address": address, "events": history(events) })))
}

#[utoipa::path(get, path = "/v1/pools", params(ListQuery), responses((status = 200, description = "Pools with their specs and subscribers")))]
pub async fn pools(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(query?.0.limit)?;
    let state = node.finalized.borrow().clone();
    let pools = list(state.pools.iter(), "id", limit)?;
    Ok(Json(json!({ "pools": pools })))
}

#[utoipa::path(get, path = "/v1/pools/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "The pool"), (status = 404, description = "No such pool")))]
pub async fn pool(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = PoolId(parse("id", &id)?);
    let pool = node.finalized.borrow().pools.get(&id).cloned();
    let pool = pool.ok_or_else(|| ApiError::not_found("unknown_pool", format!("no pool {id}")))?;
    with_id("id", id, pool).map(Json)
}
