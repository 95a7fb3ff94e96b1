//! The DAS Server's state in SQLite (`DIR/das.sqlite`): policies, which operators edit while the
//! server runs, and issued tokens, kept until they expire so Token-IDs can be resolved
//! (TS-0003 §7.3.2.3 step 5).
//!
//! Every process opens the file with its own connection in WAL mode. The server keeps the
//! policies in memory and reloads them when `PRAGMA data_version` says another connection
//! committed since the last read; its own policy writes clear the cache directly.
//!
//! Schema versions (`PRAGMA user_version`): 1 — `das_policies`, `das_tokens`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::decision::StoredToken;
use crate::policy::{GrantMode, OriginatorPattern, Policy, TargetPattern};

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS das_policies (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    originators   TEXT NOT NULL,
    targets       TEXT NOT NULL,
    operations    INTEGER NOT NULL,
    lifetime_secs INTEGER NOT NULL,
    grant_mode    TEXT NOT NULL,
    role_ids      TEXT NOT NULL,
    created       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS das_tokens (
    jti       TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    audience  TEXT NOT NULL,
    jwt       TEXT NOT NULL,
    not_after INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS das_tokens_not_after ON das_tokens (not_after);
";

/// A failure of the DAS store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row does not hold what this code wrote.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The file was written by a newer version of the program.
    #[error("schema version {0} is newer than this program's ({SCHEMA_VERSION})")]
    NewerSchema(i64),
    /// A policy with this ID exists already.
    #[error("a policy {0} exists already")]
    Conflict(String),
    /// A lock was poisoned by a panic elsewhere.
    #[error("the store lock is poisoned")]
    Poisoned,
}

struct Inner {
    conn: Connection,
    /// Policies in creation order, and the `data_version` they were read at.
    cache: Option<(i64, Arc<Vec<Policy>>)>,
}

/// Policies and issued tokens of a DAS Server.
pub struct DasStore {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for DasStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DasStore").finish_non_exhaustive()
    }
}

impl DasStore {
    /// Opens (creating or upgrading when needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::migrate(&conn)?;
        Ok(Self {
            inner: Mutex::new(Inner { conn, cache: None }),
        })
    }

    fn migrate(conn: &Connection) -> Result<(), StoreError> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        match version {
            0 => {
                // IMMEDIATE: two processes opening a new file at once create it once.
                conn.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {SCHEMA_V1} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))?;
                Ok(())
            }
            SCHEMA_VERSION => Ok(()),
            newer => Err(StoreError::NewerSchema(newer)),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Adds a policy; its `id` must be new.
    pub fn add_policy(&self, policy: &Policy) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let json = |items: Vec<String>| {
            serde_json::to_string(&items).map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        let originators = json(policy.originators.iter().map(|p| p.to_string()).collect())?;
        let targets = json(policy.targets.iter().map(|p| p.to_string()).collect())?;
        let role_ids = json(policy.role_ids.clone())?;
        let result = inner.conn.execute(
            "INSERT INTO das_policies (id, originators, targets, operations, lifetime_secs, grant_mode, role_ids, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                policy.id,
                originators,
                targets,
                policy.operations,
                policy.lifetime_secs,
                policy.grant.as_str(),
                role_ids,
                policy.created.timestamp()
            ],
        );
        inner.cache = None;
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(policy.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a policy; `false` when there is none with that ID.
    pub fn remove_policy(&self, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let n = inner
            .conn
            .execute("DELETE FROM das_policies WHERE id = ?1", params![id])?;
        inner.cache = None;
        Ok(n > 0)
    }

    /// Every policy, in creation order: read again only when another connection committed
    /// since the last read.
    pub fn policies(&self) -> Result<Arc<Vec<Policy>>, StoreError> {
        let mut inner = self.lock()?;
        let version: i64 = inner
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if let Some((seen, policies)) = &inner.cache
            && *seen == version
        {
            return Ok(policies.clone());
        }
        let policies = Arc::new(read_policies(&inner.conn)?);
        inner.cache = Some((version, policies.clone()));
        Ok(policies)
    }

    /// Keeps an issued token, and drops the tokens that expired before `now`.
    pub fn put_token(&self, token: &StoredToken, now: DateTime<Utc>) -> Result<(), StoreError> {
        let inner = self.lock()?;
        let audience = serde_json::to_string(&token.audience)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let tx = inner.conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM das_tokens WHERE not_after <= ?1",
            params![now.timestamp()],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO das_tokens (jti, holder, audience, jwt, not_after) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token.token_id,
                token.holder,
                audience,
                token.jwt,
                token.not_after.timestamp()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The stored tokens with these Token-IDs (unknown ones are left out), in the order asked.
    pub fn tokens(&self, token_ids: &[String]) -> Result<Vec<StoredToken>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare_cached(
            "SELECT jti, holder, audience, jwt, not_after FROM das_tokens WHERE jti = ?1",
        )?;
        let mut out = Vec::new();
        for id in token_ids {
            let row = stmt
                .query_row(params![id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()?;
            if let Some((token_id, holder, audience, jwt, not_after)) = row {
                out.push(StoredToken {
                    token_id,
                    holder,
                    audience: serde_json::from_str(&audience)
                        .map_err(|e| StoreError::Corrupt(format!("das_tokens.audience: {e}")))?,
                    jwt,
                    not_after: time(not_after)?,
                });
            }
        }
        Ok(out)
    }
}

fn time(secs: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| StoreError::Corrupt(format!("time {secs}")))
}

type PolicyRow = (String, String, String, i64, i64, String, String, i64);

fn read_policies(conn: &Connection) -> Result<Vec<Policy>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, originators, targets, operations, lifetime_secs, grant_mode, role_ids, created
         FROM das_policies ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(policy_from_row(row?)?);
    }
    Ok(out)
}

fn policy_from_row(row: PolicyRow) -> Result<Policy, StoreError> {
    let (id, originators, targets, operations, lifetime_secs, grant, role_ids, created) = row;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("policy {id}: {what}: {e}"))
    };
    let list = |what: &str, text: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_str(text).map_err(|e| corrupt(what, &e))
    };
    let targets = list("targets", &targets)?
        .iter()
        .map(|t| TargetPattern::from_stored(t))
        .collect::<Result<_, _>>()
        .map_err(|e| corrupt("targets", &e))?;
    Ok(Policy {
        originators: list("originators", &originators)?
            .iter()
            .map(|o| OriginatorPattern::from_stored(o))
            .collect(),
        targets,
        operations: u8::try_from(operations).map_err(|e| corrupt("operations", &e))?,
        lifetime_secs: u32::try_from(lifetime_secs).map_err(|e| corrupt("lifetime_secs", &e))?,
        grant: grant
            .parse::<GrantMode>()
            .map_err(|e| corrupt("grant_mode", &e))?,
        role_ids: list("role_ids", &role_ids)?,
        created: time(created)?,
        id,
    })
}

/// A new short policy ID: `p` and eight hexadecimal digits.
pub fn new_policy_id() -> String {
    let mut bytes = [0u8; 4];
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        // The clock is unique enough for a name an operator picks from a list.
        return format!("p{:08x}", Utc::now().timestamp_subsec_nanos());
    }
    format!("p{}", hex(&bytes))
}

/// A new Token-ID `<32 hex digits>@<issuer>` (TS-0001 §7.1.15: it identifies the issuer and is
/// globally unique).
pub fn new_token_id(issuer: &str) -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)
        .map_err(|e| StoreError::Corrupt(format!("no randomness for a Token-ID: {e}")))?;
    Ok(format!("{}@{issuer}", hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::policy::PolicySpec;
    use chrono::TimeDelta;
    use m2mtrust_model::{CseId, Home, SpId};

    fn home() -> Home {
        Home {
            sp_id: SpId::parse("//m2mtrust.example").unwrap(),
            cse_id: CseId::parse("/id-in").unwrap(),
            cse_base_name: "cse-in".into(),
        }
    }

    fn policy(id: &str) -> Policy {
        Policy::new(
            id.into(),
            &PolicySpec {
                originators: vec!["C*".into(), "/id-mn".into()],
                targets: vec!["cse-in/ae1/*".into(), "/id-in/cse-in/x".into()],
                operations: 3,
                lifetime_secs: 120,
                grant: GrantMode::Token,
                role_ids: vec!["r1".into()],
            },
            &home(),
            DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn policies_round_trip_in_creation_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = DasStore::open(&dir.path().join("das.sqlite")).unwrap();
        assert!(store.policies().unwrap().is_empty());
        store.add_policy(&policy("pb")).unwrap();
        store.add_policy(&policy("pa")).unwrap();
        let got = store.policies().unwrap();
        assert_eq!(*got, vec![policy("pb"), policy("pa")]);
        assert!(matches!(
            store.add_policy(&policy("pa")),
            Err(StoreError::Conflict(_))
        ));
        assert!(store.remove_policy("pb").unwrap());
        assert!(!store.remove_policy("pb").unwrap());
        assert_eq!(*store.policies().unwrap(), vec![policy("pa")]);
    }

    #[test]
    fn another_connection_s_policy_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("das.sqlite");
        let server = DasStore::open(&path).unwrap();
        let cli = DasStore::open(&path).unwrap();
        assert!(server.policies().unwrap().is_empty());
        cli.add_policy(&policy("p1")).unwrap();
        assert_eq!(server.policies().unwrap().len(), 1);
        // Unchanged: the cached list is handed out again.
        let a = server.policies().unwrap();
        let b = server.policies().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        cli.remove_policy("p1").unwrap();
        assert!(server.policies().unwrap().is_empty());
    }

    #[test]
    fn tokens_are_kept_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = DasStore::open(&dir.path().join("das.sqlite")).unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let token = |id: &str, secs: i64| StoredToken {
            token_id: id.into(),
            holder: "//sp/id-in/Cae1".into(),
            audience: vec!["//sp/id-in".into()],
            jwt: format!("jwt-{id}"),
            not_after: now + TimeDelta::seconds(secs),
        };
        store.put_token(&token("short", 5), now).unwrap();
        store.put_token(&token("long", 500), now).unwrap();
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let got = store.tokens(&ids(&["long", "nope", "short"])).unwrap();
        assert_eq!(got, vec![token("long", 500), token("short", 5)]);
        // The next issuance, after "short" expired, drops it.
        store
            .put_token(&token("later", 500), now + TimeDelta::seconds(10))
            .unwrap();
        let got = store.tokens(&ids(&["short", "long", "later"])).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("das.sqlite");
        DasStore::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 9).unwrap();
        drop(conn);
        assert!(matches!(
            DasStore::open(&path),
            Err(StoreError::NewerSchema(9))
        ));
    }

    #[test]
    fn generated_ids() {
        let p = new_policy_id();
        assert!(p.starts_with('p') && p.len() == 9, "{p}");
        let t = new_token_id("das.m2mtrust.example").unwrap();
        assert!(
            t.ends_with("@das.m2mtrust.example") && t.len() == 32 + 21,
            "{t}"
        );
        assert_ne!(new_token_id("x").unwrap(), new_token_id("x").unwrap());
    }
}
