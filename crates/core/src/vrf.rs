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

    /// RFC 9381, appendix B.3 (ECVRF-EDWARDS25519-SHA512-TAI), examples 16 and 17, with the
    /// secret keys of RFC 8032's test 1 and 2: proof `pi` and output `beta` (of which the
    /// chain keeps the first 32 bytes).
    #[test]
    fn the_rfc_9381_test_vectors_hold() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f26f8a57ccaed74ee1b190bed1f479d97\
                 27d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
                "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed5933bf0864a62558b3ed7f2fea45c92a465\
                 301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
                "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb",
            ),
        ];
        let hex = |text: &str| crate::hex::decode(text).unwrap();
        for (secret, public, alpha, pi, beta) in vectors {
            let key = SecretKey::from_seed(hex(secret).try_into().unwrap());
            assert_eq!(key.public().0.to_vec(), hex(public));
            let (output, proof) = prove(&key, &hex(alpha));
            assert_eq!(crate::hex::encode(&proof.0), pi.replace(' ', ""), "alpha {alpha:?}");
            assert_eq!(output.0.to_vec(), hex(beta), "alpha {alpha:?}");
            assert_eq!(verify(&key.public(), &hex(alpha), &proof), Ok(output));
        }
    }

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
