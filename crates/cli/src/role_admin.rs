//! `m2mtrust das role …`: the Role Authority (TS-0003 §7.4.2, §7.4.3). It assigns a role by
//! creating a `<role>` in the CSE that is its Role Repository, optionally issues a token carrying
//! the Role-ID, stores it as a `<token>` in the Token Repository and links it from the role
//! (`tokenLink`); revoking deletes them. It speaks to the CSE over TLS as the data folder's
//! admin originator, an Authorization Authority of that CSE.

use chrono::{Duration, Utc};
use clap::{Args, Subcommand};
use m2mtrust_client::{Client, ClientOptions, Credential};
use m2mtrust_das::{TokenClaims, TokenPermission, TokenPermissions, to_m2m_timestamp};
use m2mtrust_model::{CseId, Home, Operation, Request, ResourceType, ResponseStatusCode, SpId};
use serde_json::json;

use crate::admin::DataArg;
use crate::datadir::DataDir;

/// `m2mtrust das role`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Assign a role: create `<role>` (Role-ID `<ROLE>@das.<SP domain>`) for `--holder` in the
    /// CSE at `--cse`; with `--with-token`, also a `<token>` carrying the Role-ID, linked from
    /// the role. Assigning again replaces the earlier assignment. Prints the Role-ID.
    Assign(RoleAssign),
    /// Revoke a role: delete the `<role>` (and its `<token>`) assigned to `--holder`.
    Revoke(RoleRevoke),
}

/// Where the Role Repository is and who acts.
#[derive(Debug, Args)]
pub struct RoleTarget {
    #[command(flatten)]
    data: DataArg,
    /// The CSE holding the roles (its HTTPS address, e.g. https://127.0.0.1:8443).
    #[arg(long, value_name = "URL")]
    cse: String,
    /// The M2M Service Provider ID (the Role Authority is `das.<SP domain>`).
    #[arg(long, value_name = "SP-ID", default_value = "//m2mtrust.example")]
    sp_id: String,
    /// The CSE-ID of that CSE.
    #[arg(long, value_name = "CSE-ID", default_value = "/id-in")]
    cse_id: String,
    /// Its `<CSEBase>` resource name.
    #[arg(long, value_name = "NAME", default_value = "cse-in")]
    cse_base: String,
    /// The admin originator of the data folder, whose certificate authenticates the Role
    /// Authority.
    #[arg(long, value_name = "ID", default_value = "CAdmin")]
    admin: String,
    /// The holder: an AE-ID or CSE-ID (made absolute), e.g. `//m2mtrust.example/id-in/Creader`.
    #[arg(long, value_name = "ID")]
    holder: String,
    /// The role's name; its Role-ID is `<ROLE>@das.<SP domain>`.
    #[arg(long, value_name = "ROLE")]
    role: String,
}

/// `das role assign`.
#[derive(Debug, Args)]
pub struct RoleAssign {
    #[command(flatten)]
    target: RoleTarget,
    /// How long the role is valid, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..))]
    valid_secs: i64,
    /// A human-readable role name (`roleName`).
    #[arg(long, value_name = "TEXT")]
    role_name: Option<String>,
    /// Also issue a token carrying the Role-ID, store it as `<token>` and link it (`tokenLink`).
    #[arg(long)]
    with_token: bool,
}

/// `das role revoke`.
#[derive(Debug, Args)]
pub struct RoleRevoke {
    #[command(flatten)]
    target: RoleTarget,
}

struct Session {
    client: Client,
    admin: String,
    home: Home,
    holder: String,
    role_id: String,
    /// Resource names of the `<role>` and `<token>` for this holder and role.
    role_rn: String,
    token_rn: String,
}

fn session(t: &RoleTarget) -> Result<Session, (String, u8)> {
    let usage = |e: String| (e, 2u8);
    let sp_id = SpId::parse(&t.sp_id).map_err(|e| usage(format!("--sp-id: {e}")))?;
    let cse_id = CseId::parse(&t.cse_id).map_err(|e| usage(format!("--cse-id: {e}")))?;
    if t.role.is_empty() || t.role.contains(['@', '/', ' ']) {
        return Err(usage(format!(
            "--role {:?}: a name without '@', '/' or spaces",
            t.role
        )));
    }
    let home = Home {
        sp_id,
        cse_id,
        cse_base_name: t.cse_base.clone(),
    };
    let holder = if t.holder.starts_with("//") {
        t.holder.clone()
    } else if t.holder.starts_with('/') {
        format!("{}{}", home.sp_id, t.holder)
    } else if t.holder.starts_with('S') {
        format!("{}/{}", home.sp_id, t.holder)
    } else {
        format!("{}{}/{}", home.sp_id, home.cse_id, t.holder)
    };
    let role_id = format!(
        "{}@{}",
        t.role,
        crate::das_admin::das_issuer(home.sp_id.domain())
    );
    let safe: String = holder
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = DataDir::open(&t.data.data).map_err(|e| (e, 1))?;
    let sealer = dir.sealer().map_err(|e| (e, 1))?;
    let ca = dir.dev_ca(&sealer, &home).map_err(|e| (e, 1))?;
    let (cert, key) = dir
        .admin_certificate(&ca, &home, &t.admin)
        .map_err(|e| (e, 1))?;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| (format!("cannot read {}: {e}", p.display()), 1u8))
    };
    let key_pem = String::from_utf8(read(&key)?)
        .map_err(|_| (format!("{} is not PEM", key.display()), 1u8))?;
    let options = ClientOptions::new(Credential::Certificate {
        chain_pem: read(&cert)?,
        key_pem: m2mtrust_crypto::PrivateKeyPem::new(key_pem),
    })
    .with_trust_anchors(ca.cert_pem().as_bytes().to_vec());
    let client = Client::new(&t.cse, options).map_err(|e| usage(format!("--cse: {e}")))?;
    Ok(Session {
        client,
        admin: t.admin.clone(),
        holder,
        role_rn: format!("role_{}_{safe}", t.role),
        token_rn: format!("token_{}_{safe}", t.role),
        role_id,
        home,
    })
}

impl Session {
    async fn send(
        &self,
        op: Operation,
        to: String,
        ty: Option<ResourceType>,
        content: Option<serde_json::Value>,
    ) -> Result<m2mtrust_model::Response, (String, u8)> {
        let mut req = Request::new(op, to, Some(self.admin.clone()));
        req.request_id = m2mtrust_client::request_id();
        req.resource_type = ty;
        req.content = content;
        self.client
            .send(&req)
            .await
            .map_err(|e| (format!("{}: {e}", self.client.url()), 1))
    }

    fn path(&self, rn: &str) -> String {
        format!("{}/{rn}", self.home.cse_base_name)
    }

    /// Deletes the holder's `<role>` and `<token>` of this role; whether any existed.
    async fn delete_both(&self) -> Result<bool, (String, u8)> {
        let mut any = false;
        for rn in [&self.role_rn, &self.token_rn] {
            let resp = self
                .send(Operation::Delete, self.path(rn), None, None)
                .await?;
            match resp.status {
                ResponseStatusCode::DELETED => any = true,
                ResponseStatusCode::NOT_FOUND => {}
                other => return Err(refused(&resp, other)),
            }
        }
        Ok(any)
    }
}

fn refused(resp: &m2mtrust_model::Response, status: ResponseStatusCode) -> (String, u8) {
    (
        format!(
            "the CSE answered {status}: {}",
            resp.debug_message().unwrap_or("")
        ),
        1,
    )
}

/// Runs `das role assign` or `das role revoke`; the text to print.
pub async fn run(cmd: RoleCommand) -> Result<String, (String, u8)> {
    match cmd {
        RoleCommand::Assign(a) => assign(&a).await,
        RoleCommand::Revoke(r) => {
            let s = session(&r.target)?;
            if s.delete_both().await? {
                Ok(format!("role {} of {} revoked", s.role_id, s.holder))
            } else {
                Err((format!("{} holds no role {} here", s.holder, s.role_id), 1))
            }
        }
    }
}

async fn assign(a: &RoleAssign) -> Result<String, (String, u8)> {
    let s = session(&a.target)?;
    s.delete_both().await?;
    let now = Utc::now();
    let not_after = now + Duration::seconds(a.valid_secs);
    let mut role = json!({
        "rn": s.role_rn,
        "rlid": s.role_id,
        "tkis": crate::das_admin::das_issuer(s.home.sp_id.domain()),
        "tkhd": s.holder,
        "tknb": to_m2m_timestamp(now),
        "tkna": to_m2m_timestamp(not_after),
        "et": to_m2m_timestamp(not_after),
    });
    if let Some(name) = &a.role_name {
        role["rlnm"] = json!(name);
    }
    let resp = s
        .send(
            Operation::Create,
            s.home.cse_base_name.clone(),
            Some(ResourceType::ROLE),
            Some(json!({ "m2m:rol": role })),
        )
        .await?;
    if resp.status != ResponseStatusCode::CREATED {
        return Err(refused(&resp, resp.status));
    }
    let mut out = format!(
        "{} assigned to {} until {} ({})",
        s.role_id,
        s.holder,
        to_m2m_timestamp(not_after),
        s.path(&s.role_rn)
    );
    if a.with_token {
        let dir = DataDir::open(&a.target.data.data).map_err(|e| (e, 1))?;
        let issuer_id = crate::das_admin::das_issuer(s.home.sp_id.domain());
        let signer = crate::das_admin::das_key(&dir)
            .map_err(|e| (e, 1))?
            .with_issuer(&issuer_id);
        let token_id = format!("{}@{issuer_id}", s.token_rn);
        let claims = TokenClaims {
            version: "1".into(),
            token_id: token_id.clone(),
            issuer: issuer_id,
            holder: s.holder.clone(),
            not_before: now,
            not_after,
            token_name: a.role_name.clone(),
            audience: vec![format!("{}{}", s.home.sp_id, s.home.cse_id)],
            permissions: Some(TokenPermissions {
                pm: vec![TokenPermission {
                    ris: None,
                    pv: None,
                    rids: Some(vec![s.role_id.clone()]),
                }],
            }),
            extension: None,
        };
        let jwt = signer.issue(&claims).map_err(|e| (e.to_string(), 1))?;
        let token = json!({"m2m:tk": {
            "rn": s.token_rn, "tkid": token_id, "tkob": jwt, "tkhd": s.holder,
            "tkna": to_m2m_timestamp(not_after), "et": to_m2m_timestamp(not_after),
        }});
        let resp = s
            .send(
                Operation::Create,
                s.home.cse_base_name.clone(),
                Some(ResourceType::TOKEN),
                Some(token),
            )
            .await?;
        if resp.status != ResponseStatusCode::CREATED {
            return Err(refused(&resp, resp.status));
        }
        let link = json!({"m2m:rol": {"rltl": s.path(&s.token_rn)}});
        let resp = s
            .send(Operation::Update, s.path(&s.role_rn), None, Some(link))
            .await?;
        if resp.status != ResponseStatusCode::UPDATED {
            return Err(refused(&resp, resp.status));
        }
        out.push_str(&format!("\ntoken {token_id} ({})", s.path(&s.token_rn)));
    }
    Ok(out)
}
