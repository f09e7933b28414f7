//! Blob upload and download. Uploads stream to disk through the node's hashing writer;
//! downloads stream from disk, fetching the blob from peers first when this node lacks it.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use ogpu_core::BlobHash;
use ogpu_node::blobs::{BlobError, CHUNK_BYTES};
use ogpu_node::service::{NodeHandle, Request};
use serde_json::{Value, json};

use crate::error::{ApiError, ask, parse};

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> ApiError {
        match error {
            BlobError::TooLarge { .. } => ApiError::too_large(error),
            BlobError::HashMismatch { .. } => ApiError::bad_request("hash_mismatch", error),
            BlobError::Io(_) => ApiError::internal(error),
        }
    }
}

#[utoipa::path(post, path = "/v1/blobs", request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "`{hash, size}`: the blob's blake3 address"), (status = 413, description = "Over the chain's blob size limit")))]
pub async fn upload(State(node): State<NodeHandle>, body: Body) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limit = node.finalized.borrow().params.max_blob_bytes;
    let mut writer = node.blobs.writer(limit)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("body_interrupted", e))?;
        // Local file writes of one body frame: short enough not to need a blocking thread.
        writer.write(&chunk)?;
    }
    let size = writer.written();
    let hash = writer.finish(None)?;
    Ok((StatusCode::CREATED, Json(json!({ "hash": hash, "size": size }))))
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
    let stream = futures::stream::iter(0..chunks).map(move |index| match blobs.chunk(&hash, index) {
        Ok(Some((bytes, _))) => Ok(Bytes::from(bytes)),
        Ok(None) => Err(std::io::Error::other("the blob disappeared while it was read")),
        Err(error) => Err(std::io::Error::other(error.to_string())),
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, size.to_string())],
        Body::from_stream(stream),
    )
        .into_response())
}
