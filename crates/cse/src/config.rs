//! Settings of one CSE.

use m2mtrust_model::{CseId, Home, SpId};

/// What a CSE needs to know about itself.
#[derive(Clone, Debug)]
pub struct CseConfig {
    /// SP-ID, CSE-ID and CSEBase name.
    pub home: Home,
    /// The admin originator (`CAdmin`), permitted everything while `admin_bypass` is on.
    pub admin_originator: String,
    /// Whether the admin originator bypasses access control (logged on every use).
    pub admin_bypass: bool,
    /// Largest lifetime a resource may ask for; later `et`s are clamped to now + this.
    pub max_expiration_secs: i64,
    /// Lifetime of a resource created without `et`.
    pub default_expiration_secs: i64,
    /// The CSE's points of access, published in `<CSEBase>`.
    pub poa: Vec<String>,
    /// How long a subscription verification request may take.
    pub verification_timeout: std::time::Duration,
    /// Upper bound of results of one discovery.
    pub max_discovery_results: u32,
    /// Deepest group nesting followed when fanning out.
    pub max_group_depth: u32,
    /// Refuse requests whose originator is a CSE unless a security association carries them
    /// (TS-0003 §6.1.2.2: mandatory on Mcc); 4107 otherwise.
    pub require_sa_for_cse: bool,
    /// The time zone in which `accessControlTimeWindow` is read.
    pub time_zone: chrono_tz::Tz,
    /// Where originators are (`rq_loc` for `accessControlLocationRegion`), by canonical originator.
    pub locations: std::collections::HashMap<String, m2mtrust_authz::OriginatorLocation>,
    /// Originators acting as Authorization Authority (TS-0003 §7.4): only they may create
    /// `<role>` and `<token>` resources, and only resources they created are believed. The
    /// admin originator always is one.
    pub role_authorities: Vec<String>,
    /// Issuers (`tkis`) whose `<role>` resources are accepted.
    pub role_issuers: Vec<String>,
    /// Where Token-IDs (`tids`) are resolved: the DAS URI of each token issuer (the part of a
    /// Token-ID after `@`), TS-0003 §7.3.2.3 step 5.
    pub token_issuer_das: std::collections::HashMap<String, String>,
    /// The Dynamic Authorization Systems this CSE consults (`dynamicAuthorizationPoA` URIs);
    /// a consultation naming any other is not followed.
    pub das_uris: Vec<String>,
    /// How long a Dynamic Authorization System may take to answer.
    pub das_timeout: std::time::Duration,
    /// Lifetime of a dynamic ACP whose `dynamicACPInfo` names no privileges lifetime.
    pub default_dynamic_acp_secs: i64,
    /// Lifetime of the receiverESPrimRandObjects this CSE hands out (TS-0003 §8.4.2 B.2e).
    pub esprim_rand_lifetime_secs: i64,
}

impl Default for CseConfig {
    fn default() -> Self {
        Self {
            home: Home {
                sp_id: SpId::parse("//m2mtrust.example").unwrap_or_else(|_| unreachable!()),
                cse_id: CseId::parse("/id-in").unwrap_or_else(|_| unreachable!()),
                cse_base_name: "cse-in".into(),
            },
            admin_originator: "CAdmin".into(),
            admin_bypass: true,
            max_expiration_secs: 5 * 365 * 24 * 3600,
            default_expiration_secs: 5 * 365 * 24 * 3600,
            poa: Vec::new(),
            verification_timeout: std::time::Duration::from_secs(5),
            max_discovery_results: 1000,
            max_group_depth: 3,
            require_sa_for_cse: true,
            time_zone: chrono_tz::UTC,
            locations: std::collections::HashMap::new(),
            role_authorities: Vec::new(),
            role_issuers: Vec::new(),
            token_issuer_das: std::collections::HashMap::new(),
            das_uris: Vec::new(),
            das_timeout: std::time::Duration::from_secs(5),
            default_dynamic_acp_secs: 600,
            esprim_rand_lifetime_secs: 3600,
        }
    }
}
