//! Evidence export: a `vigil-evidence` bundle (`.zip`) for a selection of
//! clips, with the hub's custody log, named after the case and the user.
//!
//! Contents (docs/evidence.md §7): each clip with its manifest and signature;
//! the agent keys that signed them (from the enrolment record); per
//! (camera, segment) the chain slice from the first exported clip (its
//! `chain_reset` when that clip is seq 1) to the newest manifest the hub
//! holds; `custody/custody.jsonl` with the export request, each clip's
//! storage record and every audit entry about those clips (with their
//! audit-chain hashes). The hub holds no checkpoints yet, so the verifier
//! warns that a deleted tail cannot be ruled out.
//!
//! Order: audit `export_create` → write `DATA/exports/<id>.zip` (fsynced by
//! the bundle writer) → `exports` row. A failure removes the file and audits
//! `export_failed`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use axum::extract::State;
use axum::Json;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;
use vigil_evidence::bundle::BundleWriter;
use vigil_evidence::chain::ChainRecord;
use vigil_evidence::digest::Sha256Digest;
use vigil_evidence::keys::PublicKey;
use vigil_evidence::manifest::SignedManifest;

use super::audit;
use super::auth::{Auth, InvestigatorRole};
use super::clips::agent_key;
use super::db::now;
use super::error::WebError;
use super::media::{is_sha_hex, parse_clip_id};
use super::AppState;
use crate::files::Layout;

/// Most clips in one export.
pub const MAX_EXPORT_CLIPS: usize = 1000;

/// Body of `POST /api/exports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The case this evidence is for (1-64 printable characters).
    pub case_number: String,
    /// Clips to export.
    #[serde(default)]
    pub clip_ids: Vec<String>,
    /// Events whose stored clips are exported too.
    #[serde(default)]
    pub event_ids: Vec<String>,
    /// A recorded window: its stored pieces are exported with `window.json`, so
    /// `vigil-verify` checks they cover it (or names the missing seconds).
    #[serde(default)]
    pub window: Option<WindowRequest>,
}

/// The window of an export of recorded pieces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    /// Agent.
    pub agent_id: String,
    /// Camera.
    pub camera_id: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
}

impl WindowRequest {
    fn parse(&self) -> Result<vigil_evidence::verify::window::Window, WebError> {
        let t = super::recordings::parse_rfc3339;
        let (from, to) = (t("window.from", &self.from)?, t("window.to", &self.to)?);
        if to <= from {
            return Err(WebError::BadRequest(
                "window.to must be after window.from".into(),
            ));
        }
        Ok(vigil_evidence::verify::window::Window::new(
            &self.camera_id,
            from,
            to,
        ))
    }
}

/// Where an export's zip lives.
pub fn export_path(layout: &Layout, id: &str) -> PathBuf {
    layout.root().join("exports").join(format!("{id}.zip"))
}

fn check_case(case: &str) -> Result<String, WebError> {
    let c = case.trim();
    if c.is_empty() || c.chars().count() > 64 || c.chars().any(char::is_control) {
        return Err(WebError::BadRequest(
            "case_number needs 1-64 printable characters".into(),
        ));
    }
    Ok(c.to_string())
}

fn file_name(case: &str, at: time::OffsetDateTime) -> String {
    let safe: String = case
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "vigil-evidence-{safe}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.zip",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

struct ClipRow {
    clip_id: String,
    agent_id: String,
    camera_id: String,
    segment_id: String,
    seq: i64,
    manifest: Vec<u8>,
    signature: String,
    sha256: String,
    stored_at: i64,
}

fn load_clip(conn: &Connection, id: &str) -> Result<Option<ClipRow>, WebError> {
    Ok(conn
        .query_row(
            "SELECT clip_id, agent_id, camera_id, segment_id, seq, manifest, signature, sha256, stored_at
             FROM clips WHERE clip_id = ?1",
            params![id],
            |r| {
                Ok(ClipRow {
                    clip_id: r.get(0)?,
                    agent_id: r.get(1)?,
                    camera_id: r.get(2)?,
                    segment_id: r.get(3)?,
                    seq: r.get(4)?,
                    manifest: r.get(5)?,
                    signature: r.get(6)?,
                    sha256: r.get(7)?,
                    stored_at: r.get(8)?,
                })
            },
        )
        .optional()?)
}

fn bad(e: impl std::fmt::Display) -> WebError {
    WebError::internal("cannot build the bundle", e.to_string())
}

fn utc(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| vigil_evidence::record::utc_ms::format(&t))
        .unwrap_or_default()
}

/// Resolves the selection to stored clips, sorted by chain position.
fn resolve(conn: &Connection, req: &ExportRequest) -> Result<Vec<ClipRow>, WebError> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for c in &req.clip_ids {
        ids.insert(parse_clip_id(c)?);
    }
    let mut st = conn.prepare(
        "SELECT ec.clip_id FROM web_event_clips ec JOIN clips c ON c.clip_id = ec.clip_id WHERE ec.event_id = ?1",
    )?;
    for e in &req.event_ids {
        for r in st.query_map(params![e], |r| r.get::<_, String>(0))? {
            ids.insert(r?);
        }
    }
    if let Some(w) = &req.window {
        let win = w.parse()?;
        let ms = |t: time::OffsetDateTime| vigil_evidence::record::utc_ms::unix_ms(&t);
        let mut st = conn.prepare(
            "SELECT l.id FROM chain_links l JOIN clips c ON c.clip_id = l.id
             WHERE l.agent_id = ?1 AND l.camera_id = ?2 AND l.kind = 'piece'
               AND l.end_ms >= ?3 AND l.start_ms < ?4",
        )?;
        for r in st.query_map(
            params![w.agent_id, w.camera_id, ms(win.from), ms(win.to)],
            |r| r.get::<_, String>(0),
        )? {
            ids.insert(r?);
        }
        if ids.is_empty() {
            return Err(WebError::Conflict(format!(
                "no recorded piece of {} / {} between {} and {} is stored at the hub; pull the window first",
                w.agent_id, w.camera_id, w.from, w.to
            )));
        }
    }
    if ids.is_empty() {
        return Err(WebError::BadRequest(
            "select at least one stored clip (clip_ids) or an event with a stored clip (event_ids)"
                .into(),
        ));
    }
    if ids.len() > MAX_EXPORT_CLIPS {
        return Err(WebError::BadRequest(format!(
            "{} clips selected; one export holds at most {MAX_EXPORT_CLIPS}",
            ids.len()
        )));
    }
    let mut rows = Vec::new();
    for id in &ids {
        rows.push(
            load_clip(conn, id)?.ok_or_else(|| {
                WebError::NotFound(format!("clip {id} is not stored on this hub"))
            })?,
        );
    }
    rows.sort_by(|a, b| {
        (&a.agent_id, &a.camera_id, &a.segment_id, a.seq).cmp(&(
            &b.agent_id,
            &b.camera_id,
            &b.segment_id,
            b.seq,
        ))
    });
    Ok(rows)
}

/// Writes the bundle; returns the custody lines written.
fn write_bundle(
    conn: &Connection,
    layout: &Layout,
    path: &std::path::Path,
    clips: &[ClipRow],
    export_line: &Value,
    window: Option<&vigil_evidence::verify::window::Window>,
) -> Result<(), WebError> {
    let mut w = BundleWriter::create_zip(path).map_err(bad)?;
    if let Some(win) = window {
        w.add_window(win).map_err(bad)?;
    }
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for c in clips {
        let m =
            SignedManifest::from_files(c.manifest.clone(), c.signature.as_bytes()).map_err(bad)?;
        let key_id = m.record().key_id.to_hex();
        if !keys.contains(&key_id) {
            let pem = agent_key(conn, &c.agent_id, &key_id)?.ok_or_else(|| {
                WebError::Conflict(format!(
                    "the key {key_id} that signed clip {} is not in the enrolment record of {}",
                    c.clip_id, c.agent_id
                ))
            })?;
            let k = PublicKey::from_pem(&pem).map_err(bad)?;
            w.add_key(&k).map_err(bad)?;
            keys.insert(key_id);
        }
        if !is_sha_hex(&c.sha256) {
            return Err(bad(format!("clip {} has a malformed sha256", c.clip_id)));
        }
        let bytes = std::fs::read(layout.clip_path(&c.sha256)).map_err(|e| {
            WebError::internal(format!("cannot read the file of clip {}", c.clip_id), e)
        })?;
        w.add_clip(&bytes, &m).map_err(bad)?;
    }
    // Chain slices, per (agent, camera, segment).
    let mut segs: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for c in clips {
        let k = (
            c.agent_id.clone(),
            c.camera_id.clone(),
            c.segment_id.clone(),
        );
        let e = segs.entry(k).or_insert(c.seq);
        *e = (*e).min(c.seq);
    }
    for ((agent, camera, segment), first) in segs {
        if first <= 1 {
            let reset: Option<(Vec<u8>, String)> = conn
                .query_row(
                    "SELECT record, signature FROM chain_records WHERE kind = 'chain_reset'
                     AND agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3",
                    params![agent, camera, segment],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((rec, sig)) = reset {
                let r = ChainRecord::from_files(rec, sig.as_bytes()).map_err(bad)?;
                w.add_chain_record(&r).map_err(bad)?;
            }
        }
        // Stored clips and the records known without their video (recorded pieces,
        // announced clip manifests, deletion records), once per seq.
        let mut st = conn.prepare(
            "SELECT seq, manifest, signature FROM clips WHERE agent_id = ?1 AND camera_id = ?2
             AND segment_id = ?3 AND seq >= ?4
             UNION ALL
             SELECT seq, record, signature FROM chain_records WHERE kind IN ('piece', 'clip', 'deletion')
             AND agent_id = ?1 AND camera_id = ?2 AND segment_id = ?3 AND seq >= ?4",
        )?;
        let rows = st.query_map(params![agent, camera, segment, first], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut by_seq: BTreeMap<i64, (Vec<u8>, String)> = BTreeMap::new();
        for r in rows {
            let (seq, m, sig) = r?;
            by_seq.entry(seq).or_insert((m, sig));
        }
        for (m, sig) in by_seq.into_values() {
            let rec = ChainRecord::from_files(m, sig.as_bytes()).map_err(bad)?;
            w.add_chain_record(&rec).map_err(bad)?;
        }
    }
    // Custody log.
    let mut lines = vec![export_line.to_string()];
    for c in clips {
        lines.push(
            json!({"type": "stored", "clip_id": c.clip_id, "agent_id": c.agent_id,
                "camera_id": c.camera_id, "segment_id": c.segment_id, "seq": c.seq,
                "sha256": c.sha256, "stored_utc": utc(c.stored_at),
                "note": "received from the agent, signature and every GOP hash verified, stored content-addressed"})
            .to_string(),
        );
    }
    let subjects: Vec<String> = clips.iter().map(|c| c.clip_id.clone()).collect();
    for e in audit::for_subjects(conn, &subjects)? {
        lines.push(
            json!({"type": "audit", "seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action,
                "subject": e.subject, "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
                "prev_hash": e.prev_hash, "hash": e.hash})
            .to_string(),
        );
    }
    let mut text = lines.join("\n");
    text.push('\n');
    w.add_custody_log(text.as_bytes()).map_err(bad)?;
    w.finish().map_err(bad)
}

fn file_sha256(path: &std::path::Path) -> Result<(u64, String), WebError> {
    let bytes = std::fs::read(path).map_err(|e| WebError::internal("cannot read the export", e))?;
    Ok((bytes.len() as u64, Sha256Digest::of(&bytes).to_hex()))
}

/// Builds an export (blocking).
pub fn create(
    conn: &mut Connection,
    layout: &Layout,
    user: &str,
    req: &ExportRequest,
) -> Result<Value, WebError> {
    let case = check_case(&req.case_number)?;
    let clips = resolve(conn, req)?;
    let id = Uuid::now_v7().hyphenated().to_string();
    let at = time::OffsetDateTime::now_utc();
    let name = file_name(&case, at);
    let clip_ids: Vec<&str> = clips.iter().map(|c| c.clip_id.as_str()).collect();
    let entry = audit::append(
        conn,
        user,
        "export_create",
        &id,
        &json!({"case_number": case, "clips": clip_ids, "file_name": name,
                "window": req.window.as_ref().map(|w| json!({"agent_id": w.agent_id, "camera_id": w.camera_id, "from": w.from, "to": w.to}))}),
    )?;
    let export_line = json!({
        "type": "export", "export_id": id, "case_number": case, "requested_by": user,
        "created_utc": vigil_evidence::record::utc_ms::format(&at),
        "hub_version": env!("CARGO_PKG_VERSION"), "clips": clip_ids,
        "audit_seq": entry.seq, "audit_hash": entry.hash,
    });
    let dir = layout.root().join("exports");
    std::fs::create_dir_all(&dir)
        .map_err(|e| WebError::internal(format!("cannot create {}", dir.display()), e))?;
    let path = export_path(layout, &id);
    let window = req.window.as_ref().map(WindowRequest::parse).transpose()?;
    if let Err(e) = write_bundle(conn, layout, &path, &clips, &export_line, window.as_ref()) {
        let _ = std::fs::remove_file(&path);
        let _ = audit::append(
            conn,
            user,
            "export_failed",
            &id,
            &json!({"error": e.to_string()}),
        );
        return Err(e);
    }
    let (size, sha) = file_sha256(&path)?;
    conn.execute(
        "INSERT INTO exports (id, case_number, requested_by, created_at, file_name, size, sha256, clip_ids)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            case,
            user,
            at.unix_timestamp(),
            name,
            size as i64,
            sha,
            serde_json::to_string(&clip_ids).unwrap_or_default()
        ],
    )?;
    Ok(json!({
        "id": id, "case_number": case, "requested_by": user, "file_name": name,
        "size": size, "sha256": sha, "clips": clip_ids.len(),
        "download_url": format!("/media/exports/{id}"),
    }))
}

/// `POST /api/exports`.
pub async fn api_create(
    State(st): State<AppState>,
    Auth(user, _): Auth<InvestigatorRole>,
    Json(req): Json<ExportRequest>,
) -> Result<Json<Value>, WebError> {
    let layout = st.layout.clone();
    let v = st
        .db
        .call(move |c| create(c, &layout, &user.username, &req))
        .await?;
    Ok(Json(v))
}

/// `GET /api/exports`: earlier exports, newest first.
pub async fn api_list(
    State(st): State<AppState>,
    _a: Auth<InvestigatorRole>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(|c| {
            let mut s = c.prepare(
                "SELECT id, case_number, requested_by, created_at, file_name, size, sha256, clip_ids
                 FROM exports ORDER BY created_at DESC, id DESC LIMIT 200",
            )?;
            let rows = s.query_map([], |r| {
                let id: String = r.get(0)?;
                Ok(json!({
                    "id": id, "case_number": r.get::<_, String>(1)?, "requested_by": r.get::<_, String>(2)?,
                    "created_at": r.get::<_, i64>(3)?, "file_name": r.get::<_, String>(4)?,
                    "size": r.get::<_, i64>(5)?, "sha256": r.get::<_, String>(6)?,
                    "clips": serde_json::from_str::<Value>(&r.get::<_, String>(7)?).unwrap_or(Value::Null),
                    "download_url": format!("/media/exports/{id}"),
                }))
            })?;
            Ok(Json(json!({"exports": rows.collect::<Result<Vec<_>, _>>()?, "now": now()})))
        })
        .await
}
