//! Private tasks: the content keys of a task's sealed blobs, opened from the envelopes its
//! client posted on chain (to a worker, or to itself), wrapped again for the workers that
//! lack them, and the key each executor seals its result under (see docs/private-data.md).

use std::collections::BTreeMap;

use ogpu_chain::state::Task;
use ogpu_core::sealed::{ContentKey, Envelope, ReaderKey, ReaderSecret, SealError, key_context};
use ogpu_core::spec::TaskSpec;
use ogpu_core::{Address, BlobHash, TaskId};
use rand_core::OsRng;

/// Why a worker cannot read a private task.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The task has no keys: its blobs are plain.
    #[error("the task is not private")]
    NotPrivate,
    /// The client has not posted this worker's keys (yet).
    #[error("no keys were posted to {0}")]
    NotPosted(Address),
    /// The keys opened lack one of the task's blobs.
    #[error("the task's keys lack one of its blobs")]
    MissingKey,
    /// An envelope does not open: it is for another reader, task or blob, or was altered.
    #[error("the key of blob {blob}: {source}")]
    Open {
        /// The blob whose key it should hold.
        blob: BlobHash,
        /// Why it does not open.
        source: SealError,
    },
}

/// The content keys of a private task's blobs, by blob.
pub struct BlobKeys(BTreeMap<BlobHash, ContentKey>);

impl BlobKeys {
    /// Keys the client made itself, sealing its files.
    pub(crate) fn new(keys: BTreeMap<BlobHash, ContentKey>) -> BlobKeys {
        BlobKeys(keys)
    }

    /// Opens the envelopes `task` holds for `me` with `me`'s reader secret. The chain
    /// took exactly one per blob, so a short list cannot reach here.
    pub fn open(id: &TaskId, task: &Task, me: &Address, secret: &ReaderSecret) -> Result<BlobKeys, KeysError> {
        if task.spec.private.is_none() {
            return Err(KeysError::NotPrivate);
        }
        let envelopes = task.keys.get(me).ok_or(KeysError::NotPosted(*me))?;
        // `PostKeys` lists the keys in the order of `Workload::blobs`.
        let keys = task
            .spec
            .workload
            .blobs()
            .zip(envelopes)
            .map(|(blob, envelope)| {
                let key = envelope.open(secret, &key_context(id, me, &blob));
                key.map(|key| (blob, key)).map_err(|source| KeysError::Open { blob, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(BlobKeys(keys))
    }

    /// The key of `blob`, if it is one of the task's.
    pub fn get(&self, blob: &BlobHash) -> Option<&ContentKey> {
        self.0.get(blob)
    }

    /// The keys of `spec`'s blobs wrapped to `reader`, the reader key of `to`, for task
    /// `id`: one envelope per blob, in the order of `Workload::blobs`, as `PostKeys` takes
    /// them. `None` if a blob of the spec has no key here.
    pub fn wrap(&self, id: &TaskId, spec: &TaskSpec, to: &Address, reader: &ReaderKey) -> Option<Vec<Envelope>> {
        spec.workload
            .blobs()
            .map(|blob| {
                let key = self.0.get(&blob)?;
                Some(Envelope::wrap(key, reader, &key_context(id, to, &blob), &mut OsRng))
            })
            .collect()
    }

    /// The key `executor` seals its result of task `id` under.
    pub fn result_key(&self, id: &TaskId, spec: &TaskSpec, executor: &Address) -> Option<ContentKey> {
        let program = self.0.get(&spec.workload.program)?;
        Some(ContentKey::for_result(program, id, executor))
    }
}
