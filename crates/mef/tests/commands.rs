//! The device side of the MEF procedures (TS-0003 §8.3.5.2.3-§8.3.5.2.10) and of the MEF Client
//! Commands (§8.3.9) over real loopback TLS against the in-process MEF service: registration,
//! configuration, update and de-registration; keys registered from the connection export and
//! with a supplied value, retrieved only by their targets; a command cycle whose CERT_PROV runs
//! EST on the same session; refusals over the wire that change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, TimeDelta, Utc};
use http::{Method, StatusCode};
use m2mtrust_channel::{CertifiedKey, IdentityRules, KpsaId, PskKey, TrustAnchors};
use m2mtrust_crypto::{CertProfile, DevCa, Fqdn, Sealer, SecretKey};
use m2mtrust_mef::est;
use m2mtrust_mef::procedures::client::{
    ClientKind, ClientProfile, CommandExecutor, CommandRunner, MoTree,
};
use m2mtrust_mef::procedures::types::{
    CertProvArgs, CertProvProtocolId, CertSubjectType, CmdArgs, CmdClassId, CmdDescription,
    CmdStatusCode, CmdUpdate, DevMgmtId, Suid, XsDuration,
};
use m2mtrust_mef::procedures::{
    AdminPolicy, CommandState, MemoryRegistry, Policy, Procedures, Registration, Registry,
};
use m2mtrust_mef::server::{MefConfig, MefService, TargetCse};
use m2mtrust_mef::session::{
    self, KeyChanges, KeyRegistrationRequest, KeyValue, MefSession, NoDeviceSupport,
    RegistrationChanges, RegistrationRequest, SessionError, SessionExecutor,
};
use m2mtrust_mef::target::StoreProvisioning;
use m2mtrust_mef::{Assignment, Bootstrap, EnroleeCredential, Enrollee, MemoryEnrollees};
use m2mtrust_model::{CseId, ResponseStatusCode as Rsc};
use m2mtrust_store::{Durability, SqliteStore, Store};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

const SP: &str = "m2mtrust.example";
const MEF: &str = "mef.m2mtrust.example";
/// The administrating stakeholder: configuration, updates allowed, no initial commands.
const ADMIN: &str = "m2mtrust.example";
/// A stakeholder with an initial command for every new registration.
const CMDS: &str = "cmds.m2mtrust.example";
const KPM_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const RETRY_SECS: u64 = 600;

fn config() -> Value {
    json!({"mefKeyRegCfg": {"adminFQDN": ADMIN, "SUID": 22}})
}

fn cert_prov(uri: &str, subject: &str) -> CmdDescription {
    CmdDescription::new(CmdArgs::CertProv(CertProvArgs {
        protocol: CertProvProtocolId::EST,
        uri: uri.into(),
        subject_type: CertSubjectType::AE_ID,
        subject_id: subject.into(),
    }))
}

fn est_uri() -> String {
    format!("https://{MEF}:8444/.well-known/est")
}

struct Mef {
    addr: std::net::SocketAddr,
    ca: DevCa,
    procedures: Arc<Procedures>,
    registry: Arc<MemoryRegistry>,
    enrollees: Arc<MemoryEnrollees>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn certified(ca: &DevCa, profile: &CertProfile) -> CertifiedKey {
    let issued = ca.issue(profile, 30).unwrap();
    CertifiedKey::from_pem(
        issued.chain_pem.as_bytes(),
        issued.key_pem.expose_pem().as_bytes(),
    )
    .unwrap()
}

fn anchors(ca: &DevCa) -> TrustAnchors {
    TrustAnchors::from_pem(ca.cert_pem().as_bytes()).unwrap()
}

fn policy() -> Policy {
    Policy {
        max_registration_lifetime: TimeDelta::days(1),
        max_key_lifetime: TimeDelta::hours(12),
        retry_duration: XsDuration::from_secs(RETRY_SECS),
        ..Policy::default()
    }
    .with_admin(
        Fqdn::parse(ADMIN).unwrap(),
        AdminPolicy {
            client_config: Some(config()),
            initial_commands: vec![],
            allow_updates: true,
        },
    )
    .with_admin(
        Fqdn::parse(CMDS).unwrap(),
        AdminPolicy {
            client_config: None,
            initial_commands: vec![cert_prov(&est_uri(), "Cdev1")],
            allow_updates: false,
        },
    )
}

async fn start() -> Mef {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate(SP).unwrap();
    let in_cse = CseId::parse("/id-in").unwrap();
    let rules = IdentityRules::new(SP, in_cse.clone(), in_cse.clone()).unwrap();
    let enrollees = Arc::new(MemoryEnrollees::new());
    let bootstrap = Bootstrap::new(
        Fqdn::parse(MEF).unwrap(),
        certified(&ca, &CertProfile::Fqdn(MEF.into())),
        Some(anchors(&ca)),
        rules,
        enrollees.clone(),
    )
    .unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("mef.sqlite"), Durability::Process).unwrap());
    let sealer = Arc::new(Sealer::from_key(SecretKey::generate(32).unwrap()).unwrap());
    let ca_for_est = DevCa::from_pem(ca.cert_pem(), ca.key_pem().expose_pem()).unwrap();
    let registry = Arc::new(MemoryRegistry::new());
    let procedures = Arc::new(Procedures::new(
        Fqdn::parse(MEF).unwrap(),
        registry.clone(),
        policy(),
    ));
    let config = MefConfig {
        role: m2mtrust_mef::server::Role::Mef,
        maf: None,
        target: TargetCse {
            cse_id: in_cse,
            sp_domain: SP.into(),
            cse_base_uri: "https://127.0.0.1:8443/cse-in".into(),
        },
        base_uri: format!("https://{MEF}:8444"),
        est: Some(Arc::new(
            est::EstServer::new(Arc::new(ca_for_est), 30).unwrap(),
        )),
        procedures: Some(procedures.clone()),
    };
    let provisioning = Arc::new(StoreProvisioning::new(store, sealer, true));
    let service = Arc::new(MefService::new(bootstrap, config, provisioning));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.serve(listener, async move {
        let _ = rx.await;
    }));
    Mef {
        addr,
        ca,
        procedures,
        registry,
        enrollees,
        _dir: dir,
        _stop: tx,
    }
}

fn mef() -> Fqdn {
    Fqdn::parse(MEF).unwrap()
}

/// A PSK enrolee `<name>@MEF` assigned the AE-ID `ae`, on a fresh MEF session.
async fn device(m: &Mef, name: &str, ae: &str) -> MefSession {
    let kpm_id = KpsaId::parse(&format!("{name}@{MEF}")).unwrap();
    m.enrollees.insert_kpm(
        kpm_id.clone(),
        Enrollee {
            kpm: Some(PskKey::from_hex(KPM_HEX).unwrap()),
            assignment: Assignment::AeIds(vec![ae.into()]),
            expires: Utc::now() + Duration::days(1),
        },
    );
    let credential = EnroleeCredential::Psk {
        kpm_id,
        kpm: PskKey::from_hex(KPM_HEX).unwrap(),
    };
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    MefSession::connect(tcp, MEF, credential, None)
        .await
        .unwrap()
}

/// A MEF session of a CSE by its CSE-ID certificate (a Target MEF Client).
async fn cse(m: &Mef, cse_id: &str) -> MefSession {
    let profile = CertProfile::CseId {
        cse_id: cse_id.into(),
        in_cse_id: "/id-in".into(),
        sp_domain: SP.into(),
    };
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    MefSession::connect(
        tcp,
        MEF,
        EnroleeCredential::Certificate(certified(&m.ca, &profile)),
        Some(anchors(&m.ca)),
    )
    .await
    .unwrap()
}

async fn register(s: &mut MefSession, admin: &str) -> session::ClientRegistration {
    let request = RegistrationRequest {
        admin_fqdn: Fqdn::parse(admin).unwrap(),
        expiration: Utc::now() + Duration::hours(2),
        labels: None,
    };
    session::register(s.connection(), &mef(), &request)
        .await
        .unwrap()
}

fn registration(m: &Mef, id: &str) -> Option<Registration> {
    let mut out = None;
    m.registry
        .transact(&mut |tx| {
            out = tx.registration(id)?;
            Ok(())
        })
        .unwrap();
    out
}

fn stored_key(m: &Mef, rki: &str) -> Option<SecretKey> {
    let mut out = None;
    m.registry
        .transact(&mut |tx| {
            out = tx.key(rki)?.map(|k| k.key);
            Ok(())
        })
        .unwrap();
    out
}

fn commands(m: &Mef, id: &str) -> CommandState {
    m.procedures.command_state(id).unwrap()
}

fn refused(r: Result<impl std::fmt::Debug, SessionError>) -> (Rsc, String) {
    match r {
        Err(SessionError::Refused { rsc, dbg, .. }) => (rsc, dbg),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn runner(client_id: &str) -> CommandRunner {
    CommandRunner::new(ClientProfile {
        mef_fqdn: mef(),
        client_id: client_id.into(),
        kind: ClientKind::Ae,
        classes: vec![
            CmdClassId::NO_MORE_COMMANDS,
            CmdClassId::CERT_PROV,
            CmdClassId::DEV_CFG,
            CmdClassId::MO_NODE,
        ],
        cert_prov_protocols: vec![CertProvProtocolId::EST],
        dev_mgmt: vec![DevMgmtId::OMA_LWM2M],
    })
}

fn close_to(t: DateTime<Utc>, expected: DateTime<Utc>) -> bool {
    (t - expected).num_seconds().abs() <= 5
}

// ---------------------------------------------------------------------------------------------
// Audit events of this test's thread (the runtime of `#[tokio::test]` runs the MEF's tasks on
// the test thread), to see from the MEF side which EST operations were performed.

#[derive(Clone, Default)]
struct AuditLog(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl AuditLog {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.clone())
    }

    fn events(&self, event: &str) -> Vec<BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.get("event").map(String::as_str) == Some(event))
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for AuditLog {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "audit"
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn registration_configuration_update_and_de_registration() {
    let m = start().await;
    let mut dev = device(&m, "dev1", "Cdev1").await;
    let now = Utc::now();
    // §8.3.5.2.3: a lifetime beyond the MEF's maximum is shortened.
    let proposed = now + Duration::days(3);
    let request = RegistrationRequest {
        admin_fqdn: Fqdn::parse(ADMIN).unwrap(),
        expiration: proposed,
        labels: Some(vec!["floor-1".into()]),
    };
    let reg = session::register(dev.connection(), &mef(), &request)
        .await
        .unwrap();
    assert!(reg.id.starts_with('R'), "{}", reg.id);
    assert_eq!(reg.client_id, format!("10-dev1@{MEF}"));
    assert_eq!(reg.admin_fqdn.as_str(), ADMIN);
    assert_eq!(reg.labels, Some(vec!["floor-1".to_string()]));
    assert!(reg.commands.is_empty());
    assert!(close_to(reg.expiration, now + Duration::days(1)));
    let stored = registration(&m, &reg.id).unwrap();
    assert_eq!(stored.client_id, reg.client_id);
    assert_eq!(stored.expiration, reg.expiration);

    // §8.3.5.2.4.
    let cfg = session::retrieve_configuration(dev.connection(), &reg.id)
        .await
        .unwrap();
    assert_eq!(cfg, config());

    // §8.3.5.2.5: labels only, then the expiration only; the answer carries what was asked.
    let changed = session::update_registration(
        dev.connection(),
        &mef(),
        &reg.id,
        &RegistrationChanges {
            expiration: None,
            labels: Some(vec!["floor-2".into()]),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        changed,
        RegistrationChanges {
            expiration: None,
            labels: Some(vec!["floor-2".into()]),
        }
    );
    let stored = registration(&m, &reg.id).unwrap();
    assert_eq!(stored.labels, Some(vec!["floor-2".to_string()]));
    assert_eq!(stored.expiration, reg.expiration);
    let later = now + Duration::hours(5);
    let changed = session::update_registration(
        dev.connection(),
        &mef(),
        &reg.id,
        &RegistrationChanges {
            expiration: Some(later),
            labels: None,
        },
    )
    .await
    .unwrap();
    let granted = changed.expiration.unwrap();
    assert!(close_to(granted, later));
    assert_eq!(changed.labels, None);
    let stored = registration(&m, &reg.id).unwrap();
    assert_eq!(stored.expiration, granted);
    assert_eq!(stored.labels, Some(vec!["floor-2".to_string()]));

    // A stakeholder with initial commands announces the command resource.
    let with_cmds = register(&mut dev, CMDS).await;
    assert_eq!(
        with_cmds.commands,
        vec![format!("mef/reg/{}/cmd", with_cmds.id)]
    );

    // §8.3.5.2.6: gone, for every procedure naming it.
    session::deregister(dev.connection(), &reg.id)
        .await
        .unwrap();
    assert!(registration(&m, &reg.id).is_none());
    let (rsc, dbg) = refused(session::retrieve_configuration(dev.connection(), &reg.id).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    assert!(dbg.contains(&reg.id), "{dbg}");
    let (rsc, _) = refused(session::deregister(dev.connection(), &reg.id).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    // The other registration is untouched.
    assert!(registration(&m, &with_cmds.id).is_some());
}

#[tokio::test]
async fn exported_and_supplied_keys_reach_their_targets_and_nobody_else() {
    let m = start().await;
    let mut dev = device(&m, "dev2", "Cdev2").await;
    let reg = register(&mut dev, ADMIN).await;
    let request = KeyRegistrationRequest {
        admin_fqdn: Fqdn::parse(ADMIN).unwrap(),
        expiration: Utc::now() + Duration::hours(1),
        labels: Some(vec!["sensor-data".into()]),
        suid: Suid(22),
        target_ids: vec!["/id-mn".into()],
    };

    // §8.3.5.2.7 without Key Value: the MEF stores the session's export; the device computed
    // the same key from its end of the TLS session.
    let (conn, export) = dev.parts();
    let exported = session::register_key(conn, &mef(), &request, KeyValue::Exported(export))
        .await
        .unwrap();
    assert_eq!(exported.relative_key_id, export.relative_key_id_hex());
    assert_eq!(exported.key, *export.key());
    assert_eq!(exported.key.len(), 32);
    assert_eq!(
        exported.key_id,
        format!("{}@{MEF}", exported.relative_key_id)
    );
    assert_eq!(exported.source_id, reg.client_id);
    assert_eq!(exported.target_ids, vec!["/id-mn".to_string()]);
    assert_eq!(
        stored_key(&m, &exported.relative_key_id).unwrap(),
        exported.key
    );

    // With a supplied Key Value.
    let chosen = SecretKey::generate(32).unwrap();
    let supplied = session::register_key(
        dev.connection(),
        &mef(),
        &request,
        KeyValue::Supplied(&chosen),
    )
    .await
    .unwrap();
    assert_ne!(supplied.relative_key_id, exported.relative_key_id);
    assert_eq!(supplied.key, chosen);
    assert_eq!(stored_key(&m, &supplied.relative_key_id).unwrap(), chosen);

    // §8.3.5.2.8: the target (its CSE-ID certificate) retrieves both keys.
    let mut target = cse(&m, "/id-mn").await;
    let got = session::retrieve_key(target.connection(), &mef(), &exported.relative_key_id)
        .await
        .unwrap();
    assert_eq!(got.key, exported.key);
    assert_eq!(got.source_id, reg.client_id);
    assert_eq!(got.suid, Suid(22));
    assert_eq!(got.labels, Some(vec!["sensor-data".to_string()]));
    let got = session::retrieve_key(target.connection(), &mef(), &supplied.key_id)
        .await
        .unwrap();
    assert_eq!(got.key, chosen);

    // Not a target: another CSE, and the source itself. 4103, and no key in the answer.
    let mut other = cse(&m, "/id-other").await;
    for s in [&mut other, &mut dev] {
        let (rsc, dbg) =
            refused(session::retrieve_key(s.connection(), &mef(), &exported.relative_key_id).await);
        assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
        assert!(dbg.contains("not a target"), "{dbg}");
        let r = s
            .connection()
            .send(
                Method::GET,
                &format!("/mef/keys/{}", exported.relative_key_id),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.status, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
        let text = r.content.unwrap().to_string();
        assert!(!text.contains("sec:keyReg"), "{text}");
        assert!(
            !text.contains(&B64.encode(exported.key.expose_bytes())),
            "{text}"
        );
    }

    // §8.3.5.2.9: the source moves the key to another target.
    let changed = session::update_key(
        dev.connection(),
        &mef(),
        &exported.relative_key_id,
        &KeyChanges {
            target_ids: Some(vec!["/id-other".into()]),
            ..KeyChanges::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        changed,
        KeyChanges {
            expiration: None,
            labels: None,
            target_ids: Some(vec!["/id-other".into()]),
        }
    );
    let got = session::retrieve_key(other.connection(), &mef(), &exported.relative_key_id)
        .await
        .unwrap();
    assert_eq!(got.key, exported.key);
    let (rsc, _) = refused(
        session::retrieve_key(target.connection(), &mef(), &exported.relative_key_id).await,
    );
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);

    // §8.3.5.2.10: only the source de-registers.
    let (rsc, _) =
        refused(session::deregister_key(target.connection(), &supplied.relative_key_id).await);
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    assert!(stored_key(&m, &supplied.relative_key_id).is_some());
    session::deregister_key(dev.connection(), &exported.relative_key_id)
        .await
        .unwrap();
    assert!(stored_key(&m, &exported.relative_key_id).is_none());
    let (rsc, _) =
        refused(session::retrieve_key(other.connection(), &mef(), &exported.relative_key_id).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    // The other key is still there for its target.
    let got = session::retrieve_key(target.connection(), &mef(), &supplied.relative_key_id)
        .await
        .unwrap();
    assert_eq!(got.key, chosen);
}

#[tokio::test]
async fn queued_cert_prov_runs_est_on_the_session_and_is_reported_ok() {
    let audit = AuditLog::default();
    let _guard = audit.install();
    let m = start().await;
    let mut dev = device(&m, "dev3", "Cdev3").await;
    let reg = register(&mut dev, ADMIN).await;
    // §8.3.9.2 step 2: the operator's decision.
    m.procedures
        .queue_command(&reg.id, cert_prov(&est_uri(), "Cdev3"))
        .unwrap();

    let mut runner = runner(&reg.client_id);
    let mut tree = MoTree::new();
    let mut exec = SessionExecutor::new(NoDeviceSupport);
    let retry = session::run_commands(dev.connection(), &reg.id, &mut runner, &mut tree, &mut exec)
        .await
        .unwrap();
    assert_eq!(retry, XsDuration::from_secs(RETRY_SECS));
    assert_eq!(
        runner.last_update().map(|u| u.status),
        Some(CmdStatusCode::OK)
    );

    // The MEF recorded the status of the CERT_PROV and then issued NO_MORE_COMMANDS.
    let state = commands(&m, &reg.id);
    assert!(state.queue.is_empty());
    assert_eq!(state.reports.len(), 1);
    assert_eq!(state.reports[0].status, CmdStatusCode::OK);
    assert_eq!(state.reports[0].description, cert_prov(&est_uri(), "Cdev3"));
    let current = state.current.unwrap();
    assert_eq!(current.description.class_id(), CmdClassId::NO_MORE_COMMANDS);
    assert!(!current.awaiting_update);

    // EST ran on this session: one enrolment by the MEF, for this client.
    let enrolments = audit.events("est");
    assert_eq!(enrolments.len(), 1, "{enrolments:?}");
    assert_eq!(enrolments[0]["op"], "simpleenroll");
    assert!(enrolments[0]["client"].contains("dev3"), "{enrolments:?}");
    assert!(audit.events("est_refused").is_empty());

    // The device kept the certificate: its identity, its key, the MEF's trust anchor; it
    // authenticates a new MEF session.
    let certs = exec.certificates();
    assert_eq!(certs.len(), 1);
    let der = openssl::x509::X509::from_pem(certs[0].chain_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let id = m2mtrust_crypto::pki::certificate_identity_der(&der).unwrap();
    assert_eq!(id.uris, vec![format!("https://{SP}/id-in/Cdev3")]);
    let certified = CertifiedKey::from_pem(
        certs[0].chain_pem.as_bytes(),
        certs[0].key_pem.expose_pem().as_bytes(),
    )
    .unwrap();
    let tcp = TcpStream::connect(m.addr).await.unwrap();
    MefSession::connect(
        tcp,
        MEF,
        EnroleeCredential::Certificate(certified),
        Some(TrustAnchors::from_pem(certs[0].ca_pem.as_bytes()).unwrap()),
    )
    .await
    .unwrap();

    // Nothing queued any more: the next run ends at once, without a new report or certificate.
    let retry = session::run_commands(dev.connection(), &reg.id, &mut runner, &mut tree, &mut exec)
        .await
        .unwrap();
    assert_eq!(retry, XsDuration::from_secs(RETRY_SECS));
    assert_eq!(commands(&m, &reg.id).reports.len(), 1);
    assert_eq!(exec.certificates().len(), 1);
    assert_eq!(audit.events("est").len(), 1);
}

#[tokio::test]
async fn cert_prov_for_another_host_or_identity_requests_no_certificate() {
    let audit = AuditLog::default();
    let _guard = audit.install();
    let m = start().await;
    let mut dev = device(&m, "dev4", "Cdev4").await;
    let reg = register(&mut dev, ADMIN).await;
    // §8.3.9.7 step 4: the URI's host is not the MEF's FQDN ⇒ 43, nothing executed.
    let foreign = cert_prov("https://est.elsewhere.example/.well-known/est", "Cdev4");
    // An identity the MEF does not certify for this client: the device sees the conflict in
    // /csrattrs and stops before enrolling ⇒ 100 (the MEF's statements disagree).
    let not_mine = cert_prov(&est_uri(), "Csomeoneelse");
    m.procedures
        .queue_command(&reg.id, foreign.clone())
        .unwrap();
    m.procedures
        .queue_command(&reg.id, not_mine.clone())
        .unwrap();

    let mut runner = runner(&reg.client_id);
    let mut exec = SessionExecutor::new(NoDeviceSupport);
    let retry = session::run_commands(
        dev.connection(),
        &reg.id,
        &mut runner,
        &mut MoTree::new(),
        &mut exec,
    )
    .await
    .unwrap();
    assert_eq!(retry, XsDuration::from_secs(RETRY_SECS));
    let reports: Vec<(CmdDescription, CmdStatusCode)> = commands(&m, &reg.id)
        .reports
        .into_iter()
        .map(|r| (r.description, r.status))
        .collect();
    assert_eq!(
        reports,
        vec![
            (foreign, CmdStatusCode::UNACCEPTABLE_ARGUMENTS),
            (not_mine, CmdStatusCode::CERT_PROV_SERVER_ERROR),
        ]
    );
    assert!(exec.certificates().is_empty());
    // The MEF saw no enrolment attempt at all.
    assert!(audit.events("est").is_empty());
    assert!(audit.events("est_refused").is_empty());
    assert!(audit.events("cert_prov").is_empty());
}

#[test]
fn a_session_executor_outside_the_loop_performs_nothing() {
    // The network step belongs to run_commands; a stray call reports a client error.
    let mut exec = SessionExecutor::new(NoDeviceSupport);
    let args = CertProvArgs {
        protocol: CertProvProtocolId::EST,
        uri: est_uri(),
        subject_type: CertSubjectType::AE_ID,
        subject_id: "Cdev1".into(),
    };
    assert!(exec.cert_prov(&args).is_err());
    assert!(exec.certificates().is_empty());
}

#[tokio::test]
async fn refusals_over_the_wire_change_nothing() {
    let m = start().await;
    let mut a = device(&m, "dev5a", "Cdev5a").await;
    let mut b = device(&m, "dev5b", "Cdev5b").await;
    let reg = register(&mut a, ADMIN).await;
    m.procedures
        .queue_command(&reg.id, cert_prov(&est_uri(), "Cdev5a"))
        .unwrap();
    let snapshot = || (registration(&m, &reg.id).unwrap(), commands(&m, &reg.id));
    let before = snapshot();
    let mef = mef();
    let changes = RegistrationChanges {
        expiration: None,
        labels: Some(vec!["stolen".into()]),
    };
    let update = CmdUpdate {
        cmd_id: 1,
        status: CmdStatusCode::OK,
    };

    // Unknown registration: 4004 with the MEF's reason.
    let unknown = "R0000000000000000";
    let (rsc, dbg) = refused(session::retrieve_configuration(a.connection(), unknown).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    assert!(dbg.contains("unknown client registration"), "{dbg}");
    let (rsc, _) =
        refused(session::update_registration(a.connection(), &mef, unknown, &changes).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    let (rsc, _) = refused(session::deregister(a.connection(), unknown).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    let (rsc, _) = refused(session::retrieve_command(a.connection(), unknown).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    let (rsc, _) = refused(session::update_command(a.connection(), unknown, update).await);
    assert_eq!(rsc, Rsc::NOT_FOUND);
    let (rsc, _) = refused(session::retrieve_key(a.connection(), &mef, "00FF").await);
    assert_eq!(rsc, Rsc::NOT_FOUND);

    // Another client's registration: 4103, and its command is not issued to the intruder.
    let (rsc, dbg) = refused(session::retrieve_configuration(b.connection(), &reg.id).await);
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    assert!(dbg.contains("does not own"), "{dbg}");
    let (rsc, _) =
        refused(session::update_registration(b.connection(), &mef, &reg.id, &changes).await);
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    let (rsc, _) = refused(session::deregister(b.connection(), &reg.id).await);
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    let (rsc, _) = refused(session::retrieve_command(b.connection(), &reg.id).await);
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    let (rsc, _) = refused(session::update_command(b.connection(), &reg.id, update).await);
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);
    let mut exec = SessionExecutor::new(NoDeviceSupport);
    let (rsc, _) = refused(
        session::run_commands(
            b.connection(),
            &reg.id,
            &mut runner("intruder"),
            &mut MoTree::new(),
            &mut exec,
        )
        .await,
    );
    assert_eq!(rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE);

    // Malformed bodies from the owner: 4000.
    let reg_path = format!("/mef/reg/{}", reg.id);
    let cmd_path = format!("/mef/reg/{}/cmd", reg.id);
    let bad: [(Method, &str, Value); 6] = [
        (
            Method::POST,
            "/mef/reg",
            json!({"sec:mefClientReg": {"fqdn": MEF}}),
        ),
        (Method::POST, "/mef/reg", json!({"other": {}})),
        (
            Method::PUT,
            &reg_path,
            json!({"sec:mefClientReg": {"exp": "tomorrow"}}),
        ),
        (
            Method::PUT,
            &reg_path,
            json!({"sec:mefClientReg": {"lbl": ["x"], "bogus": 1}}),
        ),
        (
            Method::POST,
            "/mef/keys",
            json!({"sec:keyReg": {"fqdn": MEF, "exp": "20991231T000000", "adminFQDN": ADMIN,
                   "suid": 22, "tids": ["/id-mn"], "kv": "!!not base64!!"}}),
        ),
        (
            Method::PUT,
            &cmd_path,
            json!({"sec:cmdUpd": {"cmdID": "one", "cmdStatusCode": 20}}),
        ),
    ];
    for (method, path, body) in bad {
        let r = a
            .connection()
            .send(method, path, Some(&body))
            .await
            .unwrap();
        assert_eq!(r.status, Rsc::BAD_REQUEST, "{body}");
        assert!(r.debug_message().is_some_and(|d| !d.is_empty()), "{body}");
    }
    let (status, _, _) = a
        .connection()
        .raw(
            Method::PUT,
            &reg_path,
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Nothing changed: the registration, its queued command (never issued), no other
    // registration, no key from the refused key registration.
    assert_eq!(snapshot(), before);
    assert!(before.1.current.is_none());
    assert_eq!(before.1.queue.len(), 1);
    let mut owned = (0, 0);
    m.registry
        .transact(&mut |tx| {
            owned = (
                tx.registrations_of(&reg.client_id)?.len(),
                tx.registrations_of(&format!("10-dev5b@{MEF}"))?.len(),
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(owned, (1, 0));
    let (conn, export) = a.parts();
    assert!(stored_key(&m, &export.relative_key_id_hex()).is_none());
    // The session still works after the refusals: the owner runs its command.
    let mut runner = runner(&reg.client_id);
    let mut exec = SessionExecutor::new(NoDeviceSupport);
    session::run_commands(conn, &reg.id, &mut runner, &mut MoTree::new(), &mut exec)
        .await
        .unwrap();
    assert_eq!(exec.certificates().len(), 1);
}
