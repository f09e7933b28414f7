//! blake3 hashes with domain separation: every hash the protocol commits to names what it
//! is a hash of, so a value of one kind can never be passed off as another.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::serde_text::serde_via_text;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    /// Hash of `parts` under `domain`; the domain and each part are length-prefixed so that
    /// no two different part lists can collide by shifting bytes between parts.
    pub fn tagged(domain: &str, parts: &[&[u8]]) -> Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(domain.len() as u64).to_le_bytes());
        hasher.update(domain.as_bytes());
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Hash(*hasher.finalize().as_bytes())
    }

    /// Plain blake3 of some bytes: content addresses of blobs.
    pub fn of_bytes(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash is 64 hex digits; got {0:?}")]
pub struct ParseHashError(String);

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = crate::hex::decode(text).filter(|b| b.len() == 32);
        bytes.and_then(|b| b.try_into().ok()).map(Hash).ok_or_else(|| ParseHashError(text.chars().take(80).collect()))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..", &self.to_hex()[..12])
    }
}

serde_via_text!(Hash);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let h = Hash::of_bytes(b"ogpu");
        assert_eq!(h.to_string().parse::<Hash>(), Ok(h));
        assert!("zz".parse::<Hash>().is_err());
        assert!("g".repeat(64).parse::<Hash>().is_err());
        assert!("é".repeat(32).parse::<Hash>().is_err());
    }

    #[test]
    fn tagged_hashes_separate_domains_and_part_boundaries() {
        assert_ne!(Hash::tagged("a", &[b"x"]), Hash::tagged("b", &[b"x"]));
        assert_ne!(Hash::tagged("a", &[b"xy", b"z"]), Hash::tagged("a", &[b"x", b"yz"]));
    }
}
