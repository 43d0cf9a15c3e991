//! SQLite access for the web app: a small connection pool over the hub's
//! index file (`DATA/index.sqlite`, WAL) and the web's own tables.
//!
//! The ingest writes `agents`, `clips`, `events`, `alerts`, ... through its
//! own connection (maybe in another process); the web reads those and owns
//! the tables below. Every connection waits up to 5 s on a locked database
//! (`busy_timeout`) instead of failing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::error::WebError;

/// Tables owned by the web module (created if missing).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS login_attempts (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    ok INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_at ON login_attempts (at);
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS event_annotations (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('ack', 'note', 'flag', 'unflag')),
    username TEXT NOT NULL,
    text TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS event_annotations_event ON event_annotations (event_id);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_acks (
    alert_id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    case_number TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    clip_ids TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clip_checks (
    clip_id TEXT PRIMARY KEY,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
-- Derived from `events` / `clips` by the live poller (live.rs); rebuildable.
CREATE TABLE IF NOT EXISTS web_cursors (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS web_events (
    event_id TEXT PRIMARY KEY,
    first_rowid INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    label TEXT NOT NULL,
    top_score REAL NOT NULL,
    zones TEXT NOT NULL,
    start_utc TEXT NOT NULL,
    start_unix INTEGER NOT NULL,
    end_utc TEXT,
    ended INTEGER NOT NULL,
    end_reason TEXT,
    previous_event_id TEXT,
    best_box TEXT,
    snapshot_width INTEGER,
    snapshot_height INTEGER,
    thumb BLOB,
    jpeg BLOB,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS web_events_first ON web_events (first_rowid);
CREATE INDEX IF NOT EXISTS web_events_start ON web_events (start_unix);
CREATE INDEX IF NOT EXISTS web_events_camera ON web_events (agent_id, camera_id, start_unix);
CREATE TABLE IF NOT EXISTS web_clips (
    clip_id TEXT PRIMARY KEY,
    clip_rowid INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL,
    start_unix INTEGER NOT NULL,
    end_unix INTEGER NOT NULL,
    labels TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_clips_time ON web_clips (start_unix);
CREATE TABLE IF NOT EXISTS web_event_clips (
    event_id TEXT NOT NULL,
    clip_id TEXT NOT NULL,
    PRIMARY KEY (event_id, clip_id)
);
CREATE INDEX IF NOT EXISTS web_event_clips_clip ON web_event_clips (clip_id);
";

/// A pool of SQLite connections to one file.
pub struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Opens a connection with the settings every web connection uses.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Db {
    /// Opens the database at `path` and creates the web tables.
    pub fn open(path: &Path) -> Result<Arc<Db>, WebError> {
        let conn = connect(path).map_err(|e| {
            WebError::internal(format!("cannot open the index {}", path.display()), e)
        })?;
        conn.execute_batch(SCHEMA).map_err(|e| {
            WebError::internal(
                format!("cannot create the web tables in {}", path.display()),
                e,
            )
        })?;
        Ok(Arc::new(Db {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
        }))
    }

    fn take(&self) -> Result<Connection, WebError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(c) => Ok(c),
            None => connect(&self.path).map_err(|e| WebError::internal("cannot open the index", e)),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut v) = self.idle.lock() {
            if v.len() < 8 {
                v.push(conn);
            }
        }
    }

    /// Runs `f` with a connection on the blocking thread pool.
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, WebError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| WebError::internal("a database task failed", e))?
    }

    /// Runs `f` with a connection on the current thread (CLI, blocking code).
    pub fn with<T, F>(&self, f: F) -> Result<T, WebError>
    where
        F: FnOnce(&mut Connection) -> Result<T, WebError>,
    {
        let mut conn = self.take()?;
        let out = f(&mut conn);
        self.give_back(conn);
        out
    }
}

/// True if `e` says a table does not exist (tables other helpers add later).
pub fn is_missing_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
