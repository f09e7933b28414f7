//! The explorer: read-only pages at `/` that read this API's own `/v1` routes (same
//! origin, so no CORS), from `ogpu-web`'s embedded assets. Page serving ends here: the
//! pages hold no key and send nothing but reads.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub async fn page() -> Response {
    asset("explorer/index.html")
}

pub async fn assets(Path(path): Path<String>) -> Response {
    asset(&path)
}

fn asset(path: &str) -> Response {
    match ogpu_web::get(path) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CONTENT_SECURITY_POLICY, ogpu_web::CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => ApiError::not_found("unknown_asset", format!("no page or asset {path}")).into_response(),
    }
}
