//! EST bodies from the wire (RFC 7030): CSRs the MEF receives, csrattrs and certs-only PKCS#7 a
//! device receives.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = m2mtrust_mef::est::parse_csrattrs(data);
    let _ = m2mtrust_mef::est::parse_certs_only(data);
});
