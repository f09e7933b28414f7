//! The blob store: task programs, inputs and results, content-addressed by blake3.
//!
//! A blob is written through a [`BlobWriter`] that hashes and counts as bytes arrive, so
//! an upload or a transfer from a peer is streamed to disk and never held in memory, and
//! becomes visible under its hash only once it is complete, within the size limit, and
//! (for a transfer) equal to the hash that was asked for. Peers read blobs back in
//! [`CHUNK_BYTES`] chunks.
//!
//! Blobs are kept while something on chain refers to them (see [`pinned`]: a task's
//! program and inputs, a pool's model, a result and the files its manifest lists);
//! anything else is collected once it is older than a grace period, which gives a client
//! time to submit the task its uploads are for, and a provider to commit the result it
//! uploaded.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, SystemTime};

use borsh::{BorshDeserialize, BorshSerialize};
use ogpu_chain::State;
use ogpu_chain::state::{Outcome, Phase, Stage};
use ogpu_core::encoding::Canonical;
use ogpu_core::{BlobHash, Hash, manifest};

/// What one transfer request carries at most.
pub const CHUNK_BYTES: usize = 1 << 20;

/// A peer's request for chunk `chunk` of a blob.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChunkRequest {
    pub hash: BlobHash,
    pub chunk: u64,
}

impl Canonical for ChunkRequest {
    const MAX_ENCODED_LEN: usize = 40;
}

/// The answer: the chunk and the blob's whole length, or `None` when the blob is not here.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChunkAnswer(pub Option<(u64, Vec<u8>)>);

impl Canonical for ChunkAnswer {
    const MAX_ENCODED_LEN: usize = CHUNK_BYTES + 16;
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the blob is over the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the bytes hash to {got}, not the {expected} asked for")]
    HashMismatch { expected: BlobHash, got: BlobHash },
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    /// Distinguishes concurrent writers' temporary files.
    next_temp: AtomicU64,
}

impl BlobStore {
    pub fn open(dir: &Path) -> Result<BlobStore, BlobError> {
        fs::create_dir_all(dir.join("tmp"))?;
        // Temporary files left by a process that was killed mid-write are incomplete.
        for entry in fs::read_dir(dir.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(BlobStore { dir: dir.to_path_buf(), next_temp: AtomicU64::new(0) })
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.to_string())
    }

    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    /// The blob's length, if it is here.
    pub fn size(&self, hash: &BlobHash) -> Option<u64> {
        fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }

    pub fn open_blob(&self, hash: &BlobHash) -> Result<Option<File>, BlobError> {
        match File::open(self.path(hash)) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A whole blob of at most one chunk (a result's manifest), if it is here.
    fn read_small(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, BlobError> {
        match self.chunk(hash, 0)? {
            Some((bytes, len)) if len == bytes.len() as u64 => Ok(Some(bytes)),
            _ => Ok(None),
        }
    }

    /// Chunk `index` of a blob and the blob's whole length, if the blob is here.
    pub fn chunk(&self, hash: &BlobHash, index: u64) -> Result<Option<(Vec<u8>, u64)>, BlobError> {
        let Some(mut file) = self.open_blob(hash)? else { return Ok(None) };
        let len = file.metadata()?.len();
        let start = index.saturating_mul(CHUNK_BYTES as u64).min(len);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::with_capacity(CHUNK_BYTES.min((len - start) as usize));
        file.take(CHUNK_BYTES as u64).read_to_end(&mut bytes)?;
        Ok(Some((bytes, len)))
    }

    /// Deletes every blob that `pinned` does not hold and that arrived more than `grace`
    /// ago; returns how many blobs and bytes went.
    pub fn collect(&self, pinned: &BTreeSet<BlobHash>, grace: Duration) -> Result<(usize, u64), BlobError> {
        let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let (mut count, mut bytes) = (0, 0);
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(hash) = entry.file_name().to_str().and_then(|name| name.parse::<Hash>().ok()).map(BlobHash) else {
                continue;
            };
            let metadata = entry.metadata()?;
            if pinned.contains(&hash) || !metadata.is_file() || metadata.modified()? > cutoff {
                continue;
            }
            fs::remove_file(entry.path())?;
            count += 1;
            bytes += metadata.len();
        }
        Ok((count, bytes))
    }

    /// A writer for a new blob of at most `limit` bytes.
    pub fn writer(&self, limit: u64) -> Result<BlobWriter, BlobError> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join("tmp").join(format!("{}-{n}", std::process::id()));
        Ok(BlobWriter {
            dir: self.dir.clone(),
            file: File::create(&temp)?,
            temp,
            hasher: blake3::Hasher::new(),
            len: 0,
            limit,
        })
    }

    /// Stores `bytes` whole: for small blobs and tests.
    pub fn put(&self, bytes: &[u8], limit: u64) -> Result<BlobHash, BlobError> {
        let mut writer = self.writer(limit)?;
        writer.write(bytes)?;
        writer.finish(None)
    }
}

/// The blobs the finalized state refers to: every task's program and inputs, every pool's
/// model, every result revealed or accepted, and the files listed by the manifests of
/// those results that this store holds.
pub fn pinned(state: &State, store: &BlobStore) -> BTreeSet<BlobHash> {
    let mut pinned = BTreeSet::new();
    let mut results = Vec::new();
    for task in state.tasks.values() {
        pinned.extend(task.spec.workload.blobs());
        for executor in &task.executors {
            if let Stage::Revealed(claim) = &executor.stage {
                results.push(claim.output);
            }
            // A private result's index is a manifest of its sealed copies.
            results.extend(executor.sealed.map(|index| index.0));
        }
        match &task.phase {
            Phase::Racing { entries, .. } => results.extend(entries.iter().filter_map(|e| e.claim.map(|c| c.output))),
            Phase::Done(Outcome::Completed { output }) => results.push(*output),
            _ => {}
        }
    }
    pinned.extend(state.pools.values().map(|pool| pool.spec.model));
    for result in results {
        let result = BlobHash(result);
        pinned.insert(result);
        let listed = store.read_small(&result).ok().flatten().and_then(|bytes| manifest::parse(&bytes).ok());
        pinned.extend(listed.into_iter().flatten().map(|file| file.hash));
    }
    pinned
}

/// A blob being written: hashed and counted as it streams to a temporary file.
pub struct BlobWriter {
    /// The store's directory, where the finished blob goes.
    dir: PathBuf,
    file: File,
    temp: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
    limit: u64,
}

impl BlobWriter {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.len += bytes.len() as u64;
        if self.len > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(bytes);
        self.file.write_all(bytes)?;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.len
    }

    /// Makes the blob visible under its hash, after checking it is `expected` when given.
    pub fn finish(self, expected: Option<BlobHash>) -> Result<BlobHash, BlobError> {
        let got = BlobHash(Hash(*self.hasher.finalize().as_bytes()));
        if let Some(expected) = expected.filter(|e| *e != got) {
            return Err(BlobError::HashMismatch { expected, got });
        }
        self.file.sync_all()?;
        fs::rename(&self.temp, self.dir.join(got.to_string()))?;
        Ok(got)
    }
}

impl Drop for BlobWriter {
    /// An abandoned or failed write leaves nothing behind.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_found_by_their_blake3_hash_and_read_back_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..CHUNK_BYTES + 10).map(|i| (i % 251) as u8).collect();
        let hash = store.put(&bytes, 1 << 30).unwrap();
        assert_eq!(hash, BlobHash(Hash::of_bytes(&bytes)));
        assert_eq!(store.size(&hash), Some(bytes.len() as u64));
        let (first, len) = store.chunk(&hash, 0).unwrap().unwrap();
        let (second, _) = store.chunk(&hash, 1).unwrap().unwrap();
        assert_eq!((first.len(), second.len(), len), (CHUNK_BYTES, 10, bytes.len() as u64));
        assert_eq!([first, second].concat(), bytes);
        assert_eq!(store.chunk(&hash, 9).unwrap().unwrap().0, Vec::<u8>::new(), "past the end is empty");
        assert!(store.chunk(&BlobHash(Hash::of_bytes(b"absent")), 0).unwrap().is_none());
    }

    #[test]
    fn oversize_and_corrupt_blobs_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        assert!(matches!(store.put(&[0; 11], 10), Err(BlobError::TooLarge { limit: 10 })));
        let expected = BlobHash(Hash::of_bytes(b"what was asked for"));
        let mut writer = store.writer(100).unwrap();
        writer.write(b"something else").unwrap();
        assert!(matches!(writer.finish(Some(expected)), Err(BlobError::HashMismatch { .. })));
        assert!(!store.contains(&expected) && !store.contains(&BlobHash(Hash::of_bytes(b"something else"))));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no temporary file is left");
    }
}
