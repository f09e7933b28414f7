//! Blob upload and download. Uploads stream to disk through the node's hashing writer;
//! downloads stream from disk, fetching the blob from peers first when this node lacks it.

use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ogpu_client::types::StoredBlob;
use ogpu_core::BlobHash;
use ogpu_node::blobs::{BlobError, CHUNK_BYTES};
use ogpu_node::service::{NodeHandle, Request};

use crate::error::{ApiError, ask, parse};
use crate::limits::Guard;

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> ApiError {
        match error {
            BlobError::TooLarge { .. } => ApiError::too_large(error),
            BlobError::HashMismatch { .. } => ApiError::bad_request("hash_mismatch", error),
            BlobError::Io(_) => ApiError::internal(error),
        }
    }
}

/// The longest pause between two frames of an upload's body.
const UPLOAD_PAUSE: Duration = Duration::from_secs(30);

/// File IO on a blocking thread, so that it does not hold up the threads serving requests.
async fn blocking<T: Send + 'static>(
    io: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(io).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(error) => Err(ApiError::internal(format!("blob IO stopped: {error}"))),
    }
}

#[utoipa::path(post, path = "/v1/blobs", request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "`{hash, size}`: the blob's blake3 address"), (status = 413, description = "Over the chain's blob size limit"),
        (status = 429, description = "Over the client's upload allowance")))]
pub async fn upload(
    State(node): State<NodeHandle>,
    State(guard): State<Arc<Guard>>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Body,
) -> Result<(StatusCode, Json<StoredBlob>), ApiError> {
    let client = client.map(|Extension(ConnectInfo(address))| address.ip());
    let limit = node.finalized.borrow().params.stored_blob_bytes();
    let mut writer = node.blobs.writer(limit)?;
    let mut stream = body.into_data_stream();
    // The body's frames are small (tens of KiB): they are gathered into whole chunks so
    // that a trip to a blocking thread (hashing and writing) carries a MiB, not a frame.
    let mut batch = Vec::with_capacity(CHUNK_BYTES);
    // An upload may take long, but not pause long: each frame must come within the limit.
    while let Some(frame) = tokio::time::timeout(UPLOAD_PAUSE, stream.next())
        .await
        .map_err(|_| ApiError::bad_request("body_stalled", format!("no bytes for {} s", UPLOAD_PAUSE.as_secs())))?
    {
        let frame = frame.map_err(|e| ApiError::bad_request("body_interrupted", e))?;
        guard.upload(client, frame.len())?;
        batch.extend_from_slice(&frame);
        if batch.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(CHUNK_BYTES));
            writer = blocking(move || writer.write(&full).map(|()| writer)).await?;
        }
    }
    if !batch.is_empty() {
        writer = blocking(move || writer.write(&batch).map(|()| writer)).await?;
    }
    let size = writer.written();
    let hash = blocking(move || writer.finish(None)).await?;
    Ok((StatusCode::CREATED, Json(StoredBlob { hash, size })))
}

#[utoipa::path(get, path = "/v1/blobs/{hash}", params(("hash" = String, Path, description = "blake3, hex")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream"), (status = 404, description = "Neither here nor on any peer")))]
pub async fn download(State(node): State<NodeHandle>, Path(hash): Path<String>) -> Result<Response, ApiError> {
    let hash = BlobHash(parse("hash", &hash)?);
    if !node.blobs.contains(&hash) {
        ask(&node, |reply| Request::FetchBlob(hash, reply))
            .await?
            .map_err(|why| ApiError::not_found("unknown_blob", format!("{hash}: {why}")))?;
    }
    let size = node.blobs.size(&hash).ok_or_else(|| ApiError::not_found("unknown_blob", hash))?;
    let chunks = size.div_ceil(CHUNK_BYTES as u64);
    let blobs = node.blobs.clone();
    let stream = futures::stream::iter(0..chunks).then(move |index| {
        let blobs = blobs.clone();
        async move {
            match blocking(move || blobs.chunk(&hash, index)).await {
                Ok(Some((bytes, _))) => Ok(Bytes::from(bytes)),
                Ok(None) => Err(std::io::Error::other("the blob disappeared while it was read")),
                Err(error) => Err(std::io::Error::other(format!("{error:?}"))),
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, size.to_string())],
        Body::from_stream(stream),
    )
        .into_response())
}
