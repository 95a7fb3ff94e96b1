//! TS-0003 §10.3.6: the End-to-End master key `Ke2e_master` and the four End-to-End security
//! keys expanded from it, for the hash functions TS-0003 §9.2.3 lets a TEF configure.
//!
//! The expansion is RFC 5869's HKDF-Expand with one change the clause makes: every block has its
//! own label, `T(i) = HMAC-Hash(Ke2e_master, T(i-1) | label_i | i)`. A library HKDF-Expand uses
//! one info string for every block, so it gives the same `T(1)` and a different `T(2)`..`T(4)`;
//! the blocks are therefore computed here with HMAC directly. [`crate::kdf::derive_e2e_keys`] is
//! the SHA-256 case with a mandatory salt.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use zeroize::Zeroize;

use crate::kdf::{E2eKeys, KdfError};
use crate::secret::SecretKey;

/// TS-0003 §10.3.6.2 label of `Ke2e_msg_auth = T(1)`.
pub const LABEL_MSG_AUTH: &[u8] = b"E2E Message Authentication Key";
/// TS-0003 §10.3.6.2 label of `Ke2e_msg_conf = T(2)`.
pub const LABEL_MSG_CONF: &[u8] = b"E2E Message Confidentiality Key";
/// TS-0003 §10.3.6.2 label of `Ke2e_att_auth = T(3)`.
pub const LABEL_ATT_AUTH: &[u8] = b"E2E Attribute Authenticity Key";
/// TS-0003 §10.3.6.2 label of `Ke2e_att_conf = T(4)`.
pub const LABEL_ATT_CONF: &[u8] = b"E2E Attribute Confidentiality Key";

/// The "Hash" of `HMAC-Hash` in TS-0003 §10.3.6 (TS-0003 §9.2.3 names HMAC-SHA-256 and
/// HMAC-SHA-512; SHA-384 completes the SHA-2 family JOSE uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum E2eHash {
    /// SHA-256: 32-byte keys.
    Sha256,
    /// SHA-384: 48-byte keys.
    Sha384,
    /// SHA-512: 64-byte keys.
    Sha512,
}

impl E2eHash {
    /// Output length in bytes (`HashLen` of RFC 5869), which is the length of every key.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// HMAC with `hash` over the concatenation of `parts`, as a secret.
fn hmac(hash: E2eHash, key: &[u8], parts: &[&[u8]]) -> Result<SecretKey, KdfError> {
    let pkey = PKey::hmac(key)?;
    let mut signer = Signer::new(hash.digest(), &pkey)?;
    for part in parts {
        signer.update(part)?;
    }
    let mut out = signer.sign_to_vec()?;
    let secret = SecretKey::from_slice(&out);
    out.zeroize();
    Ok(secret)
}

/// TS-0003 §10.3.6.1: `Ke2e_master = HMAC-Hash(Salt, IKM)` (RFC 5869 HKDF-Extract).
///
/// `ikm` is Kpsa, or for Source-generated credentials the random value the Source ESF End-Point
/// generated (NOTE of §10.3.6.1). The salt is optional in TS-0003 §9.2.3; without one RFC 5869
/// uses `HashLen` zero octets.
pub fn extract_master(
    hash: E2eHash,
    salt: Option<&[u8]>,
    ikm: &SecretKey,
) -> Result<SecretKey, KdfError> {
    let zeros = [0u8; 64];
    let salt = match salt {
        Some(salt) => salt,
        None => zeros.get(..hash.output_len()).unwrap_or(&zeros),
    };
    hmac(hash, salt, &[ikm.expose_bytes()])
}

/// TS-0003 §10.3.6.2: the four End-to-End security keys from `Ke2e_master`.
///
/// `T(0)` is empty and `T(i) = HMAC-Hash(Ke2e_master, T(i-1) | label_i | i)` with the labels
/// [`LABEL_MSG_AUTH`], [`LABEL_MSG_CONF`], [`LABEL_ATT_AUTH`], [`LABEL_ATT_CONF`] and `i` as
/// one octet. The returned set carries a copy of `master`.
pub fn expand(hash: E2eHash, master: &SecretKey) -> Result<E2eKeys, KdfError> {
    let m = master.expose_bytes();
    let msg_auth = hmac(hash, m, &[LABEL_MSG_AUTH, &[1]])?;
    let msg_conf = hmac(hash, m, &[msg_auth.expose_bytes(), LABEL_MSG_CONF, &[2]])?;
    let att_auth = hmac(hash, m, &[msg_conf.expose_bytes(), LABEL_ATT_AUTH, &[3]])?;
    let att_conf = hmac(hash, m, &[att_auth.expose_bytes(), LABEL_ATT_CONF, &[4]])?;
    Ok(E2eKeys {
        master: master.clone(),
        msg_auth,
        msg_conf,
        att_auth,
        att_conf,
    })
}

/// [`extract_master`] followed by [`expand`].
pub fn derive(hash: E2eHash, salt: Option<&[u8]>, ikm: &SecretKey) -> Result<E2eKeys, KdfError> {
    expand(hash, &extract_master(hash, salt, ikm)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sha256_with_salt_equals_the_kdf_module() {
        let kpsa = SecretKey::from_slice(&[7u8; 32]);
        let salt = [9u8; 16];
        let ours = derive(E2eHash::Sha256, Some(&salt), &kpsa).unwrap();
        let kdf = crate::kdf::derive_e2e_keys(&salt, &kpsa).unwrap();
        assert_eq!(ours.master, kdf.master);
        assert_eq!(ours.att_conf, kdf.att_conf);
    }

    #[test]
    fn key_lengths_follow_the_hash() {
        let ikm = SecretKey::from_slice(&[1u8; 32]);
        for hash in [E2eHash::Sha256, E2eHash::Sha384, E2eHash::Sha512] {
            let keys = derive(hash, None, &ikm).unwrap();
            for k in [
                &keys.master,
                &keys.msg_auth,
                &keys.msg_conf,
                &keys.att_auth,
                &keys.att_conf,
            ] {
                assert_eq!(k.len(), hash.output_len());
            }
        }
    }

    #[test]
    fn missing_salt_is_hash_len_zeros() {
        let ikm = SecretKey::from_slice(&[1u8; 32]);
        for hash in [E2eHash::Sha256, E2eHash::Sha384, E2eHash::Sha512] {
            let zeros = vec![0u8; hash.output_len()];
            assert_eq!(
                extract_master(hash, None, &ikm).unwrap(),
                extract_master(hash, Some(&zeros), &ikm).unwrap()
            );
        }
    }
}
