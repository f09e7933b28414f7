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

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an API address; expected http://HOST:PORT")]
    BadAddress(String),
    #[error("cannot reach the API at {url}: {source}")]
    Transport { url: String, source: Box<ureq::Error> },
    #[error("the API refused {what}: {error}: {detail}")]
    Api { what: String, status: u16, error: String, detail: String },
    #[error("unexpected answer to {what}: {reason}")]
    Decode { what: String, reason: String },
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
    Block {
        height: u64,
    },
    /// A chain event of the block at `height`.
    Chain {
        height: u64,
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
    pub name: String,
    pub data: String,
}

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

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.agent.get(self.url(path)).call().map_err(self.transport(path))?;
        json_answer(path, response)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| decode_error(path, e))?;
        let response = self
            .agent
            .post(self.url(path))
            .header("content-type", "application/json")
            .send(&body[..])
            .map_err(self.transport(path))?;
        json_answer(path, response)
    }

    /// Sends `body` as is and returns the status and the body, whatever they are: for tools
    /// that pre-serialize their load, and for tests of how the API meets bad requests.
    pub fn send_raw(&self, method: &str, path: &str, body: &str) -> Result<(u16, String), ClientError> {
        let url = self.url(path);
        let mut response = match method {
            "GET" => self.agent.get(url).call(),
            _ => self.agent.post(url).header("content-type", "application/json").send(body),
        }
        .map_err(self.transport(path))?;
        let text = response.body_mut().read_to_string().map_err(|e| decode_error(path, e))?;
        Ok((response.status().as_u16(), text))
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
        let response = self.streaming.get(self.url(&path)).call().map_err(self.transport(&path))?;
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
        let response = self.agent.head(self.url(&path)).call().map_err(self.transport(&path))?;
        match response.status().as_u16() {
            404 => Ok(false),
            _ => success(&path, response).map(|_| true),
        }
    }

    /// Opens a server-sent event stream, for example `/v1/events?task=ID`; reading it
    /// fails once `within` has passed since it was opened, when one is given.
    pub(crate) fn stream(&self, path: &str, within: Option<Duration>) -> Result<EventStream, ClientError> {
        let response = self
            .streaming
            .get(self.url(path))
            .header("accept", "text/event-stream")
            .config()
            .timeout_global(within)
            .build()
            .call()
            .map_err(self.transport(path))?;
        let body = success(path, response)?.into_body().into_reader();
        Ok(EventStream { lines: Box::new(BufReader::new(body)) })
    }
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
                // A blank line ends an event; keep-alive comments leave nothing to deliver.
                if !data.is_empty() || !name.is_empty() {
                    let name = if name.is_empty() { "message".to_string() } else { std::mem::take(&mut name) };
                    return Some(Ok(SseEvent { name, data: std::mem::take(&mut data) }));
                }
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
