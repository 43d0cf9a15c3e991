//! Events: the live feed, search, detail, and the operator's acknowledge /
//! note / flag (kept in `event_annotations`, append-only).

use axum::extract::{Path, Query, State};
use axum::Json;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::audit;
use super::auth::{Auth, OperatorRole, ViewerRole};
use super::db::now;
use super::error::WebError;
use super::AppState;

/// One row of the feed or of a search.
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    /// Event id (as sent by the agent).
    pub id: String,
    /// Pagination cursor: pass as `before` for the next (older) page.
    pub cursor: i64,
    /// Agent that saw it.
    pub agent_id: String,
    /// Camera.
    pub camera_id: String,
    /// Detector label.
    pub label: String,
    /// Best score.
    pub score: f64,
    /// Zones it touched.
    pub zones: Vec<String>,
    /// Start, RFC 3339.
    pub start_utc: String,
    /// End, when ended.
    pub end_utc: Option<String>,
    /// `ongoing` or `ended`.
    pub state: &'static str,
    /// `verified` (a clip is stored, it was verified at ingest), `failed`
    /// (a later re-check failed), `pending` (named, not stored yet), `none`.
    pub clip: &'static str,
    /// Thumbnail URL, when the agent sent one.
    pub thumb_url: Option<String>,
    /// Who acknowledged it first, if anyone.
    pub acked_by: Option<String>,
    /// Flagged for follow-up.
    pub flagged: bool,
}

const SUMMARY_SELECT: &str = "
SELECT e.event_id, e.first_rowid, e.agent_id, e.camera_id, e.label, e.top_score, e.zones,
       e.start_utc, e.end_utc, e.ended, e.thumb IS NOT NULL,
       (SELECT username FROM event_annotations a WHERE a.event_id = e.event_id AND a.kind = 'ack' ORDER BY id LIMIT 1),
       COALESCE((SELECT kind FROM event_annotations a WHERE a.event_id = e.event_id
                 AND a.kind IN ('flag', 'unflag') ORDER BY id DESC LIMIT 1) = 'flag', 0),
       (SELECT COUNT(*) FROM web_event_clips ec JOIN clips c ON c.clip_id = ec.clip_id WHERE ec.event_id = e.event_id),
       (SELECT COUNT(*) FROM web_event_clips ec WHERE ec.event_id = e.event_id),
       (SELECT COUNT(*) FROM web_event_clips ec JOIN clip_checks k ON k.clip_id = ec.clip_id
        WHERE ec.event_id = e.event_id AND k.ok = 0)
FROM web_events e";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventSummary> {
    let id: String = r.get(0)?;
    let has_thumb: bool = r.get(10)?;
    let (stored, known, failed): (i64, i64, i64) = (r.get(13)?, r.get(14)?, r.get(15)?);
    Ok(EventSummary {
        thumb_url: has_thumb.then(|| format!("/media/events/{}/thumb.jpg", url_segment(&id))),
        id,
        cursor: r.get(1)?,
        agent_id: r.get(2)?,
        camera_id: r.get(3)?,
        label: r.get(4)?,
        score: r.get(5)?,
        zones: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        start_utc: r.get(7)?,
        end_utc: r.get(8)?,
        state: if r.get::<_, i64>(9)? != 0 {
            "ended"
        } else {
            "ongoing"
        },
        clip: if failed > 0 {
            "failed"
        } else if stored > 0 {
            "verified"
        } else if known > 0 {
            "pending"
        } else {
            "none"
        },
        acked_by: r.get(11)?,
        flagged: r.get::<_, i64>(12)? != 0,
    })
}

/// Percent-encodes an id for a URL path segment.
pub fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One event's summary.
pub fn summary(conn: &Connection, event_id: &str) -> Result<Option<EventSummary>, WebError> {
    Ok(conn
        .query_row(
            &format!("{SUMMARY_SELECT} WHERE e.event_id = ?1"),
            params![event_id],
            summary_row,
        )
        .optional()?)
}

/// Search / feed filters (all optional; query string of `GET /api/events`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Camera id.
    pub camera: Option<String>,
    /// Agent id.
    pub agent: Option<String>,
    /// Start at or after (RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` in UTC).
    pub from: Option<String>,
    /// Start at or before.
    pub to: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Zone name.
    pub zone: Option<String>,
    /// `true` / `false`.
    pub flagged: Option<String>,
    /// Cursor: only events older than this (from the previous page).
    pub before: Option<i64>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<i64>,
}

/// Parses a time filter: RFC 3339, or a `datetime-local` value taken as UTC.
pub fn parse_time(s: &str, what: &str) -> Result<i64, WebError> {
    use time::macros::format_description;
    let s = s.trim();
    if let Some(t) = super::live::unix_of(s) {
        return Ok(t);
    }
    let long = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(s, long)
        .or_else(|_| time::PrimitiveDateTime::parse(s, short))
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| {
            WebError::BadRequest(format!(
                "{what} {s:?} is not a time; use 2026-01-31T14:00 (UTC) or RFC 3339"
            ))
        })
}

fn nonempty(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Builds the WHERE clause shared by the feed and search.
fn where_clause(f: &EventFilter) -> Result<(String, Vec<SqlValue>), WebError> {
    let mut w = vec!["1 = 1".to_string()];
    let mut p: Vec<SqlValue> = Vec::new();
    let mut push = |cond: &str, v: SqlValue, w: &mut Vec<String>| {
        p.push(v);
        w.push(cond.replace('?', &format!("?{}", p.len())));
    };
    if let Some(c) = nonempty(&f.camera) {
        push("e.camera_id = ?", SqlValue::Text(c.into()), &mut w);
    }
    if let Some(a) = nonempty(&f.agent) {
        push("e.agent_id = ?", SqlValue::Text(a.into()), &mut w);
    }
    if let Some(l) = nonempty(&f.label) {
        push("e.label = ?", SqlValue::Text(l.into()), &mut w);
    }
    if let Some(z) = nonempty(&f.zone) {
        push(
            "EXISTS (SELECT 1 FROM json_each(e.zones) j WHERE j.value = ?)",
            SqlValue::Text(z.into()),
            &mut w,
        );
    }
    if let Some(t) = nonempty(&f.from) {
        push(
            "e.start_unix >= ?",
            SqlValue::Integer(parse_time(t, "from")?),
            &mut w,
        );
    }
    if let Some(t) = nonempty(&f.to) {
        push(
            "e.start_unix <= ?",
            SqlValue::Integer(parse_time(t, "to")?),
            &mut w,
        );
    }
    if let Some(b) = f.before {
        push("e.first_rowid < ?", SqlValue::Integer(b), &mut w);
    }
    match nonempty(&f.flagged) {
        None | Some("any") => {}
        Some(v @ ("true" | "false")) => w.push(format!(
            "COALESCE((SELECT kind FROM event_annotations a WHERE a.event_id = e.event_id
             AND a.kind IN ('flag', 'unflag') ORDER BY id DESC LIMIT 1) = 'flag', 0) = {}",
            i32::from(v == "true")
        )),
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "flagged={other:?}: use true, false or any"
            )))
        }
    }
    Ok((w.join(" AND "), p))
}

/// A page of events, newest first.
pub fn list(conn: &Connection, f: &EventFilter) -> Result<Vec<EventSummary>, WebError> {
    let (w, mut p) = where_clause(f)?;
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    p.push(SqlValue::Integer(limit));
    let sql = format!(
        "{SUMMARY_SELECT} WHERE {w} ORDER BY e.first_rowid DESC LIMIT ?{}",
        p.len()
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(p), summary_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `GET /api/events`: the feed (no filters) or a search; `next_before` pages on.
pub async fn api_list(
    State(st): State<AppState>,
    _auth: Auth<ViewerRole>,
    Query(f): Query<EventFilter>,
) -> Result<Json<Value>, WebError> {
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let events = st.db.call(move |c| list(c, &f)).await?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.cursor))
        .flatten();
    Ok(Json(json!({"events": events, "next_before": next})))
}

/// Clips of an event with their status.
pub fn event_clips(conn: &Connection, event_id: &str) -> Result<Vec<Value>, WebError> {
    let mut st = conn.prepare(
        "SELECT ec.clip_id, c.size, c.stored_at, c.sha256, w.start_utc, w.end_utc, c.seq, c.segment_id,
                k.ok, k.detail, k.at
         FROM web_event_clips ec LEFT JOIN clips c ON c.clip_id = ec.clip_id
         LEFT JOIN web_clips w ON w.clip_id = ec.clip_id
         LEFT JOIN clip_checks k ON k.clip_id = ec.clip_id
         WHERE ec.event_id = ?1 ORDER BY c.seq",
    )?;
    let rows = st.query_map(params![event_id], |r| {
        let id: String = r.get(0)?;
        let stored: Option<i64> = r.get(2)?;
        let check: Option<i64> = r.get(8)?;
        Ok(json!({
            "clip_id": id,
            "stored": stored.is_some(),
            "size": r.get::<_, Option<i64>>(1)?,
            "stored_at": stored,
            "sha256": r.get::<_, Option<String>>(3)?,
            "start_utc": r.get::<_, Option<String>>(4)?,
            "end_utc": r.get::<_, Option<String>>(5)?,
            "seq": r.get::<_, Option<i64>>(6)?,
            "segment_id": r.get::<_, Option<String>>(7)?,
            "status": match (stored.is_some(), check) {
                (false, _) => "pending",
                (true, Some(0)) => "failed",
                (true, _) => "verified",
            },
            "check": check.map(|ok| json!({"ok": ok != 0, "detail": r.get::<_, Option<String>>(9).ok().flatten(), "at": r.get::<_, Option<i64>>(10).ok().flatten()})),
            "url": stored.map(|_| format!("/media/clips/{id}")),
            "download_url": stored.map(|_| format!("/media/clips/{id}/download")),
        }))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The event's timeline: phases as received, clips stored, annotations.
fn timeline(conn: &Connection, event_id: &str) -> Result<Vec<Value>, WebError> {
    let mut out: Vec<(i64, Value)> = Vec::new();
    let mut st = conn.prepare("SELECT phase, received_at FROM events WHERE event_id = ?1")?;
    for r in st.query_map(params![event_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (phase, at) = r?;
        out.push((at, json!({"at": at, "kind": phase, "by": null, "text": ""})));
    }
    let mut st = conn.prepare(
        "SELECT kind, username, text, at FROM event_annotations WHERE event_id = ?1 ORDER BY id",
    )?;
    for r in st.query_map(params![event_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })? {
        let (kind, by, text, at) = r?;
        out.push((at, json!({"at": at, "kind": kind, "by": by, "text": text})));
    }
    let mut st = conn.prepare(
        "SELECT c.clip_id, c.stored_at FROM web_event_clips ec JOIN clips c ON c.clip_id = ec.clip_id
         WHERE ec.event_id = ?1",
    )?;
    for r in st.query_map(params![event_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (clip, at) = r?;
        out.push((
            at,
            json!({"at": at, "kind": "clip_stored", "by": null, "text": format!("clip {clip} stored and verified")}),
        ));
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// best_box, width, height, end_reason, previous_event_id, has jpeg.
type DetailRow = (
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    bool,
);

/// `GET /api/events/{id}`: summary, box, snapshot, clips, timeline.
pub async fn api_detail(
    State(st): State<AppState>,
    _auth: Auth<ViewerRole>,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let v = st
        .db
        .call(move |c| {
            let s = summary(c, &id)?
                .ok_or_else(|| WebError::NotFound(format!("no event {id:?}")))?;
            let (best_box, w, h, end_reason, prev, has_jpeg): DetailRow = c.query_row(
                "SELECT best_box, snapshot_width, snapshot_height, end_reason, previous_event_id, jpeg IS NOT NULL
                 FROM web_events WHERE event_id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )?;
            Ok(json!({
                "event": s,
                "best_box": best_box.and_then(|b| serde_json::from_str::<Value>(&b).ok()),
                "snapshot": has_jpeg.then(|| json!({
                    "url": format!("/media/events/{}/snapshot.jpg", url_segment(&id)),
                    "width": w, "height": h,
                })),
                "end_reason": end_reason,
                "previous_event_id": prev,
                "clips": event_clips(c, &id)?,
                "timeline": timeline(c, &id)?,
            }))
        })
        .await?;
    Ok(Json(v))
}

/// Body of `POST /api/events/{id}/notes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// The note (1-2000 characters).
    pub text: String,
}

/// Body of `POST /api/events/{id}/flag`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagBody {
    /// Flag (true) or clear the flag (false).
    pub flagged: bool,
}

fn annotate(
    conn: &mut Connection,
    event_id: &str,
    kind: &str,
    user: &str,
    text: &str,
) -> Result<Option<EventSummary>, WebError> {
    if summary(conn, event_id)?.is_none() {
        return Err(WebError::NotFound(format!("no event {event_id:?}")));
    }
    conn.execute(
        "INSERT INTO event_annotations (event_id, kind, username, text, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![event_id, kind, user, text, now()],
    )?;
    let action = format!("event_{kind}");
    audit::append(conn, user, &action, event_id, &json!({"text": text}))?;
    summary(conn, event_id)
}

async fn annotate_and_broadcast(
    st: &AppState,
    id: String,
    kind: &'static str,
    user: String,
    text: String,
) -> Result<Json<Value>, WebError> {
    let s = st
        .db
        .call(move |c| annotate(c, &id, kind, &user, &text))
        .await?;
    if let Some(s) = &s {
        let _ = st.live.send(super::LiveMsg {
            kind: "event",
            data: serde_json::to_string(s).unwrap_or_default(),
        });
    }
    Ok(Json(json!({"event": s})))
}

/// `POST /api/events/{id}/ack`.
pub async fn api_ack(
    State(st): State<AppState>,
    Auth(user, _): Auth<OperatorRole>,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    annotate_and_broadcast(&st, id, "ack", user.username, String::new()).await
}

/// `POST /api/events/{id}/notes`.
pub async fn api_note(
    State(st): State<AppState>,
    Auth(user, _): Auth<OperatorRole>,
    Path(id): Path<String>,
    Json(body): Json<NoteBody>,
) -> Result<Json<Value>, WebError> {
    let text = body.text.trim().to_string();
    if text.is_empty() || text.chars().count() > 2000 {
        return Err(WebError::BadRequest(
            "a note needs 1-2000 characters".into(),
        ));
    }
    annotate_and_broadcast(&st, id, "note", user.username, text).await
}

/// `POST /api/events/{id}/flag`.
pub async fn api_flag(
    State(st): State<AppState>,
    Auth(user, _): Auth<OperatorRole>,
    Path(id): Path<String>,
    Json(body): Json<FlagBody>,
) -> Result<Json<Value>, WebError> {
    let kind = if body.flagged { "flag" } else { "unflag" };
    annotate_and_broadcast(&st, id, kind, user.username, String::new()).await
}
