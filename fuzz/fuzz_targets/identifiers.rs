//! Identifiers and addresses from the wire: originators, targets, timestamps, KpsaIDs,
//! Credential-IDs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use m2mtrust_model::{CseId, Home, Originator, SpId, Target, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (Ok(sp_id), Ok(cse_id)) = (SpId::parse("//m2mtrust.example"), CseId::parse("/id-in")) else { return };
    let home = Home { sp_id, cse_id, cse_base_name: "cse-in".into() };
    if let Ok(o) = Originator::parse(s, &home) {
        let _ = (o.canonical(), o.absolute(&home));
    }
    let _ = Target::parse(s, &home);
    let _ = Timestamp::parse(s).map(Timestamp::to_onem2m);
    let _ = m2mtrust_crypto::KpsaId::parse(s);
    let _ = m2mtrust_crypto::CredentialId::parse(s);
});
