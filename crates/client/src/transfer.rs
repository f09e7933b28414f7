//! Moving files through the blob store: one file up or down with progress reports, a
//! spec's program and inputs staged for a runtime, a result delivered (its manifest and
//! every file), and a result fetched back by its hash, each file checked on arrival.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::private::BlobKeys;
use crate::{Client, ClientError};
use ogpu_core::manifest::{ManifestError, OutputFile};
use ogpu_core::sealed::SealError;
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
    /// Uploading a file failed.
    #[error("uploading {path}: {source}")]
    Upload {
        /// The file.
        path: PathBuf,
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
    /// A private task's blob has no key here, or does not open with its key.
    #[error("sealed blob {hash}: {reason}")]
    Sealed {
        /// The sealed blob.
        hash: BlobHash,
        /// Why it cannot be read.
        reason: String,
    },
}

impl TransferError {
    /// What the API or the transport reported, when moving a blob failed there.
    pub fn client_error(&self) -> Option<&ClientError> {
        match self {
            TransferError::Blob { source, .. } | TransferError::Upload { source, .. } => Some(source),
            TransferError::Io { .. } | TransferError::Manifest(_) | TransferError::Sealed { .. } => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io { path: path.to_path_buf(), source }
}

/// How far a transfer of the file at `path` has come: `done` bytes of `size` (a download's
/// size is known only once it ends).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The local file read from or written to.
    pub path: &'a Path,
    /// Bytes moved so far.
    pub done: u64,
    /// The whole transfer's size in bytes, when known.
    pub size: Option<u64>,
}

/// Uploads the file at `path`, reporting each read to `on_progress`; returns its hash and
/// size as the store has them.
pub fn upload(
    client: &Client,
    path: &Path,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<(BlobHash, u64), TransferError> {
    let file = File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    let reader =
        Counting { inner: file, done: 0, report: |done| on_progress(Progress { path, done, size: Some(size) }) };
    client.upload_blob(reader).map_err(|source| TransferError::Upload { path: path.to_path_buf(), source })
}

/// Downloads blob `hash` into a new file at `target`, reporting each write to
/// `on_progress`; the bytes are checked against the hash as they arrive, and a download
/// that fails its check is an error (the file then holds what arrived).
pub fn download(
    client: &Client,
    hash: &BlobHash,
    target: &Path,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<u64, TransferError> {
    let file = File::create(target).map_err(io(target))?;
    let mut out = Counting {
        inner: BufWriter::new(file),
        done: 0,
        report: |done| on_progress(Progress { path: target, done, size: None }),
    };
    let size = client.download_blob(hash, &mut out).map_err(|source| TransferError::Blob { hash: *hash, source })?;
    out.inner.flush().map_err(io(target))?;
    Ok(size)
}

/// A reader or writer that reports how many bytes have passed through it.
struct Counting<T, F> {
    inner: T,
    done: u64,
    report: F,
}

impl<T, F: FnMut(u64)> Counting<T, F> {
    fn count(&mut self, bytes: usize) -> usize {
        self.done += bytes as u64;
        (self.report)(self.done);
        bytes
    }
}

impl<R: Read, F: FnMut(u64)> Read for Counting<R, F> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        Ok(self.count(read))
    }
}

impl<W: Write, F: FnMut(u64)> Write for Counting<W, F> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        Ok(self.count(written))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Downloads the spec's inputs into `input_dir`, each under its name, and returns the
/// program's bytes. A private task's blobs are opened with `keys` on the way: each sealed
/// input is downloaded whole next to `input_dir` first (its hash checked), then opened
/// chunk by chunk into place, so no input sits whole in memory.
pub fn stage(
    client: &Client,
    spec: &TaskSpec,
    keys: Option<&BlobKeys>,
    input_dir: &Path,
) -> Result<Vec<u8>, TransferError> {
    std::fs::create_dir_all(input_dir).map_err(io(input_dir))?;
    let sealed = input_dir.with_extension("sealed");
    for (name, hash) in &spec.workload.inputs {
        let target = input_dir.join(name);
        match keys {
            None => download(client, hash, &target, |_| {}).map(drop)?,
            Some(keys) => {
                download(client, hash, &sealed, |_| {})?;
                let opened = File::open(&sealed)
                    .map_err(io(&sealed))
                    .and_then(|mut from| open_into(keys, hash, &mut from, &target));
                let _ = std::fs::remove_file(&sealed);
                opened?;
            }
        }
    }
    let mut program = Vec::new();
    let hash = spec.workload.program;
    client.download_blob(&hash, &mut program).map_err(|source| TransferError::Blob { hash, source })?;
    match keys {
        None => Ok(program),
        Some(keys) => {
            let mut plain = Vec::new();
            open_with(keys, &hash, &mut program.as_slice(), &mut plain, input_dir)?;
            Ok(plain)
        }
    }
}

/// Opens sealed blob `hash` from `sealed` into a new file at `target`.
fn open_into(keys: &BlobKeys, hash: &BlobHash, sealed: &mut impl Read, target: &Path) -> Result<(), TransferError> {
    let mut out = BufWriter::new(File::create(target).map_err(io(target))?);
    open_with(keys, hash, sealed, &mut out, target)?;
    out.flush().map_err(io(target))
}

/// Opens sealed blob `hash` from `sealed` into `plain`, on its way to `target`.
fn open_with(
    keys: &BlobKeys,
    hash: &BlobHash,
    sealed: &mut impl Read,
    plain: &mut impl Write,
    target: &Path,
) -> Result<(), TransferError> {
    let unreadable = |reason: String| TransferError::Sealed { hash: *hash, reason };
    let key = keys.get(hash).ok_or_else(|| unreadable("no key for it among the task's keys".into()))?;
    // This machine's own trouble reading or writing is not the blob's fault.
    ogpu_core::sealed::open(key, sealed, plain).map_err(|e| match e {
        SealError::Io(source) => TransferError::Io { path: target.to_path_buf(), source },
        e => unreadable(e.to_string()),
    })?;
    Ok(())
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
        download(client, &file.hash, &target, |_| {})?;
    }
    Ok(files)
}
