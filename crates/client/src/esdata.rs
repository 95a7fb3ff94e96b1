//! End-to-End Security of Data for applications (TS-0003 §8.5): the content an AE stores (a
//! `<contentInstance>`'s `con`, for instance) sealed as a JWE, optionally signed first, so the
//! CSEs that store and forward it read only an envelope. Any holder of the key opens it.
//!
//! The envelopes are those of `m2mtrust_crypto::esdata` (profile: `docs/e2e.md`): compact JWE,
//! `A256KW` key wrapping (or `dir`) with `A256GCM` by default, `cty` `application/json`; with a
//! signing key, a nested JWS (ES256) inside.

use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::{
    ContentEncryption, DecryptionKey, EncryptionKey, EsData, EsDataError, JweOptions,
    KeyManagementAlgorithm, Serialization, SigningKey, VerificationKey,
};
use serde_json::Value;

/// Seals and opens JSON content under one symmetric ESData key (and optionally a signature).
pub struct ContentProtection {
    esdata: EsData,
    encryption: EncryptionKey,
    decryption: DecryptionKey,
    signer: Option<SigningKey>,
    verifiers: Vec<VerificationKey>,
}

impl std::fmt::Debug for ContentProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentProtection")
            .field("kid", &self.encryption.kid())
            .field("signed", &self.signer.is_some())
            .finish_non_exhaustive()
    }
}

impl ContentProtection {
    /// Protection with the AES key-wrapping key `key` (32 bytes, `A256KW`) named `kid` (an
    /// ESData key identifier, e.g. a Credential-ID's value).
    pub fn key_wrap(kid: &str, key: &SecretKey) -> Result<Self, EsDataError> {
        Ok(Self {
            esdata: EsData::new(),
            encryption: EncryptionKey::symmetric(kid, KeyManagementAlgorithm::A256Kw, key)?,
            decryption: DecryptionKey::symmetric(kid, KeyManagementAlgorithm::A256Kw, key)?,
            signer: None,
            verifiers: Vec::new(),
        })
    }

    /// The same protection, with content signed first by `signer` (nested sign-then-encrypt,
    /// §8.5.2.4) and opened only when one of `verifiers` verifies it.
    pub fn signed(mut self, signer: SigningKey, verifiers: Vec<VerificationKey>) -> Self {
        self.signer = Some(signer);
        self.verifiers = verifiers;
        self
    }

    /// `value` as a compact JWE (nested when signing).
    pub fn seal(&self, value: &Value) -> Result<String, EsDataError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| EsDataError::InvalidRequest(e.to_string()))?;
        let options = JweOptions {
            enc: ContentEncryption::A256Gcm,
            serialization: Serialization::Compact,
            content_type: Some("application/json".into()),
        };
        match &self.signer {
            Some(signer) => self.esdata.sign_then_encrypt(
                &bytes,
                &[signer],
                Serialization::Compact,
                &[&self.encryption],
                &options,
            ),
            None => self.esdata.encrypt(&bytes, &[&self.encryption], &options),
        }
    }

    /// The JSON content of an envelope made by [`ContentProtection::seal`] with the same key
    /// (and a signature one of the verifiers accepts, when signing is configured).
    pub fn open(&self, envelope: &str) -> Result<Value, EsDataError> {
        let payload = if self.signer.is_some() {
            let verifiers: Vec<&VerificationKey> = self.verifiers.iter().collect();
            let (_, verified) =
                self.esdata
                    .decrypt_then_verify(envelope, &[&self.decryption], &verifiers)?;
            verified.payload
        } else {
            self.esdata.decrypt(envelope, &[&self.decryption])?.payload
        };
        serde_json::from_slice(&payload).map_err(|e| EsDataError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_content_opens_only_with_its_key_and_unaltered() {
        let key = SecretKey::from_slice(&[7u8; 32]);
        let p = ContentProtection::key_wrap("app-key@m2mtrust.example", &key).unwrap();
        let value = json!({"temperature": 21.5, "unit": "C"});
        let sealed = p.seal(&value).unwrap();
        assert_eq!(sealed.split('.').count(), 5);
        assert!(!sealed.contains("temperature"));
        assert_eq!(p.open(&sealed).unwrap(), value);

        let other = ContentProtection::key_wrap(
            "app-key@m2mtrust.example",
            &SecretKey::from_slice(&[8u8; 32]),
        )
        .unwrap();
        assert!(other.open(&sealed).is_err());
        let mut parts: Vec<String> = sealed.split('.').map(str::to_string).collect();
        parts[3] = format!("A{}", &parts[3][1..]);
        if parts[3] == sealed.split('.').nth(3).unwrap() {
            parts[3] = format!("B{}", &parts[3][1..]);
        }
        assert!(p.open(&parts.join(".")).is_err());
        assert!(p.open("not an envelope").is_err());
    }
}
