//! `m2mtrust request`: one primitive to a CSE over a security association (PSK or certificate),
//! printing the Response Status Code and the content. Also the credential options shared with
//! CSE registration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use m2mtrust_channel::{KpsaId, PskKey};
use m2mtrust_client::{Client, ClientOptions, Credential};
use m2mtrust_model::{Operation, Request, ResourceType};

/// How to authenticate to the server.
#[derive(Debug, Args, Clone, Default)]
pub struct CredentialArgs {
    /// KpsaID of a pre-provisioned key (TLS-PSK, TS-0003 §8.2.2.1).
    #[arg(
        long,
        value_name = "KPSA_ID",
        requires = "key_hex",
        conflicts_with = "cert"
    )]
    pub psk_id: Option<String>,
    /// The key for `--psk-id`, hex (or `@FILE` to read it from a file).
    #[arg(long, value_name = "HEX")]
    pub key_hex: Option<String>,
    /// Client certificate chain, PEM (certificate-based security association, §8.2.2.2).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key of `--cert`, PEM.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// CA certificate (PEM) the server certificate must chain to, e.g. DIR/pki/ca.pem.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Server name for SNI and certificate verification [default: the URL host].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Client options from PSK or certificate settings.
pub fn client_options(
    psk_id: Option<&str>,
    key_hex: Option<&str>,
    cert: Option<&Path>,
    key: Option<&Path>,
    ca: Option<&Path>,
    server_name: Option<&str>,
) -> Result<ClientOptions, String> {
    let credential = match (psk_id, cert) {
        (Some(id), _) => {
            let hex = hex_arg(key_hex.ok_or("a PSK needs its key (--key-hex)")?)?;
            Credential::Psk {
                kpsa_id: KpsaId::parse(id).map_err(|e| format!("KpsaID {id:?}: {e}"))?,
                key: PskKey::from_hex(hex.trim()).map_err(|e| format!("PSK key: {e}"))?,
            }
        }
        (None, Some(cert)) => {
            let key = key.ok_or("a certificate needs its private key (--key)")?;
            let key_pem = String::from_utf8(read(key)?)
                .map_err(|_| format!("{} is not PEM", key.display()))?;
            Credential::Certificate {
                chain_pem: read(cert)?,
                key_pem: m2mtrust_crypto::PrivateKeyPem::new(key_pem),
            }
        }
        (None, None) => Credential::None,
    };
    let mut options = ClientOptions::new(credential);
    if let Some(ca) = ca {
        options = options.with_trust_anchors(read(ca)?);
    }
    if let Some(name) = server_name {
        options = options.with_server_name(name);
    }
    Ok(options)
}

/// The operations of `--op`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Op {
    /// CREATE (needs --ty and --content).
    Create,
    /// RETRIEVE.
    Retrieve,
    /// UPDATE (needs --content).
    Update,
    /// DELETE.
    Delete,
    /// NOTIFY (needs --content).
    Notify,
}

/// `m2mtrust request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Target URL: `https://host:port/cse-in/...` (or `http://` for a development listener).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Originator (`From`): an AE-ID, a CSE-ID, or `C`/`S`/empty to register.
    #[arg(long, value_name = "ORIGINATOR", default_value = "")]
    from: String,
    /// Operation.
    #[arg(long, value_enum)]
    op: Op,
    /// Resource type of a CREATE (e.g. 2 AE, 3 container, 4 contentInstance, 23 subscription).
    #[arg(long, value_name = "N")]
    ty: Option<u16>,
    /// Content, JSON, e.g. '{"m2m:cnt": {"rn": "temp"}}'.
    #[arg(long, value_name = "JSON")]
    content: Option<String>,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// A oneM2M token (compact JWT) to present (`tkns`, TS-0003 §7.3.2.3); repeatable.
    #[arg(long, value_name = "JWT")]
    token: Vec<String>,
    /// A Token-ID (`tids`, `name@issuer`) the CSE fetches from the issuer's DAS or its token
    /// repository; repeatable.
    #[arg(long, value_name = "TOKEN_ID")]
    token_id: Vec<String>,
    /// A Local-Token-ID the CSE assigned earlier (`ltids`); repeatable.
    #[arg(long, value_name = "LTI")]
    local_token_id: Vec<String>,
    /// A Role-ID (`rids`, `name@issuer`) to act in; the CSE uses it only if a valid `<role>`
    /// assigns it to the originator (TS-0003 §7.4); repeatable.
    #[arg(long, value_name = "ROLE_ID")]
    role_id: Vec<String>,
    /// Say the originator is prepared to request tokens (`tqi`): a refusal then lists the
    /// Dynamic Authorization Systems to ask (printed as `Token-Request-Info:`).
    #[arg(long)]
    token_request: bool,
    /// Protect the request end to end (ESPrim, TS-0003 §8.4) under the pairwiseESPrimKey with
    /// this identifier, so CSEs on the way only forward it; needs --esprim-key-hex.
    #[arg(
        long,
        value_name = "KID",
        requires = "esprim_key_hex",
        group = "end_to_end"
    )]
    esprim_kid: Option<String>,
    /// The pairwiseESPrimKey, hex (or `@FILE`).
    #[arg(long, value_name = "HEX", requires = "esprim_kid")]
    esprim_key_hex: Option<String>,
    /// The Receiver's `<CSEBase>` the protected request goes to [default: the first two
    /// segments of an SP-relative target (`/id-in/cse-in`), or the CSEBase of a CSE-relative
    /// one].
    #[arg(long, value_name = "TO", requires = "end_to_end")]
    esprim_receiver: Option<String>,
    /// First establish a pairwiseESPrimKey with the Receiver CSE by ESCertKE (TS-0003 §8.7),
    /// with the AE-ID or CSE-ID certificate of --cert/--key and the trust anchors of --ca, then
    /// send the request protected under it. Over plain http:// (development) the certificate
    /// serves the key establishment only.
    #[arg(
        long,
        group = "end_to_end",
        requires_all = ["cert", "key", "ca"],
        conflicts_with_all = ["psk_id", "data"]
    )]
    escertke: bool,
    /// A device data folder filled by `m2mtrust enrol`: connect with its enrolment key (TLS-PSK,
    /// psk_identity = KeID) and trust its `pki/ca.pem`; --psk-id/--cert win over it.
    #[arg(long, value_name = "DEVDIR")]
    data: Option<PathBuf>,
    /// With --data: connect with the certificate enrolled through EST instead of the key.
    #[arg(long, requires = "data", conflicts_with = "use_maf_key")]
    use_certificate: bool,
    /// With --data: connect with the MAF-distributed key of `m2mtrust maf register-key`
    /// (psk_identity = its Key Identifier; MAF-based SAEF, TS-0003 §8.2.2.3).
    #[arg(long, requires = "data")]
    use_maf_key: bool,
    /// With --data: protect the request end to end under the pairwiseESPrimKey derived from
    /// the MAF-distributed key of `m2mtrust maf register-key --usage esprim` (kid = its Key
    /// Identifier, from which the Receiver retrieves the key at the MAF; TS-0003 §8.4.2).
    #[arg(long, requires = "data", conflicts_with_all = ["esprim_kid", "escertke"])]
    esprim_maf: bool,
    /// With --data: protect the request end to end under the pairwiseESPrimKey the enrolment
    /// provisioned for the target (SUID 23; kid = the KeID, the target fetches the key from the
    /// MEF; TS-0003 §8.4.2 Phase A).
    #[arg(long, requires = "data", conflicts_with_all = ["esprim_kid", "escertke", "esprim_maf"])]
    esprim_enrolment: bool,
}

/// Runs `m2mtrust request`: exit 0 for a success RSC, 1 otherwise, 2 for bad usage.
pub async fn run(args: RequestArgs) -> ExitCode {
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    let c = &args.credentials;
    if let Some(dir) = &args.data
        && c.psk_id.is_none()
        && c.cert.is_none()
    {
        if args.use_maf_key {
            let (kpsa_id, key) = match crate::enrol::load_maf_key(dir) {
                Ok(k) => k,
                Err(e) => return usage(format!("--use-maf-key: {e}")),
            };
            let mut options = ClientOptions::new(Credential::Psk { kpsa_id, key });
            if let Some(name) = &c.server_name {
                options = options.with_server_name(name);
            }
            return send(&args, options).await;
        }
        let device = match crate::enrol::load(dir) {
            Ok(d) => d,
            Err(e) => return usage(format!("--data: {e}")),
        };
        let credential = match (args.use_certificate, device.psk, device.certificate) {
            (true, _, Some((chain_pem, key_pem))) => Credential::Certificate { chain_pem, key_pem },
            (true, _, None) => {
                return usage(format!(
                    "--use-certificate: {} holds no enrolled certificate (enrol with --certificate)",
                    dir.display()
                ));
            }
            (false, Some((kpsa_id, key)), _) => Credential::Psk { kpsa_id, key },
            (false, None, _) => {
                return usage(format!("--data: {} holds no key", dir.display()));
            }
        };
        let mut options = ClientOptions::new(credential);
        let ca = c.ca.clone().or(device.ca);
        if let Some(ca) = ca {
            match std::fs::read(&ca) {
                Ok(pem) => options = options.with_trust_anchors(pem),
                Err(e) => return usage(format!("cannot read {}: {e}", ca.display())),
            }
        }
        if let Some(name) = &c.server_name {
            options = options.with_server_name(name);
        }
        return send(&args, options).await;
    }
    // ESCertKE over plain http:// (development): the certificate is for the key establishment.
    let channel_cert = !(args.escertke && args.to.starts_with("http://"));
    let options = match client_options(
        c.psk_id.as_deref(),
        c.key_hex.as_deref(),
        c.cert.as_deref().filter(|_| channel_cert),
        c.key.as_deref().filter(|_| channel_cert),
        c.ca.as_deref().filter(|_| channel_cert),
        c.server_name.as_deref(),
    ) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    send(&args, options).await
}

/// The Receiver CSEBase of a target: `/id-in/cse-in` for `/id-in/cse-in/...`, `cse-in` for
/// `cse-in/...`.
fn default_receiver(target: &str) -> String {
    if let Some(rest) = target.strip_prefix('/') {
        let mut parts = rest.split('/');
        match (parts.next(), parts.next()) {
            (Some(cse), Some(base)) => format!("/{cse}/{base}"),
            _ => target.to_string(),
        }
    } else {
        target.split('/').next().unwrap_or(target).to_string()
    }
}

/// A hex value given as is, or as `@FILE` naming a file that holds it.
fn hex_arg(value: &str) -> Result<String, String> {
    match value.strip_prefix('@') {
        Some(file) => String::from_utf8(read(Path::new(file))?)
            .map(|t| t.trim().to_string())
            .map_err(|_| format!("{file} is not text")),
        None => Ok(value.to_string()),
    }
}

async fn send(args: &RequestArgs, options: ClientOptions) -> ExitCode {
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    let content = match args
        .content
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
    {
        Ok(c) => c,
        Err(e) => return usage(format!("--content is not JSON: {e}")),
    };
    let operation = match args.op {
        Op::Create => Operation::Create,
        Op::Retrieve => Operation::Retrieve,
        Op::Update => Operation::Update,
        Op::Delete => Operation::Delete,
        Op::Notify => Operation::Notify,
    };
    if operation == Operation::Create && args.ty.is_none() {
        return usage("CREATE needs --ty".into());
    }
    if matches!(
        operation,
        Operation::Create | Operation::Update | Operation::Notify
    ) && content.is_none()
    {
        return usage(format!("{:?} needs --content", args.op));
    }
    let path = args.to.splitn(4, '/').nth(3).unwrap_or("").to_string();
    // End to end, the primitive travels to the Receiver's CSEBase inside a NOTIFY, so the
    // connection is to the host and the inner target is the primitive form of the path.
    let end_to_end =
        args.esprim_kid.is_some() || args.escertke || args.esprim_maf || args.esprim_enrolment;
    let esprim = if end_to_end {
        let target = match m2mtrust_binding_http::path_to_target(&format!("/{path}")) {
            Ok(t) => t,
            Err(e) => return usage(format!("--to: {e}")),
        };
        let receiver = match &args.esprim_receiver {
            Some(r) => r.clone(),
            None => default_receiver(&target),
        };
        // The pairwise key: given, from the device folder, or established below by ESCertKE.
        let dir = args.data.as_deref().unwrap_or(Path::new("."));
        let given = if args.esprim_enrolment {
            match crate::enrol::load_enrolment_esprim_key(dir) {
                Ok((kid, key)) => Some((kid.to_string(), key)),
                Err(e) => return usage(format!("--esprim-enrolment: {e}")),
            }
        } else if args.esprim_maf {
            let (kid, kc) = match crate::enrol::load_maf_esprim_key(dir) {
                Ok(k) => k,
                Err(e) => return usage(format!("--esprim-maf: {e}")),
            };
            match m2mtrust_crypto::esprim::derive_pairwise_key_from_kc(
                &kc,
                m2mtrust_crypto::esprim::KC_PAIRWISE_LABEL,
            ) {
                Ok(k) => Some((kid.to_string(), k)),
                Err(e) => return usage(format!("--esprim-maf: {e}")),
            }
        } else if let (Some(kid), Some(hex)) = (&args.esprim_kid, &args.esprim_key_hex) {
            match hex_arg(hex)
                .and_then(|h| crate::admin::key_from_hex(h.trim(), "--esprim-key-hex"))
            {
                Ok(k) => Some((kid.clone(), k)),
                Err(e) => return usage(e),
            }
        } else {
            None
        };
        Some((given, receiver, target))
    } else {
        None
    };
    let base = match &esprim {
        Some(_) => args.to.splitn(4, '/').take(3).collect::<Vec<_>>().join("/"),
        None => args.to.clone(),
    };
    let client = match Client::new(&base, options) {
        Ok(c) => c,
        Err(e) => return usage(e.to_string()),
    };
    let esprim = match esprim {
        Some((Some((kid, key)), receiver, target)) => Some((kid, key, receiver, target)),
        Some((None, receiver, target)) => {
            let c = &args.credentials;
            let (Some(cert), Some(key), Some(ca)) = (&c.cert, &c.key, &c.ca) else {
                return usage("--escertke needs --cert, --key and --ca".into());
            };
            let initiator = match crate::escertke::initiator(cert, key, ca, &receiver) {
                Ok(i) => i,
                Err(e) => return usage(e),
            };
            let established =
                m2mtrust_client::escertke::establish(&client, &receiver, &args.from, initiator)
                    .await;
            match established {
                Ok(e) => {
                    eprintln!("ESCertKE: pairwise key {}", e.kid);
                    Some((e.kid, e.key, receiver, target))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        None => None,
    };
    let from = (!args.from.is_empty()).then(|| args.from.clone());
    let inner_to = esprim.as_ref().map(|e| e.3.clone());
    let mut req = Request::new(operation, inner_to.unwrap_or(path), from);
    req.request_id = m2mtrust_client::request_id();
    req.resource_type = args.ty.map(ResourceType);
    req.tokens = args.token.clone();
    req.token_ids = args.token_id.clone();
    req.local_token_ids = args.local_token_id.clone();
    req.role_ids = args.role_id.clone();
    req.token_request_indicator = args.token_request;
    req.content = content;
    let sent = match esprim {
        Some((kid, key, receiver, _)) => {
            let originator = m2mtrust_client::esprim::EsPrimOriginator::new(
                kid,
                key,
                args.from.clone(),
                receiver,
            );
            originator.send(&client, &req).await
        }
        None => client.send(&req).await,
    };
    match sent {
        Ok(resp) => {
            println!("{}", resp.status);
            if let Some(location) = &resp.content_location {
                println!("Content-Location: {location}");
            }
            for (lti, tkid) in &resp.assigned_tokens {
                println!("Local-Token-ID: {lti} = {tkid}");
            }
            if let Some(tqf) = &resp.token_request_info {
                println!("Token-Request-Info: {tqf}");
            }
            if let Some(content) = &resp.content {
                println!(
                    "{}",
                    serde_json::to_string_pretty(content).unwrap_or_default()
                );
            }
            if resp.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
