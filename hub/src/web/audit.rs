//! The audit log: an append-only, hash-chained table (`audit_log`).
//!
//! Entry `n` stores `prev_hash` = hash of entry `n-1` (64 zeros for the
//! first) and `hash` = SHA-256 over `"vigil.audit.v1\0"` followed by each of
//! `seq, at, actor, action, subject, detail, prev_hash` as an 8-byte
//! big-endian length and the UTF-8 bytes (`seq` in decimal). Editing,
//! inserting or deleting an entry in the middle breaks the chain at that
//! entry; `verify` names the first broken one.
//!
//! Invariants:
//! 1. Appends run in a `BEGIN IMMEDIATE` transaction: read the head, insert
//!    `seq = head + 1`; two writers never fork the chain.
//! 2. Entries are never updated or deleted by the hub.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use vigil_evidence::digest::Sha256Digest;

use super::error::WebError;

/// Hash of the (absent) entry before the first.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// 1, 2, 3, ...
    pub seq: i64,
    /// UTC time, RFC 3339 with milliseconds.
    pub at: String,
    /// Username (or `-` for anonymous, `cli` for the command line).
    pub actor: String,
    /// What happened: `login`, `clip_view`, `export_create`, ...
    pub action: String,
    /// What it happened to: an event, clip, user or agent id.
    pub subject: String,
    /// JSON object with details.
    pub detail: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// Computes an entry's hash (module docs give the layout).
pub fn entry_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let mut buf = b"vigil.audit.v1\0".to_vec();
    let seq = seq.to_string();
    for f in [seq.as_str(), at, actor, action, subject, detail, prev_hash] {
        buf.extend_from_slice(&(f.len() as u64).to_be_bytes());
        buf.extend_from_slice(f.as_bytes());
    }
    Sha256Digest::of(&buf).to_hex()
}

fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    vigil_evidence::record::utc_ms::format(&t)
}

/// Appends one entry (invariant 1) and returns it.
pub fn append(
    conn: &mut Connection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<AuditEntry, WebError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match head {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let at = now_rfc3339();
    let detail = detail.to_string();
    let hash = entry_hash(seq, &at, actor, action, subject, &detail, &prev_hash);
    tx.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq, at, actor, action, subject, detail, prev_hash, hash],
    )?;
    tx.commit()?;
    Ok(AuditEntry {
        seq,
        at,
        actor: actor.into(),
        action: action.into(),
        subject: subject.into(),
        detail,
        prev_hash,
        hash,
    })
}

/// Result of checking the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry, if any.
    pub head: Option<String>,
    /// True if every entry links and hashes correctly.
    pub intact: bool,
    /// The first broken entry and why.
    pub broken_seq: Option<i64>,
    /// Sentence explaining the break.
    pub problem: Option<String>,
}

/// The columns [`entry_row`] reads, in its order.
macro_rules! ENTRY_SELECT {
    () => {
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log"
    };
}

/// One `audit_log` row selected with [`ENTRY_SELECT`].
fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        detail: r.get(5)?,
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

/// Recomputes every hash and link, oldest first; stops at the first break.
pub fn verify(conn: &Connection) -> Result<Verification, WebError> {
    let mut stmt = conn.prepare(concat!(ENTRY_SELECT!(), " ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut expected_prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut entries = 0u64;
    let mut head = None;
    while let Some(r) = rows.next()? {
        let e = entry_row(r)?;
        let problem = if e.seq != expected_seq {
            Some(format!(
                "entry {} follows entry {}: entries {}..{} are missing",
                e.seq,
                expected_seq - 1,
                expected_seq,
                e.seq - 1
            ))
        } else if e.prev_hash != expected_prev {
            Some(format!(
                "entry {} names previous hash {} but entry {} hashes to {}",
                e.seq,
                e.prev_hash,
                e.seq - 1,
                expected_prev
            ))
        } else {
            let h = entry_hash(
                e.seq,
                &e.at,
                &e.actor,
                &e.action,
                &e.subject,
                &e.detail,
                &e.prev_hash,
            );
            (h != e.hash).then(|| {
                format!(
                    "entry {} was altered: its content hashes to {h}, not the stored {}",
                    e.seq, e.hash
                )
            })
        };
        if let Some(problem) = problem {
            return Ok(Verification {
                entries,
                head,
                intact: false,
                broken_seq: Some(e.seq),
                problem: Some(problem),
            });
        }
        entries += 1;
        expected_seq = e.seq + 1;
        expected_prev = e.hash.clone();
        head = Some(e.hash);
    }
    Ok(Verification {
        entries,
        head,
        intact: true,
        broken_seq: None,
        problem: None,
    })
}

/// A page of entries, newest first, with `seq < before`.
pub fn page(
    conn: &Connection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, WebError> {
    let mut stmt = conn.prepare(concat!(
        ENTRY_SELECT!(),
        " WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit], entry_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Entries whose subject is one of `subjects` (custody for an export).
pub fn for_subjects(conn: &Connection, subjects: &[String]) -> Result<Vec<AuditEntry>, WebError> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare(concat!(ENTRY_SELECT!(), " WHERE subject = ?1 ORDER BY seq"))?;
    for s in subjects {
        let rows = stmt.query_map(params![s], entry_row)?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}
