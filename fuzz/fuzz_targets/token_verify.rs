//! oneM2M tokens from the wire (`X-M2M-TKNS`): the verifier must refuse anything that is not a
//! token of a trusted issuer, without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use m2mtrust_das::{EncryptionKey, TokenVerifier, TrustedIssuer, VerificationKey};

fn verifier() -> &'static TokenVerifier {
    static V: OnceLock<TokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let keys = VerificationKey::hs256(b"0123456789abcdef0123456789abcdef")
            .map(|k| vec![k])
            .unwrap_or_default();
        // Decryption keys too, so nested (JWE) tokens reach the key unwrap and decryption.
        let decryption = [EncryptionKey::a256kw(&[7; 32]), EncryptionKey::dir(&[9; 32])]
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        TokenVerifier::new(vec![TrustedIssuer {
            issuer: "das.m2mtrust.example".into(),
            keys,
        }])
        .with_decryption_keys(decryption)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let _ = verifier().verify(s, "//m2mtrust.example/id-in", "//m2mtrust.example/id-in/Cae", now);
});
