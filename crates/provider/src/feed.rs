//! Following the chain: the node's server-sent event feed turned into the agent's inputs,
//! reconnecting whenever the stream breaks.

use std::sync::mpsc::Sender;
use std::time::Duration;

use ogpu_client::{Client, FeedItem};

use crate::agent::Input;

/// Forwards the feed to `inputs` until the agent goes away.
pub(crate) fn follow(client: &Client, inputs: &Sender<Input>) {
    loop {
        match client.events(None) {
            Ok(stream) => {
                for event in stream {
                    let event = match event {
                        Ok(event) => event,
                        Err(error) => {
                            tracing::warn!(%error, "the feed broke");
                            break;
                        }
                    };
                    let Some(item) = FeedItem::parse(&event) else { continue };
                    if let FeedItem::Lagged = item {
                        tracing::warn!("the feed dropped blocks this agent was too slow for");
                    } else if inputs.send(Input::Feed(item)).is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot open the feed"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
