//! The production wiring: the CSE as a [`Handler`] of the server's listeners, and notifications
//! over the HTTP binding's client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use m2mtrust_binding_http::HttpClient;
use m2mtrust_model::{PeerIdentity, Request, Response};
use m2mtrust_server::Handler;

use crate::{Cse, NotificationTransport};

impl Handler for Cse {
    fn handle(&self, req: Request, peer: PeerIdentity) -> impl Future<Output = Response> + Send {
        Cse::handle(self, req, peer)
    }
}

/// Sends notifications as HTTP POSTs (TS-0009).
#[derive(Clone)]
pub struct HttpNotificationTransport {
    client: Arc<HttpClient>,
}

impl HttpNotificationTransport {
    /// A transport whose requests time out after 10 s.
    pub fn new() -> Self {
        Self {
            client: Arc::new(HttpClient::new(Duration::from_secs(10))),
        }
    }
}

impl Default for HttpNotificationTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl NotificationTransport for HttpNotificationTransport {
    fn send(
        &self,
        url: String,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, String>> + Send>> {
        let client = self.client.clone();
        Box::pin(async move { client.send(&url, &req).await.map_err(|e| e.to_string()) })
    }
}
