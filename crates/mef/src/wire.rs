//! The Mmef framing: oneM2M-style request primitives over HTTP/1.1 on the MEF's TLS session
//! (project mapping, `docs/mef.md`; TS-0032 is the normative mapping and is not available).
//!
//! Requests carry `X-M2M-RI` and optionally `X-M2M-Origin`; responses carry `X-M2M-RSC` and the
//! TS-0009 HTTP status of the Response Status Code. Bodies are JSON objects with one
//! namespaced key, e.g. `{"sec:mefClientReg": {...}}`. Who the client is never comes from the
//! message: it is the identity the MEF Handshake authenticated ([`Session`]).

use std::fmt;

use m2mtrust_crypto::SecretKey;
use m2mtrust_model::types::Operation;
use serde_json::Value;

/// One request to the MEF, decoded from HTTP: `POST` = CREATE (or NOTIFY on action URIs),
/// `GET` = RETRIEVE, `PUT` = UPDATE, `DELETE` = DELETE.
#[derive(Debug, Clone)]
pub struct MefRequest {
    /// The operation.
    pub op: Operation,
    /// The path without the leading `/` and without a query, percent-decoded, e.g.
    /// `mef/reg/R1a2b`.
    pub path: String,
    /// `X-M2M-Origin`, when sent (informative; authorization uses [`Session`]).
    pub from: Option<String>,
    /// `X-M2M-RI`.
    pub request_id: String,
    /// The JSON body, when there is one.
    pub content: Option<Value>,
}

/// What the MEF Handshake established about the client on this connection (TS-0003
/// §8.3.5.2.2: "the MEF has an authenticated identity for the client").
pub struct Session {
    /// The authenticated MEF Client ID (digest §B.14): the CSE-ID or AE-ID of a CSE-ID/AE-ID
    /// certificate, otherwise the Credential-ID of the bootstrap credential (`10-<KpmID>`,
    /// `31-<device id>`, ...).
    pub client_id: String,
    /// The Credential-ID of the credential that authenticated the handshake.
    pub credential_id: String,
    /// The identities bound to that credential (CSE-ID or AE-IDs), possibly empty.
    pub bound_ids: Vec<String>,
    /// True when the client authenticated with a certificate (EST re-enrolment requires it).
    pub certificate_authenticated: bool,
    /// The 48-byte RFC 5705 export with label `EXPORTER-oneM2M-Connection`, split into
    /// (RelativeKeyID bytes, key): the Key Value of a Key Registration without one (§8.3.5.2.7,
    /// digest §B.4).
    pub connection_export: Option<([u8; 16], SecretKey)>,
    /// When the client authenticated with a remotely provisioned key (TS-0003 §8.8.2.3 step
    /// 1a: its KeID as `psk_identity`, the key fetched from the MEF with SUID 21), that KeID;
    /// a MAF Client Registration on such a session assigns a KmID.
    pub remote_key_id: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("client_id", &self.client_id)
            .field("credential_id", &self.credential_id)
            .field("bound_ids", &self.bound_ids)
            .field("certificate_authenticated", &self.certificate_authenticated)
            .field(
                "connection_export",
                &self.connection_export.as_ref().map(|_| "<redacted>"),
            )
            .field("remote_key_id", &self.remote_key_id)
            .finish()
    }
}
