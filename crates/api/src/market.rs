//! Tasks, providers and pools: records from the finalized state, with their history
//! from the node's event indexes.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use ogpu_client::types::{
    EventRecord, PartyEvents, PoolList, PoolView, ProviderDetail, ProviderList, ProviderView, TaskDetail, TaskList,
    TaskView,
};
use ogpu_core::{Address, PoolId, TaskId};
use ogpu_node::service::NodeHandle;
use serde::Deserialize;

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

#[utoipa::path(get, path = "/v1/tasks", params(TaskQuery), responses((status = 200, description = "Tasks, with phase and escrow")))]
pub async fn tasks(
    State(node): State<NodeHandle>,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(query) = query?;
    let client = query.client.as_deref().map(|c| parse::<Address>("client", c)).transpose()?;
    let limit = limit(query.limit)?;
    let state = node.finalized.borrow().clone();
    let matching = state
        .tasks
        .iter()
        .filter(|(_, t)| client.is_none_or(|c| t.client == c))
        .filter(|(_, t)| query.phase.as_deref().is_none_or(|p| t.phase.name() == p));
    let tasks = matching.take(limit).map(|(id, task)| TaskView { id: *id, task: task.clone() }).collect();
    Ok(Json(TaskList { tasks }))
}

#[utoipa::path(get, path = "/v1/tasks/{id}", params(("id" = String, Path, description = "Task id, hex")),
    responses((status = 200, description = "The task and every event about it"), (status = 404, description = "No such task")))]
pub async fn task(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Json<TaskDetail>, ApiError> {
    let id = TaskId(parse("id", &id)?);
    let task = node.finalized.borrow().tasks.get(&id).cloned();
    let task = task.ok_or_else(|| ApiError::not_found("unknown_task", format!("no task {id}")))?;
    let events = EventRecord::list(read_store(&node, move |store| store.task_events(&id)).await?);
    let phase_name = task.phase.name().to_string();
    Ok(Json(TaskDetail { view: TaskView { id, task }, phase_name, events }))
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
) -> Result<Json<ProviderList>, ApiError> {
    let limit = limit(query?.0.limit)?;
    let state = node.finalized.borrow().clone();
    let providers = state
        .providers
        .iter()
        .take(limit)
        .map(|(address, provider)| ProviderView { address: *address, provider: provider.clone() })
        .collect();
    Ok(Json(ProviderList { providers }))
}

/// Events listed with an account or provider, newest last.
const PARTY_EVENTS: usize = 100;

#[utoipa::path(get, path = "/v1/providers/{address}", params(("address" = String, Path)),
    responses((status = 200, description = "Device profile, stake, reputation and recent awards, payments and slashes"), (status = 404, description = "Not a provider")))]
pub async fn provider(
    State(node): State<NodeHandle>,
    Path(address): Path<String>,
) -> Result<Json<ProviderDetail>, ApiError> {
    let address: Address = parse("address", &address)?;
    let provider = node.finalized.borrow().providers.get(&address).cloned();
    let provider =
        provider.ok_or_else(|| ApiError::not_found("unknown_provider", format!("{address} is not a provider")))?;
    let events = read_store(&node, move |store| store.party_events(&address, PARTY_EVENTS)).await?;
    Ok(Json(ProviderDetail { view: ProviderView { address, provider }, events: EventRecord::list(events) }))
}

#[utoipa::path(get, path = "/v1/accounts/{address}/events", params(("address" = String, Path)),
    responses((status = 200, description = "Recent events naming the account")))]
pub async fn party_events(
    State(node): State<NodeHandle>,
    Path(address): Path<String>,
) -> Result<Json<PartyEvents>, ApiError> {
    let address: Address = parse("address", &address)?;
    let events = read_store(&node, move |store| store.party_events(&address, PARTY_EVENTS)).await?;
    Ok(Json(PartyEvents { address, events: EventRecord::list(events) }))
}

#[utoipa::path(get, path = "/v1/pools", params(ListQuery), responses((status = 200, description = "Pools with their specs and subscribers")))]
pub async fn pools(
    State(node): State<NodeHandle>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PoolList>, ApiError> {
    let limit = limit(query?.0.limit)?;
    let state = node.finalized.borrow().clone();
    let pools = state.pools.iter().take(limit).map(|(id, pool)| PoolView { id: *id, pool: pool.clone() }).collect();
    Ok(Json(PoolList { pools }))
}

#[utoipa::path(get, path = "/v1/pools/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "The pool"), (status = 404, description = "No such pool")))]
pub async fn pool(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Json<PoolView>, ApiError> {
    let id = PoolId(parse("id", &id)?);
    let pool = node.finalized.borrow().pools.get(&id).cloned();
    let pool = pool.ok_or_else(|| ApiError::not_found("unknown_pool", format!("no pool {id}")))?;
    Ok(Json(PoolView { id, pool }))
}
