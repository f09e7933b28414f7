//! Encrypted key files: argon2id stretches the password into a key for
//! XChaCha20-Poly1305, which seals the ed25519 seed. The address is authenticated as
//! associated data, so a file edited to show another address fails to open.
//!
//! This module turns keys into file contents and back; reading and writing the file is
//! the caller's job.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::address::Address;
use crate::crypto::SecretKey;
use crate::hash::Hash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keystore {
    pub version: u32,
    pub address: Address,
    pub kdf: Kdf,
    /// 24-byte nonce, hex.
    pub nonce: String,
    /// The sealed 32-byte seed with its 16-byte tag, hex.
    pub ciphertext: String,
}

/// argon2id cost parameters, stored so that a file opens with the costs it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kdf {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: Hash,
}

impl Kdf {
    /// OWASP's recommended argon2id costs (19 MiB, 2 passes): the least a key with a
    /// password is sealed with.
    pub const STANDARD: (u32, u32, u32) = (19 * 1024, 2, 1);
    /// Cheap costs for throwaway devnet and test keys, which have no password.
    pub const DEVNET: (u32, u32, u32) = (64, 1, 1);
    /// The most a key file may ask for (1 GiB, 16 passes, 8 lanes): the costs come from
    /// the file, and a file must not be able to exhaust the memory or time of whoever
    /// opens it.
    pub const MAX: (u32, u32, u32) = (1 << 20, 16, 8);

    /// Checks costs against [`Kdf::MAX`], and, for a key with a password, against
    /// [`Kdf::STANDARD`].
    fn check((memory_kib, iterations, parallelism): (u32, u32, u32), has_password: bool) -> Result<(), KeystoreError> {
        let (max_memory, max_iterations, max_parallelism) = Kdf::MAX;
        if memory_kib > max_memory || iterations > max_iterations || parallelism > max_parallelism {
            return Err(KeystoreError::Costs(format!(
                "{memory_kib} KiB, {iterations} passes, {parallelism} lanes is over the most a key file may ask for \
                 ({max_memory} KiB, {max_iterations} passes, {max_parallelism} lanes)"
            )));
        }
        let (min_memory, min_iterations, _) = Kdf::STANDARD;
        if has_password && (memory_kib < min_memory || iterations < min_iterations) {
            return Err(KeystoreError::Costs(format!(
                "a key with a password needs at least {min_memory} KiB and {min_iterations} passes"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    #[error("wrong password, or the key file has been altered")]
    Decrypt,
    #[error("unsupported key file version {0}; this build reads version 1")]
    Version(u32),
    #[error("key file field `{0}` is not valid hex of the right length")]
    Field(&'static str),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("key derivation costs refused: {0}")]
    Costs(String),
    #[error("the key file's address does not match the key inside it")]
    AddressMismatch,
    #[error("not a key file: {0}")]
    Format(String),
}

fn from_hex<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], KeystoreError> {
    crate::hex::decode(text).and_then(|bytes| bytes.try_into().ok()).ok_or(KeystoreError::Field(field))
}

fn cipher(password: &str, kdf: &Kdf) -> Result<XChaCha20Poly1305, KeystoreError> {
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &kdf.salt.0, key.as_mut())
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    Ok(XChaCha20Poly1305::new(key.as_ref().into()))
}

impl Keystore {
    /// Seals `key` under `password` with the given argon2id costs.
    pub fn seal(
        key: &SecretKey,
        password: &str,
        (memory_kib, iterations, parallelism): (u32, u32, u32),
        rng: &mut impl CryptoRngCore,
    ) -> Result<Keystore, KeystoreError> {
        Kdf::check((memory_kib, iterations, parallelism), !password.is_empty())?;
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut nonce);
        let kdf = Kdf { memory_kib, iterations, parallelism, salt: Hash(salt) };
        let address = Address::of(&key.public());
        let seed = key.seed();
        let payload = Payload { msg: seed.as_ref(), aad: &address.0 };
        let ciphertext =
            cipher(password, &kdf)?.encrypt(XNonce::from_slice(&nonce), payload).map_err(|_| KeystoreError::Decrypt)?;
        Ok(Keystore {
            version: 1,
            address,
            kdf,
            nonce: crate::hex::encode(&nonce),
            ciphertext: crate::hex::encode(&ciphertext),
        })
    }

    pub fn open(&self, password: &str) -> Result<SecretKey, KeystoreError> {
        if self.version != 1 {
            return Err(KeystoreError::Version(self.version));
        }
        // Files sealed before the minimum existed still open; none may ask for too much.
        Kdf::check((self.kdf.memory_kib, self.kdf.iterations, self.kdf.parallelism), false)?;
        let nonce: [u8; 24] = from_hex(&self.nonce, "nonce")?;
        let sealed: [u8; 48] = from_hex(&self.ciphertext, "ciphertext")?;
        let payload = Payload { msg: &sealed, aad: &self.address.0 };
        let seed = Zeroizing::new(
            cipher(password, &self.kdf)?
                .decrypt(XNonce::from_slice(&nonce), payload)
                .map_err(|_| KeystoreError::Decrypt)?,
        );
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| KeystoreError::Decrypt)?;
        let key = SecretKey::from_seed(seed);
        if Address::of(&key.public()) != self.address {
            return Err(KeystoreError::AddressMismatch);
        }
        Ok(key)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a keystore always serializes")
    }

    pub fn from_json(text: &str) -> Result<Keystore, KeystoreError> {
        serde_json::from_str(text).map_err(|e| KeystoreError::Format(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CountingRng;

    fn sealed() -> (SecretKey, Keystore) {
        let key = SecretKey::from_name("alice");
        let file = Keystore::seal(&key, "hunter2", Kdf::STANDARD, &mut CountingRng(0)).unwrap();
        (key, file)
    }

    /// Finding 20: the costs come from the file, so a key file could ask for terabytes;
    /// and nothing stopped a key with a password from being sealed with throwaway costs.
    #[test]
    fn key_derivation_costs_are_bounded_both_ways() {
        let (_, file) = sealed();
        for (memory_kib, iterations, parallelism) in [(4 << 20, 1, 1), (1_024, 1 << 20, 1), (1_024, 1, 64)] {
            let greedy = Keystore { kdf: Kdf { memory_kib, iterations, parallelism, ..file.kdf }, ..file.clone() };
            assert!(matches!(greedy.open("hunter2"), Err(KeystoreError::Costs(_))), "{memory_kib} {iterations}");
        }
        let key = SecretKey::from_name("bob");
        let weak = Keystore::seal(&key, "a password", Kdf::DEVNET, &mut CountingRng(0));
        assert!(matches!(weak, Err(KeystoreError::Costs(_))));
        let devnet = Keystore::seal(&key, "", Kdf::DEVNET, &mut CountingRng(0)).unwrap();
        assert_eq!(devnet.open("").unwrap().public(), key.public());
    }

    #[test]
    fn opens_with_the_right_password_only() {
        let (key, file) = sealed();
        let reread = Keystore::from_json(&file.to_json()).unwrap();
        assert_eq!(reread.open("hunter2").unwrap().public(), key.public());
        assert_eq!(reread.open("hunter3").unwrap_err(), KeystoreError::Decrypt);
    }

    #[test]
    fn tampering_is_detected() {
        let (_, file) = sealed();
        let mut other_address = file.clone();
        other_address.address = Address([9; 20]);
        assert_eq!(other_address.open("hunter2").unwrap_err(), KeystoreError::Decrypt);
        let mut flipped = file.clone();
        flipped.ciphertext.replace_range(0..2, if &file.ciphertext[..2] == "00" { "01" } else { "00" });
        assert_eq!(flipped.open("hunter2").unwrap_err(), KeystoreError::Decrypt);
        let mut short = file.clone();
        short.nonce.pop();
        assert_eq!(short.open("hunter2").unwrap_err(), KeystoreError::Field("nonce"));
        let mut future = file;
        future.version = 2;
        assert_eq!(future.open("hunter2").unwrap_err(), KeystoreError::Version(2));
        assert!(matches!(Keystore::from_json("{}"), Err(KeystoreError::Format(_))));
    }
}
