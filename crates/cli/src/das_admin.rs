//! `m2mtrust das …`: the Dynamic Authorization System (TS-0003 §7.3) of a data folder — its
//! server (`das serve`), its policies (`das policy`), direct token issuance (`das token issue`,
//! TS-0003 §7.3.2.4-6) — and the hosting CSE's verifier of its tokens.
//!
//! ```text
//! DIR/keys/das-key.sealed   the DAS's ES256 signing key (P-256), sealed
//! DIR/pki/das-public.pem    its public key (what hosting CSEs verify tokens with)
//! DIR/das.sqlite            policies and issued tokens
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use m2mtrust_cse::tokens::{TokenGrant, TokenVerifier as CseTokenVerifier, VerifiedToken};
use m2mtrust_das::{
    Policy, PolicySpec, TokenClaims, TokenIssuer, TokenPermission, TokenPermissions, TokenVerifier,
    TrustedIssuer, VerificationKey,
};
use m2mtrust_model::SpId;

use crate::admin::{DataArg, fail};
use crate::datadir::{DataDir, write_private};

/// `m2mtrust das`.
#[derive(Debug, Subcommand)]
pub enum DasCommand {
    /// Run the DAS Server alone on a data folder (`m2mtrust up` runs one on --das).
    ///
    /// It answers NOTIFY requests carrying `m2m:seci` with `sit` 1 (Dynamic Authorization
    /// Request) at https://ADDR/das: from a hosting CSE on behalf of an originator (Direct DA,
    /// TS-0003 §7.3.2.2), from an originator for itself (Indirect DA, §7.3.2.3), and Token-ID
    /// resolution (`dreq.tids`) for hosting CSEs. TLS accepts the data folder's server
    /// certificate, client certificates of its CA and the PSKs of its credential table; `From`
    /// must be the identity bound to the client's credential. Prints its address and `ready`.
    Serve(DasServeArgs),
    /// The policies the DAS Server decides with; edits take effect at once, also while it runs.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tokens of the data folder's DAS.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The Role Authority (TS-0003 §7.4): roles assigned as `<role>` resources in a CSE.
    #[command(subcommand)]
    Role(crate::role_admin::RoleCommand),
}

/// `m2mtrust das serve`.
#[derive(Debug, Args)]
pub struct DasServeArgs {
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// TLS listener; the published point of access is https://ADDR/das.
    #[arg(
        long,
        env = "M2MTRUST_DAS",
        value_name = "ADDR",
        default_value = crate::das_serve::DEFAULT_DAS
    )]
    pub(crate) listen: std::net::SocketAddr,
    /// The M2M Service Provider ID: the DAS is `das.<SP domain>` (token issuer and the part
    /// after `@` of every Token-ID).
    #[arg(
        long,
        env = "M2MTRUST_SP_ID",
        value_name = "SP-ID",
        default_value = "//m2mtrust.example"
    )]
    pub(crate) sp_id: String,
    /// The CSE-ID that relative originator IDs and AE-ID certificates are read against (the
    /// IN-CSE of the data folder).
    #[arg(
        long,
        env = "M2MTRUST_CSE_ID",
        value_name = "ID",
        default_value = "/id-in"
    )]
    pub(crate) cse_id: String,
    /// Log filter, e.g. `info,audit=info` [default: info; RUST_LOG also works].
    #[arg(long, env = "M2MTRUST_LOG", value_name = "FILTER")]
    pub(crate) log: Option<String>,
}

/// `m2mtrust das policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Add a policy and print its ID.
    ///
    /// A request is granted when one policy covers it: one of its originator patterns matches
    /// the originator (`dreq.or`), one of its target patterns matches the targeted resource
    /// (`dreq.trid`), and the operation (`dreq.op`) is in --operations. The first covering
    /// policy, in the order they were added, decides; others are not merged. What it grants:
    /// --operations on that one resource, for --lifetime-secs or until the requester's proposed
    /// end (`dreq.ppl`) if that is sooner.
    ///
    /// Originator patterns: `all`; an AE-ID or CSE-ID in any form (`Cae1`, `/id-in/Cae1`,
    /// `//m2mtrust.example/id-in/Cae1`, `/id-mn`); or an ID prefix ending in `*`
    /// (`//m2mtrust.example/id-in/C*`, `C*`). Relative forms are made absolute with --sp-id and
    /// --cse-id.
    ///
    /// Target patterns: `all`; a resource address (`cse-in/ae1/cnt1` on any hosting CSE,
    /// `/id-in/cse-in/ae1/cnt1` or `//m2mtrust.example/id-in/cse-in/ae1/cnt1` on that CSE only);
    /// or an address followed by `/*` for that resource and everything below it
    /// (`cse-in/ae1/*`). Addresses compare as text: use the form the hosting CSE sends.
    Add(PolicyAdd),
    /// List the policies, in decision order.
    List(PolicyList),
    /// Remove a policy by ID (exit code 1 if there is none).
    Remove(PolicyRemove),
}

/// `das policy add`.
#[derive(Debug, Args)]
pub struct PolicyAdd {
    #[command(flatten)]
    data: DataArg,
    /// Originator pattern(s): `all`, an ID, or an ID prefix ending in `*`. Repeatable.
    #[arg(long, value_name = "PATTERN", required = true, num_args = 1..)]
    originator: Vec<String>,
    /// Target pattern(s): `all`, a resource address, or an address followed by `/*`.
    /// Repeatable.
    #[arg(long, value_name = "PATTERN", required = true, num_args = 1..)]
    target: Vec<String>,
    /// accessControlOperations granted (bitmask: 1 create, 2 retrieve, 4 update, 8 delete,
    /// 16 notify, 32 discovery).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=63))]
    operations: u8,
    /// Longest lifetime of a grant, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(m2mtrust_das::policy::MAX_LIFETIME_SECS))
    )]
    lifetime_secs: u32,
    /// What is handed out: `token` (a signed token in `tkns`), `acp` (dynamic ACP information
    /// in `dai`, for a hosting CSE to create a dynamic <accessControlPolicy>; originators
    /// asking for themselves get nothing from it), or `both`.
    #[arg(long, value_name = "MODE", default_value = "both", value_parser = ["token", "acp", "both"])]
    grant: String,
    /// Role-ID(s) put in issued tokens (`rids`). Repeatable.
    #[arg(long, value_name = "ID", num_args = 1..)]
    role_id: Vec<String>,
    /// The M2M Service Provider ID relative patterns are read against.
    #[arg(
        long,
        env = "M2MTRUST_SP_ID",
        value_name = "SP-ID",
        default_value = "//m2mtrust.example"
    )]
    sp_id: String,
    /// The CSE-ID relative AE-IDs (`Cae1`) are read against.
    #[arg(
        long,
        env = "M2MTRUST_CSE_ID",
        value_name = "ID",
        default_value = "/id-in"
    )]
    cse_id: String,
}

/// `das policy list`.
#[derive(Debug, Args)]
pub struct PolicyList {
    #[command(flatten)]
    data: DataArg,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// `das policy remove`.
#[derive(Debug, Args)]
pub struct PolicyRemove {
    #[command(flatten)]
    data: DataArg,
    /// The policy ID `das policy add` printed.
    #[arg(long, value_name = "ID")]
    id: String,
}

/// `m2mtrust das token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a oneM2M token (JWS ES256, TS-0003 §7.3.2.6) granting `--holder` the operations
    /// `--operations` on `--resource`, for the hosting CSE `--audience`; prints the JWT. The
    /// token is also kept in `das.sqlite`, so the DAS Server resolves its Token-ID (`jti`) for
    /// the audience CSE.
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
pub(crate) fn das_key(dir: &DataDir) -> Result<TokenIssuer, String> {
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
    let result = match cmd {
        DasCommand::Serve(args) => return crate::das_serve::serve_alone(&args).await,
        DasCommand::Token(TokenCommand::Issue(a)) => issue(&a),
        DasCommand::Policy(PolicyCommand::Add(a)) => policy_add(&a),
        DasCommand::Policy(PolicyCommand::List(a)) => policy_list(&a),
        DasCommand::Policy(PolicyCommand::Remove(a)) => policy_remove(&a),
        DasCommand::Role(cmd) => crate::role_admin::run(cmd).await,
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err((e, code)) => fail(e, code),
    }
}

fn policy_store(data: &DataArg) -> Result<m2mtrust_das::DasStore, (String, u8)> {
    let dir = DataDir::open(&data.data).map_err(|e| (e, 1))?;
    crate::das_serve::open_store(&dir).map_err(|e| (e, 1))
}

fn policy_add(a: &PolicyAdd) -> Result<String, (String, u8)> {
    let usage = |e: String| (e, 2u8);
    let home = m2mtrust_model::Home {
        sp_id: SpId::parse(&a.sp_id).map_err(|e| usage(format!("--sp-id: {e}")))?,
        cse_id: m2mtrust_model::CseId::parse(&a.cse_id)
            .map_err(|e| usage(format!("--cse-id: {e}")))?,
        cse_base_name: String::new(),
    };
    let spec = PolicySpec {
        originators: a.originator.clone(),
        targets: a.target.clone(),
        operations: a.operations,
        lifetime_secs: a.lifetime_secs,
        grant: a
            .grant
            .parse()
            .map_err(|e: m2mtrust_das::policy::PolicyError| usage(format!("--grant: {e}")))?,
        role_ids: a.role_id.clone(),
    };
    // Checked before the store is touched, so a bad pattern is a usage error.
    Policy::new(String::new(), &spec, &home, Utc::now()).map_err(|e| usage(e.to_string()))?;
    let store = policy_store(&a.data)?;
    // A clash of random IDs is retried with a fresh one.
    for _ in 0..5 {
        let policy = Policy::new(
            m2mtrust_das::store::new_policy_id(),
            &spec,
            &home,
            Utc::now(),
        )
        .map_err(|e| usage(e.to_string()))?;
        match store.add_policy(&policy) {
            Ok(()) => return Ok(policy.id),
            Err(m2mtrust_das::store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err((e.to_string(), 1)),
        }
    }
    Err(("could not find a free policy ID".into(), 1))
}

fn policy_list(a: &PolicyList) -> Result<String, (String, u8)> {
    let store = policy_store(&a.data)?;
    let policies = store.policies().map_err(|e| (e.to_string(), 1))?;
    if a.json {
        let list: Vec<serde_json::Value> = policies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id,
                    "originators": texts(&p.originators),
                    "targets": texts(&p.targets),
                    "operations": p.operations,
                    "lifetime_secs": p.lifetime_secs,
                    "grant": p.grant.as_str(),
                    "role_ids": p.role_ids,
                    "created": m2mtrust_das::to_m2m_timestamp(p.created),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&list).map_err(|e| (e.to_string(), 1));
    }
    let mut out = format!(
        "{:<10} {:>4} {:>9} {:<5} {:<40} {:<40} ROLE-IDS",
        "ID", "OPS", "LIFETIME", "GRANT", "ORIGINATORS", "TARGETS"
    );
    for p in policies.iter() {
        out.push_str(&format!(
            "\n{:<10} {:>4} {:>9} {:<5} {:<40} {:<40} {}",
            p.id,
            p.operations,
            p.lifetime_secs,
            p.grant.as_str(),
            texts(&p.originators).join(","),
            texts(&p.targets).join(","),
            if p.role_ids.is_empty() {
                "-".to_owned()
            } else {
                p.role_ids.join(",")
            }
        ));
    }
    Ok(out)
}

fn texts<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

fn policy_remove(a: &PolicyRemove) -> Result<String, (String, u8)> {
    let store = policy_store(&a.data)?;
    match store.remove_policy(&a.id) {
        Ok(true) => Ok(format!("removed {}", a.id)),
        Ok(false) => Err((format!("no policy {}", a.id), 1)),
        Err(e) => Err((e.to_string(), 1)),
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
    let jwt = signer.issue(&claims).map_err(|e| (e.to_string(), 1))?;
    // Kept like the DAS Server's own tokens, so hosting CSEs can resolve its Token-ID.
    let stored = m2mtrust_das::decision::StoredToken {
        token_id: claims.token_id,
        holder: claims.holder,
        audience: claims.audience,
        jwt: jwt.clone(),
        not_after: claims.not_after,
    };
    crate::das_serve::open_store(&dir)
        .and_then(|store| {
            store
                .put_token(&stored, Utc::now())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| (e, 1))?;
    Ok(jwt)
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
        // The originator learns only the reason code; the detail (which may name another
        // holder) stays in the log.
        let claims = self.0.verify(jwt, audience, holder, now).map_err(|e| {
            tracing::info!(target: "audit", originator = %holder, error = %e, "token not verified");
            e.reason().to_string()
        })?;
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
