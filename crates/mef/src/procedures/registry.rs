//! Persistence of the MEF's procedure state: MEF Client Registration records, key
//! registration records and per-registration command queues (TS-0003 §8.3.5.2, §8.3.9).
//!
//! Every procedure runs in one [`Registry::transact`] call: either all its writes happen or
//! none. Key Values are secrets: [`SqliteRegistry`] stores them sealed (AES-256-GCM with the
//! RelativeKeyID as associated data), and no record prints its key.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use m2mtrust_crypto::{Fqdn, SealError, Sealer, SecretKey};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::ProcedureError;
use super::types::{CmdDescription, CmdStatusCode, Suid};

/// Why the registry failed. Reaches the peer as 5000 without detail.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database failed.
    #[error("registry database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A Key Value could not be sealed or opened.
    #[error("sealing a key value: {0}")]
    Seal(#[from] SealError),
    /// A stored row does not decode.
    #[error("corrupt registry row: {0}")]
    Corrupt(String),
}

/// A MEF Client Registration record (TS-0003 §8.3.5.2.3; `<mefClientReg>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// MEFClientRegID.
    pub id: String,
    /// MEF Client ID: the identity the MEF Handshake authenticated.
    pub client_id: String,
    /// adminFQDN.
    pub admin_fqdn: Fqdn,
    /// expirationTime.
    pub expiration: DateTime<Utc>,
    /// labels.
    pub labels: Option<Vec<String>>,
}

/// A key registration record (TS-0003 §8.3.5.2.7). The Key Value prints as `<redacted>`.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRegistration {
    /// RelativeKeyID (upper-case hex when the MEF chose it).
    pub relative_key_id: String,
    /// Source MEF Client ID.
    pub source_client_id: String,
    /// adminFQDN.
    pub admin_fqdn: Fqdn,
    /// SUID.
    pub suid: Suid,
    /// targetIDs: who may retrieve the key.
    pub target_ids: Vec<String>,
    /// labels.
    pub labels: Option<Vec<String>>,
    /// expirationTime.
    pub expiration: DateTime<Utc>,
    /// Key Value.
    pub key: SecretKey,
}

/// The command most recently issued for a registration (TS-0003 §8.3.9.3 step 2b).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IssuedCommand {
    /// cmdID.
    pub cmd_id: u64,
    /// cmdDescription.
    pub description: CmdDescription,
    /// True until a Command Update with this cmdID arrives; a Retrieve meanwhile reissues it.
    /// NO_MORE_COMMANDS is issued with `false`: it expects no Update.
    pub awaiting_update: bool,
}

/// A status a client reported for a command (TS-0003 §8.3.9.3 step 2b: "can record").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandReport {
    /// cmdID.
    pub cmd_id: u64,
    /// The command.
    pub description: CmdDescription,
    /// The reported cmdStatusCode.
    pub status: CmdStatusCode,
}

/// The command state of one registration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommandState {
    /// Commands not yet issued, in order.
    pub queue: VecDeque<CmdDescription>,
    /// The most recently issued command.
    pub current: Option<IssuedCommand>,
    /// Statuses received, oldest first.
    pub reports: Vec<CommandReport>,
}

/// One atomic unit of work on the registry (see [`Registry::transact`]).
pub trait RegistryTx {
    /// The registration with this MEFClientRegID.
    fn registration(&mut self, id: &str) -> Result<Option<Registration>, RegistryError>;
    /// All registrations of one MEF Client ID.
    fn registrations_of(&mut self, client_id: &str) -> Result<Vec<Registration>, RegistryError>;
    /// Inserts or replaces a registration (its command state is kept).
    fn put_registration(&mut self, reg: &Registration) -> Result<(), RegistryError>;
    /// Deletes a registration and its command state; false when there was none.
    fn delete_registration(&mut self, id: &str) -> Result<bool, RegistryError>;
    /// The key registration with this RelativeKeyID.
    fn key(&mut self, relative_key_id: &str) -> Result<Option<KeyRegistration>, RegistryError>;
    /// Inserts or replaces a key registration.
    fn put_key(&mut self, key: &KeyRegistration) -> Result<(), RegistryError>;
    /// Deletes a key registration; false when there was none.
    fn delete_key(&mut self, relative_key_id: &str) -> Result<bool, RegistryError>;
    /// The command state of a registration (empty when it has none).
    fn commands(&mut self, reg_id: &str) -> Result<CommandState, RegistryError>;
    /// Replaces the command state of a registration.
    fn put_commands(&mut self, reg_id: &str, state: &CommandState) -> Result<(), RegistryError>;
}

/// Where the MEF keeps registrations, key registrations and command queues.
pub trait Registry: Send + Sync {
    /// Runs `work` atomically: its writes take effect only when it returns `Ok`, and no other
    /// transaction interleaves with it.
    fn transact(
        &self,
        work: &mut dyn FnMut(&mut dyn RegistryTx) -> Result<(), ProcedureError>,
    ) -> Result<(), ProcedureError>;
}

// ---------------------------------------------------------------------------------------------
// In memory

#[derive(Clone, Default)]
struct MemState {
    registrations: BTreeMap<String, Registration>,
    keys: BTreeMap<String, KeyRegistration>,
    commands: BTreeMap<String, CommandState>,
}

/// A registry in memory (tests, single-process deployments without persistence).
#[derive(Default)]
pub struct MemoryRegistry {
    state: Mutex<MemState>,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("MemoryRegistry")
            .field("registrations", &s.registrations.len())
            .field("keys", &s.keys.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-applied transaction behind: work
    // runs on a copy (memory) or inside an SQL transaction (SQLite).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RegistryTx for MemState {
    fn registration(&mut self, id: &str) -> Result<Option<Registration>, RegistryError> {
        Ok(self.registrations.get(id).cloned())
    }
    fn registrations_of(&mut self, client_id: &str) -> Result<Vec<Registration>, RegistryError> {
        Ok(self
            .registrations
            .values()
            .filter(|r| r.client_id == client_id)
            .cloned()
            .collect())
    }
    fn put_registration(&mut self, reg: &Registration) -> Result<(), RegistryError> {
        self.registrations.insert(reg.id.clone(), reg.clone());
        Ok(())
    }
    fn delete_registration(&mut self, id: &str) -> Result<bool, RegistryError> {
        self.commands.remove(id);
        Ok(self.registrations.remove(id).is_some())
    }
    fn key(&mut self, rki: &str) -> Result<Option<KeyRegistration>, RegistryError> {
        Ok(self.keys.get(rki).cloned())
    }
    fn put_key(&mut self, key: &KeyRegistration) -> Result<(), RegistryError> {
        self.keys.insert(key.relative_key_id.clone(), key.clone());
        Ok(())
    }
    fn delete_key(&mut self, rki: &str) -> Result<bool, RegistryError> {
        Ok(self.keys.remove(rki).is_some())
    }
    fn commands(&mut self, reg_id: &str) -> Result<CommandState, RegistryError> {
        Ok(self.commands.get(reg_id).cloned().unwrap_or_default())
    }
    fn put_commands(&mut self, reg_id: &str, state: &CommandState) -> Result<(), RegistryError> {
        self.commands.insert(reg_id.to_string(), state.clone());
        Ok(())
    }
}

impl Registry for MemoryRegistry {
    fn transact(
        &self,
        work: &mut dyn FnMut(&mut dyn RegistryTx) -> Result<(), ProcedureError>,
    ) -> Result<(), ProcedureError> {
        let mut guard = lock(&self.state);
        let mut copy = guard.clone();
        work(&mut copy)?;
        *guard = copy;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mef_registrations (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    admin_fqdn  TEXT NOT NULL,
    expiration  INTEGER NOT NULL,
    labels      TEXT,
    current_cmd TEXT,
    reports     TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS mef_registrations_client ON mef_registrations(client_id);
CREATE TABLE IF NOT EXISTS mef_key_registrations (
    rki               TEXT PRIMARY KEY,
    source_client_id  TEXT NOT NULL,
    admin_fqdn        TEXT NOT NULL,
    suid              INTEGER NOT NULL,
    target_ids        TEXT NOT NULL,
    labels            TEXT,
    expiration        INTEGER NOT NULL,
    sealed_key        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS mef_commands (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    reg_id      TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mef_commands_reg ON mef_commands(reg_id, seq);
";

/// A registry in an SQLite file (WAL mode). Key Values are sealed with the given [`Sealer`].
pub struct SqliteRegistry {
    conn: Mutex<Connection>,
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for SqliteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRegistry").finish_non_exhaustive()
    }
}

impl SqliteRegistry {
    /// Opens (creating when needed) the registry at `path`.
    pub fn open(path: &Path, sealer: Arc<Sealer>) -> Result<Self, RegistryError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
            sealer,
        })
    }
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    sealer: &'a Sealer,
}

fn key_aad(rki: &str) -> Vec<u8> {
    let mut aad = b"m2mtrust-mef-key-registration:".to_vec();
    aad.extend_from_slice(rki.as_bytes());
    aad
}

fn to_json<T: Serialize>(v: &T) -> Result<String, RegistryError> {
    serde_json::to_string(v).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, RegistryError> {
    serde_json::from_str(s).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

fn time_from(secs: i64) -> Result<DateTime<Utc>, RegistryError> {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .ok_or_else(|| RegistryError::Corrupt(format!("timestamp {secs}")))
}

fn fqdn_from(s: &str) -> Result<Fqdn, RegistryError> {
    Fqdn::parse(s).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

type RegRow = (String, String, String, i64, Option<String>);

fn reg_from_row(row: RegRow) -> Result<Registration, RegistryError> {
    let (id, client_id, admin, exp, labels) = row;
    Ok(Registration {
        id,
        client_id,
        admin_fqdn: fqdn_from(&admin)?,
        expiration: time_from(exp)?,
        labels: labels.as_deref().map(from_json).transpose()?,
    })
}

fn read_reg_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RegRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

impl RegistryTx for SqliteTx<'_> {
    fn registration(&mut self, id: &str) -> Result<Option<Registration>, RegistryError> {
        let row = self
            .tx
            .query_row(
                "SELECT id, client_id, admin_fqdn, expiration, labels FROM mef_registrations WHERE id = ?1",
                params![id],
                read_reg_row,
            )
            .optional()?;
        row.map(reg_from_row).transpose()
    }

    fn registrations_of(&mut self, client_id: &str) -> Result<Vec<Registration>, RegistryError> {
        let mut stmt = self.tx.prepare(
            "SELECT id, client_id, admin_fqdn, expiration, labels FROM mef_registrations WHERE client_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![client_id], read_reg_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(reg_from_row(row?)?);
        }
        Ok(out)
    }

    fn put_registration(&mut self, reg: &Registration) -> Result<(), RegistryError> {
        let labels = reg.labels.as_ref().map(to_json).transpose()?;
        self.tx.execute(
            "INSERT INTO mef_registrations (id, client_id, admin_fqdn, expiration, labels)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET client_id = excluded.client_id,
                 admin_fqdn = excluded.admin_fqdn, expiration = excluded.expiration,
                 labels = excluded.labels",
            params![
                reg.id,
                reg.client_id,
                reg.admin_fqdn.as_str(),
                reg.expiration.timestamp(),
                labels
            ],
        )?;
        Ok(())
    }

    fn delete_registration(&mut self, id: &str) -> Result<bool, RegistryError> {
        self.tx
            .execute("DELETE FROM mef_commands WHERE reg_id = ?1", params![id])?;
        let n = self
            .tx
            .execute("DELETE FROM mef_registrations WHERE id = ?1", params![id])?;
        Ok(n > 0)
    }

    fn key(&mut self, rki: &str) -> Result<Option<KeyRegistration>, RegistryError> {
        type Row = (String, String, i64, String, Option<String>, i64, Vec<u8>);
        let row: Option<Row> = self
            .tx
            .query_row(
                "SELECT source_client_id, admin_fqdn, suid, target_ids, labels, expiration, sealed_key
                 FROM mef_key_registrations WHERE rki = ?1",
                params![rki],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((src, admin, suid, tids, labels, exp, sealed)) = row else {
            return Ok(None);
        };
        let suid =
            u16::try_from(suid).map_err(|_| RegistryError::Corrupt(format!("suid {suid}")))?;
        Ok(Some(KeyRegistration {
            relative_key_id: rki.to_string(),
            source_client_id: src,
            admin_fqdn: fqdn_from(&admin)?,
            suid: Suid(suid),
            target_ids: from_json(&tids)?,
            labels: labels.as_deref().map(from_json).transpose()?,
            expiration: time_from(exp)?,
            key: self.sealer.open(&sealed, &key_aad(rki))?,
        }))
    }

    fn put_key(&mut self, key: &KeyRegistration) -> Result<(), RegistryError> {
        let sealed = self
            .sealer
            .seal(key.key.expose_bytes(), &key_aad(&key.relative_key_id))?;
        let labels = key.labels.as_ref().map(to_json).transpose()?;
        self.tx.execute(
            "INSERT OR REPLACE INTO mef_key_registrations
             (rki, source_client_id, admin_fqdn, suid, target_ids, labels, expiration, sealed_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                key.relative_key_id,
                key.source_client_id,
                key.admin_fqdn.as_str(),
                i64::from(key.suid.0),
                to_json(&key.target_ids)?,
                labels,
                key.expiration.timestamp(),
                sealed
            ],
        )?;
        Ok(())
    }

    fn delete_key(&mut self, rki: &str) -> Result<bool, RegistryError> {
        let n = self.tx.execute(
            "DELETE FROM mef_key_registrations WHERE rki = ?1",
            params![rki],
        )?;
        Ok(n > 0)
    }

    fn commands(&mut self, reg_id: &str) -> Result<CommandState, RegistryError> {
        let head: Option<(Option<String>, String)> = self
            .tx
            .query_row(
                "SELECT current_cmd, reports FROM mef_registrations WHERE id = ?1",
                params![reg_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((current, reports)) = head else {
            return Ok(CommandState::default());
        };
        let mut stmt = self
            .tx
            .prepare("SELECT description FROM mef_commands WHERE reg_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![reg_id], |r| r.get::<_, String>(0))?;
        let mut queue = VecDeque::new();
        for row in rows {
            queue.push_back(from_json(&row?)?);
        }
        Ok(CommandState {
            queue,
            current: current.as_deref().map(from_json).transpose()?,
            reports: from_json(&reports)?,
        })
    }

    fn put_commands(&mut self, reg_id: &str, state: &CommandState) -> Result<(), RegistryError> {
        let current = state.current.as_ref().map(to_json).transpose()?;
        let n = self.tx.execute(
            "UPDATE mef_registrations SET current_cmd = ?2, reports = ?3 WHERE id = ?1",
            params![reg_id, current, to_json(&state.reports)?],
        )?;
        if n == 0 {
            return Err(RegistryError::Corrupt(format!(
                "command state for unknown registration {reg_id}"
            )));
        }
        self.tx.execute(
            "DELETE FROM mef_commands WHERE reg_id = ?1",
            params![reg_id],
        )?;
        for cmd in &state.queue {
            self.tx.execute(
                "INSERT INTO mef_commands (reg_id, description) VALUES (?1, ?2)",
                params![reg_id, to_json(cmd)?],
            )?;
        }
        Ok(())
    }
}

impl Registry for SqliteRegistry {
    fn transact(
        &self,
        work: &mut dyn FnMut(&mut dyn RegistryTx) -> Result<(), ProcedureError>,
    ) -> Result<(), ProcedureError> {
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(RegistryError::from)?;
        {
            let mut view = SqliteTx {
                tx: &tx,
                sealer: &self.sealer,
            };
            // Dropping `tx` without commit rolls back.
            work(&mut view)?;
        }
        tx.commit().map_err(RegistryError::from)?;
        Ok(())
    }
}
