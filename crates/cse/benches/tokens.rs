//! Access decisions at the hosting CSE with tokens (TS-0003 §7.3): a RETRIEVE that only a
//! token permits, presented as a Local-Token-ID of a cached token, as the token itself
//! (verified every time, ES256), and with no token but a static ACP that permits, for
//! comparison. The whole request path of `Cse::handle` on a SQLite store, no network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use m2mtrust_cse::tokens::{TokenGrant, TokenVerifier as CseVerifier, VerifiedToken};
use m2mtrust_cse::{Cse, CseConfig, Notifier};
use m2mtrust_das::{
    TokenClaims, TokenIssuer, TokenPermission, TokenPermissions, TokenVerifier, TrustedIssuer,
    VerificationKey,
};
use m2mtrust_model::{
    Authentication, Operation, PeerIdentity, Request, ResourceType, ResponseStatusCode,
};
use m2mtrust_store::{Durability, SqliteStore, Store};
use serde_json::{Value, json};

const DAS: &str = "das.m2mtrust.example";

struct Verifier(TokenVerifier);

impl CseVerifier for Verifier {
    fn verify(
        &self,
        jwt: &str,
        audience: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, String> {
        let c = self
            .0
            .verify(jwt, audience, holder, now)
            .map_err(|e| e.to_string())?;
        Ok(VerifiedToken {
            token_id: c.token_id,
            issuer: c.issuer,
            holder: c.holder,
            not_after: c.not_after,
            permissions: c
                .permissions
                .map(|p| {
                    p.pm.into_iter()
                        .map(|g| TokenGrant {
                            resource_ids: g.ris,
                            privileges: g.pv,
                            role_ids: g.rids,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

fn peer(id: &str) -> PeerIdentity {
    PeerIdentity {
        addr: Some("127.0.0.1:5000".parse().unwrap()),
        authentication: Authentication::Credential {
            credential_id: format!("12-{id}@m2mtrust.example"),
            bound_ids: vec![id.to_string()],
        },
    }
}

fn request(
    op: Operation,
    to: &str,
    from: &str,
    ty: Option<u16>,
    content: Option<Value>,
) -> Request {
    let mut r = Request::new(op, to, Some(from.to_string()));
    r.request_id = "rq".into();
    r.resource_type = ty.map(ResourceType);
    r.content = content;
    r
}

fn es256_key() -> String {
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let key = openssl::ec::EcKey::generate(&group).unwrap();
    let pkey = openssl::pkey::PKey::from_ec_key(key).unwrap();
    String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("db"), Durability::Full).unwrap());
    let cse = rt
        .block_on(Cse::start(
            CseConfig::default(),
            store,
            Notifier::disconnected(),
        ))
        .unwrap();
    let private = es256_key();
    let signer = TokenIssuer::es256(DAS, &private).unwrap();
    let public = signer.public_key_pem().unwrap();
    cse.set_token_verifier(Arc::new(Verifier(TokenVerifier::new(vec![
        TrustedIssuer {
            issuer: DAS.into(),
            keys: vec![VerificationKey::es256_public_pem(&public).unwrap()],
        },
    ]))));
    let admin_only =
        json!({"acr": [{"acor": ["CAdmin"], "acop": 63}, {"acor": ["Cstatic"], "acop": 2}]});
    let setup = [
        request(
            Operation::Create,
            "cse-in",
            "Cae1",
            Some(2),
            Some(json!({"m2m:ae": {"rn": "Cae1", "api": "Napp", "rr": false, "srv": ["3"]}})),
        ),
        request(
            Operation::Create,
            "cse-in",
            "Cstatic",
            Some(2),
            Some(json!({"m2m:ae": {"rn": "Cstatic", "api": "Napp", "rr": false, "srv": ["3"]}})),
        ),
        request(
            Operation::Create,
            "cse-in",
            "CAdmin",
            Some(1),
            Some(json!({"m2m:acp": {"rn": "acp", "pv": admin_only, "pvs": admin_only}})),
        ),
    ];
    for r in setup {
        let from = r.from.clone().unwrap();
        let resp = rt.block_on(cse.handle(r, peer(&from)));
        assert!(resp.status.is_success(), "{:?}", resp.content);
    }
    let acp_ri = rt
        .block_on(cse.handle(
            request(Operation::Retrieve, "cse-in/acp", "CAdmin", None, None),
            peer("CAdmin"),
        ))
        .content
        .unwrap()["m2m:acp"]["ri"]
        .as_str()
        .unwrap()
        .to_string();
    let cnt = request(
        Operation::Create,
        "cse-in",
        "CAdmin",
        Some(3),
        Some(json!({"m2m:cnt": {"rn": "data", "acpi": [acp_ri]}})),
    );
    assert!(
        rt.block_on(cse.handle(cnt, peer("CAdmin")))
            .status
            .is_success()
    );

    let holder = "//m2mtrust.example/id-in/Cae1";
    let now = Utc::now();
    let claims = TokenClaims {
        version: "1".into(),
        token_id: format!("bench@{DAS}"),
        issuer: DAS.into(),
        holder: holder.into(),
        not_before: now - Duration::seconds(5),
        not_after: now + Duration::hours(2),
        token_name: None,
        audience: vec!["//m2mtrust.example/id-in".into()],
        permissions: Some(TokenPermissions {
            pm: vec![TokenPermission {
                ris: Some(vec!["/id-in/cse-in/data".into()]),
                pv: Some(json!({"acr": [{"acor": [holder], "acop": 2}]})),
                rids: None,
            }],
        }),
        extension: None,
    };
    let jwt = signer.issue(&claims).unwrap();
    let mut first = request(Operation::Retrieve, "cse-in/data", "Cae1", None, None);
    first.tokens = vec![jwt.clone()];
    let resp = rt.block_on(cse.handle(first, peer("Cae1")));
    assert_eq!(resp.status, ResponseStatusCode::OK, "{:?}", resp.content);
    let lti = resp.assigned_tokens[0].0.clone();

    let mut group = c.benchmark_group("cse_token_decision");
    group.bench_function("static_acp_permit", |b| {
        b.iter(|| {
            let r = request(Operation::Retrieve, "cse-in/data", "Cstatic", None, None);
            let resp = rt.block_on(cse.handle(r, peer("Cstatic")));
            assert_eq!(resp.status, ResponseStatusCode::OK);
        })
    });
    group.bench_function("cached_token_by_local_token_id", |b| {
        b.iter(|| {
            let mut r = request(Operation::Retrieve, "cse-in/data", "Cae1", None, None);
            r.local_token_ids = vec![lti.clone()];
            let resp = rt.block_on(cse.handle(r, peer("Cae1")));
            assert_eq!(resp.status, ResponseStatusCode::OK);
        })
    });
    group.bench_function("token_verified_each_request_es256", |b| {
        b.iter(|| {
            let mut r = request(Operation::Retrieve, "cse-in/data", "Cae1", None, None);
            r.tokens = vec![jwt.clone()];
            let resp = rt.block_on(cse.handle(r, peer("Cae1")));
            assert_eq!(resp.status, ResponseStatusCode::OK);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
