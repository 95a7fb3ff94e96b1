//! Issue-then-verify round trips and the JWT claim mapping (TS-0003 Table 7.3.2.6.2-1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::TimeDelta;
use common::*;
use m2mtrust_das::{
    TokenClaims, TokenIssuer, TokenVerifier, TrustedIssuer, VerificationKey, parse_m2m_timestamp,
    to_m2m_timestamp,
};
use serde_json::{Value, json};

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&unb64(part)).unwrap()
}

#[test]
fn es256_round_trip() {
    let (issuer, verifier) = es256_pair();
    let token = issuer.issue(&claims()).unwrap();
    assert_eq!(token.split('.').count(), 3);
    let got = verifier
        .verify(&token, HCSE, HOLDER, t0() + TimeDelta::minutes(5))
        .unwrap();
    assert_eq!(got, claims());
}

#[test]
fn hs256_round_trip() {
    let (issuer, verifier) = hs256_pair();
    let token = issuer.issue(&claims()).unwrap();
    let got = verifier.verify(&token, HCSE, HOLDER, t0()).unwrap();
    assert_eq!(got, claims());
}

#[test]
fn header_is_alg_and_typ_jwt_without_cty() {
    let (es, _) = es256_pair();
    let (hs, _) = hs256_pair();
    assert_eq!(
        decode_part(&es.issue(&claims()).unwrap(), 0),
        json!({"alg":"ES256","typ":"JWT"})
    );
    assert_eq!(
        decode_part(&hs.issue(&claims()).unwrap(), 0),
        json!({"alg":"HS256","typ":"JWT"})
    );
}

#[test]
fn claim_names_and_types_follow_table_7_3_2_6_2_1() {
    let (issuer, _) = hs256_pair();
    let payload = decode_part(&issuer.issue(&claims()).unwrap(), 1);
    assert_eq!(
        payload,
        json!({
            "tkvr": "1",
            "jti": "t1@das.sp.org",
            "iss": ISSUER,
            "azp": HOLDER,
            "nbf": 1_704_067_200,
            "exp": 1_704_070_800,
            "tknm": "read cnt1",
            "aud": [HCSE],
            "tkps": {"pm": [{"ris": ["//sp.org/cse2/cnt1"], "pv": {"acr": [{"acor": [HOLDER], "acop": 2}]}}]},
            "tkex": "x"
        })
    );
    assert!(payload["nbf"].is_i64() && payload["exp"].is_i64());
    assert!(payload["aud"].is_array());
}

#[test]
fn single_string_aud_is_accepted_on_input_and_emitted_as_array() {
    let mut value = serde_json::to_value(claims()).unwrap();
    value["aud"] = json!(HCSE);
    let parsed: TokenClaims = serde_json::from_value(value).unwrap();
    assert_eq!(parsed.audience, vec![HCSE.to_string()]);
    assert_eq!(serde_json::to_value(&parsed).unwrap()["aud"], json!([HCSE]));
}

#[test]
fn unknown_claims_are_ignored_and_long_permission_names_accepted() {
    let mut value = serde_json::to_value(claims()).unwrap();
    value["sub"] = json!("someone");
    value["tkps"] = json!({"pm":[{"resourceIDs":["//sp.org/cse2/cnt1"],"privileges":{"acr":[]}},{"roleIDs":["r1@sp.org"]}]});
    let parsed: TokenClaims = serde_json::from_value(value).unwrap();
    let pm = parsed.permissions.unwrap().pm;
    assert_eq!(pm.len(), 2);
    assert_eq!(pm[1].rids.as_deref(), Some(&["r1@sp.org".to_string()][..]));
}

#[test]
fn fractional_numeric_date_is_floored() {
    let mut value = serde_json::to_value(claims()).unwrap();
    value["nbf"] = json!(1_704_067_200.9);
    let parsed: TokenClaims = serde_json::from_value(value).unwrap();
    assert_eq!(parsed.not_before, t0());
}

#[test]
fn missing_required_claims_are_invalid() {
    for name in ["tkvr", "jti", "iss", "azp", "nbf", "exp"] {
        let mut value = serde_json::to_value(claims()).unwrap();
        value.as_object_mut().unwrap().remove(name);
        assert!(
            serde_json::from_value::<TokenClaims>(value).is_err(),
            "{name} missing was accepted"
        );
    }
}

#[test]
fn m2m_timestamp_maps_to_numeric_date() {
    assert_eq!(
        parse_m2m_timestamp("20240101T000000").unwrap().timestamp(),
        1_704_067_200
    );
    assert_eq!(to_m2m_timestamp(t0()), "20240101T000000");
    assert!(parse_m2m_timestamp("2024-01-01T00:00:00").is_err());
}

#[test]
fn issuer_refuses_foreign_iss_and_bad_permissions() {
    let (issuer, _) = hs256_pair();
    let mut other = claims();
    other.issuer = "//sp.org/other".into();
    assert_eq!(issuer.issue(&other).unwrap_err().reason(), "invalid_claims");

    let mut bad = claims();
    bad.permissions.as_mut().unwrap().pm[0].ris = None;
    assert_eq!(issuer.issue(&bad).unwrap_err().reason(), "invalid_claims");

    let mut inverted = claims();
    inverted.not_after = inverted.not_before;
    assert_eq!(
        issuer.issue(&inverted).unwrap_err().reason(),
        "invalid_claims"
    );
}

#[test]
fn short_hs256_secret_is_refused_and_keys_never_print() {
    assert_eq!(
        TokenIssuer::hs256(ISSUER, b"short").unwrap_err().reason(),
        "crypto"
    );
    let (issuer, verifier) = hs256_pair();
    let printed = format!("{issuer:?} {verifier:?}");
    assert!(!printed.contains("0123456789abcdef"), "{printed}");
    let pem = es256_private_pem();
    let es = TokenIssuer::es256(ISSUER, &pem).unwrap();
    let printed = format!("{es:?}");
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!printed.contains(body_line), "{printed}");
}

#[test]
fn clock_leeway_and_wildcard_audience() {
    let (issuer, verifier) = hs256_pair();
    let token = issuer.issue(&claims()).unwrap();
    let late = t0() + TimeDelta::hours(1) + TimeDelta::seconds(30);
    assert_eq!(
        verifier
            .verify(&token, HCSE, HOLDER, late)
            .unwrap_err()
            .reason(),
        "expired"
    );
    let lenient = verifier.clone().with_leeway(TimeDelta::seconds(60));
    assert!(lenient.verify(&token, HCSE, HOLDER, late).is_ok());

    let mut wild = claims();
    wild.audience = vec!["//sp.org/*".into()];
    let token = issuer.issue(&wild).unwrap();
    assert!(verifier.verify(&token, HCSE, HOLDER, t0()).is_ok());
    for other in [
        "//sp.org/cse2/x",
        "//sp.orgx/cse2",
        "//other.org/cse2",
        "//sp.org/",
    ] {
        assert_eq!(
            verifier
                .verify(&token, other, HOLDER, t0())
                .unwrap_err()
                .reason(),
            "wrong_audience",
            "{other}"
        );
    }
    let strict = verifier.clone().with_audience_wildcards(false);
    assert_eq!(
        strict
            .verify(&token, HCSE, HOLDER, t0())
            .unwrap_err()
            .reason(),
        "wrong_audience"
    );

    let mut bare = claims();
    bare.audience = vec!["*".into()];
    let token = issuer.issue(&bare).unwrap();
    assert_eq!(
        verifier
            .verify(&token, HCSE, HOLDER, t0())
            .unwrap_err()
            .reason(),
        "wrong_audience"
    );

    let mut none = claims();
    none.audience.clear();
    let token = issuer.issue(&none).unwrap();
    assert!(
        !decode_part(&token, 1)
            .as_object()
            .unwrap()
            .contains_key("aud")
    );
    assert_eq!(
        verifier
            .verify(&token, HCSE, HOLDER, t0())
            .unwrap_err()
            .reason(),
        "wrong_audience"
    );
    let open = verifier.accept_empty_audience(true);
    assert!(open.verify(&token, HCSE, HOLDER, t0()).is_ok());
}

#[test]
fn key_rollover_and_jwk_keys() {
    use josekit::jwk::KeyPair;
    let current = josekit::jws::ES256.generate_key_pair().unwrap();
    let previous = josekit::jws::ES256.generate_key_pair().unwrap();
    let issuer = TokenIssuer::es256(
        ISSUER,
        &String::from_utf8(current.to_pem_private_key()).unwrap(),
    )
    .unwrap();
    let keys = vec![
        VerificationKey::es256_public_pem(
            &String::from_utf8(previous.to_pem_public_key()).unwrap(),
        )
        .unwrap(),
        VerificationKey::es256_jwk(&current.to_jwk_public_key().to_string()).unwrap(),
    ];
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: ISSUER.into(),
        keys,
    }]);
    let token = issuer.issue(&claims()).unwrap();
    assert!(verifier.verify(&token, HCSE, HOLDER, t0()).is_ok());
    assert!(VerificationKey::es256_jwk(r#"{"kty":"oct","k":"AAAA"}"#).is_err());
    assert!(VerificationKey::es256_public_pem("not a key").is_err());
}

#[test]
fn with_issuer_renames_the_issuer() {
    let (issuer, verifier) = hs256_pair();
    let renamed = TokenIssuer::hs256("placeholder", HS_SECRET)
        .unwrap()
        .with_issuer(ISSUER);
    assert_eq!(renamed.issuer(), ISSUER);
    let token = renamed.issue(&claims()).unwrap();
    assert_eq!(token, issuer.issue(&claims()).unwrap());
    assert!(verifier.verify(&token, HCSE, HOLDER, t0()).is_ok());
}
