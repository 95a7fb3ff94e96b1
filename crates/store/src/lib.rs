//! Storage of the oneM2M resource tree.
//!
//! [`Store`] is the boundary every service uses: synchronous reads on a pooled connection and
//! writes submitted as closures that run inside one transaction. The SQLite implementation
//! ([`SqliteStore`]) runs all writes on one thread and commits them in groups, so a response is
//! sent only after its change is durable while concurrent writers share each `fsync`.
//!
//! **Architecture Invariant:** a write closure either commits completely or leaves nothing behind
//! (each runs in its own savepoint), and its result is delivered only after the commit.

mod sqlite;

use std::sync::Arc;

use m2mtrust_model::{FilterCriteria, Resource, ResourceType, Timestamp};
pub use sqlite::{Durability, SqliteStore};

/// Storage failures. These are internal errors for the peer (5000); details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored document could not be decoded.
    #[error("corrupt stored resource {ri}: {why}")]
    Corrupt {
        /// The resource.
        ri: String,
        /// The decoding error.
        why: String,
    },
    /// A unique key was taken (same `ri`, or same `rn` under one parent).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// The writer thread is gone (shutdown).
    #[error("the store is closed")]
    Closed,
}

/// Query for discovery below a subtree (TS-0004 §7.3.3.17): the filter criteria a store can
/// index, applied to the subtree at `root_srn`.
#[derive(Clone, Debug, Default)]
pub struct DiscoveryQuery {
    /// Structured address of the subtree root; the root itself is included.
    pub root_srn: String,
    /// Depth of the root (number of `/` in its srn).
    pub root_depth: u32,
    /// `ty`, `lbl`, `cra`/`crb`, `ms`/`us`, `exa`/`exb` and `lvl` (its `lim` and `ofst` are
    /// given below, after the caller's own bounds).
    pub filter: FilterCriteria,
    /// Resources that have expired at this time are left out.
    pub now: Timestamp,
    /// Upper bound of rows to return.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

/// One deleted resource, reported so that callers can notify and audit.
#[derive(Clone, Debug)]
pub struct Deleted {
    /// The resource as it was.
    pub resource: Resource,
}

/// A credential the operator configured (TS-0003 §8.2.2.1 step 1): its Credential-ID, its kind,
/// the secret sealed by the caller (the store never sees it in clear), and the identities it is
/// bound to (a CSE-ID, an AE-ID or a list of AE-IDs).
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// The Credential-ID (TS-0003 §10.4), e.g. `12-dev@m2mtrust.example`.
    pub id: String,
    /// `psk` or `certificate`.
    pub kind: String,
    /// The sealed secret, if the kind has one.
    pub sealed_secret: Option<Vec<u8>>,
    /// `cse`, `ae`, `ae-list` or `none`.
    pub binding: String,
    /// The bound CSE-ID or AE-IDs, canonical form.
    pub bound_ids: Vec<String>,
    /// When it was added.
    pub created: Timestamp,
    /// When it stops working (TS-0003 §10.7 enrolment expiry); `None` for no limit.
    pub expires: Option<Timestamp>,
}

impl CredentialRecord {
    /// True when the credential has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

impl std::fmt::Debug for CredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field(
                "sealed_secret",
                &self.sealed_secret.as_ref().map(|_| "<sealed>"),
            )
            .field("binding", &self.binding)
            .field("bound_ids", &self.bound_ids)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Read access, on a pooled connection or inside a write transaction.
pub trait Reader {
    /// The resource with this `ri`.
    fn get(&self, ri: &str) -> Result<Option<Resource>, StoreError>;
    /// The resource at this structured address.
    fn get_by_srn(&self, srn: &str) -> Result<Option<Resource>, StoreError>;
    /// Direct children, optionally of one type, oldest first.
    fn children(&self, pi: &str, ty: Option<ResourceType>) -> Result<Vec<Resource>, StoreError>;
    /// The newest (`newest`) or oldest direct child of type `ty` that has not expired at `now`.
    fn edge_child(
        &self,
        pi: &str,
        ty: ResourceType,
        newest: bool,
        now: Timestamp,
    ) -> Result<Option<Resource>, StoreError>;
    /// Resources matching a discovery query, in tree order.
    fn discover(&self, q: &DiscoveryQuery) -> Result<Vec<Resource>, StoreError>;
    /// Up to `limit` resources whose `et` is at or before `now`, shallowest first.
    fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<Resource>, StoreError>;
    /// The `ri`s of every resource that has a direct `<subscription>` child.
    fn subscribed_parents(&self) -> Result<Vec<String>, StoreError>;
    /// The credential with this Credential-ID.
    fn credential(&self, id: &str) -> Result<Option<CredentialRecord>, StoreError>;
    /// Every credential, by Credential-ID.
    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError>;
}

/// Write access inside one transaction.
pub trait Writer: Reader {
    /// Inserts a new resource; [`StoreError::Duplicate`] when `ri` or (`pi`, `rn`) is taken.
    fn insert(&mut self, r: &Resource) -> Result<(), StoreError>;
    /// Replaces the attributes of an existing resource (same `ri`, `srn`).
    fn update(&mut self, r: &Resource) -> Result<(), StoreError>;
    /// Deletes a resource and its whole subtree; returns what was deleted, root first.
    fn delete_subtree(&mut self, ri: &str) -> Result<Vec<Deleted>, StoreError>;
    /// Adds a credential; [`StoreError::Duplicate`] when the Credential-ID exists.
    fn put_credential(&mut self, c: &CredentialRecord) -> Result<(), StoreError>;
    /// Removes a credential; `false` when there was none.
    fn remove_credential(&mut self, id: &str) -> Result<bool, StoreError>;
}

/// Called with the commit outcome after the group containing a job committed (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write job: runs in the transaction, says whether its changes stand (`true`) or must be
/// rolled back (`false`), and hands back the completion to call after the commit.
pub type WriteJob = Box<dyn FnOnce(&mut dyn Writer) -> (bool, Completion) + Send>;

/// A resource-tree store shared by many tasks.
pub trait Store: Send + Sync {
    /// Runs `f` against a consistent snapshot.
    fn with_reader(
        &self,
        f: &mut dyn FnMut(&dyn Reader) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Queues a write job.
    fn submit(&self, job: WriteJob) -> Result<(), StoreError>;
}

/// Typed helpers over any [`Store`].
pub trait StoreExt {
    /// Runs a read closure and returns its value.
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
    /// Runs a write closure in a transaction; resolves after it is durable. An `Err` from the
    /// closure rolls its changes back and is returned as is.
    fn write<T, E>(
        &self,
        f: impl FnOnce(&mut dyn Writer) -> Result<T, E> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, E>> + Send
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static;
}

impl StoreExt for Arc<dyn Store> {
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        let mut out = None;
        self.with_reader(&mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        out.ok_or(StoreError::Closed)
    }

    fn write<T, E>(
        &self,
        f: impl FnOnce(&mut dyn Writer) -> Result<T, E> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, E>> + Send
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: WriteJob = Box::new(move |w| {
            let result = f(w);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let out = match (commit, result) {
                    (Ok(()), r) => r,
                    (Err(e), Ok(_)) => Err(E::from(e)),
                    (Err(_), Err(e)) => Err(e),
                };
                let _ = tx.send(out);
            });
            (ok, completion)
        });
        let submitted = self.submit(job);
        async move {
            submitted.map_err(E::from)?;
            rx.await.map_err(|_| E::from(StoreError::Closed))?
        }
    }
}
