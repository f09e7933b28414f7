//! Live updates for the pages: one thread follows the node's event feed and tells every
//! open page (`GET /api/stream`) of each finalized block, and of each block that touched
//! this account or its tasks, so pages re-read what they show instead of polling.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use ogpu_chain::Event;
use ogpu_client::{Client, FeedItem, TaskFilter};
use ogpu_core::{Address, TaskId};
use tokio::sync::broadcast::{self, error::RecvError};

/// What a page is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A block was finalized.
    Block(u64),
    /// A block touched this account or one of its tasks.
    Changed(u64),
}

/// Follows the node's feed on a thread of its own until `stop` is set (checked at least at
/// every keep-alive of the feed, 15 s apart), reconnecting when the feed drops.
pub fn follow(client: Client, me: Address, updates: broadcast::Sender<Update>, stop: Arc<AtomicBool>) {
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        match follow_once(&client, me, &updates, &stop) {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(error) => {
                tracing::warn!(%error, "the node's event feed failed; reconnecting");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn follow_once(
    client: &Client,
    me: Address,
    updates: &broadcast::Sender<Update>,
    stop: &AtomicBool,
) -> Result<(), ogpu_client::ClientError> {
    // Subscribe first, then list: a task submitted in between shows in one or the other.
    let feed = client.events(None)?;
    let filter = TaskFilter { client: Some(me), limit: Some(1_000), ..TaskFilter::default() };
    let mut mine: HashSet<TaskId> = client.tasks(&filter)?.tasks.into_iter().map(|view| view.id).collect();
    let mut account = client.account(&me)?;
    for event in feed {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // A send fails only while no page listens: nothing to tell.
        match FeedItem::parse(&event?) {
            Some(FeedItem::Block { height }) => {
                let _ = updates.send(Update::Block(height));
                // Transfers carry no market event: the balance tells.
                let now = client.account(&me)?;
                if now != account {
                    account = now;
                    let _ = updates.send(Update::Changed(height));
                }
            }
            Some(FeedItem::Chain { height, event }) if concerns(&event, me, &mut mine) => {
                let _ = updates.send(Update::Changed(height));
            }
            Some(FeedItem::Lagged) => {
                let _ = updates.send(Update::Changed(0));
            }
            Some(FeedItem::Chain { .. }) | None => {}
        }
    }
    Ok(())
}

/// Whether `event` is about `me` or one of my tasks (learning of new ones as submitted).
fn concerns(event: &Event, me: Address, mine: &mut HashSet<TaskId>) -> bool {
    match event {
        Event::TaskSubmitted { task, client, .. } if *client == me => {
            mine.insert(*task);
            true
        }
        Event::Slashed { who, .. } => *who == me,
        other => other.task().is_some_and(|task| mine.contains(&task)),
    }
}

/// `GET /api/stream`: `block` and `changed` events, each with `{"height": N}`.
pub fn stream(updates: &broadcast::Sender<Update>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + use<>> {
    let receiver = updates.subscribe();
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        let update = match receiver.recv().await {
            Ok(update) => update,
            // Too slow to be told everything: told that something changed.
            Err(RecvError::Lagged(_)) => Update::Changed(0),
            Err(RecvError::Closed) => return None,
        };
        let (name, height) = match update {
            Update::Block(height) => ("block", height),
            Update::Changed(height) => ("changed", height),
        };
        let event = SseEvent::default().event(name).data(serde_json::json!({ "height": height }).to_string());
        Some((Ok(event), receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ogpu_core::{Amount, Hash};

    #[test]
    fn my_tasks_are_learned_from_their_submission() {
        let (me, other) = (Address([1; 20]), Address([2; 20]));
        let (task, theirs) = (TaskId(Hash([1; 32])), TaskId(Hash([2; 32])));
        let mut mine = HashSet::new();
        let awarded = |task| Event::Awarded { task, provider: other, price: Amount::ogpu(1) };
        assert!(!concerns(&awarded(task), me, &mut mine));
        assert!(concerns(&Event::TaskSubmitted { task, client: me, reserved: Amount::ogpu(1) }, me, &mut mine));
        assert!(concerns(&awarded(task), me, &mut mine));
        assert!(!concerns(
            &Event::TaskSubmitted { task: theirs, client: other, reserved: Amount::ZERO },
            me,
            &mut mine
        ));
        assert!(!concerns(&awarded(theirs), me, &mut mine));
    }
}
