//! The two OpenSSL functions the `openssl` crate does not wrap. This is the only module of the
//! workspace allowed `unsafe`; each block says why it is sound.

use std::ffi::{CStr, c_char, c_int};

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::SslContextBuilder;
use openssl::x509::X509CrlRef;
use openssl::x509::store::X509StoreBuilderRef;

unsafe extern "C" {
    fn SSL_CTX_use_psk_identity_hint(ctx: *mut openssl_sys::SSL_CTX, hint: *const c_char) -> c_int;
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> c_int;
}

/// Sets the PSK identity hint the server sends in ServerKeyExchange (RFC 4279 §2, TLS 1.2 only).
pub(crate) fn set_psk_identity_hint(
    builder: &mut SslContextBuilder,
    hint: &CStr,
) -> Result<(), ErrorStack> {
    // SAFETY: `builder.as_ptr()` is a live SSL_CTX owned by `builder` for the whole call, and
    // `hint` is a NUL-terminated string that outlives the call; OpenSSL copies it (OPENSSL_strdup)
    // and keeps no pointer to it.
    let rc = unsafe { SSL_CTX_use_psk_identity_hint(builder.as_ptr(), hint.as_ptr()) };
    if rc == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// Adds a CRL to a certificate store.
pub(crate) fn add_crl(store: &mut X509StoreBuilderRef, crl: &X509CrlRef) -> Result<(), ErrorStack> {
    // SAFETY: both pointers are live for the call (borrowed from owned wrappers). X509_STORE_add_crl
    // takes its own reference on the CRL (X509_CRL_up_ref), so the store never relies on our borrow,
    // and it does not mutate the CRL.
    let rc = unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) };
    if rc == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
