//! What callers may take of a node's API: requests a second per client address, requests
//! in progress at once, how long one may take, and event streams open at once. Whatever is
//! over a limit is refused at once with a status that says which (429 or 503), rather than
//! queued: a node's API must stay answerable under load.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ogpu_node::rate::TokenBucket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests a second one client address may make, on average and in a burst.
    pub requests_per_s: u64,
    pub burst: u64,
    /// Requests being answered at once, from everyone.
    pub in_flight: usize,
    /// How long producing a response may take (a blob upload counts its body's pauses
    /// instead: see `blobs`).
    pub request_timeout: Duration,
    /// Server-sent event streams open at once (`/v1/events`, task log streams).
    pub streams: usize,
    /// Bytes of blobs one client address may upload, as a burst and refilled over an
    /// hour. What nothing on chain refers to is collected after the node's grace period,
    /// so this bounds what one client can keep on a node's disk.
    pub upload_bytes_per_hour: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            requests_per_s: 100,
            burst: 400,
            in_flight: 512,
            request_timeout: Duration::from_secs(30),
            streams: 256,
            upload_bytes_per_hour: 4 << 30,
        }
    }
}

/// Client addresses remembered at most; past it, the allowances that have refilled (which
/// a new one would equal) are forgotten.
const CLIENTS: usize = 10_000;

pub(crate) struct Guard {
    limits: Limits,
    clients: Mutex<HashMap<IpAddr, TokenBucket>>,
    uploads: Mutex<HashMap<IpAddr, TokenBucket>>,
    in_flight: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Guard {
    pub fn new(limits: Limits) -> Guard {
        Guard {
            limits,
            clients: Mutex::default(),
            uploads: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(limits.in_flight)),
            streams: Arc::new(Semaphore::new(limits.streams)),
        }
    }

    fn allow(&self, client: IpAddr) -> bool {
        let Limits { requests_per_s, burst, .. } = self.limits;
        take(&self.clients, client, 1, || TokenBucket::new(requests_per_s, burst, now_ms()))
    }

    /// Counts `bytes` more of an upload against the client's allowance (clients without an
    /// address, in-process ones, have none).
    pub fn upload(&self, client: Option<IpAddr>, bytes: usize) -> Result<(), ApiError> {
        let quota = self.limits.upload_bytes_per_hour;
        let allowed = client.is_none_or(|client| {
            take(&self.uploads, client, bytes as u64, || TokenBucket::new(quota / 3_600, quota, now_ms()))
        });
        if allowed {
            Ok(())
        } else {
            Err(ApiError::too_many("upload_quota", format!("over {quota} bytes of uploads an hour from one address")))
        }
    }

    /// A place for one more event stream, held for as long as the stream is open.
    pub fn stream(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            let detail =
                format!("{} event streams are open, the most this node serves; try again later", self.limits.streams);
            ApiError::unavailable_because("too_many_streams", detail)
        })
    }
}

/// Takes `cost` from `client`'s bucket in `buckets`, making one with `new` for a client
/// not seen yet.
fn take(
    buckets: &Mutex<HashMap<IpAddr, TokenBucket>>,
    client: IpAddr,
    cost: u64,
    new: impl FnOnce() -> TokenBucket,
) -> bool {
    let now = now_ms();
    // The map is consistent between statements, so a poisoned lock is still usable.
    let mut buckets = buckets.lock().unwrap_or_else(PoisonError::into_inner);
    if buckets.len() >= CLIENTS {
        buckets.retain(|_, bucket| !bucket.is_full(now));
    }
    buckets.entry(client).or_insert_with(new).take(now, cost)
}

/// A refusal made before the request was looked at, which the same request may pass in a
/// second: `Retry-After` tells clients to send it again then (`ogpu-client` does).
fn try_again_soon(error: ApiError) -> Response {
    ([(header::RETRY_AFTER, "1")], error).into_response()
}

/// The middleware every request passes: the caller's allowance, a place among the
/// requests in progress, and the time limit.
pub(crate) async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    // Requests that arrive other than over TCP (in-process tests) have no address to limit.
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    if client.is_some_and(|client| !guard.allow(client)) {
        let detail = format!("over {} requests a second from one address", guard.limits.requests_per_s);
        return try_again_soon(ApiError::too_many("rate_limited", detail));
    }
    let Ok(_permit) = guard.in_flight.clone().try_acquire_owned() else {
        return try_again_soon(ApiError::unavailable_because(
            "busy",
            "the node is answering as many requests as it can",
        ));
    };
    let uploading = request.method() == Method::POST && request.uri().path() == "/v1/blobs";
    if uploading {
        return next.run(request).await;
    }
    match tokio::time::timeout(guard.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let detail = format!("no answer within {} s", guard.limits.request_timeout.as_secs());
            ApiError::unavailable_because("timeout", detail).into_response()
        }
    }
}
