//! Access control policies as stored from CREATE/UPDATE content (TS-0003 §7.1.3 `pv`/`pvs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = m2mtrust_authz::CompiledAcp::compile(&value);
    }
});
