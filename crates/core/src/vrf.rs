//! ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, section 5) over the validators' ed25519 keys.
//!
//! Block randomness is the VRF output of the proposer on the parent's randomness. Unlike an
//! ed25519 signature, whose nonce a dishonest signer may choose freely, a VRF output is
//! unique for a key and an input: the proposer cannot grind it. Its only choice is to
//! propose or not.

use borsh::{BorshDeserialize, BorshSerialize};
use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use sha2::{Digest, Sha512};

use crate::crypto::{PublicKey, SecretKey};
use crate::hash::Hash;

const SUITE: u8 = 0x03;

/// Gamma (32 bytes), challenge (16 bytes), response (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct VrfProof(pub [u8; 80]);

impl std::fmt::Debug for VrfProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrfProof({:?})", Hash::of_bytes(&self.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VrfError {
    #[error("the VRF public key is not a valid point of large order")]
    InvalidKey,
    #[error("the VRF proof is malformed or does not verify")]
    InvalidProof,
}

fn hash_to_curve(key: &[u8; 32], input: &[u8]) -> EdwardsPoint {
    for counter in 0u8..=255 {
        let digest = Sha512::new()
            .chain_update([SUITE, 0x01])
            .chain_update(key)
            .chain_update(input)
            .chain_update([counter, 0x00])
            .finalize();
        let candidate: [u8; 32] = digest[..32].try_into().expect("sha512 is 64 bytes");
        if let Some(point) = CompressedEdwardsY(candidate).decompress() {
            let point = point.mul_by_cofactor();
            if !point.is_identity() {
                return point;
            }
        }
    }
    // Each try succeeds with probability about 1/2; 256 failures do not happen.
    unreachable!("hash_to_curve found no point in 256 tries")
}

fn challenge(points: [&EdwardsPoint; 5]) -> [u8; 16] {
    let mut hasher = Sha512::new().chain_update([SUITE, 0x02]);
    for point in points {
        hasher.update(point.compress().as_bytes());
    }
    let digest = hasher.chain_update([0x00]).finalize();
    digest[..16].try_into().expect("sha512 is 64 bytes")
}

fn challenge_scalar(c: &[u8; 16]) -> Scalar {
    let mut wide = [0u8; 32];
    wide[..16].copy_from_slice(c);
    Scalar::from_bytes_mod_order(wide)
}

fn output(gamma: &EdwardsPoint) -> Hash {
    let digest = Sha512::new()
        .chain_update([SUITE, 0x03])
        .chain_update(gamma.mul_by_cofactor().compress().as_bytes())
        .chain_update([0x00])
        .finalize();
    Hash(digest[..32].try_into().expect("sha512 is 64 bytes"))
}

/// The secret scalar and the nonce prefix, derived from the seed exactly as ed25519 does.
fn expand(key: &SecretKey) -> (Scalar, [u8; 32]) {
    let digest = Sha512::digest(key.seed().as_ref());
    let mut scalar_bytes: [u8; 32] = digest[..32].try_into().expect("sha512 is 64 bytes");
    scalar_bytes[0] &= 248;
    scalar_bytes[31] &= 127;
    scalar_bytes[31] |= 64;
    let prefix = digest[32..].try_into().expect("sha512 is 64 bytes");
    (Scalar::from_bytes_mod_order(scalar_bytes), prefix)
}

/// The VRF output of `key` on `input`, with the proof that anyone holding the public key
/// can check.
pub fn prove(key: &SecretKey, input: &[u8]) -> (Hash, VrfProof) {
    let (x, prefix) = expand(key);
    let public = key.public();
    let y = &x * ED25519_BASEPOINT_TABLE;
    let h = hash_to_curve(&public.0, input);
    let gamma = x * h;
    let nonce = Sha512::new().chain_update(prefix).chain_update(h.compress().as_bytes()).finalize();
    let k = Scalar::from_bytes_mod_order_wide(&nonce.into());
    let c = challenge([&y, &h, &gamma, &(&k * ED25519_BASEPOINT_TABLE), &(k * h)]);
    let s = k + challenge_scalar(&c) * x;
    let mut proof = [0u8; 80];
    proof[..32].copy_from_slice(gamma.compress().as_bytes());
    proof[32..48].copy_from_slice(&c);
    proof[48..].copy_from_slice(s.as_bytes());
    (output(&gamma), VrfProof(proof))
}

/// Checks `proof` for `key` and `input` and returns the VRF output it proves.
pub fn verify(key: &PublicKey, input: &[u8], proof: &VrfProof) -> Result<Hash, VrfError> {
    let y = CompressedEdwardsY(key.0).decompress().ok_or(VrfError::InvalidKey)?;
    if y.is_small_order() {
        return Err(VrfError::InvalidKey);
    }
    let gamma_bytes: [u8; 32] = proof.0[..32].try_into().expect("80 > 32");
    let gamma = CompressedEdwardsY(gamma_bytes).decompress().ok_or(VrfError::InvalidProof)?;
    let c: [u8; 16] = proof.0[32..48].try_into().expect("80 > 48");
    let s_bytes: [u8; 32] = proof.0[48..].try_into().expect("80 - 48 = 32");
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(VrfError::InvalidProof)?;
    let h = hash_to_curve(&key.0, input);
    let c_scalar = challenge_scalar(&c);
    let u = &s * ED25519_BASEPOINT_TABLE - c_scalar * y;
    let v = s * h - c_scalar * gamma;
    if challenge([&y, &h, &gamma, &u, &v]) != c {
        return Err(VrfError::InvalidProof);
    }
    Ok(output(&gamma))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_and_outputs_are_unique_per_key_and_input() {
        let key = SecretKey::from_name("validator-0");
        let (out, proof) = prove(&key, b"height 7");
        assert_eq!(verify(&key.public(), b"height 7", &proof), Ok(out));
        assert_eq!(prove(&key, b"height 7").0, out, "the output is a function of key and input");
        assert_ne!(prove(&key, b"height 8").0, out);
        assert_ne!(prove(&SecretKey::from_name("validator-1"), b"height 7").0, out);
    }

    #[test]
    fn tampered_proofs_inputs_and_keys_are_rejected() {
        let key = SecretKey::from_name("validator-0");
        let (_, proof) = prove(&key, b"x");
        assert_eq!(verify(&key.public(), b"y", &proof), Err(VrfError::InvalidProof));
        let other = SecretKey::from_name("validator-1").public();
        assert_eq!(verify(&other, b"x", &proof), Err(VrfError::InvalidProof));
        for byte in [0, 40, 79] {
            let mut bad = proof;
            bad.0[byte] ^= 0x10;
            assert!(verify(&key.public(), b"x", &bad).is_err(), "flipped byte {byte}");
        }
        assert_eq!(verify(&PublicKey([0; 32]), b"x", &proof), Err(VrfError::InvalidKey));
    }
}
