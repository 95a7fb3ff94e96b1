//! TS-0003 §10.3.1 key export: RFC 5705, 48 bytes, no context value.

use std::fmt;

use openssl::error::ErrorStack;
use openssl::ssl::SslRef;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::secret::SymmetricKey;

/// Label after the Enrolee↔MEF handshake: yields Ke and RelativeKeID.
pub const LABEL_BOOTSTRAP: &str = "EXPORTER-oneM2M-Bootstrap";
/// Label after the Entity A↔MAF handshake (MAF key registration): yields Kc and KcID.
pub const LABEL_CONNECTION: &str = "EXPORTER-oneM2M-Connection";
/// Label between ESCertKE end-points: yields pairwiseE2EKey and pairwiseE2EKeyID.
pub const LABEL_ESCERTKE: &str = "EXPORTER-oneM2M-ESCertKE";

/// The 48 exported bytes; zeroized on drop, printed as `<redacted>`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyingMaterial([u8; 48]);

impl KeyingMaterial {
    /// The raw bytes. Callers must not log them.
    pub fn expose_secret(&self) -> &[u8; 48] {
        &self.0
    }

    /// TS-0003 §10.3.1: the key is "the 32 least significant bytes" and the identifier "the 16 most
    /// significant bytes" of the exported string, read big-endian: id = bytes 0..16,
    /// key = bytes 16..48.
    pub fn split(&self) -> ExportedKey {
        let mut id = [0u8; 16];
        let mut key = [0u8; 32];
        let (hi, lo) = self.0.split_at(16);
        id.copy_from_slice(hi);
        key.copy_from_slice(lo);
        let out = ExportedKey {
            id,
            key: SymmetricKey::new(key),
        };
        key.zeroize();
        out
    }
}

impl fmt::Debug for KeyingMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An exported key and its identifier (e.g. Ke and RelativeKeID).
#[derive(Clone, Debug)]
pub struct ExportedKey {
    /// The 16-byte identifier (RelativeKeID, KcID, pairwiseE2EKeyID); not secret.
    pub id: [u8; 16],
    /// The 32-byte key (Ke, Kc, pairwiseE2EKey).
    pub key: SymmetricKey,
}

/// Runs the RFC 5705 exporter of an established connection with `label` and no context, for 48
/// bytes (TS-0003 §10.3.1). Both ends get the same bytes.
pub fn export_keying_material(ssl: &SslRef, label: &str) -> Result<KeyingMaterial, ErrorStack> {
    let mut out = KeyingMaterial([0u8; 48]);
    ssl.export_keying_material(&mut out.0, label, None)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_big_endian() {
        let mut bytes = [0u8; 48];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let km = KeyingMaterial(bytes);
        let k = km.split();
        assert_eq!(k.id, core::array::from_fn::<u8, 16, _>(|i| i as u8));
        assert_eq!(k.key.expose_secret()[0], 16);
        assert_eq!(k.key.expose_secret()[31], 47);
        assert_eq!(format!("{km:?}"), "<redacted>");
        assert!(!format!("{k:?}").contains("16,"), "{k:?}");
    }
}
