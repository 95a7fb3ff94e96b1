//! Secret byte strings: zeroized on drop, printed as `<redacted>`.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::ConfigError;

/// Longest pre-shared key accepted (OpenSSL's `PSK_MAX_PSK_LEN`).
pub const MAX_PSK_LEN: usize = 256;

/// A pre-shared key Kpsa (TS-0003 §8.2.2.1).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PskKey(Vec<u8>);

impl PskKey {
    /// Wraps key bytes; refuses an empty key and one longer than [`MAX_PSK_LEN`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, ConfigError> {
        let key = Self(bytes);
        if key.0.is_empty() || key.0.len() > MAX_PSK_LEN {
            return Err(ConfigError::Invalid {
                what: "pre-shared key",
                why: format!("must be 1 to {MAX_PSK_LEN} bytes"),
            });
        }
        Ok(key)
    }

    /// Parses a key written in hexadecimal (as `openssl s_client -psk` takes it).
    pub fn from_hex(hex: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::Invalid {
            what: "pre-shared key",
            why: "not an even number of hexadecimal digits".into(),
        };
        if !hex.len().is_multiple_of(2) {
            return Err(bad());
        }
        let mut out = Vec::with_capacity(hex.len() / 2);
        for pair in hex.as_bytes().chunks(2) {
            let digit = |c: u8| (c as char).to_digit(16);
            match pair {
                [hi, lo] => match (digit(*hi), digit(*lo)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        out.zeroize();
                        return Err(bad());
                    }
                },
                _ => return Err(bad()),
            }
        }
        Self::new(out)
    }

    /// The key bytes. Callers must not log or persist them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty key cannot be built.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for PskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A 32-byte symmetric key derived by key export (Ke, Kc, pairwiseE2EKey; TS-0003 §10.3.1).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key bytes. Callers must not log or persist them in clear.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_redaction() {
        let k = PskKey::from_hex("00ff10Ab").unwrap();
        assert_eq!(k.expose_secret(), &[0x00, 0xff, 0x10, 0xab]);
        assert_eq!(format!("{k:?}"), "<redacted>");
        assert!(PskKey::from_hex("abc").is_err());
        assert!(PskKey::from_hex("zz").is_err());
        assert!(PskKey::from_hex("").is_err());
        assert!(PskKey::new(vec![1; MAX_PSK_LEN + 1]).is_err());
        assert_eq!(format!("{:?}", SymmetricKey::new([7; 32])), "<redacted>");
    }
}
