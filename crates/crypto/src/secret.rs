//! Secret key material as types (TS-0003 §6.2.5: credentials are protected in storage and use).
//!
//! [`SecretKey`] holds symmetric keys such as Ke, Km, Kpsa, Kc and PSKs; [`PrivateKeyPem`] holds a
//! PEM-encoded private key. Both are wiped from memory when dropped, print as `<redacted>` and
//! only give their contents away through methods whose names say so (`expose_*`).

use std::fmt;

use zeroize::Zeroize;

/// Text printed instead of a secret by `Debug` and `Display`.
const REDACTED: &str = "<redacted>";

/// Error when building a [`SecretKey`] from text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The hexadecimal text has an odd number of digits.
    #[error("hexadecimal key has an odd number of digits ({0})")]
    OddLength(usize),
    /// The hexadecimal text contains a character that is not a hex digit.
    #[error("hexadecimal key contains a non-hex character at position {0}")]
    InvalidDigit(usize),
    /// The key is empty.
    #[error("key is empty")]
    Empty,
}

/// A symmetric secret (Ke, Km, Kpsa, Kc, a PSK, a sealed plaintext, ...).
///
/// The bytes are zeroized on drop, `Debug`/`Display` print `<redacted>`, and equality runs in
/// constant time (`CRYPTO_memcmp`) when the lengths are equal. Lengths are not secret.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// Takes ownership of `bytes` as a secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes` into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// A fresh key of `len` random bytes from OpenSSL's CSPRNG (the only impure constructor).
    pub fn generate(len: usize) -> Result<Self, openssl::error::ErrorStack> {
        let mut bytes = vec![0u8; len];
        openssl::rand::rand_bytes(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Parses a key from hexadecimal text (upper or lower case, no separators).
    pub fn from_hex(hex: &str) -> Result<Self, SecretError> {
        let bytes = decode_hex(hex)?;
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(bytes))
    }

    /// Reveals the key as lower-case hexadecimal. Only for storage in protected form,
    /// configuration output the operator asked for, or tests; never for logs.
    pub fn expose_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Reveals the key bytes (to feed them to a cipher, a MAC or a TLS PSK callback).
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length of the key in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && openssl::memcmp::eq(&self.0, &other.0)
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Compares two MACs or tokens in constant time (for equal lengths; lengths are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// A PEM-encoded private key (PKCS#8), zeroized on drop and never printed.
#[derive(Clone)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// Wraps PEM text as a secret.
    pub fn new(pem: String) -> Self {
        Self(pem)
    }

    /// Reveals the PEM text (to write it to a protected file or load it into a TLS context).
    pub fn expose_pem(&self) -> &str {
        &self.0
    }
}

impl Drop for PrivateKeyPem {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Lower-case hexadecimal encoding (for non-secret values too, e.g. serial numbers).
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes hexadecimal text without separators.
pub(crate) fn decode_hex(hex: &str) -> Result<Vec<u8>, SecretError> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(SecretError::OddLength(digits.len()));
    }
    let nibble = |i: usize, c: u8| -> Result<u8, SecretError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(SecretError::InvalidDigit(i)),
        }
    };
    digits
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| match pair {
            [hi, lo] => Ok((nibble(2 * i, *hi)? << 4) | nibble(2 * i + 1, *lo)?),
            _ => Err(SecretError::OddLength(digits.len())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hex_round_trip() {
        let k = SecretKey::from_hex("00FFa5").unwrap();
        assert_eq!(k.expose_bytes(), &[0x00, 0xff, 0xa5]);
        assert_eq!(k.expose_hex(), "00ffa5");
    }

    #[test]
    fn hex_errors() {
        assert_eq!(
            SecretKey::from_hex("abc").unwrap_err(),
            SecretError::OddLength(3)
        );
        assert_eq!(
            SecretKey::from_hex("0g").unwrap_err(),
            SecretError::InvalidDigit(1)
        );
        assert_eq!(SecretKey::from_hex("").unwrap_err(), SecretError::Empty);
    }

    #[test]
    fn never_printed() {
        let k = SecretKey::from_hex("deadbeef").unwrap();
        assert_eq!(format!("{k:?}"), "<redacted>");
        assert_eq!(format!("{k}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&k)), "Some(<redacted>)");
        let p = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----".into());
        assert_eq!(format!("{p:?} {p}"), "<redacted> <redacted>");
    }

    #[test]
    fn generate() {
        let a = SecretKey::generate(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, SecretKey::generate(32).unwrap());
    }

    #[test]
    fn equality() {
        let a = SecretKey::from_slice(b"same");
        assert_eq!(a, SecretKey::from_slice(b"same"));
        assert_ne!(a, SecretKey::from_slice(b"sama"));
        assert_ne!(a, SecretKey::from_slice(b"same!"));
        assert!(constant_time_eq(b"mac", b"mac"));
        assert!(!constant_time_eq(b"mac", b"ma"));
    }
}
