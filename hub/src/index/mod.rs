//! The SQLite index (`DATA/index.sqlite`, WAL): agents and their keys, clips,
//! chain records, events, agent status and health, camera snapshots and alerts.
//! The schema and its migrations are in [`schema`].
//!
//! Invariant: a `clips` row is inserted only after its file is durable under
//! `DATA/clips/` (see `files.rs`), so every indexed clip can be read back.

pub mod schema;
mod telemetry;

pub use telemetry::CameraHealthRow;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

/// An enrolled agent.
#[derive(Debug, Clone)]
pub struct AgentRow {
    /// The agent's id (also its MQTT username).
    pub agent_id: String,
    /// PEM of the enrolled public key: the only key its manifests may be signed with.
    pub public_key_pem: String,
    /// Lowercase hex id of that key.
    pub key_id: String,
    /// Unix seconds of the (last) enrolment.
    pub enrolled_at: i64,
    /// PHC string (argon2id) of the MQTT password; `None` for agents enrolled before
    /// credentials existed (they cannot log in to the embedded broker until re-enrolled).
    pub mqtt_password_hash: Option<String>,
    /// Unix seconds of the revocation; a revoked agent's messages and logins are refused.
    pub revoked_at: Option<i64>,
}

/// Two recorded pieces whose times are further apart than this while the second says it
/// continues the first leave an unexplained gap (a `missing_clip` alert; the timeline's
/// `missing`). Pieces meet exactly on a key frame; the slack covers rounding to ms.
pub const PIECES_MEET_MS: i64 = 1000;

/// A recorded piece's place and times, for the time-gap check.
#[derive(Debug, Clone)]
pub struct PieceTimes {
    /// Its chain seq.
    pub seq: u64,
    /// Unix ms of its first frame.
    pub start_ms: i64,
    /// Unix ms of its end.
    pub end_ms: i64,
    /// `continues`, `agent_start` or `stream_restart`.
    pub start_reason: String,
}

/// A chain position the hub knows from a record (docs/architecture.md, completeness).
#[derive(Debug, Clone)]
pub struct ChainLinkRow {
    /// Agent.
    pub agent_id: String,
    /// Camera.
    pub camera_id: String,
    /// Segment.
    pub segment_id: String,
    /// Seq.
    pub seq: u64,
    /// `piece`, `clip` or `deletion`.
    pub kind: &'static str,
    /// Piece or clip id; the record's hash for a deletion.
    pub id: String,
    /// SHA-256 of the record.
    pub manifest_sha256: String,
    /// What it links back to.
    pub prev_manifest_sha256: String,
    /// Manifest start, Unix ms.
    pub start_ms: Option<i64>,
    /// Manifest end, Unix ms.
    pub end_ms: Option<i64>,
    /// Clip file size.
    pub size: Option<u64>,
    /// A piece recovered after a crash.
    pub recovered: bool,
    /// A piece's start reason.
    pub start_reason: Option<&'static str>,
}

/// A chain position next to the one being checked.
#[derive(Debug, Clone)]
pub struct ChainNeighbour {
    /// Clip at that position.
    pub clip_id: String,
    /// SHA-256 of its canonical manifest.
    pub manifest_sha256: String,
    /// What it links back to.
    pub prev_manifest_sha256: String,
}

/// A clip ready to be indexed.
#[derive(Debug, Clone)]
pub struct ClipRow<'a> {
    pub clip_id: &'a str,
    pub agent_id: &'a str,
    pub camera_id: &'a str,
    pub segment_id: &'a str,
    pub seq: u64,
    pub manifest: &'a [u8],
    pub manifest_sha256: &'a str,
    pub prev_manifest_sha256: &'a str,
    pub signature: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub path: &'a str,
}

/// Alert kinds operators see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A gap in a camera's chain.
    MissingClip,
    /// A conflicting or badly linked clip.
    Tamper,
    /// A clip that failed verification.
    Rejected,
    /// The agent dropped outbox entries (full disk budget) before delivering them.
    OutboxDrop,
    /// A login published or subscribed outside its own topics (the embedded broker
    /// refused it and closed the connection); `agent_id` is the login that tried.
    Forgery,
}

impl AlertKind {
    fn as_str(self) -> &'static str {
        match self {
            AlertKind::MissingClip => "missing_clip",
            AlertKind::Tamper => "tamper",
            AlertKind::Rejected => "rejected",
            AlertKind::OutboxDrop => "outbox_drop",
            AlertKind::Forgery => "forgery",
        }
    }
}

fn agent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        agent_id: r.get(0)?,
        public_key_pem: r.get(1)?,
        key_id: r.get(2)?,
        enrolled_at: r.get(3)?,
        mqtt_password_hash: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

/// Appends an alert row on `conn` (the index's connection or a transaction of it).
fn insert_alert(
    conn: &Connection,
    kind: AlertKind,
    agent_id: &str,
    camera_id: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO alerts (kind, agent_id, camera_id, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind.as_str(), agent_id, camera_id, detail, now()],
    )?;
    Ok(())
}

/// The SQLite index.
pub struct Index {
    conn: Connection,
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn seq_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Index {
    /// The connection, for the few queries that live next to their feature
    /// (recording requests, `ingest/commands.rs`).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Opens (creating, migrating) the index in WAL mode.
    pub fn open(path: &Path) -> anyhow::Result<Index> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(Index { conn })
    }

    /// Enrolls an agent (or changes its key or password) and clears a revocation;
    /// the key goes into `agent_keys`, a replaced key is marked replaced there.
    pub fn enroll_agent(
        &self,
        agent_id: &str,
        pem: &str,
        key_id: &str,
        password_hash: &str,
    ) -> rusqlite::Result<()> {
        let at = now();
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE agent_keys SET replaced_at = ?3 WHERE agent_id = ?1 AND key_id != ?2 AND replaced_at IS NULL",
            params![agent_id, key_id, at],
        )?;
        tx.execute(
            "INSERT INTO agent_keys (agent_id, key_id, public_key_pem, enrolled_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(agent_id, key_id) DO UPDATE SET replaced_at = NULL",
            params![agent_id, key_id, pem, at],
        )?;
        tx.execute(
            "INSERT INTO agents (agent_id, public_key_pem, key_id, enrolled_at, mqtt_password_hash, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL)
             ON CONFLICT(agent_id) DO UPDATE SET public_key_pem = ?2, key_id = ?3, enrolled_at = ?4,
                 mqtt_password_hash = ?5, revoked_at = NULL",
            params![agent_id, pem, key_id, at, password_hash],
        )?;
        tx.commit()
    }

    /// Marks an agent revoked; false if it is not enrolled.
    pub fn revoke_agent(&self, agent_id: &str) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "UPDATE agents SET revoked_at = COALESCE(revoked_at, ?2) WHERE agent_id = ?1",
            params![agent_id, now()],
        )?;
        Ok(n == 1)
    }

    /// The enrolled agent, if any (revoked ones included).
    pub fn agent(&self, agent_id: &str) -> rusqlite::Result<Option<AgentRow>> {
        self.conn
            .query_row(
                "SELECT agent_id, public_key_pem, key_id, enrolled_at, mqtt_password_hash, revoked_at
                 FROM agents WHERE agent_id = ?1",
                params![agent_id],
                agent_row,
            )
            .optional()
    }

    /// Every enrolled agent, by id.
    pub fn agents(&self) -> rusqlite::Result<Vec<AgentRow>> {
        let mut st = self.conn.prepare(
            "SELECT agent_id, public_key_pem, key_id, enrolled_at, mqtt_password_hash, revoked_at
             FROM agents ORDER BY agent_id",
        )?;
        let rows = st.query_map([], agent_row)?;
        rows.collect()
    }

    /// `(agent_id, manifest_sha256)` of a stored clip.
    pub fn clip(&self, clip_id: &str) -> rusqlite::Result<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT agent_id, manifest_sha256 FROM clips WHERE clip_id = ?1",
                params![clip_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }

    /// The stored clip at a chain position.
    pub fn at_seq(
        &self,
        agent_id: &str,
        camera_id: &str,
        segment_id: &str,
        seq: u64,
    ) -> rusqlite::Result<Option<ChainNeighbour>> {
        self.conn
            .query_row(
                "SELECT clip_id, manifest_sha256, prev_manifest_sha256 FROM clips
                 WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3 AND seq = ?4
                 UNION ALL
                 SELECT id, manifest_sha256, prev_manifest_sha256 FROM chain_links
                 WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3 AND seq = ?4
                 LIMIT 1",
                params![agent_id, camera_id, segment_id, seq_sql(seq)],
                |r| {
                    Ok(ChainNeighbour {
                        clip_id: r.get(0)?,
                        manifest_sha256: r.get(1)?,
                        prev_manifest_sha256: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    /// The recorded pieces right before and right after `seq` in a segment (by seq), as
    /// `(seq, start_ms, end_ms, start_reason)`: the time-gap check of a new piece.
    pub fn piece_neighbours(
        &self,
        agent_id: &str,
        camera_id: &str,
        segment_id: &str,
        seq: u64,
    ) -> rusqlite::Result<[Option<PieceTimes>; 2]> {
        let one = |sql: &str| {
            self.conn
                .query_row(
                    sql,
                    params![agent_id, camera_id, segment_id, seq_sql(seq)],
                    |r| {
                        Ok(PieceTimes {
                            seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                            start_ms: r.get(1)?,
                            end_ms: r.get(2)?,
                            start_reason: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        })
                    },
                )
                .optional()
        };
        Ok([
            one("SELECT seq, start_ms, end_ms, start_reason FROM chain_links
                 WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3 AND seq < ?4
                   AND kind = 'piece' AND start_ms IS NOT NULL AND end_ms IS NOT NULL
                 ORDER BY seq DESC LIMIT 1")?,
            one("SELECT seq, start_ms, end_ms, start_reason FROM chain_links
                 WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3 AND seq > ?4
                   AND kind = 'piece' AND start_ms IS NOT NULL AND end_ms IS NOT NULL
                 ORDER BY seq ASC LIMIT 1")?,
        ])
    }

    /// Highest stored seq of a segment (clips and records alike).
    pub fn last_seq(
        &self,
        agent_id: &str,
        camera_id: &str,
        segment_id: &str,
    ) -> rusqlite::Result<Option<u64>> {
        let v: Option<i64> = self.conn.query_row(
            "SELECT MAX(seq) FROM (
                 SELECT seq FROM clips WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3
                 UNION ALL
                 SELECT seq FROM chain_links WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3)",
            params![agent_id, camera_id, segment_id],
            |r| r.get(0),
        )?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    }

    /// Stores a chain position known from a record (idempotent on the position).
    pub fn insert_link(&self, l: &ChainLinkRow) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO chain_links
             (agent_id, camera_id, segment_id, seq, kind, id, manifest_sha256, prev_manifest_sha256,
              start_ms, end_ms, size, recovered, start_reason, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                l.agent_id,
                l.camera_id,
                l.segment_id,
                seq_sql(l.seq),
                l.kind,
                l.id,
                l.manifest_sha256,
                l.prev_manifest_sha256,
                l.start_ms,
                l.end_ms,
                l.size.map(|s| s as i64),
                l.recovered,
                l.start_reason,
                now()
            ],
        )?;
        Ok(n == 1)
    }

    /// Marks the pieces a deletion record names as deleted by policy.
    pub fn mark_deleted(
        &self,
        agent_id: &str,
        camera_id: &str,
        pieces: &[(String, u64)],
        by_seq: u64,
        reason: &str,
        at_ms: i64,
    ) -> rusqlite::Result<()> {
        for (segment, seq) in pieces {
            self.conn.execute(
                "UPDATE chain_links SET deleted_seq = ?5, deleted_reason = ?6, deleted_at_ms = ?7
                 WHERE agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3 AND seq = ?4 AND kind = 'piece'",
                params![agent_id, camera_id, segment, seq_sql(*seq), seq_sql(by_seq), reason, at_ms],
            )?;
        }
        Ok(())
    }

    /// SHA-256 of the segment's `chain_reset`, if the agent published it.
    pub fn reset_sha256(
        &self,
        agent_id: &str,
        camera_id: &str,
        segment_id: &str,
    ) -> rusqlite::Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT sha256 FROM chain_records WHERE kind = 'chain_reset'
                 AND agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3",
                params![agent_id, camera_id, segment_id],
                |r| r.get(0),
            )
            .optional()
    }

    /// Stores a verified chain record (idempotent on its hash).
    #[allow(clippy::too_many_arguments)]
    pub fn insert_record(
        &self,
        sha256: &str,
        kind: &str,
        agent_id: &str,
        camera_id: &str,
        segment_id: &str,
        seq: u64,
        record: &[u8],
        signature: &str,
    ) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO chain_records
             (sha256, kind, agent_id, camera_id, segment_id, seq, record, signature, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                sha256,
                kind,
                agent_id,
                camera_id,
                segment_id,
                seq_sql(seq),
                record,
                signature,
                now()
            ],
        )?;
        Ok(n == 1)
    }

    /// Indexes a clip whose file is already durable.
    pub fn insert_clip(&self, c: &ClipRow<'_>) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO clips (clip_id, agent_id, camera_id, segment_id, seq, manifest, manifest_sha256,
             prev_manifest_sha256, signature, sha256, size, path, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                c.clip_id,
                c.agent_id,
                c.camera_id,
                c.segment_id,
                seq_sql(c.seq),
                c.manifest,
                c.manifest_sha256,
                c.prev_manifest_sha256,
                c.signature,
                c.sha256,
                seq_sql(c.size),
                c.path,
                now()
            ],
        )?;
        Ok(())
    }

    /// Records an alert.
    pub fn alert(
        &self,
        kind: AlertKind,
        agent_id: &str,
        camera_id: &str,
        detail: &str,
    ) -> rusqlite::Result<()> {
        insert_alert(&self.conn, kind, agent_id, camera_id, detail)
    }

    /// Records an agent's drop report `entry` and raises its alert, once: false (and
    /// nothing raised) if this report was already recorded (the agent sent it again
    /// because the hub's ack did not reach it). One transaction, so a crash leaves both
    /// or neither.
    pub fn drop_report(
        &mut self,
        agent_id: &str,
        entry: &str,
        camera_id: &str,
        detail: &str,
    ) -> rusqlite::Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO drop_reports (agent_id, entry, received_at) VALUES (?1, ?2, ?3)",
            params![agent_id, entry, now()],
        )?;
        if n == 1 {
            insert_alert(&tx, AlertKind::OutboxDrop, agent_id, camera_id, detail)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Stores an event message; returns false if `(event_id, phase)` was already there.
    pub fn insert_event(
        &self,
        event_id: &str,
        phase: &str,
        agent_id: &str,
        camera_id: &str,
        json: &str,
    ) -> rusqlite::Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO events (event_id, phase, agent_id, camera_id, json, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![event_id, phase, agent_id, camera_id, json, now()],
        )?;
        Ok(n == 1)
    }

    /// Replaces the agent's last status.
    pub fn set_status(&self, agent_id: &str, json: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO agent_status (agent_id, json, received_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(agent_id) DO UPDATE SET json = ?2, received_at = ?3",
            params![agent_id, json, now()],
        )?;
        Ok(())
    }

    /// Count of rows in `table` matching an optional `kind` (for tests and status output).
    pub fn count(&self, sql: &str) -> rusqlite::Result<i64> {
        self.conn.query_row(sql, [], |r| r.get(0))
    }
}
