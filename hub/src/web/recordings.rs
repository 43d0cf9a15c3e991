//! Continuous recording at the hub: the completeness timeline per camera (what
//! exists on the box, at the hub, was deleted by policy, was not recorded, or is
//! missing without explanation), pull requests and legal holds (docs/api.md).
//!
//! Requests are rows in `recording_requests`; the ingest side sends them to the agent
//! on `vigil/v1/{agent}/commands` and resends until the pieces are stored
//! (`ingest/commands.rs`), so an agent offline at request time completes it later.

use axum::extract::{Path, Query, State};
use axum::Json;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::audit;
use super::auth::{Auth, InvestigatorRole, ViewerRole};
use super::db::now;
use super::error::WebError;
use super::AppState;
use crate::index::PIECES_MEET_MS as MEET_MS;
use crate::topic::valid_id;
use vigil_evidence::record::utc_ms::{format_unix_ms, unix_ms};

/// Longest window a pull or hold may name (a week).
const MAX_WINDOW_MS: i64 = 7 * 86_400_000;

/// One recorded piece as the hub knows it.
#[derive(Debug, Clone)]
pub struct PieceRow {
    /// Chain seq.
    pub seq: u64,
    /// Piece (clip) id.
    pub id: String,
    /// First frame, Unix ms.
    pub start_ms: i64,
    /// Last frame, Unix ms.
    pub end_ms: i64,
    /// `continues`, `agent_start`, `stream_restart`.
    pub start_reason: String,
    /// Rebuilt after a crash.
    pub recovered: bool,
    /// Deletion reason and time, when deleted by policy.
    pub deleted: Option<(String, i64)>,
    /// The video is stored (and verified) at the hub.
    pub at_hub: bool,
}

/// A span of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Span {
    /// Unix ms.
    pub from_ms: i64,
    /// Unix ms.
    pub to_ms: i64,
    /// `hub` (uploaded and verified), `edge` (recorded, on the box), `deleted` (by
    /// policy, signed), `not_recorded` (agent or camera down), `missing` (no
    /// explanation: an alert), `pending` (not sealed yet or not reported).
    pub state: &'static str,
    /// Words for the operator.
    pub detail: String,
    /// The piece, for piece spans.
    pub piece_id: Option<String>,
    /// Its seq.
    pub seq: Option<u64>,
}

/// Builds the timeline of `[from, to)` from the camera's pieces (sorted by start).
pub fn timeline(pieces: &[PieceRow], from: i64, to: i64) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut cursor = from;
    let mut prev: Option<&PieceRow> = None;
    for p in pieces.iter().filter(|p| p.end_ms > from && p.start_ms < to) {
        if p.start_ms > cursor + MEET_MS {
            let (state, detail) = match (prev, p.start_reason.as_str()) {
                (_, "agent_start") => ("not_recorded", "not recorded: the agent was not running".to_string()),
                (_, "stream_restart") => (
                    "not_recorded",
                    "not recorded: the camera's stream was lost and came back".to_string(),
                ),
                (Some(_), _) => (
                    "missing",
                    "missing: the next piece says it continues the stream, and no deletion record explains the gap".to_string(),
                ),
                (None, _) => ("pending", "before the first piece the hub knows of".to_string()),
            };
            spans.push(Span {
                from_ms: cursor,
                to_ms: p.start_ms,
                state,
                detail,
                piece_id: None,
                seq: None,
            });
        }
        let (state, detail) = match (&p.deleted, p.at_hub) {
            (_, true) => (
                "hub",
                "uploaded; signature and every GOP verified at the hub".to_string(),
            ),
            (Some((reason, at)), false) => (
                "deleted",
                format!(
                    "deleted on the box by policy {reason} at {} (signed deletion record)",
                    format_unix_ms(*at)
                ),
            ),
            (None, false) => (
                "edge",
                "recorded and signed; the video is on the box".to_string(),
            ),
        };
        let detail = if p.recovered {
            format!("{detail}; recovered after the agent stopped without sealing it")
        } else {
            detail
        };
        spans.push(Span {
            from_ms: p.start_ms.max(from),
            to_ms: p.end_ms.min(to),
            state,
            detail,
            piece_id: Some(p.id.clone()),
            seq: Some(p.seq),
        });
        cursor = cursor.max(p.end_ms);
        prev = Some(p);
    }
    if cursor + MEET_MS < to {
        spans.push(Span {
            from_ms: cursor,
            to_ms: to,
            state: "pending",
            detail: "no piece reported yet (being recorded, not sealed, or not sent)".into(),
            piece_id: None,
            seq: None,
        });
    }
    spans
}

/// Parses an RFC 3339 request time; the error names the field and shows the form.
pub(super) fn parse_rfc3339(name: &str, v: &str) -> Result<OffsetDateTime, WebError> {
    OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|e| {
        WebError::BadRequest(format!(
            "{name} {v:?} is not an RFC 3339 time ({e}); write e.g. 2026-12-04T10:00:00Z"
        ))
    })
}

fn parse_time(name: &str, v: &str) -> Result<i64, WebError> {
    parse_rfc3339(name, v).map(|t| unix_ms(&t))
}

/// The pieces of a camera overlapping `[from, to)`.
pub fn pieces(
    conn: &Connection,
    agent: &str,
    camera: &str,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<PieceRow>> {
    let mut st = conn.prepare(
        "SELECT l.seq, l.id, l.start_ms, l.end_ms, COALESCE(l.start_reason, ''), l.recovered,
                l.deleted_reason, l.deleted_at_ms, c.clip_id IS NOT NULL
         FROM chain_links l LEFT JOIN clips c ON c.clip_id = l.id
         WHERE l.agent_id = ?1 AND l.camera_id = ?2 AND l.kind = 'piece'
           AND l.end_ms > ?3 AND l.start_ms < ?4
         ORDER BY l.start_ms, l.seq",
    )?;
    let rows = st.query_map(params![agent, camera, from, to], |r| {
        let reason: Option<String> = r.get(6)?;
        let at: Option<i64> = r.get(7)?;
        Ok(PieceRow {
            seq: r.get::<_, i64>(0)?.max(0) as u64,
            id: r.get(1)?,
            start_ms: r.get(2)?,
            end_ms: r.get(3)?,
            start_reason: r.get(4)?,
            recovered: r.get::<_, i64>(5)? != 0,
            deleted: reason.zip(at),
            at_hub: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// `?from=&to=` (RFC 3339); default: the last 24 hours.
#[derive(Debug, Deserialize)]
pub struct WindowQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/recordings/{agent}/{camera}/timeline`.
pub async fn api_timeline(
    State(st): State<AppState>,
    _a: Auth<ViewerRole>,
    Path((agent, camera)): Path<(String, String)>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Value>, WebError> {
    if !valid_id(&agent) || !valid_id(&camera) {
        return Err(WebError::BadRequest(
            "agent and camera must be valid ids".into(),
        ));
    }
    let to = match &q.to {
        Some(t) => parse_time("to", t)?,
        None => now() * 1000,
    };
    let from = match &q.from {
        Some(f) => parse_time("from", f)?,
        None => to - 86_400_000,
    };
    if to <= from || to - from > 31 * 86_400_000 {
        return Err(WebError::BadRequest(
            "the window must have `to` after `from` and span at most 31 days".into(),
        ));
    }
    st.db
        .call(move |c| {
            let ps = pieces(c, &agent, &camera, from, to)?;
            let spans = timeline(&ps, from, to);
            let mut seconds: std::collections::BTreeMap<&str, f64> = Default::default();
            for s in &spans {
                *seconds.entry(s.state).or_default() += (s.to_ms - s.from_ms) as f64 / 1000.0;
            }
            Ok(Json(json!({
                "agent_id": agent, "camera_id": camera, "from_ms": from, "to_ms": to,
                "spans": spans, "seconds": seconds, "pieces": ps.len(),
            })))
        })
        .await
}

/// `GET /api/recordings/cameras`: every (agent, camera) with recorded pieces.
pub async fn api_cameras(
    State(st): State<AppState>,
    _a: Auth<ViewerRole>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(|c| {
            let mut s = c.prepare(
                "SELECT agent_id, camera_id, COUNT(*), MIN(start_ms), MAX(end_ms)
                 FROM chain_links WHERE kind = 'piece' GROUP BY agent_id, camera_id
                 ORDER BY agent_id, camera_id",
            )?;
            let rows = s.query_map([], |r| {
                Ok(json!({"agent_id": r.get::<_, String>(0)?, "camera_id": r.get::<_, String>(1)?,
                    "pieces": r.get::<_, i64>(2)?, "first_ms": r.get::<_, i64>(3)?, "last_ms": r.get::<_, i64>(4)?}))
            })?;
            Ok(Json(json!({"cameras": rows.collect::<Result<Vec<_>, _>>()?})))
        })
        .await
}

/// A pull or hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// `pull` or `hold`.
    pub kind: String,
    /// Agent.
    pub agent_id: String,
    /// Camera.
    pub camera_id: String,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
    /// Case number (1-64 printable characters).
    pub case_number: String,
    /// Why.
    pub reason: String,
}

/// `POST /api/recordings/requests`: pull a window, or put a legal hold on it.
pub async fn api_request(
    State(st): State<AppState>,
    Auth(user, _): Auth<InvestigatorRole>,
    Json(b): Json<RequestBody>,
) -> Result<Json<Value>, WebError> {
    if b.kind != "pull" && b.kind != "hold" {
        return Err(WebError::BadRequest(
            "kind must be \"pull\" or \"hold\"".into(),
        ));
    }
    if !valid_id(&b.agent_id) || !valid_id(&b.camera_id) {
        return Err(WebError::BadRequest(
            "agent_id and camera_id must be valid ids".into(),
        ));
    }
    let (from, to) = (parse_time("from", &b.from)?, parse_time("to", &b.to)?);
    if to <= from || to - from > MAX_WINDOW_MS {
        return Err(WebError::BadRequest(
            "the window must have `to` after `from` and span at most 7 days".into(),
        ));
    }
    let case = b.case_number.trim().to_string();
    if case.is_empty() || case.len() > 64 || case.chars().any(char::is_control) {
        return Err(WebError::BadRequest(
            "case_number is required: 1-64 printable characters".into(),
        ));
    }
    let reason = b.reason.trim().to_string();
    if reason.is_empty() || reason.len() > 500 {
        return Err(WebError::BadRequest(
            "reason is required (at most 500 characters)".into(),
        ));
    }
    st.db
        .call(move |c| {
            let known: bool = c.query_row(
                "SELECT EXISTS(SELECT 1 FROM agents WHERE agent_id = ?1)",
                params![b.agent_id],
                |r| r.get(0),
            )?;
            if !known {
                return Err(WebError::NotFound(format!(
                    "agent {} is not enrolled",
                    b.agent_id
                )));
            }
            let id = uuid::Uuid::now_v7().hyphenated().to_string();
            let entry = audit::append(
                c,
                &user.username,
                if b.kind == "pull" {
                    "recording_pull"
                } else {
                    "recording_hold"
                },
                &id,
                &json!({"agent_id": b.agent_id, "camera_id": b.camera_id, "from": format_unix_ms(from),
                        "to": format_unix_ms(to), "case_number": case, "reason": reason}),
            )?;
            c.execute(
                "INSERT INTO recording_requests
                 (id, kind, agent_id, camera_id, from_ms, to_ms, case_number, reason, requested_by,
                  requested_at, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    id,
                    b.kind,
                    b.agent_id,
                    b.camera_id,
                    from,
                    to,
                    case,
                    reason,
                    user.username,
                    now(),
                    if b.kind == "pull" {
                        "pending"
                    } else {
                        "active"
                    }
                ],
            )?;
            Ok(Json(
                json!({"id": id, "status": if b.kind == "pull" { "pending" } else { "active" },
                           "audit_seq": entry.seq}),
            ))
        })
        .await
}

/// `POST /api/recordings/requests/{id}/release`: ends a hold (audited).
pub async fn api_release(
    State(st): State<AppState>,
    Auth(user, _): Auth<InvestigatorRole>,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(move |c| {
            let n = c.execute(
                "UPDATE recording_requests SET status = 'releasing', last_sent_at = NULL
                 WHERE id = ?1 AND kind = 'hold' AND status = 'active'",
                params![id],
            )?;
            if n == 0 {
                return Err(WebError::NotFound(format!("no active hold {id}")));
            }
            audit::append(c, &user.username, "recording_release", &id, &json!({}))?;
            Ok(Json(json!({"id": id, "status": "releasing"})))
        })
        .await
}

/// `GET /api/recordings/requests`: pulls and holds, newest first, with the pieces
/// each one covers and how many are stored.
pub async fn api_requests(
    State(st): State<AppState>,
    _a: Auth<ViewerRole>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(|c| {
            let mut s = c.prepare(
                "SELECT id, kind, agent_id, camera_id, from_ms, to_ms, case_number, reason,
                        requested_by, requested_at, status, completed_at
                 FROM recording_requests ORDER BY requested_at DESC, id DESC LIMIT 200",
            )?;
            type Row = (String, String, String, String, i64, i64, String, String, String, i64, String, Option<i64>);
            let rows: Vec<Row> = s
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                        r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for (id, kind, agent, camera, from, to, case, reason, by, at, status, done) in rows {
                let ps = pieces(c, &agent, &camera, from, to)?;
                let stored: Vec<Value> = ps
                    .iter()
                    .filter(|p| p.at_hub)
                    .map(|p| json!({"clip_id": p.id, "seq": p.seq, "start_ms": p.start_ms, "end_ms": p.end_ms,
                                    "url": format!("/media/clips/{}", p.id)}))
                    .collect();
                let deleted = ps.iter().filter(|p| p.deleted.is_some() && !p.at_hub).count();
                out.push(json!({
                    "id": id, "kind": kind, "agent_id": agent, "camera_id": camera,
                    "from": format_unix_ms(from), "to": format_unix_ms(to), "from_ms": from, "to_ms": to,
                    "case_number": case, "reason": reason, "requested_by": by, "requested_at": at,
                    "status": status, "completed_at": done, "pieces_known": ps.len(),
                    "pieces_stored": stored.len(), "pieces_deleted": deleted, "stored": stored,
                }));
            }
            Ok(Json(json!({"requests": out})))
        })
        .await
}
