//! Key derivations of TS-0003 §10.3 (HMAC-SHA-256, RFC 2104).
//!
//! `||` in the spec is plain byte concatenation without separators or lengths. Identifier
//! strings are encoded "according to UTF-8 … and apply Normalization Form KC (NFKC)"; every
//! function here applies NFKC itself, so callers pass the identifiers as they have them.
//! All functions are pure.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use unicode_normalization::UnicodeNormalization;

use crate::secret::SecretKey;

/// TS-0003 §10.3.2 label.
pub const LABEL_KM: &[u8] = b"oneM2M Enrolment Key to Master Credential derivation";
/// TS-0003 §10.3.3 label.
pub const LABEL_KPSA: &[u8] =
    b"oneM2M Enrolment Key to Provisioned Secure Connection Key derivation";
/// TS-0003 §10.3.7 label.
pub const LABEL_USAGE_CONSTRAINED: &[u8] =
    b"oneM2M Enrolment Key to Usage-Constrained Symmetric Key derivation";
/// TS-0003 §10.3.8.2 label.
pub const LABEL_SESSION_ES_PRIM: &[u8] =
    b"oneM2M HMAC-SHA256 sessionESPrimKey derivation algorithm";

/// TS-0003 §10.3.1 exporter labels (RFC 5705, no context, 48 bytes of output).
pub mod exporter_label {
    /// Enrolee ↔ MEF after the bootstrap handshake: key Ke, id RelativeKeID.
    pub const BOOTSTRAP: &str = "EXPORTER-oneM2M-Bootstrap";
    /// Entity ↔ MAF (MAF key registration): key Kc, id KcID.
    pub const CONNECTION: &str = "EXPORTER-oneM2M-Connection";
    /// ESCertKE end-points: pairwiseE2EKey and its id.
    pub const ES_CERT_KE: &str = "EXPORTER-oneM2M-ESCertKE";
}

/// Length of the RFC 5705 exporter output TS-0003 §10.3.1 asks for.
pub const EXPORTER_LEN: usize = 48;

/// Error from a key derivation: only the cryptographic library can fail here.
#[derive(Debug, thiserror::Error)]
#[error("HMAC-SHA-256 failed: {0}")]
pub struct KdfError(#[from] ErrorStack);

/// HMAC-SHA-256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], KdfError> {
    let pkey = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
    for part in parts {
        signer.update(part)?;
    }
    let mut out = [0u8; 32];
    signer.sign(&mut out)?;
    Ok(out)
}

/// Like [`hmac_sha256`], returning the output as a secret.
fn hmac_secret(key: &[u8], parts: &[&[u8]]) -> Result<SecretKey, KdfError> {
    let mut out = hmac_sha256(key, parts)?;
    let secret = SecretKey::from_slice(&out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(secret)
}

/// UTF-8 bytes of the NFKC normal form of an identifier.
pub fn nfkc(id: &str) -> String {
    id.nfkc().collect()
}

/// TS-0003 §10.3.2: `Km = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Master Credential
/// derivation" || MAF-ID)`.
pub fn derive_km(ke: &SecretKey, maf_id: &str) -> Result<SecretKey, KdfError> {
    hmac_secret(ke.expose_bytes(), &[LABEL_KM, nfkc(maf_id).as_bytes()])
}

/// TS-0003 §10.3.3: `Kpsa = HMAC-SHA-256(Ke, "oneM2M Enrolment Key to Provisioned Secure
/// Connection Key derivation" || Enrolee-B-ID)`, Enrolee-B-ID being a CSE-ID or AE-ID.
pub fn derive_kpsa(ke: &SecretKey, enrolee_b_id: &str) -> Result<SecretKey, KdfError> {
    hmac_secret(
        ke.expose_bytes(),
        &[LABEL_KPSA, nfkc(enrolee_b_id).as_bytes()],
    )
}

/// TS-0003 §10.3.7: usage-constrained symmetric key `HMAC-SHA-256(Ke, "oneM2M Enrolment Key to
/// Usage-Constrained Symmetric Key derivation" || SUID || Enrolment-Target-ID)`.
///
/// `suid` is the decimal text of the m2m:suid value (e.g. `"21"`); `target` is the FQDN of the
/// Enrolment Target (for a CSE or AE the FQDN representation of its absolute ID).
pub fn derive_usage_constrained(
    ke: &SecretKey,
    suid: &str,
    target: &str,
) -> Result<SecretKey, KdfError> {
    hmac_secret(
        ke.expose_bytes(),
        &[
            LABEL_USAGE_CONSTRAINED,
            nfkc(suid).as_bytes(),
            nfkc(target).as_bytes(),
        ],
    )
}

/// The four end-to-end keys of TS-0003 §10.3.6 and their master key.
#[derive(Debug)]
pub struct E2eKeys {
    /// `Ke2e_master = HMAC(Salt, Kpsa)` (HKDF-Extract).
    pub master: SecretKey,
    /// `T(1)`: message authentication key.
    pub msg_auth: SecretKey,
    /// `T(2)`: message confidentiality key.
    pub msg_conf: SecretKey,
    /// `T(3)`: attribute authenticity key.
    pub att_auth: SecretKey,
    /// `T(4)`: attribute confidentiality key.
    pub att_conf: SecretKey,
}

/// TS-0003 §10.3.6 end-to-end key derivation with SHA-256.
///
/// Each expansion block has its own info string, so this is not library HKDF-Expand:
/// `T(i) = HMAC(Ke2e_master, T(i-1) || info_i || i)` with `T(0)` empty.
pub fn derive_e2e_keys(salt: &[u8], kpsa: &SecretKey) -> Result<E2eKeys, KdfError> {
    let master = hmac_secret(salt, &[kpsa.expose_bytes()])?;
    let m = master.expose_bytes();
    let msg_auth = hmac_secret(m, &[b"E2E Message Authentication Key", &[1]])?;
    let msg_conf = hmac_secret(
        m,
        &[
            msg_auth.expose_bytes(),
            b"E2E Message Confidentiality Key",
            &[2],
        ],
    )?;
    let att_auth = hmac_secret(
        m,
        &[
            msg_conf.expose_bytes(),
            b"E2E Attribute Authenticity Key",
            &[3],
        ],
    )?;
    let att_conf = hmac_secret(
        m,
        &[
            att_auth.expose_bytes(),
            b"E2E Attribute Confidentiality Key",
            &[4],
        ],
    )?;
    Ok(E2eKeys {
        master,
        msg_auth,
        msg_conf,
        att_auth,
        att_conf,
    })
}

/// TS-0003 §10.3.8.2: `sessionESPrimKey = HMAC-SHA256(pairwiseESPrimKey,
/// receiverESPrimRandObject || originatorESPrimRandObject || "oneM2M HMAC-SHA256
/// sessionESPrimKey derivation algorithm")`. The rand objects are passed as serialised bytes.
pub fn derive_session_es_prim_key(
    pairwise: &SecretKey,
    receiver_rand: &[u8],
    originator_rand: &[u8],
) -> Result<SecretKey, KdfError> {
    hmac_secret(
        pairwise.expose_bytes(),
        &[receiver_rand, originator_rand, LABEL_SESSION_ES_PRIM],
    )
}

/// TS-0003 §10.3.1 split of the 48-byte exporter output: the "16 most significant bytes" are
/// the identifier, the "32 least significant bytes" the key (big-endian reading:
/// `id = out[0..16]`, `key = out[16..48]`).
pub fn split_exporter_output(out: &[u8; EXPORTER_LEN]) -> ([u8; 16], SecretKey) {
    let (id, key) = out.split_at(16);
    let mut id_arr = [0u8; 16];
    id_arr.copy_from_slice(id);
    (id_arr, SecretKey::from_slice(key))
}
