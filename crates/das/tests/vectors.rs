//! Re-verifies `vectors/tokens.json` (tokens issued by this crate with a fixed test key) with this
//! crate and with `jsonwebtoken`. See `vectors/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::DateTime;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use m2mtrust_das::{TokenClaims, TokenIssuer, TokenVerifier, TrustedIssuer, VerificationKey};
use serde_json::{Value, json};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/tokens.json");

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn vectors_verify_with_both_implementations() {
    let v = load();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let public_pem = s("es256_public_key_pem");
    let secret = hex(&s("hs256_secret_hex"));
    let expected: TokenClaims = serde_json::from_value(v["claims"].clone()).unwrap();
    let now = DateTime::from_timestamp(v["verify_at"].as_i64().unwrap(), 0).unwrap();

    let from_pem = VerificationKey::es256_public_pem(&public_pem).unwrap();
    let from_jwk = VerificationKey::es256_jwk(&v["es256_public_jwk"].to_string()).unwrap();
    let hs = VerificationKey::hs256(&secret).unwrap();
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    for entry in tokens {
        let alg = entry["alg"].as_str().unwrap();
        let jwt = entry["jwt"].as_str().unwrap();
        let keys = match alg {
            "ES256" => vec![vec![from_pem.clone()], vec![from_jwk.clone()]],
            "HS256" => vec![vec![hs.clone()]],
            other => panic!("unexpected alg {other}"),
        };
        for keys in keys {
            let verifier = TokenVerifier::new(vec![TrustedIssuer {
                issuer: s("issuer"),
                keys,
            }]);
            let got = verifier
                .verify(jwt, &s("audience"), &s("holder"), now)
                .unwrap();
            assert_eq!(got, expected, "{alg}");
        }

        let (key, algorithm) = match alg {
            "ES256" => (
                DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap(),
                Algorithm::ES256,
            ),
            _ => (DecodingKey::from_secret(&secret), Algorithm::HS256),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[s("audience")]);
        validation.set_issuer(&[s("issuer")]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation).unwrap();
        assert_eq!(data.claims, v["claims"], "{alg}");
    }
}

/// HS256 is deterministic: re-issuing the vector's claims gives the vector's token byte for byte.
#[test]
fn hs256_vector_is_reproduced_exactly() {
    let v = load();
    let claims: TokenClaims = serde_json::from_value(v["claims"].clone()).unwrap();
    let issuer = TokenIssuer::hs256(
        claims.issuer.clone(),
        &hex(v["hs256_secret_hex"].as_str().unwrap()),
    )
    .unwrap();
    assert_eq!(
        issuer.issue(&claims).unwrap(),
        v["tokens"][1]["jwt"].as_str().unwrap()
    );
}

/// Regenerates `tokens.json`: `cargo test -p m2mtrust-das --test vectors -- --ignored`.
/// ECDSA signatures are randomized, so the ES256 token changes on every run.
#[test]
#[ignore = "writes tests/vectors/tokens.json"]
fn regenerate_vectors() {
    use josekit::jwk::KeyPair;
    let v = load();
    let private_pem = v["es256_private_key_pem_test_only"].as_str().unwrap();
    let pair = josekit::jws::ES256
        .key_pair_from_pem(private_pem.as_bytes())
        .unwrap();
    let secret = hex(v["hs256_secret_hex"].as_str().unwrap());
    let claims: TokenClaims = serde_json::from_value(v["claims"].clone()).unwrap();
    let es = TokenIssuer::es256(claims.issuer.clone(), private_pem).unwrap();
    let hs = TokenIssuer::hs256(claims.issuer.clone(), &secret).unwrap();
    let mut out = v.clone();
    out["es256_public_key_pem"] = json!(es.public_key_pem().unwrap());
    out["es256_public_jwk"] = serde_json::from_str(&pair.to_jwk_public_key().to_string()).unwrap();
    out["tokens"] = json!([
        {"alg": "ES256", "jwt": es.issue(&claims).unwrap()},
        {"alg": "HS256", "jwt": hs.issue(&claims).unwrap()},
    ]);
    std::fs::write(PATH, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
}
