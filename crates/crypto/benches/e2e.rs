//! End-to-end security costs per operation: an ESPrim Object (TS-0003 §8.4.3.2, A128GCM) for a
//! 1 KiB inner primitive, protected and then parsed and opened; an ESData JWS (ES256) signed and
//! verified; an ESData JWE (A128KW, A128GCM) encrypted and decrypted; all Compact.

// Benchmark set-up: a panic means the fixture is wrong.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::{
    ContentEncryption, DecryptionKey, EncryptionKey, EsData, JweOptions, KeyManagementAlgorithm,
    Serialization, SignatureAlgorithm, SigningKey, VerificationKey,
};
use m2mtrust_crypto::esprim::{EsPrimHeader, EsPrimObject, EsPrimRandId, SessionKey};

/// A 1 KiB JSON request primitive.
fn primitive() -> Vec<u8> {
    let head = r#"{"op":1,"to":"//sp.example.com/cse-b/cnt1","fr":"Cae-orig","rqi":"req-1","rvi":"3","ty":4,"pc":{"m2m:cin":{"con":""#;
    let tail = r#""}}}"#;
    let mut p = head.as_bytes().to_vec();
    p.resize(1024 - tail.len(), b'x');
    p.extend_from_slice(tail.as_bytes());
    p
}

fn esprim(c: &mut Criterion) {
    let inner = primitive();
    let key = SessionKey::from_secret(SecretKey::new(vec![7; 32]));
    let header = EsPrimHeader {
        content_type: Some("vnd.onem2m-preq+json".into()),
        ..EsPrimHeader::new(
            ContentEncryption::A128Gcm,
            "pwk-0001@sp.example.com",
            EsPrimRandId::parse("u0001").expect("id"),
            EsPrimRandId::parse("s0001").expect("id"),
        )
    };
    let now = Utc
        .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("time");
    c.bench_function("esprim/protect+unprotect 1KiB A128GCM", |b| {
        b.iter(|| {
            let compact = EsPrimObject::protect(black_box(&inner), &key, &header).expect("protect");
            let object = EsPrimObject::parse(&compact, now).expect("parse");
            black_box(object.open(&key).expect("open"))
        })
    });
}

fn esdata(c: &mut Criterion) {
    let esdata = EsData::new();
    let payload = primitive();

    let ec = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).expect("P-256"),
    )
    .expect("key");
    let ec = openssl::pkey::PKey::from_ec_key(ec).expect("key");
    let signer = SigningKey::from_private_pem(
        "es256",
        SignatureAlgorithm::Es256,
        &ec.private_key_to_pem_pkcs8().expect("pem"),
    )
    .expect("signer");
    let verifier = VerificationKey::from_public_pem(
        "es256",
        SignatureAlgorithm::Es256,
        &ec.public_key_to_pem().expect("pem"),
    )
    .expect("verifier");
    let jws = esdata
        .sign(&payload, &[&signer], Serialization::Compact)
        .expect("sign");
    c.bench_function("esdata/sign ES256 1KiB", |b| {
        b.iter(|| esdata.sign(black_box(&payload), &[&signer], Serialization::Compact))
    });
    c.bench_function("esdata/verify ES256 1KiB", |b| {
        b.iter(|| {
            esdata
                .verify(black_box(&jws), &[&verifier])
                .expect("verify")
        })
    });

    let kek = SecretKey::new(vec![9; 16]);
    let enc = EncryptionKey::symmetric("kw", KeyManagementAlgorithm::A128Kw, &kek).expect("key");
    let dec = DecryptionKey::symmetric("kw", KeyManagementAlgorithm::A128Kw, &kek).expect("key");
    let options = JweOptions::new(ContentEncryption::A128Gcm, Serialization::Compact);
    let jwe = esdata
        .encrypt(&payload, &[&enc], &options)
        .expect("encrypt");
    c.bench_function("esdata/encrypt A128KW+A128GCM 1KiB", |b| {
        b.iter(|| esdata.encrypt(black_box(&payload), &[&enc], &options))
    });
    c.bench_function("esdata/decrypt A128KW+A128GCM 1KiB", |b| {
        b.iter(|| esdata.decrypt(black_box(&jwe), &[&dec]).expect("decrypt"))
    });
}

criterion_group!(benches, esprim, esdata);
criterion_main!(benches);
