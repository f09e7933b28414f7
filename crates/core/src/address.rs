//! Account addresses: the first 20 bytes of blake3(public key), written as bech32m with
//! the `ogpu` prefix (`ogpu1...`), so a mistyped address fails its checksum instead of
//! sending money into the void.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use borsh::{BorshDeserialize, BorshSerialize};

use crate::crypto::PublicKey;
use crate::hash::Hash;
use crate::serde_text::serde_via_text;

const PREFIX: Hrp = Hrp::parse_unchecked("ogpu");

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub fn of(key: &PublicKey) -> Address {
        let digest = Hash::of_bytes(&key.0);
        Address(digest.0[..20].try_into().expect("32 > 20"))
    }
}

impl From<&PublicKey> for Address {
    fn from(key: &PublicKey) -> Address {
        Address::of(key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddressError {
    #[error("not a valid address (bech32m with a checksum): {0}")]
    Encoding(String),
    #[error("an address starts with `ogpu1`; this one has the prefix `{0}`")]
    WrongPrefix(String),
    #[error("an address holds 20 bytes; this one holds {0}")]
    WrongLength(usize),
}

impl FromStr for Address {
    type Err = ParseAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let checked = CheckedHrpstring::new::<Bech32m>(text).map_err(|e| ParseAddressError::Encoding(e.to_string()))?;
        if checked.hrp() != PREFIX {
            return Err(ParseAddressError::WrongPrefix(checked.hrp().to_string()));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let array = bytes.try_into().map_err(|b: Vec<u8>| ParseAddressError::WrongLength(b.len()))?;
        Ok(Address(array))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = bech32::encode::<Bech32m>(PREFIX, &self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

serde_via_text!(Address);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    #[test]
    fn text_form_round_trips_and_reads_well() {
        let address = Address::of(&SecretKey::from_name("alice").public());
        let text = address.to_string();
        assert!(text.starts_with("ogpu1"), "{text}");
        assert_eq!(text.parse(), Ok(address));
    }

    #[test]
    fn a_typo_fails_the_checksum() {
        let text = Address::of(&SecretKey::from_name("alice").public()).to_string();
        let last = text.chars().last().unwrap();
        let typo = format!("{}{}", &text[..text.len() - 1], if last == 'q' { 'p' } else { 'q' });
        assert!(matches!(typo.parse::<Address>(), Err(ParseAddressError::Encoding(_))));
    }

    #[test]
    fn wrong_prefix_and_length_are_named() {
        let other = bech32::encode::<Bech32m>(Hrp::parse("cosmos").unwrap(), &[1; 20]).unwrap();
        assert_eq!(other.parse::<Address>(), Err(ParseAddressError::WrongPrefix("cosmos".into())));
        let short = bech32::encode::<Bech32m>(PREFIX, &[1; 19]).unwrap();
        assert_eq!(short.parse::<Address>(), Err(ParseAddressError::WrongLength(19)));
    }
}
