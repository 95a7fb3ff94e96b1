//! Enrollees kept in the data folder's credential table: sealed Kpm, assignment, expiry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use m2mtrust_channel::{CertifiedKey, IdentityRules, KpsaId, PskKey};
use m2mtrust_crypto::{CertProfile, DevCa, Fqdn, Sealer};
use m2mtrust_mef::{
    Assignment, Bootstrap, BootstrapError, EnroleeCredential, Enrollees, StoreEnrollees, bootstrap,
};
use m2mtrust_model::{CseId, Timestamp};
use m2mtrust_store::{Durability, SqliteStore, Store, StoreExt};
use tokio::net::{TcpListener, TcpStream};

const MEF: &str = "mef.m2mtrust.example";
const KPM_ID: &str = "factory-7@mef.m2mtrust.example";
const KPM_HEX: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

async fn put(store: &Arc<dyn Store>, enrollees: &StoreEnrollees, kpm_id: &str, expires: Timestamp) {
    let now = Timestamp::now();
    let record = enrollees
        .record(
            &KpsaId::parse(kpm_id).unwrap(),
            PskKey::from_hex(KPM_HEX).unwrap().expose_secret(),
            &Assignment::AeIds(vec!["Csensor7".into()]),
            now,
            expires,
        )
        .unwrap();
    assert!(
        !record
            .sealed_secret
            .as_ref()
            .unwrap()
            .windows(16)
            .any(|w| w == PskKey::from_hex(KPM_HEX).unwrap().expose_secret())
    );
    store
        .write(move |w| w.put_credential(&record))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stored_enrollee_bootstraps_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("db"), Durability::Full).unwrap());
    let sealer = Arc::new(Sealer::load_or_create(&dir.path().join("master.key")).unwrap());
    let enrollees = Arc::new(StoreEnrollees::new(store.clone(), sealer));
    put(&store, &enrollees, KPM_ID, Timestamp::now().plus_secs(3600)).await;
    put(
        &store,
        &enrollees,
        "expired@mef.m2mtrust.example",
        Timestamp::now().plus_secs(-1),
    )
    .await;

    let found = enrollees.kpm(&KpsaId::parse(KPM_ID).unwrap()).unwrap();
    assert_eq!(found.assignment, Assignment::AeIds(vec!["Csensor7".into()]));
    assert!(
        enrollees
            .kpm(&KpsaId::parse("nobody@mef.m2mtrust.example").unwrap())
            .is_none()
    );

    let ca = DevCa::generate("m2mtrust.example").unwrap();
    let issued = ca.issue(&CertProfile::Fqdn(MEF.into()), 30).unwrap();
    let cert = CertifiedKey::from_pem(
        issued.chain_pem.as_bytes(),
        issued.key_pem.expose_pem().as_bytes(),
    )
    .unwrap();
    let in_cse = CseId::parse("/id-in").unwrap();
    let rules = IdentityRules::new("m2mtrust.example", in_cse.clone(), in_cse).unwrap();
    let mef = Bootstrap::with_timeout(
        Fqdn::parse(MEF).unwrap(),
        cert,
        None,
        rules,
        enrollees,
        Duration::from_secs(5),
    )
    .unwrap();

    let attempt = |kpm_id: &'static str| {
        let mef = &mef;
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = async {
                let (tcp, _) = listener.accept().await.unwrap();
                mef.accept(tcp).await.map(|(_, e)| e)
            };
            let credential = EnroleeCredential::Psk {
                kpm_id: KpsaId::parse(kpm_id).unwrap(),
                kpm: PskKey::from_hex(KPM_HEX).unwrap(),
            };
            let client = async {
                bootstrap(
                    TcpStream::connect(addr).await.unwrap(),
                    MEF,
                    credential,
                    None,
                )
                .await
                .map(|(_, k)| k)
            };
            tokio::join!(server, client)
        }
    };
    let (srv, cli) = attempt(KPM_ID).await;
    let (srv, cli) = (srv.unwrap(), cli.unwrap());
    assert_eq!(srv.ke, cli.ke);
    assert_eq!(srv.assignment, Assignment::AeIds(vec!["Csensor7".into()]));

    let (srv, _) = attempt("expired@mef.m2mtrust.example").await;
    assert!(
        matches!(srv, Err(BootstrapError::Expired { .. })),
        "{srv:?}"
    );
}
