//! ed25519 keys and signatures.
//!
//! Keys and signatures travel as plain bytes so that decoding never fails on a
//! cryptographically invalid point; validity is decided once, when a signature is checked.
//!
//! Validity is a property of the signature alone, whether it is checked by itself or in a
//! batch with others: every node must agree on it, and a node checks a transaction in
//! whatever batch it arrives with (a gossiped message, a block, a replay from disk). So the
//! rule is written here rather than taken from ed25519-dalek, whose single check is
//! cofactorless and whose batch check is not, which lets a signature with a small-order
//! component in R pass in some batches and fail alone. Our rule (that of ZIP-215, stricter
//! on encodings): `s` is canonical; the key A and the nonce point R are canonical encodings
//! of points that are not of small order; and `[8](s·B - k·A - R)` is the identity, for
//! `k = SHA-512(R || A || message)`. The batch check is the same equation summed with
//! coefficients drawn from the batch's contents, so it holds exactly when every member's
//! holds (but with probability 2^-128 for members an attacker cannot choose freely).

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha512};
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
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let parts = Parts::of(self, message, signature)?;
        let error = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-parts.k, &parts.a, &parts.s) - parts.r;
        if error.mul_by_cofactor().is_identity() { Ok(()) } else { Err(SignatureError::Invalid) }
    }
}

/// A signature that passed the checks of form, with the challenge `k` it implies.
struct Parts {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Parts {
    fn of(key: &PublicKey, message: &[u8], signature: &Signature) -> Result<Parts, SignatureError> {
        let a = strict_point(&key.0).ok_or(SignatureError::InvalidKey)?;
        let (r_bytes, s_bytes) = signature.0.split_at(32);
        let r_bytes: [u8; 32] = r_bytes.try_into().expect("64 = 32 + 32");
        let r = strict_point(&r_bytes).ok_or(SignatureError::Invalid)?;
        let s_bytes: [u8; 32] = s_bytes.try_into().expect("64 = 32 + 32");
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(SignatureError::Invalid)?;
        let hram = Sha512::new().chain_update(r_bytes).chain_update(key.0).chain_update(message).finalize();
        Ok(Parts { a, r, s, k: Scalar::from_bytes_mod_order_wide(&hram.into()) })
    }
}

/// The point `bytes` encode, when the encoding is canonical (y below the field's prime)
/// and the point is not of small order. The only non-canonical encodings with x != 0 are
/// those of y in [p, 2^255); those with x = 0 and the sign bit set are of y = ±1, which
/// are of small order.
fn strict_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    let y_at_least_p = bytes[0] >= 0xED && bytes[1..31].iter().all(|b| *b == 0xFF) && bytes[31] & 0x7F == 0x7F;
    if y_at_least_p {
        return None;
    }
    let point = CompressedEdwardsY(*bytes).decompress()?;
    (!point.is_small_order()).then_some(point)
}

/// Checks many signatures at once, about twice as fast as one by one, under exactly the
/// rule [`PublicKey::verify`] applies. `Ok` means every signature verifies; on `Err`, check
/// them one by one to find the culprits.
pub fn verify_batch(messages: &[&[u8]], signatures: &[Signature], keys: &[PublicKey]) -> Result<(), SignatureError> {
    if messages.len() != signatures.len() || keys.len() != signatures.len() {
        return Err(SignatureError::Invalid);
    }
    let parts = messages
        .iter()
        .zip(signatures)
        .zip(keys)
        .map(|((message, signature), key)| Parts::of(key, message, signature))
        .collect::<Result<Vec<_>, _>>()?;
    // Coefficients drawn from everything the batch checks, so that nobody who does not
    // control every member can arrange for two wrong equations to cancel.
    let mut transcript = blake3::Hasher::new_derive_key("ogpu/signature-batch/v1");
    for (part, signature) in parts.iter().zip(signatures) {
        transcript.update(&signature.0).update(part.a.compress().as_bytes()).update(part.k.as_bytes());
    }
    let mut draws = transcript.finalize_xof();
    let coefficients: Vec<Scalar> = parts
        .iter()
        .map(|_| {
            let mut z = [0u8; 16];
            draws.fill(&mut z);
            Scalar::from(u128::from_le_bytes(z))
        })
        .collect();
    let basepoint: Scalar = parts.iter().zip(&coefficients).map(|(p, z)| z * p.s).sum();
    let scalars = std::iter::once(basepoint)
        .chain(coefficients.iter().map(|z| -z))
        .chain(parts.iter().zip(&coefficients).map(|(p, z)| -(z * p.k)));
    let points =
        std::iter::once(ED25519_BASEPOINT_POINT).chain(parts.iter().map(|p| p.r)).chain(parts.iter().map(|p| p.a));
    let error = EdwardsPoint::vartime_multiscalar_mul(scalars, points);
    if error.mul_by_cofactor().is_identity() { Ok(()) } else { Err(SignatureError::Invalid) }
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

    /// A signature whose nonce point carries a point of order 2: `R = r·B + T` and
    /// `s = r + k·a`. It satisfies the cofactored equation and not the cofactorless one;
    /// ed25519-dalek's single check rejected it and its batch check accepted it in about
    /// half of all batches.
    fn torsioned_signature(key: &SecretKey, message: &[u8]) -> Signature {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_TABLE, EIGHT_TORSION};
        let digest = Sha512::digest(key.seed().as_ref());
        let mut a_bytes: [u8; 32] = digest[..32].try_into().unwrap();
        a_bytes[0] &= 248;
        a_bytes[31] &= 127;
        a_bytes[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a_bytes);
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(b"ground nonce").into());
        let big_r = (&r * ED25519_BASEPOINT_TABLE + EIGHT_TORSION[4]).compress().to_bytes();
        let hram = Sha512::new().chain_update(big_r).chain_update(key.public().0).chain_update(message).finalize();
        let s = r + Scalar::from_bytes_mod_order_wide(&hram.into()) * a;
        Signature([big_r, s.to_bytes()].concat().try_into().unwrap())
    }

    #[test]
    fn a_signature_is_valid_or_not_whatever_batch_it_is_checked_in() {
        let key = SecretKey::from_name("grinder");
        let message = b"pay the grinder".as_slice();
        let ground = torsioned_signature(&key, message);
        let alone = key.public().verify(message, &ground).is_ok();
        for companions in 1..=16u8 {
            let others: Vec<SecretKey> = (0..companions).map(|i| SecretKey::from_name(&format!("c{i}"))).collect();
            let mut messages = vec![message.to_vec()];
            messages.extend((0..companions).map(|i| vec![i; 8]));
            let mut signatures = vec![ground];
            signatures.extend(others.iter().zip(&messages[1..]).map(|(k, m)| k.sign(m)));
            let mut keys = vec![key.public()];
            keys.extend(others.iter().map(SecretKey::public));
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let batched = verify_batch(&refs, &signatures, &keys).is_ok();
            assert_eq!(batched, alone, "alone: {alone}; in a batch with {companions} others: {batched}");
        }
    }

    #[test]
    fn malformed_keys_and_signatures_are_refused_alone_and_in_batches() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        let key = SecretKey::from_name("alice");
        let good = key.sign(b"m");
        let small_order = PublicKey(EIGHT_TORSION[1].compress().to_bytes());
        let mut small_r = good;
        small_r.0[..32].copy_from_slice(EIGHT_TORSION[2].compress().as_bytes());
        let mut big_s = good;
        big_s.0[32..].copy_from_slice(&[0xFF; 32]);
        // y = p + 1 encodes y = 1 (a point of small order) but also stands for every
        // encoding at or above the field's prime.
        let mut unreduced_r = good;
        unreduced_r.0[..32].copy_from_slice(&{
            let mut y = [0xFF; 32];
            y[0] = 0xEE;
            y[31] = 0x7F;
            y
        });
        let cases = [
            ("a key of small order", small_order, good, SignatureError::InvalidKey),
            ("an R of small order", key.public(), small_r, SignatureError::Invalid),
            ("an s at or above the group order", key.public(), big_s, SignatureError::Invalid),
            ("an R encoded above the field's prime", key.public(), unreduced_r, SignatureError::Invalid),
        ];
        for (what, public, signature, error) in cases {
            assert_eq!(public.verify(b"m", &signature), Err(error), "{what}");
            let batch = verify_batch(&[b"m", b"n"], &[signature, key.sign(b"n")], &[public, key.public()]);
            assert!(batch.is_err(), "{what} passed in a batch");
        }
        assert!(verify_batch(&[b"m"], &[good, good], &[key.public()]).is_err(), "mismatched lengths");
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
