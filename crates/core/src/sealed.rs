//! Private blobs: a blob sealed under a content key, streamed in chunks so that a 256 MiB
//! input never sits whole in memory, and the content key wrapped to one reader's X25519
//! key for one task, so that an envelope posted for one task opens for nothing else.
//!
//! A sealed blob is a header, then chunks of at most [`CHUNK`] plaintext bytes, each
//! sealed with XChaCha20-Poly1305 under a nonce made of the header's random prefix, the
//! chunk's number and whether it is the last one (the STREAM construction): chunks cannot
//! be reordered, dropped or cut off at a chunk boundary without the reader noticing. The
//! header is every chunk's associated data.
//!
//! Randomness (content keys, nonces, ephemeral keys) comes from the caller's RNG: this
//! crate has no ambient randomness.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use curve25519_dalek::MontgomeryPoint;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::address::Address;
use crate::crypto::SecretKey;
use crate::hash::{Hash, ParseHashError};
use crate::ids::{BlobHash, TaskId};
use crate::serde_text::serde_via_text;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 << 10;
const MAGIC: &[u8; 8] = b"ogpuseal";
const VERSION: u8 = 1;
/// Magic, version, and the 19-byte nonce prefix.
const HEADER: usize = 8 + 1 + 19;
const TAG: usize = 16;

/// What went wrong opening a sealed blob or an envelope.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed blob (no ogpuseal header of version 1)")]
    NotSealed,
    #[error("chunk {0} does not authenticate: the blob was altered or cut inside it, or this is not its key")]
    Chunk(u64),
    #[error("the sealed blob ends before its last chunk: it was cut short")]
    Truncated,
    #[error("bytes follow the last chunk")]
    Trailing,
    #[error("the key envelope does not open: it is for another reader, task or blob, or was altered")]
    Envelope,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A blob's content key: 32 bytes, wiped when dropped.
pub struct ContentKey(Zeroizing<[u8; 32]>);

impl ContentKey {
    pub fn generate(rng: &mut impl CryptoRngCore) -> ContentKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        ContentKey(key)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key `executor` seals its result of `task` under, derived from the task's
    /// program key: whoever was given the task's keys (its client, executors and
    /// verifiers) can read the result, and nobody else, with no key posted for it.
    pub fn for_result(program: &ContentKey, task: &TaskId, executor: &Address) -> ContentKey {
        let material = Zeroizing::new([&program.0[..], &task.0.0, &executor.0].concat());
        ContentKey(Zeroizing::new(blake3::derive_key("ogpu result key v1", &material)))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

fn nonce(prefix: &[u8], counter: u64, last: bool) -> Result<XNonce, SealError> {
    // 2^32 chunks of 64 KiB is 256 TiB: far past any blob the chain takes.
    let counter = u32::try_from(counter).map_err(|_| SealError::Chunk(counter))?;
    let mut nonce = [0u8; 24];
    nonce[..19].copy_from_slice(prefix);
    nonce[19..23].copy_from_slice(&counter.to_be_bytes());
    nonce[23] = u8::from(last);
    Ok(nonce.into())
}

/// Reads until `buffer` is full or the input ends; returns how much was read.
fn fill(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The size of `plain_len` bytes sealed: the header, then every chunk with its tag (an
/// empty blob is one empty last chunk).
pub const fn sealed_len(plain_len: u64) -> u64 {
    let chunks = plain_len.div_ceil(CHUNK as u64);
    let chunks = if chunks == 0 { 1 } else { chunks };
    HEADER as u64 + plain_len + chunks * TAG as u64
}

/// Seals everything `plain` yields into `sealed`; returns the sealed size.
pub fn seal(
    key: &ContentKey,
    rng: &mut impl CryptoRngCore,
    plain: &mut impl Read,
    sealed: &mut impl Write,
) -> Result<u64, SealError> {
    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8] = VERSION;
    rng.fill_bytes(&mut header[9..]);
    sealed.write_all(&header)?;
    let cipher = key.cipher();
    // One chunk ahead: a chunk is the last only if nothing follows it.
    let mut current = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut length = fill(plain, &mut current)?;
    let mut written = HEADER as u64;
    let mut counter = 0u64;
    loop {
        let next_length = if length == CHUNK { fill(plain, &mut next)? } else { 0 };
        let last = next_length == 0;
        let chunk = &mut current[..length];
        let tag = cipher
            .encrypt_in_place_detached(&nonce(&header[9..], counter, last)?, &header, chunk)
            .map_err(|_| SealError::Chunk(counter))?;
        sealed.write_all(chunk)?;
        sealed.write_all(&tag)?;
        written += (length + TAG) as u64;
        if last {
            return Ok(written);
        }
        std::mem::swap(&mut current, &mut next);
        length = next_length;
        counter += 1;
    }
}

/// Opens a sealed blob from `sealed` into `plain`; returns the plaintext size. Nothing is
/// written for a chunk that does not authenticate, and a blob cut short is an error even
/// at a chunk boundary.
pub fn open(key: &ContentKey, sealed: &mut impl Read, plain: &mut impl Write) -> Result<u64, SealError> {
    let mut header = [0u8; HEADER];
    if fill(sealed, &mut header)? < HEADER || &header[..8] != MAGIC || header[8] != VERSION {
        return Err(SealError::NotSealed);
    }
    let cipher = key.cipher();
    let mut current = vec![0u8; CHUNK + TAG];
    let mut next = vec![0u8; CHUNK + TAG];
    let mut length = fill(sealed, &mut current)?;
    let mut opened = 0u64;
    let mut counter = 0u64;
    loop {
        if length < TAG {
            return Err(SealError::Truncated);
        }
        let next_length = if length == CHUNK + TAG { fill(sealed, &mut next)? } else { 0 };
        let last = next_length == 0;
        let (chunk, tag) = current[..length].split_at_mut(length - TAG);
        // Kept to tell the two ways a final chunk can fail apart (below).
        let sealed_chunk = last.then(|| chunk.to_vec());
        let tag = Tag::from_slice(tag);
        if cipher.decrypt_in_place_detached(&nonce(&header[9..], counter, last)?, &header, chunk, tag).is_err() {
            // A chunk that opens as not the last was sealed with more to follow: the blob
            // was cut at a chunk boundary. Otherwise it was altered, or the key is not its.
            let cut = sealed_chunk.is_some_and(|mut copy| {
                let more_to_follow = nonce(&header[9..], counter, false);
                more_to_follow.is_ok_and(|n| cipher.decrypt_in_place_detached(&n, &header, &mut copy, tag).is_ok())
            });
            return Err(if cut { SealError::Truncated } else { SealError::Chunk(counter) });
        }
        plain.write_all(chunk)?;
        opened += chunk.len() as u64;
        if last {
            return Ok(opened);
        }
        std::mem::swap(&mut current, &mut next);
        length = next_length;
        counter += 1;
    }
}

/// A reader's X25519 secret key, wiped when dropped.
pub struct ReaderSecret(Zeroizing<[u8; 32]>);

/// A reader's X25519 public key, as registered on chain; written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ReaderKey(pub [u8; 32]);

impl fmt::Display for ReaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hash(self.0), f)
    }
}

impl fmt::Debug for ReaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Hash(self.0), f)
    }
}

impl FromStr for ReaderKey {
    type Err = ParseHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(ReaderKey(text.parse::<Hash>()?.0))
    }
}

serde_via_text!(ReaderKey);

impl ReaderKey {
    /// Whether the key has a part of large order: a key of small order (zero, among
    /// others) gives every sender the same shared secret, so anyone could open what is
    /// wrapped to it.
    pub fn is_strong(&self) -> bool {
        // A clamped scalar is a multiple of 8, which sends exactly the small-order points
        // to zero.
        MontgomeryPoint(self.0).mul_clamped([0x55; 32]) != MontgomeryPoint([0; 32])
    }
}

impl ReaderSecret {
    pub fn generate(rng: &mut impl CryptoRngCore) -> ReaderSecret {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        ReaderSecret(secret)
    }

    /// The reader key of an account, derived from its signing key: nothing more to keep
    /// safe or back up, and signing and decryption keys stay apart (a different key,
    /// derived one way).
    pub fn derive(account: &SecretKey) -> ReaderSecret {
        ReaderSecret(Zeroizing::new(blake3::derive_key("ogpu reader key v1", account.seed().as_ref())))
    }

    pub fn public(&self) -> ReaderKey {
        ReaderKey(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }
}

/// A content key wrapped to one reader, for one purpose (a task and a blob): an ephemeral
/// X25519 key, a nonce, and the sealed key. Written as 208 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Envelope {
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 24],
    pub sealed_key: [u8; 48],
}

const ENVELOPE_BYTES: usize = 32 + 24 + 48;

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = [&self.ephemeral[..], &self.nonce[..], &self.sealed_key[..]].concat();
        f.write_str(&crate::hex::encode(&bytes))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key envelope is {} hex digits", 2 * ENVELOPE_BYTES)]
pub struct ParseEnvelopeError;

impl FromStr for Envelope {
    type Err = ParseEnvelopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = crate::hex::decode(text).filter(|b| b.len() == ENVELOPE_BYTES).ok_or(ParseEnvelopeError)?;
        let part = |from: usize, to: usize| bytes[from..to].to_vec();
        Ok(Envelope {
            ephemeral: part(0, 32).try_into().map_err(|_| ParseEnvelopeError)?,
            nonce: part(32, 56).try_into().map_err(|_| ParseEnvelopeError)?,
            sealed_key: part(56, ENVELOPE_BYTES).try_into().map_err(|_| ParseEnvelopeError)?,
        })
    }
}

serde_via_text!(Envelope);

/// What the envelope holding `blob`'s key for `worker` on `task` is bound to: an envelope
/// copied from another task, or posted for another worker, does not open.
pub fn key_context(task: &TaskId, worker: &Address, blob: &BlobHash) -> Vec<u8> {
    [&b"ogpu task key v1"[..], &task.0.0, &worker.0, &blob.0.0].concat()
}

/// The key that wraps a content key between the ephemeral and the reader's keys.
fn wrapping_key(shared: MontgomeryPoint, ephemeral: &[u8; 32], reader: &ReaderKey) -> XChaCha20Poly1305 {
    let mut material = Zeroizing::new([0u8; 96]);
    material[..32].copy_from_slice(shared.as_bytes());
    material[32..64].copy_from_slice(ephemeral);
    material[64..].copy_from_slice(&reader.0);
    let key = Zeroizing::new(blake3::derive_key("ogpu key envelope v1", material.as_ref()));
    XChaCha20Poly1305::new(key.as_ref().into())
}

impl Envelope {
    /// Wraps `key` to `reader` for `context` (for example a task id and a blob hash):
    /// only the reader's secret opens it, and only for the same context.
    pub fn wrap(key: &ContentKey, reader: &ReaderKey, context: &[u8], rng: &mut impl CryptoRngCore) -> Envelope {
        let ephemeral = ReaderSecret::generate(rng);
        let ephemeral_public = ephemeral.public().0;
        let shared = MontgomeryPoint(reader.0).mul_clamped(*ephemeral.0);
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let mut sealed_key = [0u8; 48];
        sealed_key[..32].copy_from_slice(key.0.as_ref());
        let (plain, tag) = sealed_key.split_at_mut(32);
        let cipher = wrapping_key(shared, &ephemeral_public, reader);
        let sealed_tag =
            cipher.encrypt_in_place_detached(&nonce.into(), context, plain).expect("XChaCha20-Poly1305 seals 32 bytes");
        tag.copy_from_slice(&sealed_tag);
        Envelope { ephemeral: ephemeral_public, nonce, sealed_key }
    }

    /// The content key, if this envelope is for `secret`'s reader and `context`.
    pub fn open(&self, secret: &ReaderSecret, context: &[u8]) -> Result<ContentKey, SealError> {
        let shared = MontgomeryPoint(self.ephemeral).mul_clamped(*secret.0);
        let cipher = wrapping_key(shared, &self.ephemeral, &secret.public());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&self.sealed_key[..32]);
        cipher
            .decrypt_in_place_detached(
                &self.nonce.into(),
                context,
                key.as_mut(),
                Tag::from_slice(&self.sealed_key[32..]),
            )
            .map_err(|_| SealError::Envelope)?;
        Ok(ContentKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CountingRng;

    fn rng() -> CountingRng {
        CountingRng(7)
    }

    fn sealed(key: &ContentKey, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let size = seal(key, &mut rng(), &mut &plain[..], &mut out).unwrap();
        assert_eq!(size, out.len() as u64);
        out
    }

    fn opened(key: &ContentKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        open(key, &mut &sealed[..], &mut out)?;
        Ok(out)
    }

    #[test]
    fn blobs_of_every_awkward_size_round_trip_and_are_not_their_plaintext() {
        let key = ContentKey::generate(&mut rng());
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = sealed(&key, &plain);
            assert_eq!(sealed.len() as u64, sealed_len(size as u64), "size {size}");
            assert_eq!(opened(&key, &sealed).unwrap(), plain, "size {size}");
            if size >= 32 {
                assert!(!sealed.windows(32).any(|w| w == &plain[..32]), "size {size}: plaintext shows through");
            }
        }
    }

    #[test]
    fn altered_cut_or_foreign_blobs_are_refused() {
        let key = ContentKey::generate(&mut rng());
        let plain = vec![5u8; 2 * CHUNK + 100];
        let good = sealed(&key, &plain);

        let mut flipped = good.clone();
        flipped[HEADER + CHUNK + TAG + 3] ^= 1;
        assert!(matches!(opened(&key, &flipped), Err(SealError::Chunk(1))));

        // Cut at a chunk boundary: what is left is whole chunks, none marked last.
        let at_boundary = &good[..HEADER + 2 * (CHUNK + TAG)];
        assert!(matches!(opened(&key, at_boundary), Err(SealError::Truncated)));
        // Cut inside the final chunk: what is left cannot be told from an altered chunk.
        assert!(matches!(opened(&key, &good[..good.len() - 1]), Err(SealError::Chunk(2))));
        assert!(matches!(opened(&key, &good[..HEADER + 5]), Err(SealError::Truncated)));

        let mut swapped = good.clone();
        swapped.copy_within(HEADER..HEADER + CHUNK + TAG, HEADER + CHUNK + TAG);
        assert!(matches!(opened(&key, &swapped), Err(SealError::Chunk(1))), "chunks cannot move");

        let other = ContentKey::generate(&mut CountingRng(100));
        assert!(matches!(opened(&other, &good), Err(SealError::Chunk(0))));
        // A blob of one chunk under another key is a chunk that does not open, not a cut.
        let small = sealed(&key, b"one chunk");
        assert!(matches!(opened(&other, &small), Err(SealError::Chunk(0))));
        assert!(matches!(opened(&key, b"plain bytes, never sealed"), Err(SealError::NotSealed)));
    }

    #[test]
    fn an_envelope_opens_for_its_reader_and_context_only() {
        let mut rng = rng();
        let key = ContentKey::generate(&mut rng);
        let (reader, stranger) = (ReaderSecret::generate(&mut rng), ReaderSecret::generate(&mut rng));
        let envelope = Envelope::wrap(&key, &reader.public(), b"task 1, blob a", &mut rng);
        let opened = envelope.open(&reader, b"task 1, blob a").unwrap();
        assert_eq!(*opened.0, *key.0);
        assert!(matches!(envelope.open(&stranger, b"task 1, blob a"), Err(SealError::Envelope)), "another reader");
        assert!(
            matches!(envelope.open(&reader, b"task 2, blob a"), Err(SealError::Envelope)),
            "replayed for another task"
        );
        let mut altered = envelope.clone();
        altered.sealed_key[0] ^= 1;
        assert!(matches!(altered.open(&reader, b"task 1, blob a"), Err(SealError::Envelope)));
    }

    #[test]
    fn keys_and_envelopes_are_written_as_hex_and_read_back_whole_only() {
        let mut rng = rng();
        let reader = ReaderSecret::generate(&mut rng).public();
        assert_eq!(reader.to_string().parse::<ReaderKey>().unwrap(), reader);
        let envelope = Envelope::wrap(&ContentKey::generate(&mut rng), &reader, b"c", &mut rng);
        let text = envelope.to_string();
        assert_eq!(text.len(), 208);
        assert_eq!(text.parse::<Envelope>().unwrap(), envelope);
        for bad in [&text[..206], "zz", ""] {
            assert!(bad.parse::<Envelope>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
    }

    #[test]
    fn a_key_context_binds_task_reader_and_blob() {
        let (task, other_task) = (TaskId(Hash([1; 32])), TaskId(Hash([2; 32])));
        let (reader, other_reader) = (Address([3; 20]), Address([4; 20]));
        let (blob, other_blob) = (BlobHash(Hash([5; 32])), BlobHash(Hash([6; 32])));
        let context = key_context(&task, &reader, &blob);
        for other in [
            key_context(&other_task, &reader, &blob),
            key_context(&task, &other_reader, &blob),
            key_context(&task, &reader, &other_blob),
        ] {
            assert_ne!(other, context);
        }
    }

    #[test]
    fn an_accounts_reader_key_is_derived_from_it_alone() {
        let (alice, bob) = (SecretKey::from_name("alice"), SecretKey::from_name("bob"));
        assert_eq!(ReaderSecret::derive(&alice).public(), ReaderSecret::derive(&alice).public());
        assert_ne!(ReaderSecret::derive(&alice).public(), ReaderSecret::derive(&bob).public());
        assert_ne!(ReaderSecret::derive(&alice).public().0, alice.public().0);
        let mut rng = rng();
        let key = ContentKey::generate(&mut rng);
        let envelope = Envelope::wrap(&key, &ReaderSecret::derive(&alice).public(), b"c", &mut rng);
        assert_eq!(envelope.open(&ReaderSecret::derive(&alice), b"c").unwrap().as_bytes(), key.as_bytes());
    }

    #[test]
    fn a_sealed_blob_is_its_size_plus_a_header_and_a_tag_per_chunk() {
        assert_eq!(sealed_len(0), 28 + 16);
        assert_eq!(sealed_len(CHUNK as u64), 28 + CHUNK as u64 + 16);
        assert_eq!(sealed_len(CHUNK as u64 + 1), 28 + CHUNK as u64 + 1 + 32);
        assert_eq!(sealed_len(256 << 20), (256 << 20) + 28 + 4096 * 16);
    }

    #[test]
    fn a_result_key_is_bound_to_its_task_and_executor() {
        let program = ContentKey::generate(&mut rng());
        let (task, executor) = (TaskId(Hash([1; 32])), Address([2; 20]));
        let key = ContentKey::for_result(&program, &task, &executor);
        assert_eq!(key.as_bytes(), ContentKey::for_result(&program, &task, &executor).as_bytes());
        assert_ne!(key.as_bytes(), program.as_bytes());
        assert_ne!(key.as_bytes(), ContentKey::for_result(&program, &TaskId(Hash([3; 32])), &executor).as_bytes());
        assert_ne!(key.as_bytes(), ContentKey::for_result(&program, &task, &Address([4; 20])).as_bytes());
    }

    #[test]
    fn a_reader_key_of_small_order_is_not_strong() {
        assert!(ReaderSecret::generate(&mut rng()).public().is_strong());
        assert!(!ReaderKey([0; 32]).is_strong());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(!ReaderKey(one).is_strong(), "the point of order 4");
    }
}
