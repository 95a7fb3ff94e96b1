//! ESData (TS-0003 §8.5): JWE and JWS in the three serializations.
//!
//! Interoperability runs both ways: RFC 7520 examples and envelopes made by an independent
//! producer (`tests/vectors/gen_jose.py`, Python `cryptography` primitives) are opened here,
//! and envelopes made here are opened by code independent of josekit: the `jsonwebtoken` crate
//! for JWS, OpenSSL primitives assembled in this file for JWE (AES key unwrap, RSA-OAEP,
//! ECDH with the Concat KDF, AES-GCM) and for ES512.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::{
    ContentEncryption, DecryptionKey, EncryptionKey, EsData, EsDataError, JweOptions,
    KeyManagementAlgorithm as Kma, Serialization, SignatureAlgorithm as Sa, SigningKey,
    VerificationKey,
};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_json::{Map, Value, json};

const PAYLOAD: &[u8] = br#"{"m2m:cin":{"con":"21.5","cnf":"text/plain:0"}}"#;
const SERIALIZATIONS: [Serialization; 3] = [
    Serialization::Compact,
    Serialization::FlattenedJson,
    Serialization::GeneralJson,
];

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string `{key}` in {v}"))
}

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Key material.

fn rsa_key() -> &'static PKey<Private> {
    static KEY: OnceLock<PKey<Private>> = OnceLock::new();
    KEY.get_or_init(|| PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap())
}

fn ec_key(nid: Nid) -> PKey<Private> {
    PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap()).unwrap()
}

fn private_pem(k: &PKey<Private>) -> Vec<u8> {
    k.private_key_to_pem_pkcs8().unwrap()
}

fn public_pem(k: &PKey<Private>) -> Vec<u8> {
    k.public_key_to_pem().unwrap()
}

fn secret(len: usize, fill: u8) -> SecretKey {
    SecretKey::new(vec![fill; len])
}

/// A signing key, its verification key, and the same public key for the independent verifier.
struct SigPair {
    signer: SigningKey,
    verifier: VerificationKey,
    alg: Sa,
    public: Indep,
}

fn sig_pair(alg: Sa) -> SigPair {
    let kid = format!("{}-key", alg.name().to_ascii_lowercase());
    let (signer, verifier, public) = match alg {
        Sa::Hs256 | Sa::Hs384 | Sa::Hs512 => {
            let k = secret(64, 0x42);
            (
                SigningKey::hmac(&kid, alg, &k).unwrap(),
                VerificationKey::hmac(&kid, alg, &k).unwrap(),
                Indep::Sym(k.expose_bytes().to_vec()),
            )
        }
        Sa::Rs256 | Sa::Rs384 | Sa::Rs512 => (
            SigningKey::from_private_pem(&kid, alg, &private_pem(rsa_key())).unwrap(),
            VerificationKey::from_public_pem(&kid, alg, &public_pem(rsa_key())).unwrap(),
            Indep::Private(rsa_key().clone()),
        ),
        Sa::Es256 | Sa::Es384 | Sa::Es512 => {
            let nid = match alg {
                Sa::Es256 => Nid::X9_62_PRIME256V1,
                Sa::Es384 => Nid::SECP384R1,
                _ => Nid::SECP521R1,
            };
            let k = ec_key(nid);
            (
                SigningKey::from_private_pem(&kid, alg, &private_pem(&k)).unwrap(),
                VerificationKey::from_public_pem(&kid, alg, &public_pem(&k)).unwrap(),
                Indep::Private(k),
            )
        }
    };
    SigPair {
        signer,
        verifier,
        alg,
        public,
    }
}

/// An encryption key, its decryption key, and the private material for the independent
/// decrypter.
struct EncPair {
    enc_key: EncryptionKey,
    dec_key: DecryptionKey,
    private: Indep,
}

fn enc_pair(alg: Kma, kid: &str, enc: ContentEncryption) -> EncPair {
    let sym = |len| {
        let k = secret(len, 0x5c);
        EncPair {
            enc_key: EncryptionKey::symmetric(kid, alg, &k).unwrap(),
            dec_key: DecryptionKey::symmetric(kid, alg, &k).unwrap(),
            private: Indep::Sym(k.expose_bytes().to_vec()),
        }
    };
    let asym = |k: PKey<Private>| EncPair {
        enc_key: EncryptionKey::from_public_pem(kid, alg, &public_pem(&k)).unwrap(),
        dec_key: DecryptionKey::from_private_pem(kid, alg, &private_pem(&k)).unwrap(),
        private: Indep::Private(k),
    };
    match alg {
        Kma::Dir => sym(enc.key_len()),
        Kma::A128Kw => sym(16),
        Kma::A192Kw => sym(24),
        Kma::A256Kw => sym(32),
        Kma::RsaOaep256 => asym(rsa_key().clone()),
        Kma::EcdhEsA128Kw => asym(ec_key(Nid::X9_62_PRIME256V1)),
        Kma::EcdhEsA192Kw => asym(ec_key(Nid::SECP384R1)),
        Kma::EcdhEsA256Kw => asym(ec_key(Nid::SECP521R1)),
    }
}

// ---------------------------------------------------------------------------------------------
// The independent side: no josekit.

enum Indep {
    Sym(Vec<u8>),
    Private(PKey<Private>),
}

/// One JWS signature: protected header text, decoded protected header, signature octets.
type SignatureParts = (String, Map<String, Value>, Vec<u8>);

/// The payload text and every signature of a JWS.
fn jws_parts(envelope: &str) -> (String, Vec<SignatureParts>) {
    let decode_header =
        |p: &str| -> Map<String, Value> { serde_json::from_slice(&b64d(p)).unwrap() };
    if let Ok(Value::Object(top)) = serde_json::from_str::<Value>(envelope) {
        let payload = top["payload"].as_str().unwrap().to_owned();
        let sigs: Vec<Value> = match top.get("signatures") {
            Some(Value::Array(list)) => list.clone(),
            _ => vec![Value::Object(top.clone())],
        };
        let parts = sigs
            .iter()
            .map(|sig| {
                let p = sig["protected"].as_str().unwrap().to_owned();
                let h = decode_header(&p);
                (p, h, b64d(sig["signature"].as_str().unwrap()))
            })
            .collect();
        (payload, parts)
    } else {
        let p: Vec<&str> = envelope.split('.').collect();
        assert_eq!(p.len(), 3);
        (
            p[1].to_owned(),
            vec![(p[0].to_owned(), decode_header(p[0]), b64d(p[2]))],
        )
    }
}

/// Verifies the signature with `kid` by `jsonwebtoken` (HS*, RS*, ES256, ES384) or by OpenSSL
/// (ES512, which `jsonwebtoken` lacks); returns the payload.
fn independent_verify(envelope: &str, kid: &str, alg: Sa, key: &Indep) -> Vec<u8> {
    use jsonwebtoken::{Algorithm, DecodingKey};
    let (payload, sigs) = jws_parts(envelope);
    let (protected, header, signature) = sigs
        .iter()
        .find(|(_, h, _)| h["kid"] == json!(kid))
        .unwrap_or_else(|| panic!("no signature with kid {kid}"));
    assert_eq!(header["alg"], json!(alg.name()));
    let input = format!("{protected}.{payload}");
    let ok = match (alg, key) {
        (Sa::Es512, Indep::Private(k)) => {
            let (r, s) = signature.split_at(66);
            let sig = openssl::ecdsa::EcdsaSig::from_private_components(
                openssl::bn::BigNum::from_slice(r).unwrap(),
                openssl::bn::BigNum::from_slice(s).unwrap(),
            )
            .unwrap();
            let public = PKey::public_key_from_pem(&public_pem(k)).unwrap();
            let mut v =
                openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha512(), &public)
                    .unwrap();
            v.verify_oneshot(&sig.to_der().unwrap(), input.as_bytes())
                .unwrap()
        }
        (_, key) => {
            let algorithm = match alg {
                Sa::Hs256 => Algorithm::HS256,
                Sa::Hs384 => Algorithm::HS384,
                Sa::Hs512 => Algorithm::HS512,
                Sa::Rs256 => Algorithm::RS256,
                Sa::Rs384 => Algorithm::RS384,
                Sa::Rs512 => Algorithm::RS512,
                Sa::Es256 => Algorithm::ES256,
                Sa::Es384 => Algorithm::ES384,
                Sa::Es512 => unreachable!(),
            };
            let decoding = match key {
                Indep::Sym(k) => DecodingKey::from_secret(k),
                Indep::Private(k) if alg.name().starts_with("RS") => {
                    DecodingKey::from_rsa_pem(&public_pem(k)).unwrap()
                }
                Indep::Private(k) => DecodingKey::from_ec_pem(&public_pem(k)).unwrap(),
            };
            jsonwebtoken::crypto::verify(
                &URL_SAFE_NO_PAD.encode(signature),
                input.as_bytes(),
                &decoding,
                algorithm,
            )
            .unwrap()
        }
    };
    assert!(ok, "independent verification of {} failed", alg.name());
    b64d(&payload)
}

/// RFC 7518 §4.6.2 Concat KDF with SHA-256.
fn concat_kdf(z: &[u8], alg: &str, apu: &[u8], apv: &[u8], key_len: usize) -> Vec<u8> {
    let mut other = Vec::new();
    for field in [alg.as_bytes(), apu, apv] {
        other.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
        other.extend_from_slice(field);
    }
    other.extend_from_slice(&u32::try_from(key_len * 8).unwrap().to_be_bytes());
    let mut out = Vec::new();
    let mut counter = 1u32;
    while out.len() < key_len {
        let mut sha = openssl::sha::Sha256::new();
        sha.update(&counter.to_be_bytes());
        sha.update(z);
        sha.update(&other);
        out.extend_from_slice(&sha.finish());
        counter += 1;
    }
    out.truncate(key_len);
    out
}

fn aes_unwrap(kek: &[u8], wrapped: &[u8]) -> Vec<u8> {
    let key = openssl::aes::AesKey::new_decrypt(kek).unwrap();
    let mut out = vec![0u8; wrapped.len() - 8];
    let n = openssl::aes::unwrap_key(&key, None, &mut out, wrapped).unwrap();
    out.truncate(n);
    out
}

/// Decrypts the recipient entry with `kid` using OpenSSL primitives only.
fn independent_decrypt(envelope: &str, kid: &str, key: &Indep) -> Vec<u8> {
    let header_of = |p: &str| -> Map<String, Value> { serde_json::from_slice(&b64d(p)).unwrap() };
    let (protected, merged, ek, iv, ct, tag, aad) =
        if let Ok(Value::Object(top)) = serde_json::from_str::<Value>(envelope) {
            let protected = top
                .get("protected")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut merged = if protected.is_empty() {
                Map::new()
            } else {
                header_of(&protected)
            };
            if let Some(Value::Object(u)) = top.get("unprotected") {
                merged.extend(u.clone());
            }
            let recipients: Vec<Value> = match top.get("recipients") {
                Some(Value::Array(list)) => list.clone(),
                _ => vec![Value::Object(top.clone())],
            };
            let recipient = recipients
                .iter()
                .find(|r| {
                    let mut m = merged.clone();
                    if let Some(Value::Object(h)) = r.get("header") {
                        m.extend(h.clone());
                    }
                    m.get("kid") == Some(&json!(kid))
                })
                .unwrap_or_else(|| panic!("no recipient {kid}"));
            if let Some(Value::Object(h)) = recipient.get("header") {
                merged.extend(h.clone());
            }
            let ek = recipient
                .get("encrypted_key")
                .and_then(Value::as_str)
                .map(b64d)
                .unwrap_or_default();
            let aad = top.get("aad").and_then(Value::as_str).map(str::to_owned);
            (
                protected,
                merged,
                ek,
                b64d(top["iv"].as_str().unwrap()),
                b64d(top["ciphertext"].as_str().unwrap()),
                b64d(top["tag"].as_str().unwrap()),
                aad,
            )
        } else {
            let p: Vec<&str> = envelope.split('.').collect();
            assert_eq!(p.len(), 5);
            (
                p[0].to_owned(),
                header_of(p[0]),
                b64d(p[1]),
                b64d(p[2]),
                b64d(p[3]),
                b64d(p[4]),
                None,
            )
        };
    let alg = merged["alg"].as_str().unwrap();
    let enc = merged["enc"].as_str().unwrap();
    let cek = match (alg, key) {
        ("dir", Indep::Sym(k)) => k.clone(),
        ("A128KW" | "A192KW" | "A256KW", Indep::Sym(k)) => aes_unwrap(k, &ek),
        ("RSA-OAEP-256", Indep::Private(k)) => {
            let mut d = openssl::encrypt::Decrypter::new(k).unwrap();
            d.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
                .unwrap();
            d.set_rsa_oaep_md(openssl::hash::MessageDigest::sha256())
                .unwrap();
            d.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())
                .unwrap();
            let mut out = vec![0u8; d.decrypt_len(&ek).unwrap()];
            let n = d.decrypt(&ek, &mut out).unwrap();
            out.truncate(n);
            out
        }
        (kw, Indep::Private(k)) if kw.starts_with("ECDH-ES+") => {
            let epk = merged["epk"].as_object().unwrap();
            let nid = match epk["crv"].as_str().unwrap() {
                "P-256" => Nid::X9_62_PRIME256V1,
                "P-384" => Nid::SECP384R1,
                _ => Nid::SECP521R1,
            };
            let group = EcGroup::from_curve_name(nid).unwrap();
            let coord =
                |c: &str| openssl::bn::BigNum::from_slice(&b64d(epk[c].as_str().unwrap())).unwrap();
            let peer = PKey::from_ec_key(
                EcKey::from_public_key_affine_coordinates(&group, &coord("x"), &coord("y"))
                    .unwrap(),
            )
            .unwrap();
            let mut deriver = openssl::derive::Deriver::new(k).unwrap();
            deriver.set_peer(&peer).unwrap();
            let z = deriver.derive_to_vec().unwrap();
            let field = |n: &str| {
                merged
                    .get(n)
                    .and_then(Value::as_str)
                    .map(b64d)
                    .unwrap_or_default()
            };
            let kek_len = match kw {
                "ECDH-ES+A128KW" => 16,
                "ECDH-ES+A192KW" => 24,
                _ => 32,
            };
            let kek = concat_kdf(&z, kw, &field("apu"), &field("apv"), kek_len);
            aes_unwrap(&kek, &ek)
        }
        (other, _) => panic!("no independent decrypter for {other}"),
    };
    let cipher = match enc {
        "A128GCM" => openssl::symm::Cipher::aes_128_gcm(),
        "A192GCM" => openssl::symm::Cipher::aes_192_gcm(),
        "A256GCM" => openssl::symm::Cipher::aes_256_gcm(),
        other => panic!("enc {other}"),
    };
    let full_aad = match aad {
        Some(a) => format!("{protected}.{a}"),
        None => protected,
    };
    openssl::symm::decrypt_aead(cipher, &cek, Some(&iv), full_aad.as_bytes(), &ct, &tag).unwrap()
}

// ---------------------------------------------------------------------------------------------
// RFC 7520.

fn rfc(name: &str) -> Value {
    load(&format!("rfc7520/{name}.json"))
}

fn outputs(v: &Value) -> Vec<String> {
    vec![
        s(&v["output"], "compact").to_owned(),
        v["output"]["json"].to_string(),
        v["output"]["json_flat"].to_string(),
    ]
}

#[test]
fn rfc7520_signatures() {
    let esdata = EsData::new();
    for (file, alg) in [
        ("4_1.rsa_v15_signature", Sa::Rs256),
        ("4_3.ecdsa_signature", Sa::Es512),
        ("4_4.hmac-sha2_integrity_protection", Sa::Hs256),
    ] {
        let v = rfc(file);
        let key = VerificationKey::from_jwk(alg, &v["input"]["key"].to_string()).unwrap();
        let kid = s(&v["input"]["key"], "kid");
        for envelope in outputs(&v) {
            let verified = esdata.verify(&envelope, &[&key]).unwrap();
            assert_eq!(
                verified.payload,
                s(&v["input"], "payload").as_bytes(),
                "{file}"
            );
            assert_eq!(verified.signers.len(), 1);
            assert_eq!(
                (verified.signers[0].kid.as_str(), verified.signers[0].alg),
                (kid, alg)
            );
            // One changed payload character breaks the signature.
            let tampered = envelope.replacen("SXTigJlz", "SXTigJly", 1);
            assert!(
                matches!(
                    esdata.verify(&tampered, &[&key]),
                    Err(EsDataError::BadSignature { .. })
                ),
                "{file}"
            );
        }
    }
    // HMAC is deterministic: signing the RFC 7520 §4.4 payload reproduces the RFC's JWS.
    let v = rfc("4_4.hmac-sha2_integrity_protection");
    let signer = SigningKey::from_jwk(Sa::Hs256, &v["input"]["key"].to_string()).unwrap();
    let payload = s(&v["input"], "payload").as_bytes();
    assert_eq!(
        esdata
            .sign(payload, &[&signer], Serialization::Compact)
            .unwrap(),
        s(&v["output"], "compact")
    );
    let flat: Value = serde_json::from_str(
        &esdata
            .sign(payload, &[&signer], Serialization::FlattenedJson)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(flat, v["output"]["json_flat"]);
}

#[test]
fn rfc7520_encryption() {
    let esdata = EsData::new();
    for (file, alg) in [
        (
            "5_4.key_agreement_with_key_wrapping_using_ecdh-es_and_aes-keywrap_with_aes-gcm",
            Kma::EcdhEsA128Kw,
        ),
        ("5_6.direct_encryption_using_aes-gcm", Kma::Dir),
        ("5_8.key_wrap_using_aes-keywrap_with_aes-gcm", Kma::A128Kw),
    ] {
        let v = rfc(file);
        let key = DecryptionKey::from_jwk(alg, &v["input"]["key"].to_string()).unwrap();
        for envelope in outputs(&v) {
            let d = esdata.decrypt(&envelope, &[&key]).unwrap();
            assert_eq!(d.payload, s(&v["input"], "plaintext").as_bytes(), "{file}");
            assert_eq!((d.alg, d.enc), (alg, ContentEncryption::A128Gcm));
            assert_eq!(d.kid, s(&v["input"]["key"], "kid"));
        }
        // A flipped tag bit: the decryption fails, nothing is returned.
        let compact = s(&v["output"], "compact");
        let tag_start = compact.rfind('.').unwrap() + 1;
        let mut bad = compact.to_owned();
        let flipped = if &compact[tag_start..=tag_start] == "A" {
            "B"
        } else {
            "A"
        };
        bad.replace_range(tag_start..=tag_start, flipped);
        assert!(matches!(
            esdata.decrypt(&bad, &[&key]),
            Err(EsDataError::DecryptionFailed { .. })
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Envelopes from the independent Python producer.

fn verification_key(k: &Value) -> VerificationKey {
    let alg = Sa::from_name(s(k, "alg")).unwrap();
    match k.get("secret_hex") {
        Some(hex) => VerificationKey::hmac(
            s(k, "kid"),
            alg,
            &SecretKey::from_hex(hex.as_str().unwrap()).unwrap(),
        )
        .unwrap(),
        None => VerificationKey::from_public_pem(s(k, "kid"), alg, s(k, "public_pem").as_bytes())
            .unwrap(),
    }
}

fn decryption_key(k: &Value) -> DecryptionKey {
    let alg = Kma::from_name(s(k, "alg")).unwrap();
    match k.get("secret_hex") {
        Some(hex) => DecryptionKey::symmetric(
            s(k, "kid"),
            alg,
            &SecretKey::from_hex(hex.as_str().unwrap()).unwrap(),
        )
        .unwrap(),
        None => DecryptionKey::from_private_pem(s(k, "kid"), alg, s(k, "private_pem").as_bytes())
            .unwrap(),
    }
}

#[test]
fn envelopes_of_an_independent_producer() {
    let esdata = EsData::new();
    let v = load("jose_interop.json");
    for e in v["jws"].as_array().unwrap() {
        let keys: Vec<VerificationKey> = e["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(verification_key)
            .collect();
        let refs: Vec<&VerificationKey> = keys.iter().collect();
        let verified = esdata
            .verify(s(e, "envelope"), &refs)
            .unwrap_or_else(|err| panic!("{}: {err}", s(e, "name")));
        assert_eq!(
            verified.payload,
            s(e, "payload").as_bytes(),
            "{}",
            s(e, "name")
        );
        assert_eq!(verified.signers.len(), keys.len(), "{}", s(e, "name"));
        let total = jws_parts(s(e, "envelope")).1.len();
        assert_eq!(verified.ignored, total - keys.len(), "{}", s(e, "name"));
    }
    for e in v["jwe"].as_array().unwrap() {
        let keys: Vec<DecryptionKey> = e["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(decryption_key)
            .collect();
        let refs: Vec<&DecryptionKey> = keys.iter().collect();
        let d = esdata
            .decrypt(s(e, "envelope"), &refs)
            .unwrap_or_else(|err| panic!("{}: {err}", s(e, "name")));
        assert_eq!(d.payload, s(e, "plaintext").as_bytes(), "{}", s(e, "name"));
    }
    for e in v["nested"].as_array().unwrap() {
        let dec: Vec<DecryptionKey> = e["decryption_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(decryption_key)
            .collect();
        let ver: Vec<VerificationKey> = e["verification_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(verification_key)
            .collect();
        let (d, verified) = esdata
            .decrypt_then_verify(
                s(e, "envelope"),
                &dec.iter().collect::<Vec<_>>(),
                &ver.iter().collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(d.content_type.as_deref(), Some("JOSE"));
        assert_eq!(verified.payload, s(e, "payload").as_bytes());
        assert_eq!(verified.signers[0].alg, Sa::Es256);
    }
}

// ---------------------------------------------------------------------------------------------
// Our envelopes, opened by the independent code and by ourselves.

#[test]
fn every_signature_algorithm_and_serialization() {
    let esdata = EsData::new();
    for alg in Sa::ALL {
        let pair = sig_pair(*alg);
        for ser in SERIALIZATIONS {
            let envelope = esdata.sign(PAYLOAD, &[&pair.signer], ser).unwrap();
            if ser == Serialization::Compact {
                assert_eq!(envelope.split('.').count(), 3);
            } else {
                assert!(envelope.starts_with('{'));
            }
            let independent =
                independent_verify(&envelope, pair.signer.kid(), pair.alg, &pair.public);
            assert_eq!(independent, PAYLOAD);
            let verified = esdata.verify(&envelope, &[&pair.verifier]).unwrap();
            assert_eq!(verified.payload, PAYLOAD);
            assert_eq!(verified.signers[0].kid, pair.verifier.kid());
        }
    }
}

#[test]
fn every_encryption_algorithm_and_serialization() {
    let esdata = EsData::new();
    for alg in Kma::ALL {
        for enc in ContentEncryption::ALL {
            let pair = enc_pair(*alg, "target-1", *enc);
            for ser in SERIALIZATIONS {
                let mut options = JweOptions::new(*enc, ser);
                options.content_type = Some("application/json".into());
                let envelope = esdata.encrypt(PAYLOAD, &[&pair.enc_key], &options).unwrap();
                let independent = independent_decrypt(&envelope, "target-1", &pair.private);
                assert_eq!(independent, PAYLOAD, "{alg} {enc} {ser:?}");
                let d = esdata.decrypt(&envelope, &[&pair.dec_key]).unwrap();
                assert_eq!(d.payload, PAYLOAD);
                assert_eq!((d.alg, d.enc), (*alg, *enc));
                assert_eq!(d.content_type.as_deref(), Some("application/json"));
            }
        }
    }
}

#[test]
fn several_signatures_and_several_recipients() {
    let esdata = EsData::new();
    // ESD-4: the target verifies the subset it trusts and records which keys verified.
    let es = sig_pair(Sa::Es256);
    let rs = sig_pair(Sa::Rs256);
    let hs = sig_pair(Sa::Hs384);
    let envelope = esdata
        .sign(
            PAYLOAD,
            &[&es.signer, &rs.signer, &hs.signer],
            Serialization::GeneralJson,
        )
        .unwrap();
    for pair in [&es, &rs, &hs] {
        independent_verify(&envelope, pair.signer.kid(), pair.alg, &pair.public);
    }
    let verified = esdata
        .verify(&envelope, &[&es.verifier, &hs.verifier])
        .unwrap();
    let kids: Vec<&str> = verified.signers.iter().map(|v| v.kid.as_str()).collect();
    assert_eq!(kids, [es.verifier.kid(), hs.verifier.kid()]);
    assert_eq!(verified.ignored, 1);
    // A trusted key whose signature fails refuses the whole envelope.
    let impostor = VerificationKey::hmac(hs.verifier.kid(), Sa::Hs384, &secret(48, 1)).unwrap();
    assert!(matches!(
        esdata.verify(&envelope, &[&es.verifier, &impostor]),
        Err(EsDataError::BadSignature { kid }) if kid == hs.verifier.kid()
    ));

    // ESD-2: a provisioned key, a TEF key and a certificate key; each target holds one.
    let provisioned = enc_pair(
        Kma::A128Kw,
        "15-prov@sp.example.com",
        ContentEncryption::A256Gcm,
    );
    let tef = enc_pair(
        Kma::A256Kw,
        "000102@maf.example.com",
        ContentEncryption::A256Gcm,
    );
    let cert = enc_pair(
        Kma::EcdhEsA128Kw,
        "43-target-cert",
        ContentEncryption::A256Gcm,
    );
    let envelope = esdata
        .encrypt(
            PAYLOAD,
            &[&provisioned.enc_key, &tef.enc_key, &cert.enc_key],
            &JweOptions::new(ContentEncryption::A256Gcm, Serialization::GeneralJson),
        )
        .unwrap();
    for (pair, kid) in [
        (&provisioned, "15-prov@sp.example.com"),
        (&tef, "000102@maf.example.com"),
        (&cert, "43-target-cert"),
    ] {
        assert_eq!(independent_decrypt(&envelope, kid, &pair.private), PAYLOAD);
        let d = esdata.decrypt(&envelope, &[&pair.dec_key]).unwrap();
        assert_eq!((d.payload.as_slice(), d.kid.as_str()), (PAYLOAD, kid));
    }
    let stranger = enc_pair(Kma::A128Kw, "someone-else", ContentEncryption::A256Gcm);
    assert!(matches!(
        esdata.decrypt(&envelope, &[&stranger.dec_key]),
        Err(EsDataError::NoMatchingKey { .. })
    ));
    // The right bytes under another identifier are not used.
    let renamed = DecryptionKey::symmetric("renamed", Kma::A128Kw, &secret(16, 0x5c)).unwrap();
    assert!(matches!(
        esdata.decrypt(&envelope, &[&renamed]),
        Err(EsDataError::NoMatchingKey { .. })
    ));
}

#[test]
fn nested_sign_then_encrypt() {
    let esdata = EsData::new();
    let es = sig_pair(Sa::Es256);
    let rs = sig_pair(Sa::Rs256);
    let outer = enc_pair(Kma::A256Kw, "kw", ContentEncryption::A256Gcm);
    for (inner, outer_ser, cty) in [
        (Serialization::Compact, Serialization::Compact, "JOSE"),
        (
            Serialization::GeneralJson,
            Serialization::GeneralJson,
            "JOSE+JSON",
        ),
        (
            Serialization::FlattenedJson,
            Serialization::FlattenedJson,
            "JOSE+JSON",
        ),
    ] {
        let signers: Vec<&SigningKey> = if inner == Serialization::GeneralJson {
            vec![&es.signer, &rs.signer]
        } else {
            vec![&es.signer]
        };
        let envelope = esdata
            .sign_then_encrypt(
                PAYLOAD,
                &signers,
                inner,
                &[&outer.enc_key],
                &JweOptions::new(ContentEncryption::A256Gcm, outer_ser),
            )
            .unwrap();
        // Independently: decrypt, then verify the inner JWS.
        let inner_jws =
            String::from_utf8(independent_decrypt(&envelope, "kw", &outer.private)).unwrap();
        assert_eq!(
            independent_verify(&inner_jws, es.signer.kid(), Sa::Es256, &es.public),
            PAYLOAD
        );
        let (d, verified) = esdata
            .decrypt_then_verify(&envelope, &[&outer.dec_key], &[&es.verifier, &rs.verifier])
            .unwrap();
        assert_eq!(d.content_type.as_deref(), Some(cty));
        assert_eq!(verified.payload, PAYLOAD);
        assert_eq!(verified.signers.len(), signers.len());
    }

    // ESD-6 neg: no HMAC signer, and no inner HS256 signature.
    let hs = sig_pair(Sa::Hs256);
    let options = JweOptions::new(ContentEncryption::A256Gcm, Serialization::Compact);
    assert!(matches!(
        esdata.sign_then_encrypt(
            PAYLOAD,
            &[&hs.signer],
            Serialization::Compact,
            &[&outer.enc_key],
            &options
        ),
        Err(EsDataError::SymmetricSignatureInNested)
    ));
    let inner_hs = esdata
        .sign(PAYLOAD, &[&hs.signer], Serialization::Compact)
        .unwrap();
    let mut jose = options.clone();
    jose.content_type = Some("JOSE".into());
    let smuggled = esdata
        .encrypt(inner_hs.as_bytes(), &[&outer.enc_key], &jose)
        .unwrap();
    assert!(matches!(
        esdata.decrypt_then_verify(&smuggled, &[&outer.dec_key], &[&hs.verifier]),
        Err(EsDataError::SymmetricSignatureInNested)
    ));
    // Not declared as nested; a failing outer decryption stops before the signature.
    let plain = esdata
        .encrypt(inner_hs.as_bytes(), &[&outer.enc_key], &options)
        .unwrap();
    assert!(matches!(
        esdata.decrypt_then_verify(&plain, &[&outer.dec_key], &[&hs.verifier]),
        Err(EsDataError::NotNested(None))
    ));
    let wrong = DecryptionKey::symmetric("kw", Kma::A256Kw, &secret(32, 1)).unwrap();
    assert!(matches!(
        esdata.decrypt_then_verify(&smuggled, &[&wrong], &[&es.verifier]),
        Err(EsDataError::DecryptionFailed { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Refusals.

#[test]
fn encryption_requests_that_are_refused() {
    let esdata = EsData::new();
    let a = enc_pair(Kma::Dir, "a", ContentEncryption::A128Gcm);
    let b = enc_pair(Kma::A128Kw, "b", ContentEncryption::A128Gcm);
    let general = JweOptions::new(ContentEncryption::A128Gcm, Serialization::GeneralJson);
    // ESD-3: Direct Encryption Mode with two recipients.
    assert!(matches!(
        esdata.encrypt(PAYLOAD, &[&a.enc_key, &b.enc_key], &general),
        Err(EsDataError::InvalidRequest(_))
    ));
    // Compact and flattened take one recipient; none is no envelope.
    for ser in [Serialization::Compact, Serialization::FlattenedJson] {
        let options = JweOptions::new(ContentEncryption::A128Gcm, ser);
        assert!(matches!(
            esdata.encrypt(PAYLOAD, &[&b.enc_key, &b.enc_key], &options),
            Err(EsDataError::InvalidRequest(_))
        ));
    }
    assert!(matches!(
        esdata.encrypt(PAYLOAD, &[], &general),
        Err(EsDataError::InvalidRequest(_))
    ));
    // A 16-byte dir key is not an A256GCM CEK.
    let options = JweOptions::new(ContentEncryption::A256Gcm, Serialization::Compact);
    assert!(matches!(
        esdata.encrypt(PAYLOAD, &[&a.enc_key], &options),
        Err(EsDataError::InvalidRequest(_))
    ));
    let sig = sig_pair(Sa::Es256);
    assert!(matches!(
        esdata.sign(PAYLOAD, &[&sig.signer, &sig.signer], Serialization::Compact),
        Err(EsDataError::InvalidRequest(_))
    ));
    assert!(matches!(
        esdata.sign(PAYLOAD, &[], Serialization::GeneralJson),
        Err(EsDataError::InvalidRequest(_))
    ));
}

#[test]
fn keys_that_are_refused() {
    let invalid = |r: Result<(), EsDataError>| matches!(r, Err(EsDataError::InvalidKey(_)));
    assert!(invalid(
        EncryptionKey::symmetric("k", Kma::A128Kw, &secret(32, 1)).map(drop)
    ));
    assert!(invalid(
        EncryptionKey::symmetric("k", Kma::Dir, &secret(20, 1)).map(drop)
    ));
    assert!(invalid(
        EncryptionKey::symmetric("k", Kma::RsaOaep256, &secret(32, 1)).map(drop)
    ));
    assert!(invalid(
        EncryptionKey::symmetric("", Kma::A128Kw, &secret(16, 1)).map(drop)
    ));
    assert!(invalid(
        DecryptionKey::symmetric("k", Kma::A256Kw, &secret(16, 1)).map(drop)
    ));
    assert!(invalid(
        SigningKey::hmac("k", Sa::Hs256, &secret(31, 1)).map(drop)
    ));
    assert!(invalid(
        SigningKey::hmac("k", Sa::Hs512, &secret(48, 1)).map(drop)
    ));
    assert!(invalid(
        SigningKey::hmac("k", Sa::Rs256, &secret(64, 1)).map(drop)
    ));
    assert!(invalid(
        VerificationKey::hmac("k", Sa::Es256, &secret(64, 1)).map(drop)
    ));
    // RSA below 2048 bits; an EC key on the wrong curve.
    let small = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
    assert!(invalid(
        SigningKey::from_private_pem("k", Sa::Rs256, &private_pem(&small)).map(drop)
    ));
    assert!(invalid(
        EncryptionKey::from_public_pem("k", Kma::RsaOaep256, &public_pem(&small)).map(drop)
    ));
    let p384 = ec_key(Nid::SECP384R1);
    assert!(invalid(
        SigningKey::from_private_pem("k", Sa::Es256, &private_pem(&p384)).map(drop)
    ));
    assert!(invalid(
        VerificationKey::from_public_pem("k", Sa::Es256, b"not pem").map(drop)
    ));
    // ESD-5: a signing-only key (JWK "use":"sig") is not a key management key.
    let v = rfc("4_3.ecdsa_signature");
    assert!(invalid(
        DecryptionKey::from_jwk(Kma::EcdhEsA256Kw, &v["input"]["key"].to_string()).map(drop)
    ));
    // A JWK without kid.
    assert!(invalid(
        VerificationKey::from_jwk(Sa::Hs256, r#"{"kty":"oct","k":"AAAA"}"#).map(drop)
    ));
}

#[test]
fn public_keys_from_certificates() {
    let esdata = EsData::new();
    let certified =
        rcgen::generate_simple_self_signed(vec!["cse-b.example.com".to_owned()]).unwrap();
    let key_pem = certified.signing_key.serialize_pem();
    let cert_pem = certified.cert.pem();
    let signer = SigningKey::from_private_pem("44-cert", Sa::Es256, key_pem.as_bytes()).unwrap();
    let verifier =
        VerificationKey::from_public_pem("44-cert", Sa::Es256, cert_pem.as_bytes()).unwrap();
    let jws = esdata
        .sign(PAYLOAD, &[&signer], Serialization::Compact)
        .unwrap();
    assert_eq!(esdata.verify(&jws, &[&verifier]).unwrap().payload, PAYLOAD);
    let enc =
        EncryptionKey::from_public_pem("44-cert", Kma::EcdhEsA256Kw, cert_pem.as_bytes()).unwrap();
    let dec =
        DecryptionKey::from_private_pem("44-cert", Kma::EcdhEsA256Kw, key_pem.as_bytes()).unwrap();
    let options = JweOptions::new(ContentEncryption::A128Gcm, Serialization::Compact);
    let jwe = esdata.encrypt(PAYLOAD, &[&enc], &options).unwrap();
    assert_eq!(esdata.decrypt(&jwe, &[&dec]).unwrap().payload, PAYLOAD);
}

/// Replaces the protected header of a compact envelope (the signature or tag then no longer
/// matches, so a refusal must come before any cryptography).
fn with_protected(compact: &str, header: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let mut parts: Vec<&str> = compact.split('.').collect();
    parts[0] = &h;
    parts.join(".")
}

#[test]
fn jwe_headers_that_are_refused() {
    let esdata = EsData::new();
    let pair = enc_pair(Kma::A128Kw, "kw", ContentEncryption::A128Gcm);
    let compact = esdata
        .encrypt(
            PAYLOAD,
            &[&pair.enc_key],
            &JweOptions::new(ContentEncryption::A128Gcm, Serialization::Compact),
        )
        .unwrap();
    let keys = [&pair.dec_key];
    let refused = |h: Value| {
        esdata
            .decrypt(&with_protected(&compact, &h), &keys)
            .unwrap_err()
    };
    let base = json!({"alg": "A128KW", "enc": "A128GCM", "kid": "kw"});
    let with = |k: &str, v: Value| {
        let mut h = base.clone();
        h[k] = v;
        h
    };
    for alg in [
        "none",
        "ECDH-ES",
        "RSA-OAEP",
        "RSA1_5",
        "A128GCMKW",
        "PBES2-HS256+A128KW",
    ] {
        assert!(
            matches!(refused(with("alg", json!(alg))), EsDataError::AlgorithmNotAllowed(a) if a == alg),
            "{alg}"
        );
    }
    for enc in ["A128CBC-HS256", "A256CBC-HS512", "none"] {
        assert!(
            matches!(refused(with("enc", json!(enc))), EsDataError::AlgorithmNotAllowed(e) if e == enc)
        );
    }
    assert!(matches!(
        refused(with("zip", json!("DEF"))),
        EsDataError::UnsupportedHeader("zip")
    ));
    assert!(matches!(
        refused(with("crit", json!(["exp"]))),
        EsDataError::UnsupportedHeader("crit")
    ));
    assert!(matches!(
        refused(with("kid", json!(7))),
        EsDataError::Malformed(_)
    ));
    // A header that is otherwise acceptable fails in decryption: it is the AAD.
    assert!(matches!(
        refused(with("cty", json!("text/plain"))),
        EsDataError::DecryptionFailed { .. }
    ));

    // Structure.
    let parts: Vec<&str> = compact.split('.').collect();
    for bad in [
        parts[..4].join("."),
        format!("{compact}.x"),
        format!("{}.!.{}", parts[0], parts[2..].join(".")),
        format!("{}.{}", URL_SAFE_NO_PAD.encode("[1]"), parts[1..].join(".")),
        "{".to_owned(),
        "[]".to_owned(),
        json!({"protected": parts[0], "recipients": [], "iv": parts[2], "ciphertext": parts[3], "tag": parts[4]}).to_string(),
        json!({"protected": parts[0], "unprotected": {"kid": "kw"}, "encrypted_key": parts[1], "iv": parts[2], "ciphertext": parts[3], "tag": parts[4]}).to_string(),
    ] {
        assert!(matches!(esdata.decrypt(&bad, &keys), Err(EsDataError::Malformed(_))), "{bad}");
    }

    // Lengths fixed by RFC 7518, checked before the key is used (a short wrapped key would make
    // the key unwrap underflow).
    let ecdh = enc_pair(Kma::EcdhEsA128Kw, "ec", ContentEncryption::A128Gcm);
    let ecdh_compact = esdata
        .encrypt(
            PAYLOAD,
            &[&ecdh.enc_key],
            &JweOptions::new(ContentEncryption::A128Gcm, Serialization::Compact),
        )
        .unwrap();
    let dir = enc_pair(Kma::Dir, "dir", ContentEncryption::A128Gcm);
    let dir_compact = esdata
        .encrypt(
            PAYLOAD,
            &[&dir.enc_key],
            &JweOptions::new(ContentEncryption::A128Gcm, Serialization::Compact),
        )
        .unwrap();
    let replace = |compact: &str, index: usize, octets: &[u8]| {
        let mut p: Vec<String> = compact.split('.').map(str::to_owned).collect();
        p[index] = URL_SAFE_NO_PAD.encode(octets);
        p.join(".")
    };
    for (envelope, key) in [
        (replace(&compact, 1, &[1, 2, 3, 4]), &pair.dec_key),
        (replace(&compact, 1, &[0; 16]), &pair.dec_key),
        (replace(&compact, 1, &[0; 25]), &pair.dec_key),
        (replace(&ecdh_compact, 1, &[9]), &ecdh.dec_key),
        (replace(&dir_compact, 1, &[0; 24]), &dir.dec_key),
        (replace(&compact, 2, &[0; 16]), &pair.dec_key),
        (replace(&compact, 2, &[]), &pair.dec_key),
        (replace(&compact, 4, &[0; 12]), &pair.dec_key),
    ] {
        assert!(
            matches!(
                esdata.decrypt(&envelope, &[key]),
                Err(EsDataError::Malformed(_))
            ),
            "{envelope}"
        );
    }
    let general = esdata
        .encrypt(
            PAYLOAD,
            &[&pair.enc_key],
            &JweOptions::new(ContentEncryption::A128Gcm, Serialization::GeneralJson),
        )
        .unwrap();
    let mut short: Value = serde_json::from_str(&general).unwrap();
    short["recipients"][0]["encrypted_key"] = json!("AQIDBA");
    assert!(matches!(
        esdata.decrypt(&short.to_string(), &keys),
        Err(EsDataError::Malformed(_))
    ));
    // Bogus entries without kid in front of ours (a short wrapped key, a wrong one) are passed
    // over; our entry still opens.
    let mut crowded: Value = serde_json::from_str(&general).unwrap();
    let ours = crowded["recipients"][0].clone();
    crowded["recipients"] = json!([
        {"header": {"alg": "A128KW"}, "encrypted_key": "AQIDBA"},
        {"header": {"alg": "A128KW"}, "encrypted_key": URL_SAFE_NO_PAD.encode([0u8; 24])},
        ours,
    ]);
    assert_eq!(
        esdata.decrypt(&crowded.to_string(), &keys).unwrap().payload,
        PAYLOAD
    );

    // A JWE made by josekit's unrestricted defaults with a CBC content encryption.
    let mut header = josekit::jwe::JweHeader::new();
    header.set_content_encryption("A128CBC-HS256");
    header.set_key_id("kw");
    let cbc = josekit::jwe::serialize_compact(
        PAYLOAD,
        &header,
        &josekit::jwe::A128KW
            .encrypter_from_bytes([0x5c; 16])
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        esdata.decrypt(&cbc, &keys),
        Err(EsDataError::AlgorithmNotAllowed(e)) if e == "A128CBC-HS256"
    ));
}

#[test]
fn jws_headers_that_are_refused() {
    let esdata = EsData::new();
    let es = sig_pair(Sa::Es256);
    let hs = sig_pair(Sa::Hs256);
    let keys = [&es.verifier, &hs.verifier];
    let compact = esdata
        .sign(PAYLOAD, &[&es.signer], Serialization::Compact)
        .unwrap();
    let parts: Vec<&str> = compact.split('.').collect();

    // alg "none" with an empty signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        parts[1]
    );
    assert!(
        matches!(esdata.verify(&none, &keys), Err(EsDataError::AlgorithmNotAllowed(a)) if a == "none")
    );
    let ps = with_protected(&compact, &json!({"alg": "PS256", "kid": es.verifier.kid()}));
    assert!(matches!(
        esdata.verify(&ps, &keys),
        Err(EsDataError::AlgorithmNotAllowed(_))
    ));
    let b64 = with_protected(
        &compact,
        &json!({"alg": "ES256", "b64": false, "crit": ["b64"]}),
    );
    assert!(matches!(
        esdata.verify(&b64, &keys),
        Err(EsDataError::UnsupportedHeader(_))
    ));

    // Algorithm confusion: an HS256 MAC keyed with the ES256 public key's PEM, under the ES256
    // key's kid, is not checked with that key.
    let pem = es.verifier.kid().to_owned();
    let confused_key =
        SigningKey::hmac(&pem, Sa::Hs256, &SecretKey::new(public_pem_of(&es))).unwrap();
    let confused = esdata
        .sign(PAYLOAD, &[&confused_key], Serialization::Compact)
        .unwrap();
    assert!(matches!(
        esdata.verify(&confused, &[&es.verifier]),
        Err(EsDataError::NoMatchingKey { .. })
    ));
    // ES384 in the header for an ES256 key with the same kid.
    let es384 = with_protected(&compact, &json!({"alg": "ES384", "kid": es.verifier.kid()}));
    assert!(matches!(
        esdata.verify(&es384, &keys),
        Err(EsDataError::NoMatchingKey { .. })
    ));
    // Unknown kid.
    let other_kid = with_protected(&compact, &json!({"alg": "ES256", "kid": "nobody"}));
    assert!(matches!(
        esdata.verify(&other_kid, &keys),
        Err(EsDataError::NoMatchingKey { .. })
    ));
    // No kid: every key of the algorithm is tried; a changed header breaks the signature.
    let no_kid = with_protected(&compact, &json!({"alg": "ES256"}));
    assert!(matches!(
        esdata.verify(&no_kid, &keys),
        Err(EsDataError::BadSignature { .. })
    ));
    let unsigned_no_kid = sign_raw(&hs, &json!({"alg": "HS256"}), PAYLOAD);
    assert_eq!(
        esdata.verify(&unsigned_no_kid, &keys).unwrap().signers[0].kid,
        hs.verifier.kid()
    );

    // Modified payload or signature.
    let other_payload = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(b"{}"),
        parts[2]
    );
    assert!(matches!(
        esdata.verify(&other_payload, &keys),
        Err(EsDataError::BadSignature { .. })
    ));
    let mut sig = b64d(parts[2]);
    sig[5] ^= 1;
    let other_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert!(matches!(
        esdata.verify(&other_sig, &keys),
        Err(EsDataError::BadSignature { .. })
    ));

    // alg only in the unprotected header of a JSON signature.
    let unprotected_alg = json!({
        "payload": parts[1],
        "protected": URL_SAFE_NO_PAD.encode(json!({"kid": es.verifier.kid()}).to_string()),
        "header": {"alg": "ES256"},
        "signature": parts[2],
    });
    assert!(matches!(
        esdata.verify(&unprotected_alg.to_string(), &keys),
        Err(EsDataError::Malformed(_))
    ));
    // A parameter in both headers.
    let duplicate = json!({
        "payload": parts[1], "protected": parts[0], "header": {"kid": "x"}, "signature": parts[2],
    });
    assert!(matches!(
        esdata.verify(&duplicate.to_string(), &keys),
        Err(EsDataError::Malformed(_))
    ));
    for bad in [
        "a.b".to_owned(),
        format!("{compact}.x"),
        format!("{}.{}.!", parts[0], parts[1]),
        json!({"payload": parts[1], "signatures": []}).to_string(),
        json!({"payload": parts[1], "signatures": [{"protected": parts[0], "signature": parts[2]}], "signature": parts[2]}).to_string(),
        json!({"signatures": [{"protected": parts[0], "signature": parts[2]}]}).to_string(),
    ] {
        assert!(matches!(esdata.verify(&bad, &keys), Err(EsDataError::Malformed(_))), "{bad}");
    }
}

fn public_pem_of(pair: &SigPair) -> Vec<u8> {
    match &pair.public {
        Indep::Private(k) => public_pem(k),
        Indep::Sym(_) => unreachable!(),
    }
}

/// A compact HS* JWS over `header` made with the HMAC secret of `pair`, without our signer.
fn sign_raw(pair: &SigPair, header: &Value, payload: &[u8]) -> String {
    let Indep::Sym(k) = &pair.public else {
        unreachable!()
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let pkey = PKey::hmac(k).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
    let mac = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

#[test]
fn keys_and_envelopes_never_print_secrets() {
    let k = secret(32, 0xab);
    let enc = EncryptionKey::symmetric("kid-1", Kma::A256Kw, &k).unwrap();
    let sig = SigningKey::hmac("kid-2", Sa::Hs256, &k).unwrap();
    let ver = VerificationKey::hmac("kid-3", Sa::Hs256, &k).unwrap();
    let dec = DecryptionKey::symmetric("kid-4", Kma::A256Kw, &k).unwrap();
    for text in [
        format!("{enc:?}"),
        format!("{sig:?}"),
        format!("{ver:?}"),
        format!("{dec:?}"),
    ] {
        assert!(!text.contains("abab") && !text.contains("171"), "{text}");
        assert!(text.contains("kid-"), "{text}");
    }
    let esdata = EsData::new();
    let envelope = esdata
        .encrypt(
            b"secret payload",
            &[&enc],
            &JweOptions::new(ContentEncryption::A256Gcm, Serialization::Compact),
        )
        .unwrap();
    let d = esdata.decrypt(&envelope, &[&dec]).unwrap_err();
    assert_eq!(d.reason(), "no_matching_key");
    let dec = DecryptionKey::symmetric("kid-1", Kma::A256Kw, &k).unwrap();
    let d = esdata.decrypt(&envelope, &[&dec]).unwrap();
    assert!(!format!("{d:?}").contains("secret payload"));
}
