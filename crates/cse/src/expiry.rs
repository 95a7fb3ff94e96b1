//! Removal of expired resources (TS-0001 §9.6.1.3.2, `expirationTime`).
//!
//! Expired resources are already invisible to requests (addressing skips them); this task
//! deletes them for good, with the same notifications and container bookkeeping as a DELETE.

use std::sync::Arc;
use std::time::Duration;

use m2mtrust_model::Timestamp;
use m2mtrust_store::StoreExt;

use crate::Cse;

const SWEEP_EVERY: Duration = Duration::from_secs(1);
const SWEEP_BATCH: u32 = 256;

pub(crate) fn spawn(cse: Arc<Cse>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = cse.sweep(Timestamp::now()).await {
                tracing::error!(error = %e, "expiry sweep failed");
            }
        }
    })
}

impl Cse {
    /// Deletes resources whose `et` has passed; returns how many were removed (subtrees count once).
    pub async fn sweep(&self, now: Timestamp) -> Result<usize, crate::CseError> {
        let expired = self.store().read(|s| s.expired(now, SWEEP_BATCH))?;
        let mut removed = 0;
        for r in expired {
            // A shallower expired ancestor may already have taken this one with it.
            if self.store().read(|s| s.get(r.ri()))?.is_none() {
                continue;
            }
            self.remove(&r, now).await?;
            tracing::info!(target: "audit", resource = %r.srn, "expired");
            removed += 1;
        }
        Ok(removed)
    }
}
