//! ESPrim (TS-0003 §8.4): a whole Phase B/C exchange in memory, and every refusal with the
//! Response Status Code the CSE sends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use m2mtrust_crypto::SecretKey;
use m2mtrust_crypto::esdata::ContentEncryption;
use m2mtrust_crypto::esprim::{
    EsPrimError, EsPrimHeader, EsPrimKeyGenAlgId, EsPrimObject, EsPrimProtocolAndAlgId,
    EsPrimRandId, EsPrimRandValue, OriginatorEsPrimRandObject, ReceiverEsPrimRandObject,
    ReplayGuard, SessionKey, check_originator, check_session, unprotect,
};
use serde_json::{Value, json};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn minutes(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

const ALL_ENC: [EsPrimProtocolAndAlgId; 3] = [
    EsPrimProtocolAndAlgId::JWE_A128GCM,
    EsPrimProtocolAndAlgId::JWE_A192GCM,
    EsPrimProtocolAndAlgId::JWE_A256GCM,
];

fn receiver_object() -> ReceiverEsPrimRandObject {
    ReceiverEsPrimRandObject {
        id: EsPrimRandId::generate(true).unwrap(),
        value: EsPrimRandValue::generate().unwrap(),
        expiry: t0() + minutes(60),
        key_gen_algs: vec![EsPrimKeyGenAlgId::HMAC_SHA256],
        protocol_and_alg_ids: ALL_ENC.to_vec(),
    }
}

fn originator_object(r: &ReceiverEsPrimRandObject) -> OriginatorEsPrimRandObject {
    OriginatorEsPrimRandObject::for_receiver(
        r,
        EsPrimRandId::generate(false).unwrap(),
        EsPrimRandValue::generate().unwrap(),
        t0() + minutes(30),
        vec![
            EsPrimProtocolAndAlgId::JWE_A128GCM,
            EsPrimProtocolAndAlgId::JWE_A256GCM,
        ],
        t0(),
    )
    .unwrap()
}

const INNER_REQUEST: &[u8] =
    br#"{"op":2,"to":"//sp.example.com/cse-b/cnt1/la","fr":"Cae-orig","rqi":"req-1","rvi":"3"}"#;

struct Session {
    pairwise: SecretKey,
    receiver: ReceiverEsPrimRandObject,
    originator: OriginatorEsPrimRandObject,
}

fn session() -> Session {
    let receiver = receiver_object();
    let originator = originator_object(&receiver);
    Session {
        pairwise: SecretKey::generate(32).unwrap(),
        receiver,
        originator,
    }
}

impl Session {
    fn key(&self) -> SessionKey {
        SessionKey::derive(&self.pairwise, &self.receiver, &self.originator).unwrap()
    }

    fn header(&self, enc: ContentEncryption) -> EsPrimHeader {
        EsPrimHeader::new(
            enc,
            "pwk-0001@sp.example.com",
            self.originator.id.clone(),
            self.receiver.id.clone(),
        )
    }

    /// Receiver side of C.6: what the CSE's key lookup does with its stores.
    fn receiver_lookup(
        &self,
        h: &EsPrimHeader,
        now: DateTime<Utc>,
    ) -> Result<SessionKey, EsPrimError> {
        if h.kid != "pwk-0001@sp.example.com" {
            return Err(EsPrimError::UnknownKeyId(h.kid.clone()));
        }
        if h.rri != self.receiver.id {
            return Err(EsPrimError::UnknownReceiverRandId(h.rri.to_string()));
        }
        let originator = match &h.oro {
            Some(oro) => oro.clone(),
            None if h.ori == self.originator.id => self.originator.clone(),
            None => return Err(EsPrimError::UnknownOriginatorRandId(h.ori.to_string())),
        };
        check_session(&originator, &self.receiver, h.enc, now)?;
        SessionKey::derive(&self.pairwise, &self.receiver, &originator)
    }
}

#[test]
fn request_and_response_round_trip() {
    let s = session();
    let now = t0() + minutes(1);
    // C.3: the first object of the session carries the full originator object.
    let header = EsPrimHeader {
        content_type: Some("vnd.onem2m-preq+json".into()),
        oro: Some(s.originator.clone()),
        ..s.header(ContentEncryption::A128Gcm)
    };
    let originator_key = s.key();
    let request = EsPrimObject::protect(INNER_REQUEST, &originator_key, &header).unwrap();
    assert_eq!(request.split('.').nth(1), Some(""), "empty Encrypted Key");

    // C.5–C.6 at the Receiver.
    let mut guard = ReplayGuard::new(16);
    let (inner, object) = unprotect(&request, now, |h| s.receiver_lookup(h, now)).unwrap();
    assert_eq!(inner, INNER_REQUEST);
    assert_eq!(object.header().oro.as_ref(), Some(&s.originator));
    let valid_until = s.originator.expiry.min(s.receiver.expiry);
    guard.check_and_record(&object, valid_until, now).unwrap();
    let from: Value = serde_json::from_slice(&inner).unwrap();
    check_originator(from["fr"].as_str().unwrap(), "Cae-orig").unwrap();

    // C.8: the response, with the same key, kid, ori and rri, and an in-band rro.
    let fresh = receiver_object();
    let response_header = EsPrimHeader {
        content_type: Some("vnd.onem2m-prsp+json".into()),
        rro: Some(fresh.clone()),
        ..s.header(ContentEncryption::A256Gcm)
    };
    let response =
        EsPrimObject::protect(br#"{"rsc":2000,"rqi":"req-1"}"#, &s.key(), &response_header)
            .unwrap();
    // C.10–C.11b at the Originator.
    let (inner, object) = unprotect(&response, now, |h| {
        assert_eq!((&h.ori, &h.rri), (&s.originator.id, &s.receiver.id));
        Ok(originator_key.clone())
    })
    .unwrap();
    assert_eq!(inner, br#"{"rsc":2000,"rqi":"req-1"}"#);
    // The recorded rro survives the JSON round trip (expiry to the second).
    assert_eq!(object.header().rro.as_ref(), Some(&fresh));
}

#[test]
fn every_enc_round_trips_and_wrong_keys_fail() {
    let s = session();
    for enc in ContentEncryption::ALL {
        let compact = EsPrimObject::protect(INNER_REQUEST, &s.key(), &s.header(*enc)).unwrap();
        let object = EsPrimObject::parse(&compact, t0()).unwrap();
        assert_eq!(object.header().enc, *enc);
        assert_eq!(object.open(&s.key()).unwrap(), INNER_REQUEST);
        let other = session();
        assert!(matches!(
            object.open(&other.key()),
            Err(EsPrimError::BadMac)
        ));
    }
}

#[test]
fn rand_objects_json_round_trip_and_long_names() {
    let s = session();
    let now = t0();
    let o = s.originator.to_json();
    assert_eq!(o["esk"], json!(1));
    assert_eq!(o["esrv"].as_str().unwrap().len(), 32);
    assert_eq!(
        OriginatorEsPrimRandObject::from_json(&o, now).unwrap(),
        s.originator
    );
    assert_eq!(
        ReceiverEsPrimRandObject::from_json(&s.receiver.to_json(), now).unwrap(),
        s.receiver
    );

    let long = json!({
        "esprimRandID": "u0042",
        "esprimRandValue": "FFEEDDCCBBAA99887766554433221100",
        "esprimRandExpiry": 60000,
        "esprimKeyGenAlgID": 1,
        "esprimProtocolAndAlgIDs": [10],
    });
    let parsed = OriginatorEsPrimRandObject::from_json(&long, now).unwrap();
    assert_eq!(parsed.expiry, now + minutes(1));
    assert_eq!(parsed.value.to_hex(), "ffeeddccbbaa99887766554433221100");

    for bad in [
        json!({"esri": "u1", "esprimRandID": "u1", "esrv": "00112233445566778899aabbccddeeff",
               "esrx": "20261124T130000", "esk": 1, "espa": [10]}),
        json!({"esri": "u1", "esrv": "0011", "esrx": "20261124T130000", "esk": 1, "espa": [10]}),
        json!({"esri": "u 1", "esrv": "00112233445566778899aabbccddeeff",
               "esrx": "20261124T130000", "esk": 1, "espa": [10]}),
        json!({"esri": "u1", "esrv": "00112233445566778899aabbccddeeff",
               "esrx": "tomorrow", "esk": 1, "espa": [10]}),
        json!({"esri": "u1", "esrv": "00112233445566778899aabbccddeeff",
               "esrx": "20261124T130000", "esk": 1, "espa": []}),
        json!({"esri": "u1", "esrv": "00112233445566778899aabbccddeeff",
               "esrx": "20261124T130000", "esk": 300, "espa": [10]}),
        json!(["not", "an", "object"]),
    ] {
        let err = OriginatorEsPrimRandObject::from_json(&bad, now).unwrap_err();
        assert_eq!(err.rsc(), 4000, "{bad}: {err}");
    }
}

#[test]
fn originator_refuses_to_build_what_the_receiver_rejects() {
    let r = receiver_object();
    let build = |expiry: DateTime<Utc>, espa: Vec<EsPrimProtocolAndAlgId>, now| {
        OriginatorEsPrimRandObject::for_receiver(
            &r,
            EsPrimRandId::parse("u1").unwrap(),
            EsPrimRandValue::from_bytes([7; 16]),
            expiry,
            espa,
            now,
        )
    };
    let a128 = vec![EsPrimProtocolAndAlgId::JWE_A128GCM];
    // ESP-5: an originator expiry later than the receiver's.
    let err = build(r.expiry + minutes(1), a128.clone(), t0()).unwrap_err();
    assert_eq!(err.rsc(), 4113);
    // The receiver's object has expired: B.2c.3 says fetch another one.
    let err = build(r.expiry, a128.clone(), r.expiry).unwrap_err();
    assert_eq!(err.rsc(), 4114);
    // AEAD identifiers not offered by the receiver, or none at all.
    let err = build(r.expiry, vec![EsPrimProtocolAndAlgId(13)], t0()).unwrap_err();
    assert_eq!(err.rsc(), 4111);
    assert_eq!(build(r.expiry, vec![], t0()).unwrap_err().rsc(), 4111);
    // A receiver that offers no HMAC-SHA256.
    let mut r2 = r.clone();
    r2.key_gen_algs = vec![EsPrimKeyGenAlgId(2)];
    let err = OriginatorEsPrimRandObject::for_receiver(
        &r2,
        EsPrimRandId::parse("u1").unwrap(),
        EsPrimRandValue::from_bytes([7; 16]),
        r.expiry,
        a128.clone(),
        t0(),
    )
    .unwrap_err();
    assert_eq!(err.rsc(), 4111);
    // The expiry equal to the receiver's is allowed.
    build(r.expiry, a128, t0()).unwrap();
}

#[test]
fn receiver_checks_of_c6b_and_c6c() {
    let s = session();
    let now = t0() + minutes(1);
    let ok = check_session(&s.originator, &s.receiver, ContentEncryption::A128Gcm, now);
    ok.unwrap();
    // enc not in the originator's espa (it lists A128GCM and A256GCM).
    let err = check_session(&s.originator, &s.receiver, ContentEncryption::A192Gcm, now);
    assert_eq!(err.unwrap_err().rsc(), 4111);
    // esk 2, or esk not offered.
    let mut o = s.originator.clone();
    o.key_gen_alg = EsPrimKeyGenAlgId(2);
    assert_eq!(
        check_session(&o, &s.receiver, ContentEncryption::A128Gcm, now)
            .unwrap_err()
            .rsc(),
        4111
    );
    // The originator's espa not a subset of the receiver's.
    let mut r = s.receiver.clone();
    r.protocol_and_alg_ids = vec![EsPrimProtocolAndAlgId::JWE_A128GCM];
    assert_eq!(
        check_session(&s.originator, &r, ContentEncryption::A128Gcm, now)
            .unwrap_err()
            .rsc(),
        4111
    );
    // Expired objects, and an originator object outliving the receiver's.
    assert_eq!(
        check_session(
            &s.originator,
            &s.receiver,
            ContentEncryption::A128Gcm,
            s.originator.expiry
        )
        .unwrap_err()
        .rsc(),
        4113
    );
    assert_eq!(
        check_session(
            &s.originator,
            &s.receiver,
            ContentEncryption::A128Gcm,
            s.receiver.expiry
        )
        .unwrap_err()
        .rsc(),
        4114
    );
    let mut late = s.originator.clone();
    late.expiry = s.receiver.expiry + minutes(1);
    assert_eq!(
        check_session(&late, &s.receiver, ContentEncryption::A128Gcm, now)
            .unwrap_err()
            .rsc(),
        4113
    );
}

#[test]
fn lookup_failures_reach_the_caller_unchanged() {
    let s = session();
    let now = t0();
    let compact = EsPrimObject::protect(
        INNER_REQUEST,
        &s.key(),
        &s.header(ContentEncryption::A128Gcm),
    )
    .unwrap();
    // Unknown kid (4112), unknown rri (4114), unknown ori without oro (4113).
    let mut other_kid = s.header(ContentEncryption::A128Gcm);
    other_kid.kid = "pwk-9999@sp.example.com".into();
    let mut other_rri = s.header(ContentEncryption::A128Gcm);
    other_rri.rri = EsPrimRandId::parse("s9999").unwrap();
    let mut other_ori = s.header(ContentEncryption::A128Gcm);
    other_ori.ori = EsPrimRandId::parse("u9999").unwrap();
    for (header, code) in [(other_kid, 4112), (other_rri, 4114), (other_ori, 4113)] {
        let c = EsPrimObject::protect(INNER_REQUEST, &s.key(), &header).unwrap();
        let err = unprotect(&c, now, |h| s.receiver_lookup(h, now)).unwrap_err();
        assert_eq!(err.rsc(), code, "{err}");
    }
    unprotect(&compact, now, |h| s.receiver_lookup(h, now)).unwrap();
}

/// Rebuilds a compact object with a replaced protected header (base64url of `header`).
fn with_header(compact: &str, header: &Value) -> String {
    let mut parts: Vec<String> = compact.split('.').map(str::to_owned).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
    parts.join(".")
}

fn header_of(compact: &str) -> Value {
    let first = compact.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(first).unwrap()).unwrap()
}

#[test]
fn form_checks_of_c6a() {
    let s = session();
    let now = t0();
    let compact = EsPrimObject::protect(
        INNER_REQUEST,
        &s.key(),
        &s.header(ContentEncryption::A128Gcm),
    )
    .unwrap();
    let parse = |c: &str| EsPrimObject::parse(c, now).map(|_| ()).unwrap_err().rsc();

    // Not five base64url parts, or not JSON: BAD_REQUEST.
    let parts: Vec<&str> = compact.split('.').collect();
    assert_eq!(parse(&parts[..4].join(".")), 4000);
    assert_eq!(parse(&format!("{compact}.")), 4000);
    assert_eq!(parse("garbage"), 4000);
    assert_eq!(parse(""), 4000);
    assert_eq!(
        parse(&format!("{}.!!.{}", parts[0], parts[2..].join("."))),
        4000
    );
    let not_json = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode("not json"),
        parts[1..].join(".")
    );
    assert_eq!(parse(&not_json), 4000);
    let empty_ciphertext = format!("{}.{}.{}..{}", parts[0], parts[1], parts[2], parts[4]);
    assert_eq!(parse(&empty_ciphertext), 4000);

    let h = header_of(&compact);
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut h = h.as_object().unwrap().clone();
        f(&mut h);
        parse(&with_header(&compact, &Value::Object(h)))
    };
    // Missing or empty required parameters: BAD_REQUEST.
    assert_eq!(
        edit(&|h| {
            h.remove("kid");
        }),
        4000
    );
    assert_eq!(
        edit(&|h| {
            h.insert("kid".into(), json!(""));
        }),
        4000
    );
    assert_eq!(
        edit(&|h| {
            h.remove("ori");
        }),
        4000
    );
    assert_eq!(
        edit(&|h| {
            h.insert("rri".into(), json!("bad id"));
        }),
        4000
    );
    assert_eq!(
        edit(&|h| {
            h.insert("oro".into(), json!({"esri": "u1"}));
        }),
        4000
    );
    // Options this profile does not support: ESPRIM_UNSUPPORTED_OPTION.
    assert_eq!(
        edit(&|h| {
            h.insert("alg".into(), json!("A128KW"));
        }),
        4111
    );
    assert_eq!(
        edit(&|h| {
            h.insert("enc".into(), json!("A128CBC-HS256"));
        }),
        4111
    );
    assert_eq!(
        edit(&|h| {
            h.insert("crit".into(), json!(["exp"]));
        }),
        4111
    );
    assert_eq!(
        edit(&|h| {
            h.insert("zip".into(), json!("DEF"));
        }),
        4111
    );
    let with_key = format!("{}.AAAA.{}", parts[0], parts[2..].join("."));
    assert_eq!(parse(&with_key), 4111);

    // A parameter written twice is refused.
    let dup = r#"{"alg":"dir","enc":"A128GCM","kid":"k","ori":"u1","rri":"s1","rri":"s2"}"#;
    let dup = format!("{}.{}", URL_SAFE_NO_PAD.encode(dup), parts[1..].join("."));
    assert_eq!(parse(&dup), 4000);
    // Unknown parameters are ignored (RFC 7516 §4).
    let mut extra = h.as_object().unwrap().clone();
    extra.insert("x-vendor".into(), json!(1));
    EsPrimObject::parse(&with_header(&compact, &Value::Object(extra)), now).unwrap();
}

#[test]
fn tampering_gives_bad_mac() {
    let s = session();
    let key = s.key();
    let compact =
        EsPrimObject::protect(INNER_REQUEST, &key, &s.header(ContentEncryption::A128Gcm)).unwrap();
    let parts: Vec<&str> = compact.split('.').collect();
    let flip = |index: usize, bit: u8| {
        let mut raw = URL_SAFE_NO_PAD.decode(parts[index]).unwrap();
        raw[0] ^= bit;
        let mut p: Vec<String> = parts.iter().map(|x| (*x).to_owned()).collect();
        p[index] = URL_SAFE_NO_PAD.encode(raw);
        p.join(".")
    };
    for (index, what) in [(2, "IV"), (3, "ciphertext"), (4, "tag")] {
        let tampered = flip(index, 0x01);
        let err = EsPrimObject::parse(&tampered, t0())
            .unwrap()
            .open(&key)
            .unwrap_err();
        assert_eq!(err.rsc(), 4115, "{what}");
    }
    // The protected header is the AAD: changing rri (even to a valid id) breaks the tag.
    let mut h = header_of(&compact);
    h["rri"] = json!("s0002");
    let err = EsPrimObject::parse(&with_header(&compact, &h), t0())
        .unwrap()
        .open(&key)
        .unwrap_err();
    assert_eq!(err.rsc(), 4115);
    // The ciphertext of another session does not open under this one.
    let other = session();
    let foreign = EsPrimObject::protect(
        INNER_REQUEST,
        &other.key(),
        &s.header(ContentEncryption::A128Gcm),
    )
    .unwrap();
    let spliced = format!(
        "{}.{}",
        parts[..2].join("."),
        foreign.split('.').skip(2).collect::<Vec<_>>().join(".")
    );
    let err = EsPrimObject::parse(&spliced, t0())
        .unwrap()
        .open(&key)
        .unwrap_err();
    assert_eq!(err.rsc(), 4115);
    // A truncated tag, and an IV of the wrong size.
    let short_tag = format!("{}.{}", parts[..4].join("."), &parts[4][..8]);
    assert_eq!(
        EsPrimObject::parse(&short_tag, t0())
            .unwrap()
            .open(&key)
            .unwrap_err()
            .rsc(),
        4115
    );
    let long_iv = format!(
        "{}.{}.{}",
        parts[..2].join("."),
        URL_SAFE_NO_PAD.encode([0u8; 16]),
        parts[3..].join(".")
    );
    assert_eq!(
        EsPrimObject::parse(&long_iv, t0())
            .unwrap()
            .open(&key)
            .unwrap_err()
            .rsc(),
        5210
    );
}

#[test]
fn impersonation_is_4116() {
    let err = check_originator("Cae-mallory", "Cae-orig").unwrap_err();
    assert_eq!(err.rsc(), 4116);
    assert_eq!(err.reason(), "impersonation");
    check_originator("Cae-orig", "Cae-orig").unwrap();
}

#[test]
fn encryption_refusals_are_5211() {
    let s = session();
    let short = SessionKey::from_secret(SecretKey::from_slice(&[1; 16]));
    let err = EsPrimObject::protect(INNER_REQUEST, &short, &s.header(ContentEncryption::A256Gcm))
        .unwrap_err();
    assert_eq!(err.rsc(), 5211);
    let err =
        EsPrimObject::protect(b"", &s.key(), &s.header(ContentEncryption::A128Gcm)).unwrap_err();
    assert_eq!(err.rsc(), 5211);
    // A short key also fails decryption as 5210, not as a bad tag.
    let c = EsPrimObject::protect(
        INNER_REQUEST,
        &s.key(),
        &s.header(ContentEncryption::A256Gcm),
    )
    .unwrap();
    let err = EsPrimObject::parse(&c, t0())
        .unwrap()
        .open(&short)
        .unwrap_err();
    assert_eq!(err.rsc(), 5210);
}

#[test]
fn replay_guard() {
    let s = session();
    let now = t0();
    let until = now + minutes(10);
    let header = s.header(ContentEncryption::A128Gcm);
    let a = EsPrimObject::protect(INNER_REQUEST, &s.key(), &header).unwrap();
    let b = EsPrimObject::protect(INNER_REQUEST, &s.key(), &header).unwrap();
    let a = EsPrimObject::parse(&a, now).unwrap();
    let b = EsPrimObject::parse(&b, now).unwrap();

    let mut guard = ReplayGuard::new(2);
    guard.check_and_record(&a, until, now).unwrap();
    // ESP-14: the same object again within the session.
    let err = guard
        .check_and_record(&a, until, now + minutes(5))
        .unwrap_err();
    assert!(matches!(err, EsPrimError::Replayed));
    assert_eq!(err.rsc(), 4000);
    // Same kid/ori/rri, other IV: accepted.
    guard.check_and_record(&b, until, now).unwrap();
    assert_eq!(guard.len(), 2);
    // Full of unexpired entries: refused, not accepted unchecked.
    let c = EsPrimObject::parse(
        &EsPrimObject::protect(INNER_REQUEST, &s.key(), &header).unwrap(),
        now,
    )
    .unwrap();
    let err = guard.check_and_record(&c, until, now).unwrap_err();
    assert!(matches!(err, EsPrimError::ReplayMemoryFull));
    assert_eq!(err.rsc(), 5000);
    // After the session ends the entries are forgotten and the object is refused as expired.
    let err = guard.check_and_record(&a, until, until).unwrap_err();
    assert!(matches!(err, EsPrimError::SessionExpired));
    assert!(guard.is_empty());
    // A new session with the same IV is another entry.
    let mut renamed = header.clone();
    renamed.ori = EsPrimRandId::parse("u-next").unwrap();
    let iv: [u8; 12] = a.iv().try_into().unwrap();
    let same_iv =
        EsPrimObject::dangerous_protect_with_iv(INNER_REQUEST, &s.key(), &renamed, iv).unwrap();
    let same_iv = EsPrimObject::parse(&same_iv, until).unwrap();
    guard
        .check_and_record(&a, until + minutes(10), until)
        .unwrap();
    guard
        .check_and_record(&same_iv, until + minutes(10), until)
        .unwrap();
}

#[test]
fn response_status_codes() {
    let cases: [(EsPrimError, u16, &str); 12] = [
        (EsPrimError::Malformed(String::new()), 4000, "malformed"),
        (
            EsPrimError::UnsupportedOption(String::new()),
            4111,
            "unsupported_option",
        ),
        (
            EsPrimError::UnknownKeyId(String::new()),
            4112,
            "unknown_key_id",
        ),
        (
            EsPrimError::UnknownOriginatorRandId(String::new()),
            4113,
            "unknown_orig_rand_id",
        ),
        (
            EsPrimError::UnknownReceiverRandId(String::new()),
            4114,
            "unknown_recv_rand_id",
        ),
        (EsPrimError::BadMac, 4115, "bad_mac"),
        (
            EsPrimError::Impersonation {
                from: String::new(),
                expected: String::new(),
            },
            4116,
            "impersonation",
        ),
        (
            EsPrimError::DecryptionError(String::new()),
            5210,
            "decryption_error",
        ),
        (
            EsPrimError::EncryptionError(String::new()),
            5211,
            "encryption_error",
        ),
        (EsPrimError::Replayed, 4000, "replayed"),
        (EsPrimError::SessionExpired, 4113, "session_expired"),
        (EsPrimError::ReplayMemoryFull, 5000, "replay_memory_full"),
    ];
    for (err, code, reason) in cases {
        assert_eq!((err.rsc(), err.reason()), (code, reason), "{err}");
    }
}

#[test]
fn session_keys_never_print() {
    let s = session();
    let k = s.key();
    let hex = k.expose_secret().expose_hex();
    assert!(!format!("{k:?}").contains(&hex));
    assert_eq!(format!("{k:?}"), "SessionKey(<redacted>)");
}
