//! ESCertKE Messages from the wire (TS-0003 §8.7): whatever arrives as message 1, 2 or 3 must be
//! refused or processed without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use m2mtrust_channel::escertke::{
    EsCertKeConfig, ExpectedPeer, Initiator, InitiatorContext, Terminator, TerminatorContext,
};
use m2mtrust_channel::{CertifiedKey, IdentityRules, TrustAnchors};
use m2mtrust_crypto::{CertProfile, DevCa};
use m2mtrust_model::CseId;

struct Contexts {
    initiator: InitiatorContext,
    terminator: TerminatorContext,
}

fn contexts() -> Option<&'static Contexts> {
    static C: OnceLock<Option<Contexts>> = OnceLock::new();
    C.get_or_init(|| {
        let sp = "m2mtrust.example";
        let ca = DevCa::generate(sp).ok()?;
        let certified = |profile: CertProfile| {
            let issued = ca.issue(&profile, 1).ok()?;
            CertifiedKey::from_pem(
                issued.chain_pem.as_bytes(),
                issued.key_pem.expose_pem().as_bytes(),
            )
            .ok()
        };
        let in_cse = CseId::parse("/id-in").ok()?;
        let rules = IdentityRules::new(sp, in_cse.clone(), in_cse).ok()?;
        let trust = TrustAnchors::from_pem(ca.cert_pem().as_bytes()).ok()?;
        let ae = certified(CertProfile::AeId {
            ae_id: "Cae1".into(),
            cse_id: "/id-in".into(),
            sp_domain: sp.into(),
        })?;
        let cse = certified(CertProfile::CseId {
            cse_id: "/id-in".into(),
            in_cse_id: "/id-in".into(),
            sp_domain: sp.into(),
        })?;
        Some(Contexts {
            initiator: InitiatorContext::new(&EsCertKeConfig::new(
                ae,
                trust.clone(),
                rules.clone(),
            ))
            .ok()?,
            terminator: TerminatorContext::new(&EsCertKeConfig::new(cse, trust, rules)).ok()?,
        })
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Some(c) = contexts() else { return };
    let any = || ExpectedPeer::AnyNamed;
    // As message 1 at a Terminator.
    if let Ok(mut t) = Terminator::new(&c.terminator, any()) {
        let _ = t.respond(data);
    }
    // As message 2 at an Initiator that sent message 1, and as message 3 at a Terminator that
    // answered a real message 1.
    let (Ok(mut i), Ok(mut t)) = (
        Initiator::new(&c.initiator, any()),
        Terminator::new(&c.terminator, any()),
    ) else {
        return;
    };
    let Ok(m1) = i.start() else { return };
    let _ = i.finish(data);
    if t.respond(&m1).is_ok() {
        let _ = t.finish(data);
    }
});
