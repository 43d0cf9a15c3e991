//! Schema and migrations of `DATA/index.sqlite`, versioned with `PRAGMA user_version`.
//!
//! | version | what |
//! | --- | --- |
//! | 0 | the first hub slice: agents, clips, chain_records, events, agent_status, alerts |
//! | 1 | agents gain `mqtt_password_hash` and `revoked_at`; `agent_keys` (key history); alerts accept `outbox_drop`; `agent_health`, `camera_health`, `snapshots` |
//! | 2 | alerts accept `forgery` (a login published or subscribed outside its own topics); `drop_reports` (each agent drop report once, so a resent one raises no second alert) |
//! | 3 | `chain_links`: every chain position the hub knows from a record alone (recorded pieces, event-clip manifests announced ahead of their transfer, deletion records), with piece times and deletion state, for the completeness timeline; `recording_requests` (pulls and legal holds the ingest sends to agents) |
//!
//! Invariants:
//! 1. A migration runs in one transaction together with the `user_version` bump, so a
//!    crash leaves the database at the old or the new version, never between.
//! 2. Migrations keep every existing row (the `alerts` table is copied, not recreated empty).
//! 3. A database with a newer version than this binary knows is refused, never modified.

use rusqlite::Connection;

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = 3;

/// Version 0, as created by the first slice (`IF NOT EXISTS`: also a no-op on old databases).
const V0: &str = "
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    key_id TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS clips (
    clip_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    manifest BLOB NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    prev_manifest_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    path TEXT NOT NULL,
    stored_at INTEGER NOT NULL,
    UNIQUE (agent_id, camera_id, segment_id, seq)
);
CREATE TABLE IF NOT EXISTS chain_records (
    sha256 TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record BLOB NOT NULL,
    signature TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    json TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, phase)
);
CREATE TABLE IF NOT EXISTS agent_status (
    agent_id TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('missing_clip', 'tamper', 'rejected')),
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
";

/// 0 → 1 (invariant 2: alerts are copied into the table with the wider CHECK).
const V1: &str = "
ALTER TABLE agents ADD COLUMN mqtt_password_hash TEXT;
ALTER TABLE agents ADD COLUMN revoked_at INTEGER;
CREATE TABLE agent_keys (
    agent_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    replaced_at INTEGER,
    PRIMARY KEY (agent_id, key_id)
);
INSERT OR IGNORE INTO agent_keys (agent_id, key_id, public_key_pem, enrolled_at)
    SELECT agent_id, key_id, public_key_pem, enrolled_at FROM agents;
CREATE TABLE alerts_v1 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('missing_clip', 'tamper', 'rejected', 'outbox_drop')),
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO alerts_v1 (id, kind, agent_id, camera_id, detail, at)
    SELECT id, kind, agent_id, camera_id, detail, at FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_v1 RENAME TO alerts;
CREATE TABLE agent_health (
    agent_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    json TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE camera_health (
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    since TEXT NOT NULL,
    json TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, camera_id)
);
CREATE TABLE snapshots (
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    jpeg BLOB NOT NULL,
    taken_utc TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, camera_id)
);
";

/// 1 → 2 (invariant 2: alerts are copied into the table with the wider CHECK).
const V2: &str = "
CREATE TABLE alerts_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('missing_clip', 'tamper', 'rejected', 'outbox_drop', 'forgery')),
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO alerts_v2 (id, kind, agent_id, camera_id, detail, at)
    SELECT id, kind, agent_id, camera_id, detail, at FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_v2 RENAME TO alerts;
CREATE TABLE drop_reports (
    agent_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, entry)
);
";

/// 2 → 3.
const V3: &str = "
CREATE TABLE chain_links (
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('piece', 'clip', 'deletion')),
    id TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    prev_manifest_sha256 TEXT NOT NULL,
    start_ms INTEGER,
    end_ms INTEGER,
    size INTEGER,
    recovered INTEGER NOT NULL DEFAULT 0,
    start_reason TEXT,
    deleted_seq INTEGER,
    deleted_reason TEXT,
    deleted_at_ms INTEGER,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (agent_id, camera_id, segment_id, seq)
);
CREATE INDEX chain_links_time ON chain_links (agent_id, camera_id, start_ms);
CREATE INDEX chain_links_id ON chain_links (id);
CREATE TABLE recording_requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('pull', 'hold')),
    agent_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    case_number TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'active', 'releasing', 'released')),
    last_sent_at INTEGER,
    completed_at INTEGER
);
";

/// Brings `conn` to [`SCHEMA_VERSION`] (invariants 1-3).
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "the index was written by a newer vigil-hub (schema version {version}; this binary knows up to {SCHEMA_VERSION}); run the newer vigil-hub or restore a backup"
        );
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    if version < 1 {
        tx.execute_batch(V0)?;
        tx.execute_batch(V1)?;
    }
    if version < 2 {
        tx.execute_batch(V2)?;
    }
    if version < 3 {
        tx.execute_batch(V3)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    tracing::info!(
        from = version,
        to = SCHEMA_VERSION,
        "Migrated the index schema"
    );
    Ok(())
}
