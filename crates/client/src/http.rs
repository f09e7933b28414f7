//! The transport: requests over HTTP/1.1, the API's `{error, detail}` answers turned into
//! [`ClientError::Api`], blobs streamed both ways with their hashes checked, and
//! server-sent events read as an iterator. The typed call of each route is in `routes`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::Duration;

use ogpu_core::{BlobHash, Hash};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

use crate::types::{EventRecord, Refusal, StoredBlob};

/// What went wrong talking to a node's API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// [`Client::new`] was given something other than `http://HOST:PORT`.
    #[error("{0:?} is not an API address; expected http://HOST:PORT")]
    BadAddress(String),
    /// No answer came: the connection failed, was cut or timed out.
    #[error("cannot reach the API at {url}: {source}")]
    Transport {
        /// The full URL asked for.
        url: String,
        /// What the HTTP client reported.
        source: Box<ureq::Error>,
    },
    /// The API answered with a status other than 2xx.
    #[error("the API refused {what}: {error}: {detail}")]
    Api {
        /// The path asked for.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The API's error name (`unknown_task`, ...), or `http_{status}` for a body
        /// that is not the API's `{error, detail}`.
        error: String,
        /// The API's explanation, or the raw body when it was not the API's JSON.
        detail: String,
    },
    /// An answer this client cannot use: a body that does not parse, a blob whose bytes
    /// do not hash to what was asked for, or a stream that ended too soon.
    #[error("unexpected answer to {what}: {reason}")]
    Decode {
        /// The path asked for, or what was being read.
        what: String,
        /// Why the answer was not what the client expected.
        reason: String,
    },
    /// Reading a response body or stream, or writing a downloaded blob, failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ClientError {
    /// The API's error name (`unknown_task`, `insufficient_funds`, ...), when it answered.
    pub fn api_error(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Why the node's mempool refused a transaction, when that is what went wrong.
    pub fn refusal(&self) -> Option<Refusal> {
        self.api_error().and_then(Refusal::from_code)
    }
}

/// A finalized block or one of its chain events, as `/v1/events` delivers them.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A block was finalized.
    Block {
        /// The finalized block's height.
        height: u64,
    },
    /// A chain event of the block at `height`.
    Chain {
        /// The height of the block the event belongs to.
        height: u64,
        /// The event itself.
        event: ogpu_chain::Event,
    },
    /// The node dropped blocks this reader was too slow for.
    Lagged,
}

impl FeedItem {
    /// Reads one event of the `/v1/events` stream; `None` for kinds this client does not know.
    pub fn parse(event: &SseEvent) -> Option<FeedItem> {
        #[derive(Deserialize)]
        struct Block {
            height: u64,
        }
        match event.name.as_str() {
            "block" => serde_json::from_str::<Block>(&event.data).ok().map(|b| FeedItem::Block { height: b.height }),
            "chain" => serde_json::from_str::<EventRecord>(&event.data)
                .ok()
                .map(|EventRecord { height, event }| FeedItem::Chain { height, event }),
            "lagged" => Some(FeedItem::Lagged),
            _ => None,
        }
    }
}

/// One server-sent event: its name (`block`, `chain`, `lagged`, ...) and its JSON data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` field; `message` when the server sent none.
    pub name: String,
    /// The `data:` lines, joined by newlines (JSON for every event the API sends).
    pub data: String,
}

impl SseEvent {
    /// The name a comment arrives under: the keep-alive the API sends every 15 s while a
    /// stream is quiet, delivered so that a reader can look at other things meanwhile.
    pub const KEEP_ALIVE: &str = "keep-alive";
}

/// A blocking client of one node's API. Cheap to clone: clones share their connection
/// pools.
#[derive(Clone)]
pub struct Client {
    base: String,
    /// Requests that answer promptly.
    agent: Agent,
    /// Streams (events, blobs) that may stay open for as long as they have something to say.
    streaming: Agent,
}

fn agent(timeout: Option<Duration>) -> Agent {
    Agent::config_builder()
        // The API's 4xx bodies say what was wrong; they are read, not turned into bare codes.
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(timeout)
        .build()
        .into()
}

impl Client {
    /// A client of the API at `base`, for example `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> Result<Client, ClientError> {
        let trimmed = base.trim_end_matches('/');
        let host = trimmed.strip_prefix("http://").ok_or_else(|| ClientError::BadAddress(base.into()))?;
        if host.is_empty() || host.contains('/') {
            return Err(ClientError::BadAddress(base.into()));
        }
        Ok(Client { base: trimmed.to_string(), agent: agent(Some(Duration::from_secs(60))), streaming: agent(None) })
    }

    /// The API's address as given to [`Client::new`], without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn transport(&self, path: &str) -> impl FnOnce(ureq::Error) -> ClientError {
        let url = self.url(path);
        move |source| ClientError::Transport { url, source: Box::new(source) }
    }

    /// Sends what `send` makes, and again while the API answers that the same request may
    /// pass shortly (`Retry-After`: a rate limit or a full house, refused before the
    /// request was looked at), at most [`RETRIES`] times.
    fn call(
        &self,
        path: &str,
        send: impl Fn() -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, ClientError> {
        let mut retries = 0;
        loop {
            let response = send().map_err(self.transport(path))?;
            match retry_after(&response) {
                Some(wait) if retries < RETRIES => {
                    tracing::debug!(path, ?wait, "the API asked for the request again later");
                    retries += 1;
                    std::thread::sleep(wait);
                }
                _ => return Ok(response),
            }
        }
    }

    /// `GET`s `path` (such as `/v1/status`) and reads the JSON answer as `T`; for routes
    /// without a typed call.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.call(path, || self.agent.get(self.url(path)).call())?;
        json_answer(path, response)
    }

    /// `POST`s `body` as JSON to `path` and reads the JSON answer as `T`; for routes
    /// without a typed call.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| decode_error(path, e))?;
        let response = self.call(path, || {
            self.agent.post(self.url(path)).header("content-type", "application/json").send(&body[..])
        })?;
        json_answer(path, response)
    }

    /// Streams `reader` into the blob store; returns the blob's hash and size.
    pub fn upload_blob(&self, mut reader: impl Read) -> Result<(BlobHash, u64), ClientError> {
        let path = "/v1/blobs";
        let response = self
            .streaming
            .post(self.url(path))
            .header("content-type", "application/octet-stream")
            .send(SendBody::from_reader(&mut reader))
            .map_err(self.transport(path))?;
        let stored: StoredBlob = json_answer(path, response)?;
        Ok((stored.hash, stored.size))
    }

    /// Streams a blob into `out` and checks that what arrived has the hash asked for.
    pub fn download_blob(&self, hash: &BlobHash, out: &mut impl Write) -> Result<u64, ClientError> {
        let path = format!("/v1/blobs/{hash}");
        let response = self.call(&path, || self.streaming.get(self.url(&path)).call())?;
        let mut body = success(&path, response)?.into_body().into_reader();
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let read = body.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            out.write_all(&buffer[..read])?;
            size += read as u64;
        }
        let got = Hash(*hasher.finalize().as_bytes());
        if got != hash.0 {
            return Err(ClientError::Decode { what: path, reason: format!("the bytes hash to {got}") });
        }
        Ok(size)
    }

    /// Whether the store holds the blob: a `HEAD` of its route, which sends no bytes.
    pub fn has_blob(&self, hash: &BlobHash) -> Result<bool, ClientError> {
        let path = format!("/v1/blobs/{hash}");
        let response = self.call(&path, || self.agent.head(self.url(&path)).call())?;
        match response.status().as_u16() {
            404 => Ok(false),
            _ => success(&path, response).map(|_| true),
        }
    }

    /// Opens a server-sent event stream, for example `/v1/events?task=ID`; reading it
    /// fails once `within` has passed since it was opened, when one is given.
    pub(crate) fn stream(&self, path: &str, within: Option<Duration>) -> Result<EventStream, ClientError> {
        let response = self.call(path, || {
            let request = self.streaming.get(self.url(path)).header("accept", "text/event-stream");
            request.config().timeout_global(within).build().call()
        })?;
        let body = success(path, response)?.into_body().into_reader();
        Ok(EventStream { lines: Box::new(BufReader::new(body)) })
    }
}

/// How many times a request the API asked to have sent again is sent again.
const RETRIES: u32 = 5;

/// The longest `Retry-After` obeyed; an answer asking for a longer wait is the error it
/// carries, for the caller to decide.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The wait an answer asks for before the same request is sent again, when it asks for one
/// this client obeys (whole seconds, the form the API sends).
fn retry_after(response: &Response<Body>) -> Option<Duration> {
    let seconds: u64 = response.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds)).filter(|wait| *wait <= LONGEST_RETRY_AFTER)
}

fn decode_error(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Decode { what: what.to_string(), reason: error.to_string() }
}

/// The response when it is a success; the API's error otherwise.
fn success(what: &str, mut response: Response<Body>) -> Result<Response<Body>, ClientError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        #[serde(default)]
        detail: String,
    }
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let (error, detail) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error, body.detail),
        Err(_) => (format!("http_{status}"), text),
    };
    Err(ClientError::Api { what: what.to_string(), status, error, detail })
}

fn json_answer<T: DeserializeOwned>(what: &str, response: Response<Body>) -> Result<T, ClientError> {
    let text = success(what, response)?.body_mut().read_to_string().map_err(|e| decode_error(what, e))?;
    serde_json::from_str(&text).map_err(|e| decode_error(what, e))
}

/// Server-sent events, one per item, until the server closes the stream.
pub struct EventStream {
    lines: Box<dyn BufRead + Send>,
}

impl Iterator for EventStream {
    type Item = io::Result<SseEvent>;

    fn next(&mut self) -> Option<io::Result<SseEvent>> {
        let mut name = String::new();
        let mut data = String::new();
        let mut comment = false;
        let mut line = String::new();
        loop {
            line.clear();
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => return Some(Err(error)),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                // A blank line ends an event, or a comment.
                if !data.is_empty() || !name.is_empty() {
                    let name = if name.is_empty() { "message".to_string() } else { std::mem::take(&mut name) };
                    return Some(Ok(SseEvent { name, data: std::mem::take(&mut data) }));
                }
                if comment {
                    return Some(Ok(SseEvent { name: SseEvent::KEEP_ALIVE.into(), data: String::new() }));
                }
            } else if line.starts_with(':') {
                comment = true;
            } else if let Some(value) = line.strip_prefix("event:") {
                name = value.trim_start().to_string();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &'static str) -> Vec<(String, String)> {
        let stream = EventStream { lines: Box::new(text.as_bytes()) };
        stream.map(|event| event.map(|e| (e.name, e.data))).collect::<io::Result<_>>().unwrap()
    }

    #[test]
    fn events_and_keep_alive_comments_are_delivered_in_order() {
        let text = ":\n\nevent: log\ndata: {\"a\":\ndata: 1}\nid: 7\n\ndata: plain\n\n: still here\n\n";
        let named = |name: &str, data: &str| (name.to_string(), data.to_string());
        assert_eq!(
            events(text),
            vec![
                named(SseEvent::KEEP_ALIVE, ""),
                named("log", "{\"a\":\n1}"),
                named("message", "plain"),
                named(SseEvent::KEEP_ALIVE, ""),
            ]
        );
    }
}
