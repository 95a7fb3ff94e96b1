//! Shared fixtures of the token tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use josekit::jwk::KeyPair;
use josekit::jws::ES256;
use m2mtrust_das::{
    TokenClaims, TokenIssuer, TokenPermission, TokenPermissions, TokenVerifier, TrustedIssuer,
    VerificationKey,
};
use serde_json::json;

pub const ISSUER: &str = "//sp.org/das-ae";
pub const HOLDER: &str = "//sp.org/cse1/Cae1";
pub const HCSE: &str = "//sp.org/cse2";
pub const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256-shared";

/// 2024-01-01T00:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_704_067_200, 0).unwrap()
}

/// A fresh P-256 private key, PKCS#8 PEM.
pub fn es256_private_pem() -> String {
    let pair = ES256.generate_key_pair().unwrap();
    String::from_utf8(pair.to_pem_private_key()).unwrap()
}

/// Claims valid for one hour from `t0()`, holder `HOLDER`, audience `HCSE`.
pub fn claims() -> TokenClaims {
    TokenClaims {
        version: "1".into(),
        token_id: "t1@das.sp.org".into(),
        issuer: ISSUER.into(),
        holder: HOLDER.into(),
        not_before: t0(),
        not_after: t0() + TimeDelta::hours(1),
        token_name: Some("read cnt1".into()),
        audience: vec![HCSE.into()],
        permissions: Some(TokenPermissions {
            pm: vec![TokenPermission {
                ris: Some(vec!["//sp.org/cse2/cnt1".into()]),
                pv: Some(json!({"acr":[{"acor":[HOLDER],"acop":2}]})),
                rids: None,
            }],
        }),
        extension: Some("x".into()),
    }
}

/// An ES256 issuer with a fresh key and a verifier trusting it.
pub fn es256_pair() -> (TokenIssuer, TokenVerifier) {
    let issuer = TokenIssuer::es256(ISSUER, &es256_private_pem()).unwrap();
    let key = VerificationKey::es256_public_pem(&issuer.public_key_pem().unwrap()).unwrap();
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: ISSUER.into(),
        keys: vec![key],
    }]);
    (issuer, verifier)
}

/// An HS256 issuer and a verifier sharing `HS_SECRET`.
pub fn hs256_pair() -> (TokenIssuer, TokenVerifier) {
    let issuer = TokenIssuer::hs256(ISSUER, HS_SECRET).unwrap();
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: ISSUER.into(),
        keys: vec![VerificationKey::hs256(HS_SECRET).unwrap()],
    }]);
    (issuer, verifier)
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// HMAC-SHA-256 with `key` via josekit (any key length allowed through openssl directly).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    let pkey = PKey::hmac(key).unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).unwrap();
    signer.update(data).unwrap();
    signer.sign_to_vec().unwrap()
}

/// A hand-built HS256 compact JWS with arbitrary header and payload JSON.
pub fn hs256_token(header: &serde_json::Value, payload: &serde_json::Value, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(payload).unwrap())
    );
    let sig = hmac_sha256(key, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}
