//! Nested (sign-then-encrypt) oneM2M JWTs (TS-0003 §7.3.2.6 security profile).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use josekit::jwe::{self, A256KW, Dir, JweHeader};
use m2mtrust_das::{EncryptionKey, TokenError, TokenVerifier};
use serde_json::{Value, json};

const KEK: [u8; 32] = [7; 32];
const CEK: [u8; 32] = [9; 32];

fn header(token: &str) -> Value {
    serde_json::from_slice(&unb64(token.split('.').next().unwrap())).unwrap()
}

fn with_keys(verifier: TokenVerifier) -> TokenVerifier {
    verifier.with_decryption_keys(vec![
        EncryptionKey::a256kw(&KEK).unwrap(),
        EncryptionKey::dir(&CEK).unwrap(),
    ])
}

/// A compact JWE over `payload` with the given header fields, keyed with `KEK` (A256KW).
fn jwe_a256kw(payload: &[u8], typ: Option<&str>, cty: Option<&str>, enc: &str) -> String {
    let mut h = JweHeader::new();
    h.set_algorithm("A256KW");
    h.set_content_encryption(enc);
    if let Some(t) = typ {
        h.set_token_type(t);
    }
    if let Some(c) = cty {
        h.set_content_type(c);
    }
    jwe::serialize_compact(payload, &h, &A256KW.encrypter_from_bytes(KEK).unwrap()).unwrap()
}

#[test]
fn nested_round_trip_a256kw_and_dir() {
    let (issuer, verifier) = es256_pair();
    let verifier = with_keys(verifier);
    for key in [
        EncryptionKey::a256kw(&KEK).unwrap(),
        EncryptionKey::dir(&CEK).unwrap(),
    ] {
        let token = issuer.issue_nested(&claims(), &key).unwrap();
        assert_eq!(token.split('.').count(), 5);
        let h = header(&token);
        assert_eq!(h["typ"], "JWT");
        assert_eq!(h["cty"], "JWT");
        assert_eq!(h["enc"], "A256GCM");
        assert_eq!(h["alg"], key.algorithm());
        assert_eq!(
            verifier.verify(&token, HCSE, HOLDER, t0()).unwrap(),
            claims()
        );
    }
}

#[test]
fn inner_jws_is_independently_decryptable_and_has_no_cty() {
    let (issuer, _) = hs256_pair();
    let token = issuer
        .issue_nested(&claims(), &EncryptionKey::dir(&CEK).unwrap())
        .unwrap();
    let (inner, _) =
        jwe::deserialize_compact(&token, &Dir.decrypter_from_bytes(CEK).unwrap()).unwrap();
    let inner = String::from_utf8(inner).unwrap();
    assert_eq!(header(&inner), json!({"alg":"HS256","typ":"JWT"}));
}

#[test]
fn jwe_without_decryption_key_is_unsupported() {
    let (issuer, verifier) = es256_pair();
    let token = issuer
        .issue_nested(&claims(), &EncryptionKey::a256kw(&KEK).unwrap())
        .unwrap();
    let err = verifier.verify(&token, HCSE, HOLDER, t0()).unwrap_err();
    assert!(matches!(err, TokenError::Unsupported(_)), "{err:?}");
}

#[test]
fn wrong_or_tampered_jwe_fails_integrity() {
    let (issuer, verifier) = es256_pair();
    let token = issuer
        .issue_nested(&claims(), &EncryptionKey::a256kw(&KEK).unwrap())
        .unwrap();
    let other = verifier
        .clone()
        .with_decryption_keys(vec![EncryptionKey::a256kw(&[8; 32]).unwrap()]);
    let err = other.verify(&token, HCSE, HOLDER, t0()).unwrap_err();
    assert!(matches!(err, TokenError::BadSignature), "{err:?}");

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let ct = &mut parts[3];
    let mid = ct.len() / 2;
    let new = if ct.as_bytes()[mid] == b'A' { "B" } else { "A" };
    ct.replace_range(mid..mid + 1, new);
    let err = with_keys(verifier)
        .verify(&parts.join("."), HCSE, HOLDER, t0())
        .unwrap_err();
    assert!(matches!(err, TokenError::BadSignature), "{err:?}");
}

#[test]
fn encryption_only_and_missing_cty_are_refused() {
    let (_, verifier) = hs256_pair();
    let verifier = with_keys(verifier);
    // Encryption-only: the claim set itself inside the JWE, typ JWT, no cty.
    let claims_json = serde_json::to_vec(&claims()).unwrap();
    let err = verifier
        .verify(
            &jwe_a256kw(&claims_json, Some("JWT"), None, "A256GCM"),
            HCSE,
            HOLDER,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, TokenError::Unsupported(_)), "{err:?}");
    // Nested without cty "JWT": a JWS inside, header lacks cty.
    let (issuer, _) = hs256_pair();
    let jws = issuer.issue(&claims()).unwrap();
    let err = verifier
        .verify(
            &jwe_a256kw(jws.as_bytes(), Some("JWT"), None, "A256GCM"),
            HCSE,
            HOLDER,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, TokenError::Unsupported(_)), "{err:?}");
    // Missing typ, wrong cty.
    for (typ, cty) in [(None, Some("JWT")), (Some("JWT"), Some("json"))] {
        let err = verifier
            .verify(
                &jwe_a256kw(jws.as_bytes(), typ, cty, "A256GCM"),
                HCSE,
                HOLDER,
                t0(),
            )
            .unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{err:?}");
    }
    // Unsupported enc.
    let err = verifier
        .verify(
            &jwe_a256kw(jws.as_bytes(), Some("JWT"), Some("JWT"), "A128GCM"),
            HCSE,
            HOLDER,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, TokenError::Unsupported(_)), "{err:?}");
    // Control: the correct header with the same construction verifies.
    assert!(
        verifier
            .verify(
                &jwe_a256kw(jws.as_bytes(), Some("JWT"), Some("JWT"), "A256GCM"),
                HCSE,
                HOLDER,
                t0()
            )
            .is_ok()
    );
}

#[test]
fn inner_layer_is_fully_verified() {
    let (_, verifier) = es256_pair();
    let verifier = with_keys(verifier);
    // Inner JWS signed by an untrusted key.
    let (rogue, _) = es256_pair();
    let inner = rogue.issue(&claims()).unwrap();
    let err = verifier
        .verify(
            &jwe_a256kw(inner.as_bytes(), Some("JWT"), Some("JWT"), "A256GCM"),
            HCSE,
            HOLDER,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, TokenError::BadSignature), "{err:?}");
    // Inner unsecured JWS.
    let payload = serde_json::to_vec(&claims()).unwrap();
    let inner = format!(
        "{}.{}.AAAA",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&payload)
    );
    let err = verifier
        .verify(
            &jwe_a256kw(inner.as_bytes(), Some("JWT"), Some("JWT"), "A256GCM"),
            HCSE,
            HOLDER,
            t0(),
        )
        .unwrap_err();
    assert!(
        matches!(err, TokenError::AlgorithmNotAllowed { .. }),
        "{err:?}"
    );
    // A JWE inside the JWE.
    let (good, _) = es256_pair();
    let nested = good
        .issue_nested(&claims(), &EncryptionKey::a256kw(&KEK).unwrap())
        .unwrap();
    let err = verifier
        .verify(
            &jwe_a256kw(nested.as_bytes(), Some("JWT"), Some("JWT"), "A256GCM"),
            HCSE,
            HOLDER,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, TokenError::Malformed(_)), "{err:?}");
}

#[test]
fn encryption_keys_must_be_32_bytes_and_never_print() {
    assert!(EncryptionKey::a256kw(&[1; 16]).is_err());
    assert!(EncryptionKey::dir(&[1; 31]).is_err());
    let printed = format!("{:?}", EncryptionKey::dir(&[0xAB; 32]).unwrap());
    assert!(
        !printed.contains("171") && !printed.to_lowercase().contains("abab"),
        "{printed}"
    );
}

/// A nested token's JWE Encrypted Key replaced by `key` (base64url, possibly empty).
fn with_encrypted_key(token: &str, key: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = key;
    parts.join(".")
}

#[test]
fn encrypted_keys_of_the_wrong_length_are_refused_without_reaching_the_unwrap() {
    let (issuer, verifier) = es256_pair();
    let verifier = with_keys(verifier);
    let kw = issuer
        .issue_nested(&claims(), &EncryptionKey::a256kw(&KEK).unwrap())
        .unwrap();
    // 1-7 octets made the key unwrap underflow; 0, 32 and 48 are other wrong sizes.
    for key in [
        "",
        "AAAAAA",
        "AAAAAAAAAA",
        "AAAAAAAAAAA",
        &b64(&[1u8; 32]),
        &b64(&[1u8; 48]),
    ] {
        let bad = with_encrypted_key(&kw, key);
        let err = verifier.verify(&bad, HCSE, HOLDER, t0()).unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{key:?}: {err:?}");
    }
    // `dir` carries no encrypted key.
    let dir = issuer
        .issue_nested(&claims(), &EncryptionKey::dir(&CEK).unwrap())
        .unwrap();
    let bad = with_encrypted_key(&dir, &b64(&[1u8; 40]));
    let err = verifier.verify(&bad, HCSE, HOLDER, t0()).unwrap_err();
    assert!(matches!(err, TokenError::Malformed(_)), "{err:?}");
    // The right lengths still verify.
    assert!(verifier.verify(&kw, HCSE, HOLDER, t0()).is_ok());
    assert!(verifier.verify(&dir, HCSE, HOLDER, t0()).is_ok());
}
