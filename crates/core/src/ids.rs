//! Distinct id types, so a task id can never be passed where a pool id is meant.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::hash::{Hash, ParseHashError};
use crate::serde_text::serde_via_text;

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
        pub struct $name(pub Hash);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseHashError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }

        serde_via_text!($name);
    };
}

hash_id!(
    /// A task: the hash of the transaction that submitted it.
    TaskId
);
hash_id!(
    /// A pool: the hash of the transaction that created it.
    PoolId
);
hash_id!(
    /// A governance proposal: the hash of the transaction that made it.
    ProposalId
);
hash_id!(
    /// Content address of an off-chain blob: blake3 of its bytes.
    BlobHash
);

/// The network a transaction or block belongs to: lowercase letters, digits and dashes,
/// 1 to 32 of them. Decoding checks the same rule as parsing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct ChainId(String);

impl BorshDeserialize for ChainId {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let text = String::deserialize_reader(reader)?;
        text.parse().map_err(|e: ParseChainIdError| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a chain id is 1 to 32 of a-z, 0-9 and '-'; got {0:?}")]
pub struct ParseChainIdError(String);

impl ChainId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChainId {
    type Err = ParseChainIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = (1..=32).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid { Ok(ChainId(text.into())) } else { Err(ParseChainIdError(text.chars().take(40).collect())) }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({})", self.0)
    }
}

serde_via_text!(ChainId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_a_chain_id_checks_it_like_parsing_does() {
        let good: ChainId = "ogpu-devnet".parse().unwrap();
        assert_eq!(borsh::from_slice::<ChainId>(&borsh::to_vec(&good).unwrap()).unwrap(), good);
        for bad in ["", "OGPU TEST", &"a".repeat(33)] {
            let bytes = borsh::to_vec(&bad.to_string()).unwrap();
            assert!(borsh::from_slice::<ChainId>(&bytes).is_err(), "{bad:?}");
        }
    }
}
