//! Moving a task's files through the blob store: staging a spec's program and inputs for
//! a runtime, delivering a result (its manifest and every file), and fetching a result
//! back by its hash, checking each file on arrival.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::{Client, ClientError};
use ogpu_core::manifest::{ManifestError, OutputFile};
use ogpu_core::spec::TaskSpec;
use ogpu_core::{BlobHash, Hash};

/// What went wrong moving a task's files.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Uploading or downloading a blob failed, or its bytes did not match its hash.
    #[error("blob {hash}: {source}")]
    Blob {
        /// The blob's hash: the one asked for, or the one the file should have.
        hash: BlobHash,
        /// What the API or the transport reported.
        source: ClientError,
    },
    /// A local file or directory could not be read, created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A result's manifest does not parse.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io { path: path.to_path_buf(), source }
}

fn download(client: &Client, hash: &BlobHash, target: &Path) -> Result<u64, TransferError> {
    let file = File::create(target).map_err(io(target))?;
    let mut out = BufWriter::new(file);
    let size = client.download_blob(hash, &mut out).map_err(|source| TransferError::Blob { hash: *hash, source })?;
    std::io::Write::flush(&mut out).map_err(io(target))?;
    Ok(size)
}

/// Downloads the spec's inputs into `input_dir`, each under its name, and returns the
/// program's bytes.
pub fn stage(client: &Client, spec: &TaskSpec, input_dir: &Path) -> Result<Vec<u8>, TransferError> {
    std::fs::create_dir_all(input_dir).map_err(io(input_dir))?;
    for (name, hash) in &spec.workload.inputs {
        download(client, hash, &input_dir.join(name))?;
    }
    let mut program = Vec::new();
    let hash = spec.workload.program;
    client.download_blob(&hash, &mut program).map_err(|source| TransferError::Blob { hash, source })?;
    Ok(program)
}

/// Uploads every output file and then the manifest that lists them, so that anyone who
/// can read the manifest can fetch the whole result.
pub fn deliver(client: &Client, output_dir: &Path, files: &[OutputFile], manifest: &[u8]) -> Result<(), TransferError> {
    for file in files {
        let path = output_dir.join(&file.path);
        let reader = File::open(&path).map_err(io(&path))?;
        client.upload_blob(reader).map_err(|source| TransferError::Blob { hash: file.hash, source })?;
    }
    let hash = BlobHash(Hash::of_bytes(manifest));
    client.upload_blob(manifest).map_err(|source| TransferError::Blob { hash, source })?;
    Ok(())
}

/// Fetches the result whose manifest hashes to `output` into `dir`; returns its files.
pub fn fetch(client: &Client, output: &Hash, dir: &Path) -> Result<Vec<OutputFile>, TransferError> {
    let hash = BlobHash(*output);
    let mut manifest = Vec::new();
    client.download_blob(&hash, &mut manifest).map_err(|source| TransferError::Blob { hash, source })?;
    let files = ogpu_core::manifest::parse(&manifest)?;
    for file in &files {
        // the manifest admits only plain relative paths, so this stays inside `dir`.
        let target = dir.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        download(client, &file.hash, &target)?;
    }
    Ok(files)
}
