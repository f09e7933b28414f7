//! ed25519 keys and signatures.
//!
//! Keys and signatures travel as plain bytes so that decoding never fails on a
//! cryptographically invalid point; validity is decided once, when a signature is checked.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::hash::Hash;
use crate::serde_text::serde_via_text;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

/// A signing key. Its bytes never appear in `Debug` output and are wiped on drop.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key is not a valid ed25519 point")]
    InvalidKey,
    #[error("the signature does not verify")]
    Invalid,
}

impl SecretKey {
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    pub fn generate(rng: &mut impl CryptoRngCore) -> SecretKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        SecretKey::from_seed(*seed)
    }

    /// A key derived from a name: for tests, simulations and devnets only.
    pub fn from_name(name: &str) -> SecretKey {
        SecretKey::from_seed(Hash::tagged("ogpu/test-key", &[name.as_bytes()]).0)
    }

    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({:?})", self.public())
    }
}

impl PublicKey {
    fn dalek(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::InvalidKey)
    }

    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let key = self.dalek()?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify(message, &signature).map_err(|_| SignatureError::Invalid)
    }
}

/// Checks many signatures at once, about twice as fast as one by one. `Ok` means every
/// signature verifies; on `Err`, check them one by one to find the culprits.
pub fn verify_batch(messages: &[&[u8]], signatures: &[Signature], keys: &[PublicKey]) -> Result<(), SignatureError> {
    let keys = keys.iter().map(PublicKey::dalek).collect::<Result<Vec<_>, _>>()?;
    let signatures: Vec<_> = signatures.iter().map(|s| ed25519_dalek::Signature::from_bytes(&s.0)).collect();
    ed25519_dalek::verify_batch(messages, &signatures, &keys).map_err(|_| SignatureError::Invalid)
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Hash(self.0), f)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Hash(self.0), f)
    }
}

impl FromStr for PublicKey {
    type Err = crate::hash::ParseHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(PublicKey(text.parse::<Hash>()?.0))
    }
}

serde_via_text!(PublicKey);

/// Hex, for signed records served as JSON (task logs).
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signature is 128 hex digits; got {0:?}")]
pub struct ParseSignatureError(String);

impl FromStr for Signature {
    type Err = ParseSignatureError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = crate::hex::decode(text).and_then(|b| b.try_into().ok());
        bytes.map(Signature).ok_or_else(|| ParseSignatureError(text.chars().take(140).collect()))
    }
}

serde_via_text!(Signature);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:?})", Hash(self.0[..32].try_into().expect("64 > 32")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let alice = SecretKey::from_name("alice");
        let bob = SecretKey::from_name("bob");
        let sig = alice.sign(b"pay bob 1");
        assert_eq!(alice.public().verify(b"pay bob 1", &sig), Ok(()));
        assert_eq!(alice.public().verify(b"pay bob 2", &sig), Err(SignatureError::Invalid));
        assert_eq!(bob.public().verify(b"pay bob 1", &sig), Err(SignatureError::Invalid));
    }

    #[test]
    fn batch_verification_agrees_with_single_verification() {
        let keys: Vec<_> = (0..8).map(|i| SecretKey::from_name(&format!("k{i}"))).collect();
        let messages: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<_> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
        let publics: Vec<_> = keys.iter().map(SecretKey::public).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        assert_eq!(verify_batch(&refs, &sigs, &publics), Ok(()));
        sigs[3].0[0] ^= 1;
        assert_eq!(verify_batch(&refs, &sigs, &publics), Err(SignatureError::Invalid));
    }

    #[test]
    fn signatures_round_trip_through_hex_and_bad_text_is_refused() {
        let sig = SecretKey::from_name("alice").sign(b"m");
        assert_eq!(sig.to_string().parse(), Ok(sig));
        for bad in ["", "zz", &"ab".repeat(63), &"ab".repeat(65)] {
            assert!(bad.parse::<Signature>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let key = SecretKey::from_name("alice");
        let shown = format!("{key:?}");
        assert!(!shown.contains(&Hash(*key.seed()).to_hex()[..12]));
    }
}
