//! Moving files through the blob store: one file up or down with progress reports, sealed
//! or not, a spec's program and inputs staged for a runtime, a result delivered (its
//! manifest and every file; a private task's sealed, with an index of the sealed copies),
//! and a result read back by its hash, each file checked on arrival.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::private::BlobKeys;
use crate::{Client, ClientError};
use ogpu_core::manifest::{self, ManifestError, OutputFile};
use ogpu_core::sealed::{self, ContentKey, SealError};
use ogpu_core::spec::TaskSpec;
use ogpu_core::{BlobHash, Hash};
use rand_core::OsRng;

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

/// Uploads what `plain` yields sealed under `key` (errors name it `path`), reporting the
/// sealed bytes sent so far to `on_progress`: sealing runs on a thread of its own into a
/// pipe that the upload reads as it goes, so sealing and sending overlap and the sealed
/// blob never sits whole in memory. Returns the sealed blob's hash and size.
pub fn upload_sealed(
    client: &Client,
    mut plain: impl Read + Send,
    key: &ContentKey,
    path: &Path,
    on_progress: impl FnMut(u64),
) -> Result<(BlobHash, u64), TransferError> {
    let (reader, mut writer) = std::io::pipe().map_err(io(path))?;
    std::thread::scope(|scope| {
        let sealer = scope.spawn(move || sealed::seal(key, &mut OsRng, &mut plain, &mut writer));
        let mut reader = Counting { inner: reader, done: 0, report: on_progress };
        let uploaded = client.upload_blob(&mut reader);
        // An upload cut short leaves the sealer writing to nobody: it stops on a broken pipe.
        drop(reader);
        let sealed = sealer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let failed = |source| TransferError::Upload { path: path.to_path_buf(), source };
        match (sealed, uploaded) {
            (Ok(size), Ok((hash, stored))) if size == stored => Ok((hash, stored)),
            (Ok(size), Ok((_, stored))) => Err(failed(ClientError::Decode {
                what: format!("the upload of {}", path.display()),
                reason: format!("the node stored {stored} of {size} sealed bytes"),
            })),
            // The sealer stopped because the upload had: the upload's error is the cause.
            (Err(SealError::Io(broken)), Err(source)) if broken.kind() == std::io::ErrorKind::BrokenPipe => {
                Err(failed(source))
            }
            // Reading the file failed; what reached the node is incomplete and is not named.
            (Err(SealError::Io(source)), _) => Err(TransferError::Io { path: path.to_path_buf(), source }),
            (Err(error), _) => {
                Err(TransferError::Io { path: path.to_path_buf(), source: std::io::Error::other(error) })
            }
            (Ok(_), Err(source)) => Err(failed(source)),
        }
    })
}

/// Downloads sealed blob `hash` and opens it with `key` into `plain` as it arrives (on
/// its way to `target`, which errors name): the download runs on a thread of its own into
/// a pipe, so neither the sealed nor the opened blob sits whole in memory.
fn download_opened(
    client: &Client,
    hash: &BlobHash,
    key: &ContentKey,
    plain: &mut impl Write,
    target: &Path,
) -> Result<u64, TransferError> {
    let (mut reader, mut writer) = std::io::pipe().map_err(io(target))?;
    std::thread::scope(|scope| {
        let fetcher = scope.spawn(move || client.download_blob(hash, &mut writer));
        let opened = sealed::open(key, &mut reader, plain);
        // A blob that stops opening leaves the download writing to nobody: it stops too.
        drop(reader);
        let fetched = fetcher.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (opened, fetched) {
            (Ok(size), Ok(_)) => Ok(size),
            // This machine's own trouble writing is not the blob's fault.
            (Err(SealError::Io(source)), _) => Err(TransferError::Io { path: target.to_path_buf(), source }),
            (Err(error), Ok(_)) => Err(TransferError::Sealed { hash: *hash, reason: error.to_string() }),
            (Err(error), Err(ClientError::Io(broken))) if broken.kind() == std::io::ErrorKind::BrokenPipe => {
                Err(TransferError::Sealed { hash: *hash, reason: error.to_string() })
            }
            // What was opened was cut short by the download failing.
            (_, Err(source)) => Err(TransferError::Blob { hash: *hash, source }),
        }
    })
}

/// Downloads the spec's inputs into `input_dir`, each under its name, and returns the
/// program's bytes. A private task's blobs are opened with `keys` as they arrive.
pub fn stage(
    client: &Client,
    spec: &TaskSpec,
    keys: Option<&BlobKeys>,
    input_dir: &Path,
) -> Result<Vec<u8>, TransferError> {
    std::fs::create_dir_all(input_dir).map_err(io(input_dir))?;
    let key_of = |hash: &BlobHash| -> Result<Option<&ContentKey>, TransferError> {
        let Some(keys) = keys else { return Ok(None) };
        let reason = "no key for it among the task's keys".to_string();
        keys.get(hash).map(Some).ok_or(TransferError::Sealed { hash: *hash, reason })
    };
    for (name, hash) in &spec.workload.inputs {
        let target = input_dir.join(name);
        match key_of(hash)? {
            None => download(client, hash, &target, |_| {}).map(drop)?,
            Some(key) => {
                let mut out = BufWriter::new(File::create(&target).map_err(io(&target))?);
                download_opened(client, hash, key, &mut out, &target)?;
                out.flush().map_err(io(&target))?;
            }
        }
    }
    let mut program = Vec::new();
    let hash = spec.workload.program;
    match key_of(&hash)? {
        None => client
            .download_blob(&hash, &mut program)
            .map(drop)
            .map_err(|source| TransferError::Blob { hash, source })?,
        Some(key) => download_opened(client, &hash, key, &mut program, input_dir).map(drop)?,
    }
    Ok(program)
}

/// Uploads every output file and then the manifest that lists them, so that anyone who
/// can read the manifest can fetch the whole result. A private task's result is sealed
/// under `seal` instead: the manifest and every file, then the index of the sealed copies
/// (see `ogpu_core::manifest::write_sealed_index`), whose hash is returned.
pub fn deliver(
    client: &Client,
    output_dir: &Path,
    files: &[OutputFile],
    manifest: &[u8],
    seal: Option<&ContentKey>,
) -> Result<Option<BlobHash>, TransferError> {
    let Some(key) = seal else {
        for file in files {
            let path = output_dir.join(&file.path);
            let reader = File::open(&path).map_err(io(&path))?;
            client.upload_blob(reader).map_err(|source| TransferError::Blob { hash: file.hash, source })?;
        }
        let hash = BlobHash(Hash::of_bytes(manifest));
        client.upload_blob(manifest).map_err(|source| TransferError::Blob { hash, source })?;
        return Ok(None);
    };
    let mut copies = vec![upload_sealed(client, manifest, key, &output_dir.join("the manifest"), drop)?];
    for file in files {
        let path = output_dir.join(&file.path);
        let reader = File::open(&path).map_err(io(&path))?;
        copies.push(upload_sealed(client, reader, key, &path, drop)?);
    }
    let index = manifest::write_sealed_index(&copies);
    let hash = BlobHash(Hash::of_bytes(&index));
    client.upload_blob(index.as_slice()).map_err(|source| TransferError::Blob { hash, source })?;
    Ok(Some(hash))
}

/// A delivered result, read back: its manifest checked against the result hash, then its
/// files by their hash, each checked on arrival. A private result is read through the
/// sealed copies its index lists, opened with the result key.
pub struct Delivered<'a> {
    client: &'a Client,
    files: Vec<OutputFile>,
    /// A private result's key, and the sealed copy of each file by the file's hash.
    sealed: Option<(ContentKey, BTreeMap<BlobHash, BlobHash>)>,
}

impl<'a> Delivered<'a> {
    /// Reads the manifest of result `output`: from the store, or for a private result
    /// through the sealed `index` with `key`.
    pub fn open(
        client: &'a Client,
        output: &Hash,
        sealed: Option<(BlobHash, ContentKey)>,
    ) -> Result<Delivered<'a>, TransferError> {
        let manifest_hash = BlobHash(*output);
        let Some((index, key)) = sealed else {
            let mut manifest = Vec::new();
            client
                .download_blob(&manifest_hash, &mut manifest)
                .map_err(|source| TransferError::Blob { hash: manifest_hash, source })?;
            let files = manifest::parse(&manifest)?;
            return Ok(Delivered { client, files, sealed: None });
        };
        let mut listed = Vec::new();
        client.download_blob(&index, &mut listed).map_err(|source| TransferError::Blob { hash: index, source })?;
        let copies = manifest::parse_sealed_index(&listed)?;
        let mut manifest = Checked::new(Vec::new());
        download_opened(client, &copies[0].hash, &key, &mut manifest, Path::new("the manifest"))?;
        let manifest = manifest.into_checked(&manifest_hash, &copies[0].hash)?;
        let files = manifest::parse(&manifest)?;
        if copies.len() != files.len() + 1 {
            let reason = format!("it lists {} sealed files for {} in the manifest", copies.len() - 1, files.len());
            return Err(TransferError::Sealed { hash: index, reason });
        }
        let by_file = files.iter().zip(&copies[1..]).map(|(file, copy)| (file.hash, copy.hash)).collect();
        Ok(Delivered { client, files, sealed: Some((key, by_file)) })
    }

    /// The files the manifest lists.
    pub fn files(&self) -> &[OutputFile] {
        &self.files
    }

    /// Writes the file whose hash is `file` into `out` (on its way to `target`, which
    /// errors name), checked against that hash.
    pub fn read_into(&self, file: &BlobHash, out: &mut impl Write, target: &Path) -> Result<u64, TransferError> {
        let Some((key, copies)) = &self.sealed else {
            return self.client.download_blob(file, out).map_err(|source| TransferError::Blob { hash: *file, source });
        };
        let reason = "the result's index lists no sealed copy of it".to_string();
        let copy = copies.get(file).ok_or(TransferError::Sealed { hash: *file, reason })?;
        let mut checked = Checked::new(out);
        let size = download_opened(self.client, copy, key, &mut checked, target)?;
        checked.into_checked(file, copy)?;
        Ok(size)
    }

    /// Writes every file under `dir`, each at its path in the manifest.
    pub fn write_all(&self, dir: &Path) -> Result<(), TransferError> {
        for file in &self.files {
            // the manifest admits only plain relative paths, so this stays inside `dir`.
            self.write_file(file, &dir.join(&file.path))?;
        }
        Ok(())
    }

    /// Writes one of its files to `target`, making the directories above it.
    pub fn write_file(&self, file: &OutputFile, target: &Path) -> Result<(), TransferError> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = BufWriter::new(File::create(target).map_err(io(target))?);
        self.read_into(&file.hash, &mut out, target)?;
        out.flush().map_err(io(target))
    }
}

/// A writer that hashes what passes through it, to check an opened blob against the hash
/// of its plaintext.
struct Checked<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W> Checked<W> {
    fn new(inner: W) -> Checked<W> {
        Checked { inner, hasher: blake3::Hasher::new() }
    }

    /// What was written, if it hashes to `want`; the error names the sealed `copy`.
    fn into_checked(self, want: &BlobHash, copy: &BlobHash) -> Result<W, TransferError> {
        let got = Hash(*self.hasher.finalize().as_bytes());
        if got != want.0 {
            let reason = format!("it opens to bytes hashing to {got}, not {}", want.0);
            return Err(TransferError::Sealed { hash: *copy, reason });
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Fetches the result whose manifest hashes to `output` into `dir` (a private result
/// through its sealed `index` with its key); returns its files.
pub fn fetch(
    client: &Client,
    output: &Hash,
    sealed: Option<(BlobHash, ContentKey)>,
    dir: &Path,
) -> Result<Vec<OutputFile>, TransferError> {
    let delivered = Delivered::open(client, output, sealed)?;
    delivered.write_all(dir)?;
    Ok(delivered.files)
}
