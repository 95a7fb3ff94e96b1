//! `m2mtrust das …`: the Dynamic Authorization System's token issuance (TS-0003 §7.3.2.4-6) with
//! the data folder's DAS signing key, and the hosting CSE's verifier of those tokens.
//!
//! ```text
//! DIR/keys/das-key.sealed   the DAS's ES256 signing key (P-256), sealed
//! DIR/pki/das-public.pem    its public key (what hosting CSEs verify tokens with)
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use m2mtrust_cse::tokens::{TokenGrant, TokenVerifier as CseTokenVerifier, VerifiedToken};
use m2mtrust_das::{
    TokenClaims, TokenIssuer, TokenPermission, TokenPermissions, TokenVerifier, TrustedIssuer,
    VerificationKey,
};
use m2mtrust_model::SpId;

use crate::admin::{DataArg, fail};
use crate::datadir::{DataDir, write_private};

/// `m2mtrust das`.
#[derive(Debug, Subcommand)]
pub enum DasCommand {
    /// Tokens of the data folder's DAS.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `m2mtrust das token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a oneM2M token (JWS ES256, TS-0003 §7.3.2.6) granting `--holder` the operations
    /// `--operations` on `--resource`, for the hosting CSE `--audience`; prints the JWT.
    Issue(TokenIssue),
}

/// `das token issue`.
#[derive(Debug, Args)]
pub struct TokenIssue {
    #[command(flatten)]
    data: DataArg,
    /// The M2M Service Provider ID (the DAS is `das.<SP domain>`).
    #[arg(long, value_name = "SP-ID", default_value = "//m2mtrust.example")]
    sp_id: String,
    /// The originator the token is for (`azp`), as an AE-ID or CSE-ID; made absolute.
    #[arg(long, value_name = "ID")]
    holder: String,
    /// The hosting CSE (`aud`), SP-relative or absolute [default: /id-in].
    #[arg(long, value_name = "CSE-ID", default_value = "/id-in")]
    audience: String,
    /// A resource the privileges apply to (`ris`; any addressing form). Repeatable.
    #[arg(long, value_name = "ID", required = true)]
    resource: Vec<String>,
    /// accessControlOperations granted (bitmask: 1 create, 2 retrieve, 4 update, 8 delete,
    /// 16 notify, 32 discovery).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=63))]
    operations: u32,
    /// Lifetime in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..))]
    valid_secs: i64,
    /// Start of validity, seconds from now (negative: in the past) — for tests of `nbf`.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    starts_in_secs: i64,
}

/// The DAS identity of an SP.
pub fn das_issuer(sp_domain: &str) -> String {
    format!("das.{sp_domain}")
}

/// The DAS signing key of the data folder, created on first use.
fn das_key(dir: &DataDir) -> Result<TokenIssuer, String> {
    let sealer = dir.sealer()?;
    let sealed_path = dir.root().join("keys/das-key.sealed");
    let pem = if sealed_path.exists() {
        let sealed = std::fs::read(&sealed_path)
            .map_err(|e| format!("cannot read {}: {e}", sealed_path.display()))?;
        let key = sealer
            .open(&sealed, b"keys/das-key")
            .map_err(|e| format!("{}: {e}", sealed_path.display()))?;
        String::from_utf8(key.expose_bytes().to_vec())
            .map_err(|_| format!("{} does not hold a PEM key", sealed_path.display()))?
    } else {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
            .map_err(|e| e.to_string())?;
        let key = openssl::ec::EcKey::generate(&group).map_err(|e| e.to_string())?;
        let pkey = openssl::pkey::PKey::from_ec_key(key).map_err(|e| e.to_string())?;
        let pem = String::from_utf8(pkey.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let sealed = sealer
            .seal(pem.as_bytes(), b"keys/das-key")
            .map_err(|e| e.to_string())?;
        write_private(&sealed_path, &sealed)?;
        let public = pkey.public_key_to_pem().map_err(|e| e.to_string())?;
        let public_path = dir.root().join("pki/das-public.pem");
        std::fs::write(&public_path, public)
            .map_err(|e| format!("cannot write {}: {e}", public_path.display()))?;
        pem
    };
    // The issuer id is set per token; the key is what matters here.
    TokenIssuer::es256("das", &pem).map_err(|e| e.to_string())
}

/// The public key PEM of the data folder's DAS (creating the key on first use).
pub fn das_public_key(dir: &DataDir) -> Result<String, String> {
    let path = dir.root().join("pki/das-public.pem");
    if !path.exists() {
        das_key(dir)?;
    }
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Runs a `das` subcommand.
pub async fn run(cmd: DasCommand) -> ExitCode {
    let DasCommand::Token(TokenCommand::Issue(a)) = cmd;
    match issue(&a) {
        Ok(jwt) => {
            println!("{jwt}");
            ExitCode::SUCCESS
        }
        Err((e, code)) => fail(e, code),
    }
}

fn issue(a: &TokenIssue) -> Result<String, (String, u8)> {
    let usage = |e: String| (e, 2u8);
    let sp = SpId::parse(&a.sp_id).map_err(|e| usage(format!("--sp-id: {e}")))?;
    let absolute = |id: &str| -> String {
        if id.starts_with("//") {
            id.to_owned()
        } else if id.starts_with('/') {
            format!("{sp}{id}")
        } else {
            // An AE-ID: S-type AE-IDs are SP-relative, C-type ones live under the hosting CSE.
            if id.starts_with('S') {
                format!("{sp}/{id}")
            } else {
                format!("{sp}{}/{id}", a.audience.trim_start_matches(sp.as_str()))
            }
        }
    };
    let dir = DataDir::open(&a.data.data).map_err(|e| (e, 1))?;
    let signer = das_key(&dir).map_err(|e| (e, 1))?;
    let issuer_id = das_issuer(sp.domain());
    let signer = signer.with_issuer(&issuer_id);
    let now = Utc::now() + chrono::Duration::seconds(a.starts_in_secs);
    let token_id = format!("{}@{issuer_id}", random_name());
    let claims = TokenClaims {
        version: "1".into(),
        token_id,
        issuer: issuer_id,
        holder: absolute(&a.holder),
        not_before: now,
        not_after: now + chrono::Duration::seconds(a.valid_secs),
        token_name: None,
        audience: vec![absolute(&a.audience)],
        permissions: Some(TokenPermissions {
            pm: vec![TokenPermission {
                ris: Some(a.resource.clone()),
                pv: Some(serde_json::json!({"acr": [{
                    "acor": [absolute(&a.holder)],
                    "acop": a.operations,
                }]})),
                rids: None,
            }],
        }),
        extension: None,
    };
    signer.issue(&claims).map_err(|e| (e.to_string(), 1))
}

fn random_name() -> String {
    let mut bytes = [0u8; 8];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        return format!("{}", Utc::now().timestamp_micros());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hosting CSE's verifier of tokens from the data folder's DAS.
pub fn cse_verifier(dir: &Path, sp_domain: &str) -> Result<Arc<dyn CseTokenVerifier>, String> {
    let dir = DataDir::open(dir)?;
    let public = das_public_key(&dir)?;
    let key = VerificationKey::es256_public_pem(&public).map_err(|e| e.to_string())?;
    let verifier = TokenVerifier::new(vec![TrustedIssuer {
        issuer: das_issuer(sp_domain),
        keys: vec![key],
    }]);
    Ok(Arc::new(Verifier(verifier)))
}

struct Verifier(TokenVerifier);

impl CseTokenVerifier for Verifier {
    fn verify(
        &self,
        jwt: &str,
        audience: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedToken, String> {
        let claims = self
            .0
            .verify(jwt, audience, holder, now)
            .map_err(|e| e.to_string())?;
        Ok(VerifiedToken {
            token_id: claims.token_id,
            issuer: claims.issuer,
            holder: claims.holder,
            not_after: claims.not_after,
            permissions: claims
                .permissions
                .map(|p| {
                    p.pm.into_iter()
                        .map(|g| TokenGrant {
                            resource_ids: g.ris,
                            privileges: g.pv,
                            role_ids: g.rids,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
