//! The live feed of finalized blocks and their events, as server-sent events: one `block`
//! event per finalized block, then one `chain` event per chain event in it. `?task=ID`
//! narrows the feed to that task's events (blocks without any are skipped).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use ogpu_core::TaskId;
use ogpu_node::replica::Finalized;
use ogpu_node::service::NodeHandle;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{ApiError, parse};
use crate::limits::Guard;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
pub struct FeedQuery {
    /// Only events about this task.
    task: Option<String>,
}

fn sse_events(finalized: &Finalized, task: Option<TaskId>) -> Vec<Event> {
    let header = finalized.block.header();
    let chain_events: Vec<_> = finalized.outcome.events.iter().filter(|e| task.is_none() || e.task() == task).collect();
    if task.is_some() && chain_events.is_empty() {
        return Vec::new();
    }
    let block = json!({
        "height": header.height,
        "hash": finalized.block.hash(),
        "time_ms": header.time_ms,
        "txs": finalized.block.txs.len(),
    });
    let mut out = vec![Event::default().event("block").data(block.to_string())];
    for event in chain_events {
        let data = json!({ "height": header.height, "event": event });
        out.push(Event::default().event("chain").data(data.to_string()));
    }
    out
}

#[utoipa::path(get, path = "/v1/events", params(FeedQuery),
    responses((status = 200, description = "text/event-stream of `block` and `chain` events", content_type = "text/event-stream"),
        (status = 503, description = "As many streams are open as the node serves")))]
pub async fn events(
    State(node): State<NodeHandle>,
    State(guard): State<Arc<Guard>>,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query?;
    let task = query.task.as_deref().map(|t| parse("task", t).map(TaskId)).transpose()?;
    // Held by the stream: its place is given back when the client goes.
    let place = guard.stream()?;
    let receiver = node.feed.subscribe();
    let stream = futures::stream::unfold((receiver, place), move |(mut receiver, place)| async move {
        let events = match receiver.recv().await {
            Ok(finalized) => sse_events(&finalized, task),
            // A slow client misses blocks rather than holding the node back; it is told.
            Err(RecvError::Lagged(missed)) => {
                vec![Event::default().event("lagged").data(json!({ "missed_blocks": missed }).to_string())]
            }
            Err(RecvError::Closed) => return None,
        };
        Some((events, (receiver, place)))
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
