//! The canonical binary encoding of everything on chain: borsh, with strict decoding.
//!
//! Exactly one byte string encodes each value, so hashes and signatures over encodings are
//! well defined. Decoding rejects input over the type's size limit before reading it,
//! trailing bytes, lengths that run past the input, invalid tags and booleans, maps whose
//! keys are not strictly ascending, and invalid UTF-8: always with an error, never a panic.

use borsh::{BorshDeserialize, BorshSerialize};

/// A type with a canonical encoding and a bound on its encoded size.
pub trait Canonical: BorshSerialize + BorshDeserialize {
    /// The largest encoding accepted by [`decode`].
    const MAX_ENCODED_LEN: usize;

    fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_bounded(bytes, Self::MAX_ENCODED_LEN)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("encoding is {len} bytes; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Decodes one value that must use all of `bytes`, after checking the length limit.
pub fn decode_bounded<T: BorshDeserialize>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLong { len: bytes.len(), max });
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, BorshSerialize, BorshDeserialize)]
    struct Sample {
        flag: bool,
        names: Vec<String>,
        map: BTreeMap<u8, u8>,
        maybe: Option<u32>,
    }

    impl Canonical for Sample {
        const MAX_ENCODED_LEN: usize = 64;
    }

    fn sample() -> Sample {
        Sample { flag: true, names: vec!["a".into()], map: [(1, 2), (3, 4)].into(), maybe: Some(9) }
    }

    #[test]
    fn round_trips() {
        assert_eq!(Sample::decode(&sample().encode()), Ok(sample()));
    }

    #[test]
    fn rejects_every_non_canonical_or_oversize_form() {
        let good = sample().encode();
        let malformed = |bytes: &[u8]| matches!(Sample::decode(bytes), Err(DecodeError::Malformed(_)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(malformed(&trailing), "trailing byte");
        let mut bad_bool = good.clone();
        bad_bool[0] = 2;
        assert!(malformed(&bad_bool), "bool 2");
        let mut huge_len = good.clone();
        huge_len[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(malformed(&huge_len), "vector length past the input");
        let mut bad_utf8 = good.clone();
        bad_utf8[9] = 0xff;
        assert!(malformed(&bad_utf8), "invalid utf-8");
        let mut unordered = good.clone();
        let map_at = 10;
        unordered[map_at + 4..map_at + 8].copy_from_slice(&[3, 4, 1, 2]);
        assert!(malformed(&unordered), "map keys out of order");
        let mut bad_option = good.clone();
        let option_at = good.len() - 5;
        bad_option[option_at] = 7;
        assert!(malformed(&bad_option), "option tag 7");
        assert!(malformed(&good[..good.len() - 1]), "truncated");
        assert_eq!(Sample::decode(&[0; 65]), Err(DecodeError::TooLong { len: 65, max: 64 }));
    }
}
