//! Replay detection for ESPrim Objects.
//!
//! TS-0003 §8.4 bounds the freshness of ESPrim Objects only by the expiry of the rand objects
//! and the pairwise key; within that window the same object would be accepted again. The
//! [`ReplayGuard`] remembers every accepted object by (`kid`, `ori`, `rri`, IV) until its
//! session expires. AES-GCM requires a fresh IV per object under one key, so a repeated IV in a
//! session is a replay (or a broken sender).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::EsPrimError;
use super::object::EsPrimObject;

/// SHA-256 over the length-prefixed `kid`, `ori`, `rri` and IV: a fixed-size entry whatever the
/// identifiers' lengths.
fn fingerprint(object: &EsPrimObject) -> [u8; 32] {
    let h = object.header();
    let mut sha = openssl::sha::Sha256::new();
    for part in [
        h.kid.as_bytes(),
        h.ori.as_str().as_bytes(),
        h.rri.as_str().as_bytes(),
        object.iv(),
    ] {
        sha.update(&(part.len() as u64).to_be_bytes());
        sha.update(part);
    }
    sha.finish()
}

/// A bounded memory of accepted ESPrim Objects.
///
/// Record an object only after it decrypted, so that only authenticated objects take space.
/// Entries are forgotten when their session expires. When the memory holds `capacity` unexpired
/// entries, new objects are refused with [`EsPrimError::ReplayMemoryFull`] rather than accepted
/// unchecked.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: HashMap<[u8; 32], DateTime<Utc>>,
    by_expiry: BTreeSet<(DateTime<Utc>, [u8; 32])>,
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` objects (about 100 bytes each).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Accepts `object` once: fails with [`EsPrimError::Replayed`] if the same (`kid`, `ori`,
    /// `rri`, IV) was accepted before and its session is still valid, with
    /// [`EsPrimError::SessionExpired`] if `valid_until` (the end of the session: the earliest of
    /// the two rand objects' expiries and the pairwise key's) is not after `now`.
    pub fn check_and_record(
        &mut self,
        object: &EsPrimObject,
        valid_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), EsPrimError> {
        self.purge(now);
        if valid_until <= now {
            return Err(EsPrimError::SessionExpired);
        }
        let fp = fingerprint(object);
        if self.seen.contains_key(&fp) {
            return Err(EsPrimError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(EsPrimError::ReplayMemoryFull);
        }
        self.seen.insert(fp, valid_until);
        self.by_expiry.insert((valid_until, fp));
        Ok(())
    }

    /// Forgets the entries whose session expired at or before `now`.
    pub fn purge(&mut self, now: DateTime<Utc>) {
        while let Some(first) = self.by_expiry.first().copied() {
            if first.0 > now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&first.1);
        }
    }

    /// The number of objects remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no object is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
