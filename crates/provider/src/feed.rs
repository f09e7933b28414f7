//! Following the chain: the node's server-sent event feed turned into the agent's inputs,
//! reconnecting whenever the stream breaks.

use std::sync::mpsc::Sender;
use std::time::Duration;

use ogpu_api::client::{Client, SseEvent};
use ogpu_chain::Event;
use serde::Deserialize;

use crate::agent::Input;

/// A finalized block or one of its chain events, in the order the node finalized them.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Block { height: u64 },
    Chain(Event),
}

/// Parses one feed event; `None` for kinds the agent does not act on.
pub fn parse(event: &SseEvent) -> Option<FeedItem> {
    #[derive(Deserialize)]
    struct Block {
        height: u64,
    }
    #[derive(Deserialize)]
    struct Chain {
        event: Event,
    }
    match event.name.as_str() {
        "block" => serde_json::from_str::<Block>(&event.data).ok().map(|b| FeedItem::Block { height: b.height }),
        "chain" => serde_json::from_str::<Chain>(&event.data).ok().map(|c| FeedItem::Chain(c.event)),
        "lagged" => {
            tracing::warn!(data = %event.data, "the feed dropped blocks this agent was too slow for");
            None
        }
        _ => None,
    }
}

/// Forwards the feed to `inputs` until the agent goes away.
pub(crate) fn follow(client: &Client, inputs: &Sender<Input>) {
    loop {
        match client.events("/v1/events") {
            Ok(stream) => {
                for event in stream {
                    let event = match event {
                        Ok(event) => event,
                        Err(error) => {
                            tracing::warn!(%error, "the feed broke");
                            break;
                        }
                    };
                    if let Some(item) = parse(&event)
                        && inputs.send(Input::Feed(item)).is_err()
                    {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot open the feed"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
