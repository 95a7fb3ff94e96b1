//! Independent verification with the `jsonwebtoken` crate (RFC 7515/7519 implementation that
//! shares no code with josekit or this crate).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use m2mtrust_das::{TokenClaims, TokenIssuer, TokenVerifier, TrustedIssuer, VerificationKey};

/// Claims valid around the real clock, because `jsonwebtoken` validates against it.
fn current_claims() -> TokenClaims {
    // NumericDate has whole seconds.
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let mut c = claims();
    c.not_before = now - TimeDelta::minutes(1);
    c.not_after = now + TimeDelta::minutes(10);
    c
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&[HCSE]);
    v.set_issuer(&[ISSUER]);
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    v
}

#[test]
fn jsonwebtoken_verifies_our_es256_token() {
    let issuer = TokenIssuer::es256(ISSUER, &es256_private_pem()).unwrap();
    let claims = current_claims();
    let token = issuer.issue(&claims).unwrap();
    let key = DecodingKey::from_ec_pem(issuer.public_key_pem().unwrap().as_bytes()).unwrap();
    let data =
        jsonwebtoken::decode::<TokenClaims>(&token, &key, &validation(Algorithm::ES256)).unwrap();
    assert_eq!(data.header.typ.as_deref(), Some("JWT"));
    assert_eq!(data.header.cty, None);
    assert_eq!(data.claims, claims);
    // Control: a different key is refused by jsonwebtoken as well.
    let other = TokenIssuer::es256(ISSUER, &es256_private_pem()).unwrap();
    let wrong = DecodingKey::from_ec_pem(other.public_key_pem().unwrap().as_bytes()).unwrap();
    assert!(
        jsonwebtoken::decode::<TokenClaims>(&token, &wrong, &validation(Algorithm::ES256)).is_err()
    );
}

#[test]
fn jsonwebtoken_verifies_our_hs256_token() {
    let issuer = TokenIssuer::hs256(ISSUER, HS_SECRET).unwrap();
    let claims = current_claims();
    let token = issuer.issue(&claims).unwrap();
    let data = jsonwebtoken::decode::<TokenClaims>(
        &token,
        &DecodingKey::from_secret(HS_SECRET),
        &validation(Algorithm::HS256),
    )
    .unwrap();
    assert_eq!(data.claims, claims);
    assert!(
        jsonwebtoken::decode::<TokenClaims>(
            &token,
            &DecodingKey::from_secret(b"another secret of at least 32 bytes!!"),
            &validation(Algorithm::HS256),
        )
        .is_err()
    );
}

#[test]
fn we_verify_jsonwebtoken_es256_and_hs256_tokens() {
    let private_pem = es256_private_pem();
    let issuer = TokenIssuer::es256(ISSUER, &private_pem).unwrap();
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: ISSUER.into(),
        keys: vec![
            VerificationKey::es256_public_pem(&issuer.public_key_pem().unwrap()).unwrap(),
            VerificationKey::hs256(HS_SECRET).unwrap(),
        ],
    }]);
    let claims = claims();

    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(verifier.verify(&es, HCSE, HOLDER, t0()).unwrap(), claims);

    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HS_SECRET),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hs, HCSE, HOLDER, t0()).unwrap(), claims);

    // Control: a jsonwebtoken token signed with a key we do not trust is refused.
    let rogue = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(es256_private_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        verifier
            .verify(&rogue, HCSE, HOLDER, t0())
            .unwrap_err()
            .reason(),
        "bad_signature"
    );
}
