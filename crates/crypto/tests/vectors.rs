//! Data-driven tests from `tests/vectors/*.json` (see `tests/vectors/README.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use m2mtrust_crypto::id::{Fqdn, public_key_id, public_key_id_matches};
use m2mtrust_crypto::kdf::{
    EXPORTER_LEN, derive_e2e_keys, derive_km, derive_kpsa, derive_session_es_prim_key,
    derive_usage_constrained, split_exporter_output,
};
use m2mtrust_crypto::{CredentialId, CredentialTypeId, KmId, KpsaId, SecretKey};
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

#[test]
fn km() {
    let v = load("kdf.json");
    let ke = key(&v, "ke");
    for e in entries(&v, "km") {
        assert_eq!(
            derive_km(&ke, s(e, "maf_id")).unwrap().expose_hex(),
            s(e, "expected"),
            "{}",
            s(e, "clause")
        );
    }
}

#[test]
fn kpsa() {
    let v = load("kdf.json");
    let ke = key(&v, "ke");
    for e in entries(&v, "kpsa") {
        assert_eq!(
            derive_kpsa(&ke, s(e, "enrolee_b_id")).unwrap().expose_hex(),
            s(e, "expected")
        );
    }
}

#[test]
fn usage_constrained() {
    let v = load("kdf.json");
    let ke = key(&v, "ke");
    for e in entries(&v, "usage_constrained") {
        let k = derive_usage_constrained(&ke, s(e, "suid"), s(e, "target")).unwrap();
        assert_eq!(k.expose_hex(), s(e, "expected"));
    }
}

#[test]
fn exporter_split_and_ke_id() {
    let v = load("kdf.json");
    for e in entries(&v, "exporter_split") {
        let out: [u8; EXPORTER_LEN] = SecretKey::from_hex(s(e, "out"))
            .unwrap()
            .expose_bytes()
            .try_into()
            .unwrap();
        let (id, ke) = split_exporter_output(&out);
        assert_eq!(ke.expose_hex(), s(e, "key"));
        let ke_id = KpsaId::from_binary_relative(&id, &Fqdn::parse(s(e, "mef_fqdn")).unwrap());
        assert_eq!(ke_id.relative(), s(e, "relative_id"));
        assert_eq!(ke_id.as_str(), s(e, "ke_id"));
    }
}

#[test]
fn e2e() {
    let v = load("kdf.json");
    for e in entries(&v, "e2e") {
        let salt = SecretKey::from_hex(s(e, "salt")).unwrap();
        let keys = derive_e2e_keys(salt.expose_bytes(), &key(e, "kpsa")).unwrap();
        assert_eq!(keys.master.expose_hex(), s(e, "master"));
        assert_eq!(keys.msg_auth.expose_hex(), s(e, "msg_auth"));
        assert_eq!(keys.msg_conf.expose_hex(), s(e, "msg_conf"));
        assert_eq!(keys.att_auth.expose_hex(), s(e, "att_auth"));
        assert_eq!(keys.att_conf.expose_hex(), s(e, "att_conf"));
        assert!(!format!("{keys:?}").contains(s(e, "master")));
    }
}

#[test]
fn session_es_prim() {
    let v = load("kdf.json");
    for e in entries(&v, "session_es_prim") {
        let k = derive_session_es_prim_key(
            &key(e, "pairwise"),
            s(e, "receiver_rand_ascii").as_bytes(),
            s(e, "originator_rand_ascii").as_bytes(),
        )
        .unwrap();
        assert_eq!(k.expose_hex(), s(e, "expected"));
    }
}

#[test]
fn public_key_ids() {
    let v = load("public_key_id.json");
    let spki = SecretKey::from_hex(s(&v, "spki_der")).unwrap();
    let spki = spki.expose_bytes();
    assert_eq!(hex(&openssl::sha::sha256(spki)), s(&v, "sha256"));
    assert_eq!(public_key_id(spki), s(&v, "ni_sha_256"));
    assert_eq!(
        CredentialId::public_key(spki).as_str(),
        s(&v, "credential_id")
    );
    assert_eq!(
        CredentialId::public_key(spki).type_id(),
        CredentialTypeId::RAW_PUBLIC_KEY
    );
    for k in ["ni_sha_256", "ni_sha_256_128", "ni_sha_256_120"] {
        assert!(public_key_id_matches(s(&v, k), spki), "{k}");
        // Another key does not match.
        assert!(!public_key_id_matches(s(&v, k), b"other"), "{k}");
    }
    for bad in [
        "ni:///sha-512;XNJS-wzokyQ2-vjM0QQJgbie5K1rn-niorfnGqyyfNM",
        "ni:///sha-256-128;XNJS-wzokyQ2-vjM0QQJgbie5K1rn-niorfnGqyyfNM",
        "ni:///sha-256;!!",
        "ni://host/sha-256;XNJS-wzokyQ2-vjM0QQJgbie5K1rn-niorfnGqyyfNM",
        "XNJS-wzokyQ2-vjM0QQJgbie5K1rn-niorfnGqyyfNM",
    ] {
        assert!(!public_key_id_matches(bad, spki), "{bad}");
    }
}

fn hex(b: &[u8]) -> String {
    SecretKey::from_slice(b).expose_hex()
}

#[test]
fn credential_ids() {
    let v = load("identifiers.json");
    let c = &v["credential_id"];
    for e in entries(c, "valid") {
        let id = CredentialId::parse(s(e, "input"))
            .unwrap_or_else(|err| panic!("{}: {err}", s(e, "input")));
        assert_eq!(u64::from(id.type_id().0), e["type"].as_u64().unwrap());
        assert_eq!(id.value(), s(e, "value"));
        assert_eq!(id.to_string(), s(e, "input"));
    }
    for e in entries(c, "invalid") {
        let err = CredentialId::parse(s(e, "input")).unwrap_err();
        assert!(!err.to_string().is_empty(), "{}", s(e, "error"));
    }
}

#[test]
fn relative_and_key_ids() {
    let v = load("identifiers.json");
    let fqdn = Fqdn::parse("mef.example.com").unwrap();
    for rel in entries(&v["relative_key_id"], "valid") {
        let rel = rel.as_str().unwrap();
        assert_eq!(KpsaId::new(rel, &fqdn).unwrap().relative(), rel);
        assert_eq!(
            KmId::new(rel, &fqdn).unwrap().relative(),
            rel.to_ascii_lowercase()
        );
    }
    for rel in entries(&v["relative_key_id"], "invalid") {
        let rel = rel.as_str().unwrap();
        assert!(KpsaId::new(rel, &fqdn).is_err(), "{rel}");
        assert!(KmId::new(rel, &fqdn).is_err(), "{rel}");
    }
    for id in entries(&v["kpsa_id"], "valid") {
        let id = id.as_str().unwrap();
        assert_eq!(KpsaId::parse(id).unwrap().as_str(), id);
        assert_eq!(
            CredentialId::kpsa(&KpsaId::parse(id).unwrap()).as_str(),
            format!("12-{id}")
        );
        KmId::parse(id).unwrap();
    }
    for id in entries(&v["kpsa_id"], "invalid") {
        let id = id.as_str().unwrap();
        assert!(KpsaId::parse(id).is_err(), "{id}");
        assert!(KmId::parse(id).is_err(), "{id}");
    }
}
