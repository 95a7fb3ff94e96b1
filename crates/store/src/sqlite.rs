//! The embedded SQLite store: WAL journal, one writer thread with group commit, pooled readers.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread;

use m2mtrust_model::{Resource, ResourceType, Timestamp};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, params, params_from_iter, types::Value as Sql,
};
use serde_json::{Map, Value};

use crate::{
    Completion, CredentialRecord, Deleted, DiscoveryQuery, Reader, Store, StoreError, WriteJob,
    Writer,
};

/// How hard a commit works before the caller is told it succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fsync` on every group commit: survives power loss (the default).
    #[default]
    Full,
    /// Commit to the OS page cache only: survives a killed process, not a power cut.
    Process,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resources (
    seq   INTEGER PRIMARY KEY,
    ri    TEXT NOT NULL UNIQUE,
    pi    TEXT NOT NULL,
    rn    TEXT NOT NULL,
    ty    INTEGER NOT NULL,
    srn   TEXT NOT NULL UNIQUE,
    depth INTEGER NOT NULL,
    ct    INTEGER NOT NULL,
    lt    INTEGER NOT NULL,
    et    INTEGER,
    body  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS resources_children ON resources(pi, ty, seq);
CREATE INDEX IF NOT EXISTS resources_expiry ON resources(et) WHERE et IS NOT NULL;
CREATE TABLE IF NOT EXISTS credentials (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    secret     BLOB,
    binding    TEXT NOT NULL,
    bound_ids  TEXT NOT NULL,
    created    INTEGER NOT NULL
);
";

/// Brings an existing database up to the current schema, one version at a time.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 3 {
        // Version 3: credentials expire (TS-0003 §10.7 enrolment expiry).
        let has_expires = conn
            .prepare("SELECT 1 FROM pragma_table_info('credentials') WHERE name = 'expires'")?
            .exists([])?;
        if !has_expires {
            conn.execute_batch("ALTER TABLE credentials ADD COLUMN expires INTEGER")?;
        }
    }
    conn.execute_batch("PRAGMA user_version = 3")?;
    Ok(())
}

/// Largest number of jobs committed in one transaction.
const MAX_GROUP: usize = 512;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<WriteJob>>>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_connection(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Process => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (or creates) the database file and starts the writer thread.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_connection(&path, durability)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let (tx, rx) = mpsc::channel::<WriteJob>();
        let writer = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Corrupt {
                ri: String::new(),
                why: format!("cannot start writer: {e}"),
            })?;
        Ok(Self {
            path,
            jobs: Mutex::new(Some(tx)),
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Stops accepting writes, lets queued ones commit and waits for the writer to finish.
    pub fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }

    fn checkout(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.readers.lock().ok().and_then(|mut r| r.pop()) {
            return Ok(conn);
        }
        let conn = open_connection(&self.path, Durability::Full)?;
        conn.pragma_update(None, "query_only", "ON")?;
        Ok(conn)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store for SqliteStore {
    fn with_reader(
        &self,
        f: &mut dyn FnMut(&dyn Reader) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.checkout()?;
        let result = f(&Conn(&conn));
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < 32
        {
            pool.push(conn);
        }
        result
    }

    fn submit(&self, job: WriteJob) -> Result<(), StoreError> {
        let guard = self.jobs.lock().map_err(|_| StoreError::Closed)?;
        guard
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut completions: Vec<Completion> = Vec::with_capacity(group.len());
        let outcome = run_group(&conn, group, &mut completions);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = completions.len(), "group commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        let message = outcome.as_ref().err().map(ToString::to_string);
        for c in completions {
            c(match &message {
                None => Ok(()),
                Some(m) => Err(StoreError::Corrupt {
                    ri: String::new(),
                    why: format!("commit failed: {m}"),
                }),
            });
        }
    }
}

fn run_group(
    conn: &Connection,
    group: Vec<WriteJob>,
    completions: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut tx = Conn(conn);
    let mut failure = None;
    for job in group {
        if failure.is_some() {
            // The transaction is unusable; the remaining jobs learn the error through their completion.
            let (_, c) = job(&mut Poisoned);
            completions.push(c);
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            failure = Some(e);
            let (_, c) = job(&mut Poisoned);
            completions.push(c);
            continue;
        }
        let (ok, c) = job(&mut tx);
        completions.push(c);
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = conn.execute_batch(end) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        return Err(e.into());
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// A stand-in writer for jobs that arrive after the transaction failed; every call fails.
struct Poisoned;

impl Reader for Poisoned {
    fn get(&self, _: &str) -> Result<Option<Resource>, StoreError> {
        Err(StoreError::Closed)
    }
    fn get_by_srn(&self, _: &str) -> Result<Option<Resource>, StoreError> {
        Err(StoreError::Closed)
    }
    fn children(&self, _: &str, _: Option<ResourceType>) -> Result<Vec<Resource>, StoreError> {
        Err(StoreError::Closed)
    }
    fn edge_child(
        &self,
        _: &str,
        _: ResourceType,
        _: bool,
        _: Timestamp,
    ) -> Result<Option<Resource>, StoreError> {
        Err(StoreError::Closed)
    }
    fn discover(&self, _: &DiscoveryQuery) -> Result<Vec<Resource>, StoreError> {
        Err(StoreError::Closed)
    }
    fn expired(&self, _: Timestamp, _: u32) -> Result<Vec<Resource>, StoreError> {
        Err(StoreError::Closed)
    }
    fn subscribed_parents(&self) -> Result<Vec<String>, StoreError> {
        Err(StoreError::Closed)
    }
    fn credential(&self, _: &str) -> Result<Option<CredentialRecord>, StoreError> {
        Err(StoreError::Closed)
    }
    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        Err(StoreError::Closed)
    }
}

impl Writer for Poisoned {
    fn insert(&mut self, _: &Resource) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
    fn update(&mut self, _: &Resource) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
    fn delete_subtree(&mut self, _: &str) -> Result<Vec<Deleted>, StoreError> {
        Err(StoreError::Closed)
    }
    fn put_credential(&mut self, _: &CredentialRecord) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
    fn remove_credential(&mut self, _: &str) -> Result<bool, StoreError> {
        Err(StoreError::Closed)
    }
}

/// A connection seen as a reader (pooled) or a writer (inside the writer thread's transaction).
struct Conn<'a>(&'a Connection);

const COLUMNS: &str = "ty, srn, body";

fn row_to_resource(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn decode((ty, srn, body): (i64, String, String)) -> Result<Resource, StoreError> {
    let attrs: Map<String, Value> =
        serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
            ri: srn.clone(),
            why: e.to_string(),
        })?;
    let ty = u16::try_from(ty).map_err(|_| StoreError::Corrupt {
        ri: srn.clone(),
        why: format!("type {ty}"),
    })?;
    Ok(Resource {
        ty: ResourceType(ty),
        srn,
        attrs,
    })
}

fn micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.0)
}

fn subtree_end(srn: &str) -> String {
    // '0' is the character after '/', so [srn + "/", srn + "0") is exactly the subtree below srn.
    format!("{srn}0")
}

impl Conn<'_> {
    fn query(&self, sql: &str, args: &[Sql]) -> Result<Vec<Resource>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), row_to_resource)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(row?)?);
        }
        Ok(out)
    }

    fn one(&self, sql: &str, args: &[Sql]) -> Result<Option<Resource>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let row = stmt
            .query_row(params_from_iter(args.iter()), row_to_resource)
            .optional()?;
        row.map(decode).transpose()
    }
}

impl Reader for Conn<'_> {
    fn get(&self, ri: &str) -> Result<Option<Resource>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM resources WHERE ri = ?1"),
            &[Sql::Text(ri.into())],
        )
    }

    fn get_by_srn(&self, srn: &str) -> Result<Option<Resource>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM resources WHERE srn = ?1"),
            &[Sql::Text(srn.into())],
        )
    }

    fn children(&self, pi: &str, ty: Option<ResourceType>) -> Result<Vec<Resource>, StoreError> {
        match ty {
            Some(ty) => self.query(
                &format!("SELECT {COLUMNS} FROM resources WHERE pi = ?1 AND ty = ?2 ORDER BY seq"),
                &[Sql::Text(pi.into()), Sql::Integer(ty.0.into())],
            ),
            None => self.query(
                &format!("SELECT {COLUMNS} FROM resources WHERE pi = ?1 ORDER BY seq"),
                &[Sql::Text(pi.into())],
            ),
        }
    }

    fn edge_child(
        &self,
        pi: &str,
        ty: ResourceType,
        newest: bool,
        now: Timestamp,
    ) -> Result<Option<Resource>, StoreError> {
        let order = if newest { "DESC" } else { "ASC" };
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM resources WHERE pi = ?1 AND ty = ?2 AND (et IS NULL OR et > ?3) \
                 ORDER BY seq {order} LIMIT 1"
            ),
            &[Sql::Text(pi.into()), Sql::Integer(ty.0.into()), Sql::Integer(now.0)],
        )
    }

    fn discover(&self, q: &DiscoveryQuery) -> Result<Vec<Resource>, StoreError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM resources WHERE (srn = ?1 OR (srn >= ?2 AND srn < ?3)) AND (et IS NULL OR et > ?4)"
        );
        let mut args = vec![
            Sql::Text(q.root_srn.clone()),
            Sql::Text(format!("{}/", q.root_srn)),
            Sql::Text(subtree_end(&q.root_srn)),
            Sql::Integer(q.now.0),
        ];
        let mut push = |sql: &mut String, cond: &str, v: Sql| {
            args.push(v);
            sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
        };
        let f = &q.filter;
        if let Some(lvl) = f.level {
            push(
                &mut sql,
                " AND depth <= ?",
                Sql::Integer(i64::from(q.root_depth) + i64::from(lvl)),
            );
        }
        if !f.resource_types.is_empty() {
            let list: Vec<String> = f.resource_types.iter().map(|t| t.0.to_string()).collect();
            sql.push_str(&format!(" AND ty IN ({})", list.join(",")));
        }
        for (cond, t) in [
            (" AND ct > ?", f.created_after),
            (" AND ct < ?", f.created_before),
            (" AND lt >= ?", f.modified_since),
            (" AND lt < ?", f.unmodified_since),
            (" AND et > ?", f.expire_after),
            (" AND et < ?", f.expire_before),
        ] {
            if let Some(t) = micros(t) {
                push(&mut sql, cond, Sql::Integer(t));
            }
        }
        if !f.labels.is_empty() {
            let mut marks = Vec::new();
            for l in &f.labels {
                args.push(Sql::Text(l.clone()));
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM json_each(body, '$.lbl') WHERE value IN ({}))",
                marks.join(",")
            ));
        }
        args.push(Sql::Integer(i64::from(q.limit)));
        args.push(Sql::Integer(i64::from(q.offset)));
        sql.push_str(&format!(
            " ORDER BY srn LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        ));
        self.query(&sql, &args)
    }

    fn expired(&self, now: Timestamp, limit: u32) -> Result<Vec<Resource>, StoreError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM resources WHERE et IS NOT NULL AND et <= ?1 ORDER BY depth LIMIT ?2"),
            &[Sql::Integer(now.0), Sql::Integer(i64::from(limit))],
        )
    }

    fn credential(&self, id: &str) -> Result<Option<CredentialRecord>, StoreError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = ?1"
        ))?;
        let row = stmt.query_row(params![id], row_to_credential).optional()?;
        row.map(decode_credential).transpose()
    }

    fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials ORDER BY id"
        ))?;
        let rows = stmt.query_map([], row_to_credential)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode_credential(row?)?);
        }
        Ok(out)
    }

    fn subscribed_parents(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT DISTINCT pi FROM resources WHERE ty = ?1")?;
        let rows = stmt.query_map(params![ResourceType::SUBSCRIPTION.0], |r| {
            r.get::<_, String>(0)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const CREDENTIAL_COLUMNS: &str = "id, kind, secret, binding, bound_ids, created, expires";

type CredentialRow = (
    String,
    String,
    Option<Vec<u8>>,
    String,
    String,
    i64,
    Option<i64>,
);

fn row_to_credential(row: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn decode_credential(
    (id, kind, secret, binding, bound, created, expires): CredentialRow,
) -> Result<CredentialRecord, StoreError> {
    let bound_ids: Vec<String> = serde_json::from_str(&bound).map_err(|e| StoreError::Corrupt {
        ri: id.clone(),
        why: e.to_string(),
    })?;
    Ok(CredentialRecord {
        id,
        kind,
        sealed_secret: secret,
        binding,
        bound_ids,
        created: Timestamp(created),
        expires: expires.map(Timestamp),
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl Writer for Conn<'_> {
    fn insert(&mut self, r: &Resource) -> Result<(), StoreError> {
        let body = serde_json::to_string(&r.attrs).map_err(|e| StoreError::Corrupt {
            ri: r.ri().into(),
            why: e.to_string(),
        })?;
        let depth = r.srn.matches('/').count() as i64;
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO resources (ri, pi, rn, ty, srn, depth, ct, lt, et, body) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
        )?;
        stmt.execute(params![
            r.ri(),
            r.pi(),
            r.rn(),
            r.ty.0,
            r.srn,
            depth,
            micros(r.ct()).unwrap_or(0),
            micros(r.lt()).unwrap_or(0),
            micros(r.et()),
            body
        ])
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate(r.srn.clone())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    fn update(&mut self, r: &Resource) -> Result<(), StoreError> {
        let body = serde_json::to_string(&r.attrs).map_err(|e| StoreError::Corrupt {
            ri: r.ri().into(),
            why: e.to_string(),
        })?;
        let mut stmt = self
            .0
            .prepare_cached("UPDATE resources SET lt = ?2, et = ?3, body = ?4 WHERE ri = ?1")?;
        stmt.execute(params![
            r.ri(),
            micros(r.lt()).unwrap_or(0),
            micros(r.et()),
            body
        ])?;
        Ok(())
    }

    fn put_credential(&mut self, c: &CredentialRecord) -> Result<(), StoreError> {
        let bound = serde_json::to_string(&c.bound_ids).map_err(|e| StoreError::Corrupt {
            ri: c.id.clone(),
            why: e.to_string(),
        })?;
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO credentials (id, kind, secret, binding, bound_ids, created, expires) VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        stmt.execute(params![
            c.id,
            c.kind,
            c.sealed_secret,
            c.binding,
            bound,
            c.created.0,
            c.expires.map(|t| t.0)
        ])
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate(c.id.clone())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    fn remove_credential(&mut self, id: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .0
            .prepare_cached("DELETE FROM credentials WHERE id = ?1")?;
        Ok(stmt.execute(params![id])? > 0)
    }

    fn delete_subtree(&mut self, ri: &str) -> Result<Vec<Deleted>, StoreError> {
        let Some(root) = self.get(ri)? else {
            return Ok(Vec::new());
        };
        let below = self.query(
            &format!(
                "SELECT {COLUMNS} FROM resources WHERE srn >= ?1 AND srn < ?2 ORDER BY depth, seq"
            ),
            &[
                Sql::Text(format!("{}/", root.srn)),
                Sql::Text(subtree_end(&root.srn)),
            ],
        )?;
        let mut stmt = self
            .0
            .prepare_cached("DELETE FROM resources WHERE srn = ?1 OR (srn >= ?2 AND srn < ?3)")?;
        stmt.execute(params![
            root.srn,
            format!("{}/", root.srn),
            subtree_end(&root.srn)
        ])?;
        let mut out = vec![Deleted { resource: root }];
        out.extend(below.into_iter().map(|resource| Deleted { resource }));
        Ok(out)
    }
}
