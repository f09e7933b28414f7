//! Container tasks: a client's OCI image archive (what `docker save`, `podman save
//! --format oci-archive` or `skopeo copy ... oci-archive:` writes) read without trusting
//! it, its layers unpacked once each into a bounded cache keyed by digest and stacked
//! into the root filesystem a task runs in (`image`, `layer`, `cache`), and the task's
//! command run in it under bubblewrap (`sandbox`), with the machine's NVIDIA driver where
//! it asks for GPUs (`nvidia`); and an image archive written from a directory tree
//! (`build`), for images made without a container engine.
//!
//! Everything here reads bytes a stranger chose: every blob's digest is checked before it
//! is used, every layer entry is checked before it is written (no `..`, no absolute path,
//! no link that leaves the image, no device node, no write through a link), set-id bits
//! are cleared, and a layer may unpack to no more than its limit.

pub mod build;
pub mod cache;
pub mod digest;
pub mod image;
pub mod layer;
pub mod nvidia;
pub mod sandbox;

pub use cache::Cache;
pub use digest::Digest;
pub use image::{Image, ImageConfig};
pub use layer::Limits;

use std::path::PathBuf;

/// Why an image cannot be used; nothing was written outside the cache's own scratch
/// directory, which is removed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading the archive or writing the cache failed on this machine.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The archive holds neither an OCI layout (`index.json`) nor a docker-archive
    /// manifest (`manifest.json`).
    #[error("not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker-archive)")]
    NotAnImage,
    /// A document of the image does not parse, or lacks what an image needs.
    #[error("{what}: {why}")]
    Malformed {
        /// The document: `index.json`, the manifest, the config.
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// The image names a blob the archive does not hold.
    #[error("the archive lacks {0}, which the image names")]
    Missing(String),
    /// A blob's bytes do not have the digest the image gives for it.
    #[error("{what} has digest {got}, not the {want} the image names")]
    DigestMismatch {
        /// The blob: `layer 2`, `the config`, ...
        what: String,
        /// The digest named.
        want: Digest,
        /// The digest of the bytes.
        got: Digest,
    },
    /// A layer entry that would write outside the image or create what a task must not
    /// have.
    #[error("layer entry {path:?} is refused: {why}")]
    Hostile {
        /// The entry's path as the layer gives it.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// A layer unpacks to more than the limit.
    #[error("a layer unpacks to more than {limit} {what}")]
    TooLarge {
        /// `bytes` or `entries`.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
}

/// The error for `source` at `path`.
pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io { path: path.to_path_buf(), source }
}
