//! A throw-away test PKI built with rcgen: P-256 / ECDSA-SHA256 CAs, leaves and CRLs.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, date_time_ymd,
};

/// A subjectAltName for a test leaf.
#[derive(Clone, Copy, Debug)]
pub enum San<'a> {
    /// dNSName.
    Dns(&'a str),
    /// uniformResourceIdentifier.
    Uri(&'a str),
}

/// The validity window of a test leaf.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// 2024-01-01 .. 2099-01-01.
    Current,
    /// 2020-01-01 .. 2021-01-01.
    Expired,
}

/// A PEM certificate and its PEM key.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed test CA.
pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = date_time_ymd(2019, 1, 1);
        p.not_after = date_time_ymd(2099, 1, 1);
        p.serial_number = Some(SerialNumber::from(1u64));
        let cert = p.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf with keyUsage digitalSignature and the given SANs and serial number.
    pub fn leaf(&self, cn: &str, sans: &[San<'_>], validity: Validity, serial: u64) -> Leaf {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.subject_alt_names = sans
            .iter()
            .map(|s| match s {
                San::Dns(d) => SanType::DnsName((*d).try_into().unwrap()),
                San::Uri(u) => SanType::URI((*u).try_into().unwrap()),
            })
            .collect();
        p.use_authority_key_identifier_extension = true;
        match validity {
            Validity::Current => {
                p.not_before = date_time_ymd(2024, 1, 1);
                p.not_after = date_time_ymd(2099, 1, 1);
            }
            Validity::Expired => {
                p.not_before = date_time_ymd(2020, 1, 1);
                p.not_after = date_time_ymd(2021, 1, 1);
            }
        }
        p.serial_number = Some(SerialNumber::from(serial));
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A CRL valid 2024..2099 revoking these serial numbers.
    pub fn crl(&self, revoked: &[u64]) -> String {
        CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: date_time_ymd(2024, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .pem()
        .unwrap()
    }
}
