//! Subscriptions and notifications (TS-0001 §10.2.10-11, TS-0004 §7.3.7-8, `m2m:sgn`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use m2mtrust_model::{
    NotificationEventType as Net, Operation, Request, Resource, ResourceType as T, Response,
};
use m2mtrust_store::{Deleted, StoreExt};
use serde_json::{Map, Value, json};

use crate::error::{Result, bad_request};
use crate::{Cse, CseError, Ctx, new_id};

/// Sends a notification request to a URL (an HTTP binding in production).
pub trait NotificationTransport: Send + Sync + 'static {
    /// Delivers `req` to `url` and returns the receiver's response.
    fn send(
        &self,
        url: String,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Response, String>> + Send>>;
}

/// The CSE's way out to notification targets.
#[derive(Clone, Default)]
pub struct Notifier {
    transport: Option<Arc<dyn NotificationTransport>>,
}

impl Notifier {
    /// A notifier over a transport.
    pub fn new(transport: Arc<dyn NotificationTransport>) -> Self {
        Self {
            transport: Some(transport),
        }
    }

    /// A notifier that cannot reach anyone: verification fails, events are dropped (tests, tools).
    pub fn disconnected() -> Self {
        Self { transport: None }
    }
}

/// Something that happened to a resource, for its subscribers.
pub(crate) enum Event {
    ChildCreated {
        parent: String,
        child: Resource,
    },
    ChildDeleted {
        parent: String,
        child: Resource,
    },
    Updated {
        resource: Resource,
        modified: Map<String, Value>,
    },
    Deleted {
        resource: Resource,
        subscriptions: Vec<Resource>,
    },
}

impl Event {
    pub(crate) fn child_created(parent: &Resource, child: &Resource) -> Self {
        Self::ChildCreated {
            parent: parent.ri().into(),
            child: child.clone(),
        }
    }
    pub(crate) fn child_deleted(parent: &Resource, child: &Resource) -> Self {
        Self::ChildDeleted {
            parent: parent.ri().into(),
            child: child.clone(),
        }
    }
    pub(crate) fn updated(resource: &Resource, modified: &Map<String, Value>) -> Self {
        Self::Updated {
            resource: resource.clone(),
            modified: modified.clone(),
        }
    }
    pub(crate) fn deleted(resource: &Resource, all: &[Deleted]) -> Self {
        let subscriptions = all
            .iter()
            .filter(|d| d.resource.ty == T::SUBSCRIPTION && d.resource.pi() == resource.ri())
            .map(|d| d.resource.clone())
            .collect();
        Self::Deleted {
            resource: resource.clone(),
            subscriptions,
        }
    }
}

fn event_types(sub: &Resource) -> Vec<u64> {
    let net: Vec<u64> = sub
        .attrs
        .get("enc")
        .and_then(|e| e.get("net"))
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    // TS-0001 §9.6.8: without notificationEventType, only updates of the resource are notified.
    if net.is_empty() {
        vec![u64::from(Net::UpdateOfResource.code())]
    } else {
        net
    }
}

fn child_type_matches(sub: &Resource, child: &Resource) -> bool {
    match sub
        .attrs
        .get("enc")
        .and_then(|e| e.get("chty"))
        .and_then(Value::as_array)
    {
        Some(list) if !list.is_empty() => list
            .iter()
            .any(|t| t.as_u64() == Some(u64::from(child.ty.0))),
        _ => true,
    }
}

impl Cse {
    /// Delivers an event to the matching subscriptions, without waiting for the receivers.
    pub(crate) fn notify(&self, event: Event) {
        let (watched, net, subject, modified, subs) = match event {
            Event::ChildCreated { parent, child } => {
                (parent, Net::CreateOfDirectChildResource, child, None, None)
            }
            Event::ChildDeleted { parent, child } => {
                (parent, Net::DeleteOfDirectChildResource, child, None, None)
            }
            Event::Updated { resource, modified } => (
                resource.ri().to_string(),
                Net::UpdateOfResource,
                resource,
                Some(modified),
                None,
            ),
            Event::Deleted {
                resource,
                subscriptions,
            } => {
                if subscriptions.is_empty() {
                    return;
                }
                (
                    resource.ri().to_string(),
                    Net::DeleteOfResource,
                    resource,
                    None,
                    Some(subscriptions),
                )
            }
        };
        let subs = match subs {
            Some(s) => s,
            None => {
                let watched_known = self
                    .subscribed
                    .read()
                    .map(|s| s.contains(&watched))
                    .unwrap_or(true);
                if !watched_known {
                    return;
                }
                match self
                    .store()
                    .read(|s| s.children(&watched, Some(T::SUBSCRIPTION)))
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read subscriptions");
                        return;
                    }
                }
            }
        };
        let child_event = matches!(
            net,
            Net::CreateOfDirectChildResource | Net::DeleteOfDirectChildResource
        );
        for sub in subs {
            // A new subscription is not told about its own creation.
            if sub.ri() == subject.ri() {
                continue;
            }
            if !event_types(&sub).contains(&u64::from(net.code()))
                || (child_event && !child_type_matches(&sub, &subject))
            {
                continue;
            }
            let rep = match sub.uint("nct").unwrap_or(1) {
                2 if modified.is_some() => {
                    json!({ subject.ty.short_name().unwrap_or("m2m:?"): modified.clone().unwrap_or_default() })
                }
                3 => json!({"m2m:uri": subject.ri()}),
                _ => subject.to_json(),
            };
            let body = json!({"m2m:sgn": {"nev": {"rep": rep, "net": net.code()}, "sur": sub.srn}});
            self.deliver(&sub, body);
            if net != Net::DeleteOfResource {
                self.count_down(&sub);
            }
        }
    }

    /// TS-0001 §9.6.8 `expirationCounter`: each notification decrements it; at zero the
    /// subscription is deleted and its subscriber told.
    fn count_down(&self, sub: &Resource) {
        let Some(exc) = sub.uint("exc") else { return };
        let ri = sub.ri().to_string();
        if exc <= 1 {
            self.subscription_removed(sub);
        }
        let job: m2mtrust_store::WriteJob = Box::new(move |w| {
            let outcome = (|| -> std::result::Result<(), m2mtrust_store::StoreError> {
                let Some(mut current) = w.get(&ri)? else {
                    return Ok(());
                };
                match current.uint("exc") {
                    Some(n) if n > 1 => {
                        current.attrs.insert("exc".into(), (n - 1).into());
                        w.update(&current)
                    }
                    _ => w.delete_subtree(&ri).map(|_| ()),
                }
            })();
            let ok = outcome.is_ok();
            let completion: m2mtrust_store::Completion = Box::new(move |commit| {
                if let Err(e) = outcome.and(commit) {
                    tracing::error!(error = %e, subscription = %ri, "cannot update expirationCounter");
                }
            });
            (ok, completion)
        });
        if let Err(e) = self.store().submit(job) {
            tracing::error!(error = %e, "cannot update expirationCounter");
        }
    }

    fn deliver(&self, sub: &Resource, body: Value) {
        let Some(transport) = self.notifier.transport.clone() else {
            return;
        };
        for nu in sub.str_list("nu") {
            let Ok(url) = self.notification_url(nu) else {
                tracing::warn!(nu, subscription = %sub.srn, "notification target has no reachable point of access");
                continue;
            };
            let req = self.notification_request(Some(body.clone()));
            let transport = transport.clone();
            let srn = sub.srn.clone();
            tokio::spawn(async move {
                match transport.send(url.clone(), req).await {
                    Ok(resp) if resp.status.is_success() => {}
                    Ok(resp) => {
                        tracing::warn!(%url, subscription = %srn, rsc = resp.status.0, "notification refused")
                    }
                    Err(e) => {
                        tracing::warn!(%url, subscription = %srn, error = %e, "notification not delivered")
                    }
                }
            });
        }
    }

    fn notification_request(&self, content: Option<Value>) -> Request {
        let mut req = Request::new(
            Operation::Notify,
            "",
            Some(self.home().cse_id.as_str().to_string()),
        );
        req.request_id = new_id("ntf");
        req.content = content;
        req
    }

    /// `nu` is a URL, or the ID of an AE (or remote CSE) whose `poa` holds one.
    fn notification_url(&self, nu: &str) -> Result<String> {
        if nu.starts_with("http://") || nu.starts_with("https://") {
            return Ok(nu.to_string());
        }
        let id = nu.rsplit('/').next().unwrap_or(nu);
        let target = self.store().read(|s| s.get(id))?;
        target
            .filter(|t| matches!(t.ty, T::AE | T::REMOTE_CSE))
            .and_then(|t| t.str_list("poa").into_iter().find(|p| p.starts_with("http")).map(String::from))
            .ok_or_else(|| bad_request!("notificationURI {nu:?} is neither a URL nor an entity with an HTTP point of access"))
    }

    /// Checks a new `<subscription>` and verifies its targets (TS-0001 §10.2.10.1 step 2).
    pub(crate) async fn prepare_subscription(
        &self,
        ctx: &Ctx<'_>,
        sub: &mut Resource,
    ) -> Result<()> {
        self.check_subscription(ctx, sub, &[]).await
    }

    /// Validates `enc`, `nct`, `nu`; sends a verification request to every new `nu` that is not
    /// the originator itself. A target that does not answer with success fails the request (5204).
    pub(crate) async fn check_subscription(
        &self,
        ctx: &Ctx<'_>,
        sub: &mut Resource,
        already: &[String],
    ) -> Result<()> {
        if let Some(enc) = sub.attrs.get("enc") {
            let enc = enc
                .as_object()
                .ok_or_else(|| bad_request!("eventNotificationCriteria must be an object"))?;
            for (key, value) in enc {
                match key.as_str() {
                    "net" => {
                        let ok = value.as_array().is_some_and(|l| {
                            l.iter()
                                .all(|n| n.as_u64().and_then(Net::from_code).is_some())
                        });
                        if !ok {
                            return Err(bad_request!(
                                "enc.net must list notification event types 1 to 4"
                            ));
                        }
                    }
                    "chty" => {
                        if !value
                            .as_array()
                            .is_some_and(|l| l.iter().all(Value::is_u64))
                        {
                            return Err(bad_request!("enc.chty must list resource types"));
                        }
                    }
                    other => {
                        return Err(bad_request!(
                            "eventNotificationCriteria {other:?} is not supported by this CSE"
                        ));
                    }
                }
            }
        }
        if let Some(nct) = sub.attrs.get("nct")
            && !matches!(nct.as_u64(), Some(1..=3))
        {
            return Err(bad_request!("notificationContentType must be 1, 2 or 3"));
        }
        let nus: Vec<String> = sub.str_list("nu").into_iter().map(String::from).collect();
        if nus.is_empty() {
            return Err(bad_request!(
                "notificationURI must name at least one target"
            ));
        }
        let me = ctx.orig();
        for nu in nus.iter().filter(|n| !already.contains(n)) {
            if nu == &me
                || ctx
                    .originator
                    .as_ref()
                    .is_some_and(|o| o.absolute(self.home()) == *nu)
            {
                continue;
            }
            self.verify_target(nu, sub, &me).await?;
        }
        Ok(())
    }

    async fn verify_target(&self, nu: &str, sub: &Resource, creator: &str) -> Result<()> {
        let url = self.notification_url(nu)?;
        let Some(transport) = self.notifier.transport.clone() else {
            return Err(CseError::VerificationFailed(format!(
                "cannot reach {nu}: notifications are disabled"
            )));
        };
        let body = json!({"m2m:sgn": {"vrq": true, "sur": sub.srn, "cr": creator}});
        let req = self.notification_request(Some(body));
        let timeout = self.config().verification_timeout;
        match tokio::time::timeout(timeout, transport.send(url.clone(), req)).await {
            Ok(Ok(resp)) if resp.status.is_success() => Ok(()),
            Ok(Ok(resp)) => Err(CseError::VerificationFailed(format!(
                "notification target {url} refused the verification request with {}",
                resp.status
            ))),
            Ok(Err(e)) => Err(CseError::VerificationFailed(format!(
                "notification target {url} is not reachable: {e}"
            ))),
            Err(_) => Err(CseError::VerificationFailed(format!(
                "notification target {url} did not answer the verification request within {timeout:?}"
            ))),
        }
    }

    /// A subscription was deleted: tell its subscriber (TS-0001 §10.2.10.3, `sud`).
    pub(crate) fn subscription_removed(&self, sub: &Resource) {
        let Some(su) = sub.attrs.get("su").and_then(Value::as_str) else {
            return;
        };
        let Some(transport) = self.notifier.transport.clone() else {
            return;
        };
        let Ok(url) = self.notification_url(su) else {
            return;
        };
        let req =
            self.notification_request(Some(json!({"m2m:sgn": {"sud": true, "sur": sub.srn}})));
        tokio::spawn(async move {
            if let Err(e) = transport.send(url, req).await {
                tracing::warn!(error = %e, "subscription deletion notification not delivered");
            }
        });
    }
}
