//! The DAS Server as a receiver of oneM2M primitives (TS-0003 §7.3.1: the hosting CSE and
//! Originators reach it with a NOTIFY carrying `m2m:securityInfo`, TS-0001 §11.5).
//!
//! This is the outer layer: it reads the clock, draws Token-IDs, signs and stores tokens; the
//! decisions are in [`crate::decision`].

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use m2mtrust_model::{Home, Operation, PeerIdentity, Request, Response, ResponseStatusCode};
use serde_json::Value;

use crate::decision::{self, Ask, Requester, StoredToken, TokenGrant};
use crate::request::DasRequest;
use crate::store::{DasStore, new_token_id};
use crate::{DasError, TokenIssuer};

/// The DAS Server: policies and issued tokens in a [`DasStore`], tokens signed by a
/// [`TokenIssuer`] whose issuer ID is the DAS's identity (`das.<SP domain>`).
#[derive(Clone, Debug)]
pub struct DasService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    home: Home,
    issuer: TokenIssuer,
    store: Arc<DasStore>,
}

impl DasService {
    /// A DAS Server of the SP and CSE in `home` (the reference for relative IDs and for reading
    /// AE-IDs bound to connections), signing with `issuer`, keeping state in `store`.
    pub fn new(home: Home, issuer: TokenIssuer, store: Arc<DasStore>) -> Self {
        Self {
            inner: Arc::new(Inner {
                home,
                issuer,
                store,
            }),
        }
    }

    /// The issuer ID put in `iss` and after the `@` of every Token-ID.
    pub fn issuer(&self) -> &str {
        self.inner.issuer.issuer()
    }

    /// Answers one request primitive from `peer` at `now`. Every failure is a response.
    pub fn respond(&self, req: &Request, peer: &PeerIdentity, now: DateTime<Utc>) -> Response {
        let result = self.process(req, peer, now.trunc_subsecs(0));
        let mut response = match result {
            Ok(content) => Response::new(ResponseStatusCode::OK, Some(content)),
            Err(e) => {
                let status = ResponseStatusCode::from(&e);
                if e.is_internal() {
                    tracing::error!(error = %e, "DAS request failed");
                    Response::error(status, "internal error of the DAS Server")
                } else {
                    tracing::info!(
                        target: "audit",
                        event = "das_refused",
                        peer = ?peer.addr,
                        from = req.from.as_deref().unwrap_or("-"),
                        rsc = status.0,
                        reason = %e,
                    );
                    Response::error(status, e.to_string())
                }
            }
        };
        response.request_id = req.request_id.clone();
        response
    }

    fn process(
        &self,
        req: &Request,
        peer: &PeerIdentity,
        now: DateTime<Utc>,
    ) -> Result<Value, DasError> {
        let home = &self.inner.home;
        if req.operation != Operation::Notify {
            return Err(DasError::OperationNotAllowed(format!(
                "the DAS Server answers NOTIFY with m2m:seci only, not {:?}",
                req.operation
            )));
        }
        let requester = decision::identify(req.from.as_deref(), peer, home)?;
        let dreq = DasRequest::from_content(req.content.as_ref())
            .map_err(|e| DasError::BadRequest(e.to_string()))?;
        match decision::plan(&requester, &dreq, home)? {
            Ask::Resolve {
                audience,
                holder,
                token_ids,
            } => self.resolve(&requester, peer, &audience, &holder, &token_ids, now),
            Ask::Decide {
                audience,
                holder,
                trid,
                target,
                operation_bit,
                proposed_end,
                dynamic_acp,
            } => {
                let policies = self.inner.store.policies()?;
                let grant = decision::decide(
                    &policies,
                    &holder,
                    &target,
                    operation_bit,
                    proposed_end,
                    now,
                );
                let Some(grant) = grant else {
                    self.audit(
                        &requester,
                        peer,
                        &holder,
                        &trid,
                        operation_bit,
                        None,
                        "none",
                    );
                    return Ok(decision::response(None, Vec::new()));
                };
                let policy = grant.policy;
                let dai = (dynamic_acp && policy.grant.dynamic_acp()).then(|| {
                    decision::dynamic_acp_info(&holder, policy.operations, grant.not_after)
                });
                let mut tokens = Vec::new();
                if policy.grant.tokens() {
                    let issuer = self.inner.issuer.issuer();
                    let token_grant = TokenGrant {
                        issuer,
                        token_id: new_token_id(issuer)?,
                        holder: &holder,
                        audience: &audience,
                        resource: &trid,
                        operations: policy.operations,
                        role_ids: &policy.role_ids,
                        not_before: now,
                        not_after: grant.not_after,
                    };
                    let jwt = self.inner.issuer.issue(&token_grant.claims())?;
                    self.inner.store.put_token(
                        &StoredToken {
                            token_id: token_grant.token_id.clone(),
                            holder: holder.clone(),
                            audience: vec![audience.clone()],
                            jwt: jwt.clone(),
                            not_after: grant.not_after,
                        },
                        now,
                    )?;
                    tokens.push(jwt);
                }
                let outcome = match (dai.is_some(), tokens.is_empty()) {
                    (true, false) => "acp+token",
                    (true, true) => "acp",
                    (false, false) => "token",
                    (false, true) => "none",
                };
                self.audit(
                    &requester,
                    peer,
                    &holder,
                    &trid,
                    operation_bit,
                    Some(&policy.id),
                    outcome,
                );
                Ok(decision::response(dai, tokens))
            }
        }
    }

    fn resolve(
        &self,
        requester: &Requester,
        peer: &PeerIdentity,
        audience: &str,
        holder: &str,
        token_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Value, DasError> {
        let tokens: Vec<String> = self
            .inner
            .store
            .tokens(token_ids)?
            .into_iter()
            .filter(|t| t.usable_by(audience, holder, now))
            .map(|t| t.jwt)
            .collect();
        tracing::info!(
            target: "audit",
            event = "das_token_ids",
            peer = ?peer.addr,
            credential = %requester.credential_id,
            requester = %requester.absolute,
            originator = %holder,
            asked = token_ids.len(),
            returned = tokens.len(),
        );
        Ok(decision::response(None, tokens))
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        requester: &Requester,
        peer: &PeerIdentity,
        originator: &str,
        target: &str,
        operation_bit: u8,
        policy: Option<&str>,
        outcome: &str,
    ) {
        tracing::info!(
            target: "audit",
            event = "das_decision",
            peer = ?peer.addr,
            credential = %requester.credential_id,
            requester = %requester.absolute,
            originator,
            target,
            operation = operation_bit,
            policy = policy.unwrap_or("-"),
            outcome,
        );
    }
}

impl m2mtrust_server::Handler for DasService {
    async fn handle(&self, req: Request, peer: PeerIdentity) -> Response {
        let this = self.clone();
        let request_id = req.request_id.clone();
        // SQLite and signing block: keep them off the runtime's worker threads.
        match tokio::task::spawn_blocking(move || this.respond(&req, &peer, Utc::now())).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "DAS request task failed");
                let mut r = Response::error(
                    ResponseStatusCode::INTERNAL_SERVER_ERROR,
                    "internal error of the DAS Server",
                );
                r.request_id = request_id;
                r
            }
        }
    }
}
