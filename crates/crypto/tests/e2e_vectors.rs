//! Known-answer tests of the end-to-end key derivations and the ESPrim Object
//! (`tests/vectors/e2e_kdf.json`, `tests/vectors/esprim.json`; see `tests/vectors/README.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::ContentEncryption;
use m2mtrust_crypto::esprim::{
    EsPrimHeader, EsPrimKeyGenAlgId, EsPrimObject, EsPrimProtocolAndAlgId, EsPrimRandId,
    EsPrimRandValue, KC_PAIRWISE_LABEL, OriginatorEsPrimRandObject, RandObjectOctets,
    ReceiverEsPrimRandObject, SessionKey, derive_pairwise_key_from_kc,
};
use m2mtrust_crypto::kdf::{derive_kpsa, derive_session_es_prim_key};
use m2mtrust_crypto::ke2e::{self, E2eHash};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string `{key}` in {v}"))
}

fn key(v: &Value, k: &str) -> SecretKey {
    SecretKey::from_hex(s(v, k)).unwrap()
}

fn entries<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    let list = v[key].as_array().unwrap();
    assert!(!list.is_empty(), "no `{key}` vectors");
    list
}

fn receiver(value: &str) -> ReceiverEsPrimRandObject {
    ReceiverEsPrimRandObject {
        id: EsPrimRandId::parse("s0001").unwrap(),
        value: EsPrimRandValue::from_hex(value).unwrap(),
        expiry: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        key_gen_algs: vec![EsPrimKeyGenAlgId::HMAC_SHA256],
        protocol_and_alg_ids: vec![EsPrimProtocolAndAlgId::JWE_A128GCM],
    }
}

fn originator(value: &str) -> OriginatorEsPrimRandObject {
    OriginatorEsPrimRandObject {
        id: EsPrimRandId::parse("u0001").unwrap(),
        value: EsPrimRandValue::from_hex(value).unwrap(),
        expiry: Utc.with_ymd_and_hms(2029, 1, 1, 0, 0, 0).unwrap(),
        key_gen_alg: EsPrimKeyGenAlgId::HMAC_SHA256,
        protocol_and_alg_ids: vec![EsPrimProtocolAndAlgId::JWE_A128GCM],
    }
}

#[test]
fn kpsa_input_is_the_digest_v2() {
    let v = load("e2e_kdf.json");
    let k = &v["kpsa_input"];
    assert_eq!(
        derive_kpsa(&key(k, "ke"), s(k, "enrolee_b_id"))
            .unwrap()
            .expose_hex(),
        s(k, "kpsa")
    );
}

#[test]
fn pairwise_from_kc() {
    let v = load("e2e_kdf.json");
    for e in entries(&v, "pairwise_from_kc") {
        assert_eq!(s(e, "label").as_bytes(), KC_PAIRWISE_LABEL);
        let kc = key(e, "kc");
        let k = derive_pairwise_key_from_kc(&kc, KC_PAIRWISE_LABEL).unwrap();
        assert_eq!(k.expose_hex(), s(e, "expected"), "{}", s(e, "clause"));
        // Another label gives another key.
        let other =
            derive_pairwise_key_from_kc(&kc, b"oneM2M MAF Kc to pairwiseESPrimKey derivatioN")
                .unwrap();
        assert_ne!(other.expose_hex(), s(e, "expected"));
    }
}

#[test]
fn session_es_prim_key() {
    let v = load("e2e_kdf.json");
    for e in entries(&v, "session_es_prim") {
        let octets = match s(e, "profile") {
            "decoded_value" => RandObjectOctets::DecodedValue,
            "hex_text" => RandObjectOctets::HexText,
            other => panic!("unknown profile {other}"),
        };
        let pairwise = key(e, "pairwise");
        let r = receiver(s(e, "receiver_rand"));
        let o = originator(s(e, "originator_rand"));
        let k = SessionKey::derive_with(&pairwise, &r, &o, octets).unwrap();
        assert_eq!(
            k.expose_secret().expose_hex(),
            s(e, "expected"),
            "{}",
            s(e, "clause")
        );
        if octets == RandObjectOctets::DecodedValue {
            assert_eq!(SessionKey::derive(&pairwise, &r, &o).unwrap(), k);
        }

        // Receiver first: swapping the two objects changes the key.
        let swapped_r = receiver(s(e, "originator_rand"));
        let swapped_o = originator(s(e, "receiver_rand"));
        let swapped = SessionKey::derive_with(&pairwise, &swapped_r, &swapped_o, octets).unwrap();
        assert_ne!(swapped.expose_secret().expose_hex(), s(e, "expected"));

        // One bit of one input changes the key.
        let mut bytes = *o.value.as_bytes();
        bytes[15] ^= 1;
        let flipped = OriginatorEsPrimRandObject {
            value: EsPrimRandValue::from_bytes(bytes),
            ..o.clone()
        };
        let k2 = SessionKey::derive_with(&pairwise, &r, &flipped, octets).unwrap();
        assert_ne!(k2, k);
        let mut pw = pairwise.expose_bytes().to_vec();
        pw[0] ^= 0x80;
        let k3 = SessionKey::derive_with(&SecretKey::new(pw), &r, &o, octets).unwrap();
        assert_ne!(k3, k);
    }
}

#[test]
fn session_key_label_is_the_spec_label() {
    let v = load("e2e_kdf.json");
    let e = &entries(&v, "session_es_prim")[0];
    let r = SecretKey::from_hex(s(e, "receiver_rand")).unwrap();
    let o = SecretKey::from_hex(s(e, "originator_rand")).unwrap();
    // The kdf module's function with the decoded values gives the vector ...
    let k = derive_session_es_prim_key(&key(e, "pairwise"), r.expose_bytes(), o.expose_bytes())
        .unwrap();
    assert_eq!(k.expose_hex(), s(e, "expected"));
    // ... and a key generation algorithm other than HMAC-SHA256 is refused.
    let mut other = originator(s(e, "originator_rand"));
    other.key_gen_alg = EsPrimKeyGenAlgId(2);
    let err = SessionKey::derive(
        &key(e, "pairwise"),
        &receiver(s(e, "receiver_rand")),
        &other,
    )
    .unwrap_err();
    assert_eq!(err.rsc(), 4111);
}

fn hash(name: &str) -> E2eHash {
    match name {
        "sha256" => E2eHash::Sha256,
        "sha384" => E2eHash::Sha384,
        "sha512" => E2eHash::Sha512,
        other => panic!("unknown hash {other}"),
    }
}

#[test]
fn ke2e_master_and_expansion() {
    let v = load("e2e_kdf.json");
    for e in entries(&v, "ke2e") {
        let h = hash(s(e, "hash"));
        let salt = e["salt"].as_str().map(|x| SecretKey::from_hex(x).unwrap());
        let salt = salt.as_ref().map(SecretKey::expose_bytes);
        let ikm = key(e, "ikm");
        let keys = ke2e::derive(h, salt, &ikm).unwrap();
        assert_eq!(keys.master.expose_hex(), s(e, "master"));
        assert_eq!(keys.msg_auth.expose_hex(), s(e, "msg_auth"));
        assert_eq!(keys.msg_conf.expose_hex(), s(e, "msg_conf"));
        assert_eq!(keys.att_auth.expose_hex(), s(e, "att_auth"));
        assert_eq!(keys.att_conf.expose_hex(), s(e, "att_conf"));

        // Other salt or other IKM: other master key.
        let other_salt = [0x5a_u8; 7];
        assert_ne!(
            ke2e::extract_master(h, Some(&other_salt), &ikm)
                .unwrap()
                .expose_hex(),
            s(e, "master")
        );
        let mut other_ikm = ikm.expose_bytes().to_vec();
        other_ikm[31] ^= 1;
        assert_ne!(
            ke2e::extract_master(h, salt, &SecretKey::new(other_ikm))
                .unwrap()
                .expose_hex(),
            s(e, "master")
        );
        // SHA-256 with a salt is the kdf module's derivation too.
        if let (E2eHash::Sha256, Some(salt)) = (h, salt) {
            let kdf = m2mtrust_crypto::kdf::derive_e2e_keys(salt, &ikm).unwrap();
            assert_eq!(kdf.att_conf.expose_hex(), s(e, "att_conf"));
        }
    }
}

#[test]
fn ke2e_is_not_stock_hkdf_expand() {
    let v = load("e2e_kdf.json");
    let c = &v["stock_hkdf_contrast"];
    let keys = ke2e::expand(E2eHash::Sha256, &key(c, "master")).unwrap();
    let okm = s(c, "okm_64");
    // T(1) has no predecessor, so it equals HKDF-Expand with the first label ...
    assert_eq!(keys.msg_auth.expose_hex(), okm[..64]);
    // ... but every later block has its own label, so T(2) differs from stock HKDF's.
    assert_ne!(keys.msg_conf.expose_hex(), okm[64..]);
    assert_eq!(
        keys.msg_conf.expose_hex(),
        s(&entries(&v, "ke2e")[0], "msg_conf")
    );
}

#[test]
fn esprim_object_known_answer() {
    let v = load("esprim.json");
    let kdf = load("e2e_kdf.json");
    let v5 = s(&entries(&kdf, "session_es_prim")[0], "expected");
    for e in entries(&v, "objects") {
        assert_eq!(s(e, "session_key"), v5);
        let key = SessionKey::from_secret(key(e, "session_key"));
        let iv: [u8; 12] = SecretKey::from_hex(s(e, "iv"))
            .unwrap()
            .expose_bytes()
            .try_into()
            .unwrap();
        let header = EsPrimHeader {
            content_type: Some("vnd.onem2m-preq+json".into()),
            ..EsPrimHeader::new(
                ContentEncryption::A128Gcm,
                "pwk-0001@sp.example.com",
                EsPrimRandId::parse("u0001").unwrap(),
                EsPrimRandId::parse("s0001").unwrap(),
            )
        };
        assert_eq!(
            String::from_utf8(header.to_json_bytes().unwrap()).unwrap(),
            s(e, "header")
        );
        let ours = EsPrimObject::dangerous_protect_with_iv(
            s(e, "plaintext").as_bytes(),
            &key,
            &header,
            iv,
        )
        .unwrap();
        assert_eq!(ours, s(e, "compact"), "{}", s(e, "clause"));

        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let object = EsPrimObject::parse(s(e, "compact"), now).unwrap();
        assert_eq!(object.header(), &header);
        assert_eq!(object.open(&key).unwrap(), s(e, "plaintext").as_bytes());

        // Another IV gives another object that still opens.
        let mut iv2 = iv;
        iv2[11] ^= 3;
        let other = EsPrimObject::dangerous_protect_with_iv(
            s(e, "plaintext").as_bytes(),
            &key,
            &header,
            iv2,
        )
        .unwrap();
        assert_ne!(other, s(e, "compact"));
        assert_eq!(
            EsPrimObject::parse(&other, now)
                .unwrap()
                .open(&key)
                .unwrap(),
            s(e, "plaintext").as_bytes()
        );
    }
}
