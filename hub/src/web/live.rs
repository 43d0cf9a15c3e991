//! Live updates: a poller that follows the ingest's tables by rowid and an
//! SSE endpoint.
//!
//! The ingest may run in another process, so the web does not get callbacks:
//! every `poll_interval` it reads `events`, `clips` and `alerts` rows past its
//! cursors (`web_cursors`), folds event phases into one `web_events` row per
//! event and clip manifests into `web_clips`/`web_event_clips`, commits, and
//! only then broadcasts what changed. Camera status is broadcast as a hint
//! (`cameras`) when `agent_status`/`camera_health`/`snapshots` change.
//!
//! Invariant: cursors advance in the same transaction as the derived rows, so
//! a crash re-reads rows but never skips them (the fold is idempotent).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::stream::{Stream, StreamExt};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::auth::{Auth, OperatorRole};
use super::db::{is_missing_table, now};
use super::error::WebError;
use super::events;
use super::{AppState, LiveMsg};

/// Parses an RFC 3339 time to Unix seconds.
pub fn unix_of(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn cursor(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT value FROM web_cursors WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn set_cursor(conn: &Connection, name: &str, v: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO web_cursors (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = ?2",
        params![name, v],
    )?;
    Ok(())
}

/// A cursor past the table's end means rows were deleted and ids restarted: start over.
fn effective_cursor(conn: &Connection, name: &str, max_sql: &str) -> rusqlite::Result<i64> {
    let c = cursor(conn, name)?;
    let max: i64 = conn.query_row(max_sql, [], |r| r.get(0))?;
    Ok(if max < c { 0 } else { c })
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn opt_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// One `events` row (an agent's message for one phase of an event).
struct EventRow {
    rowid: i64,
    event_id: String,
    phase: String,
    agent_id: String,
    camera_id: String,
    json: String,
    received_at: i64,
}

/// Folds one `events` row into `web_events`.
fn fold_event(conn: &Connection, row: &EventRow) -> rusqlite::Result<()> {
    let EventRow {
        rowid,
        event_id,
        phase,
        agent_id,
        camera_id,
        json,
        received_at,
    } = row;
    let (rowid, received_at) = (*rowid, *received_at);
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let ev = v.get("event").cloned().unwrap_or(Value::Null);
    let label = opt_str(&ev, "label").unwrap_or_else(|| "?".into());
    let score = ev.get("top_score").and_then(Value::as_f64).unwrap_or(0.0);
    let zones = strs(ev.get("zones"));
    let start_utc = opt_str(&ev, "start_utc").unwrap_or_default();
    let start_unix = unix_of(&start_utc).unwrap_or(received_at);
    let end_utc = opt_str(&ev, "end_utc");
    let ended = i64::from(phase.as_str() == "end");
    let end_reason = opt_str(&ev, "end_reason");
    let previous = opt_str(&ev, "previous_event_id");
    let best_box = ev
        .get("best_box")
        .filter(|b| b.is_object())
        .map(Value::to_string);
    let snap = ev.get("snapshot").filter(|s| s.is_object());
    let decode = |k: &str| -> Option<Vec<u8>> {
        snap.and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| !b.is_empty())
    };
    let (jpeg, thumb) = (decode("jpeg"), decode("thumbnail"));
    let (w, h) = (
        snap.and_then(|s| s.get("width")).and_then(Value::as_i64),
        snap.and_then(|s| s.get("height")).and_then(Value::as_i64),
    );
    let existing: Option<String> = conn
        .query_row(
            "SELECT zones FROM web_events WHERE event_id = ?1",
            params![event_id],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        None => {
            conn.execute(
                "INSERT INTO web_events (event_id, first_rowid, agent_id, camera_id, label, top_score,
                 zones, start_utc, start_unix, end_utc, ended, end_reason, previous_event_id, best_box,
                 snapshot_width, snapshot_height, thumb, jpeg, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![
                    event_id,
                    rowid,
                    agent_id,
                    camera_id,
                    label,
                    score,
                    serde_json::to_string(&zones).unwrap_or_else(|_| "[]".into()),
                    start_utc,
                    start_unix,
                    end_utc,
                    ended,
                    end_reason,
                    previous,
                    best_box,
                    w,
                    h,
                    thumb,
                    jpeg,
                    now()
                ],
            )?;
        }
        Some(old) => {
            let mut merged: Vec<String> = serde_json::from_str(&old).unwrap_or_default();
            for z in zones {
                if !merged.contains(&z) {
                    merged.push(z);
                }
            }
            conn.execute(
                "UPDATE web_events SET label = ?2, top_score = MAX(top_score, ?3), zones = ?4,
                 end_utc = COALESCE(?5, end_utc), ended = MAX(ended, ?6),
                 end_reason = COALESCE(?7, end_reason), previous_event_id = COALESCE(?8, previous_event_id),
                 best_box = COALESCE(?9, best_box), snapshot_width = COALESCE(?10, snapshot_width),
                 snapshot_height = COALESCE(?11, snapshot_height), thumb = COALESCE(?12, thumb),
                 jpeg = COALESCE(?13, jpeg), updated_at = ?14
                 WHERE event_id = ?1",
                params![
                    event_id,
                    label,
                    score,
                    serde_json::to_string(&merged).unwrap_or_else(|_| "[]".into()),
                    end_utc,
                    ended,
                    end_reason,
                    previous,
                    best_box,
                    w,
                    h,
                    thumb,
                    jpeg,
                    now()
                ],
            )?;
        }
    }
    if let Some(clip) = opt_str(&ev, "clip_id") {
        conn.execute(
            "INSERT OR IGNORE INTO web_event_clips (event_id, clip_id) VALUES (?1, ?2)",
            params![event_id, clip],
        )?;
    }
    Ok(())
}

/// Folds one `clips` row into `web_clips` and `web_event_clips`.
fn fold_clip(
    conn: &Connection,
    rowid: i64,
    clip_id: &str,
    agent_id: &str,
    camera_id: &str,
    manifest: &[u8],
) -> rusqlite::Result<Vec<String>> {
    let m: Value = serde_json::from_slice(manifest).unwrap_or(Value::Null);
    let start = opt_str(&m, "start").unwrap_or_default();
    let end = opt_str(&m, "end").unwrap_or_default();
    let evs: Vec<(String, String)> = m
        .get("events")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((opt_str(e, "id")?, opt_str(e, "label").unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    let mut labels: Vec<&str> = evs.iter().map(|(_, l)| l.as_str()).collect();
    labels.sort();
    labels.dedup();
    conn.execute(
        "INSERT OR REPLACE INTO web_clips (clip_id, clip_rowid, agent_id, camera_id, start_utc, end_utc,
         start_unix, end_unix, labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            clip_id,
            rowid,
            agent_id,
            camera_id,
            start,
            end,
            unix_of(&start).unwrap_or(0),
            unix_of(&end).unwrap_or(0),
            serde_json::to_string(&labels).unwrap_or_else(|_| "[]".into())
        ],
    )?;
    let mut linked = Vec::new();
    for (id, _) in evs {
        conn.execute(
            "INSERT OR IGNORE INTO web_event_clips (event_id, clip_id) VALUES (?1, ?2)",
            params![id, clip_id],
        )?;
        linked.push(id);
    }
    // Events that named this clip before it arrived now have a stored clip too.
    let mut st = conn.prepare("SELECT event_id FROM web_event_clips WHERE clip_id = ?1")?;
    for r in st.query_map(params![clip_id], |r| r.get::<_, String>(0))? {
        let r = r?;
        if !linked.contains(&r) {
            linked.push(r);
        }
    }
    Ok(linked)
}

/// What one poll found.
#[derive(Default)]
pub struct PollResult {
    /// Events whose summary changed.
    pub events: Vec<String>,
    /// New alerts (JSON).
    pub alerts: Vec<Value>,
}

/// One poll: folds new rows (at most 500 of each kind) in one transaction.
pub fn poll_once(conn: &mut Connection) -> rusqlite::Result<PollResult> {
    // Cheap read first: the write transaction only when something is new.
    let heads: (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM events), (SELECT COALESCE(MAX(rowid), 0) FROM clips),
                (SELECT COALESCE(MAX(id), 0) FROM alerts)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if heads
        == (
            cursor(conn, "events")?,
            cursor(conn, "clips")?,
            cursor(conn, "alerts")?,
        )
    {
        return Ok(PollResult::default());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = PollResult::default();
    let c = effective_cursor(&tx, "events", "SELECT COALESCE(MAX(rowid), 0) FROM events")?;
    let rows: Vec<EventRow> = {
        let mut st = tx.prepare(
            "SELECT rowid, event_id, phase, agent_id, camera_id, json, received_at FROM events
             WHERE rowid > ?1 ORDER BY rowid LIMIT 500",
        )?;
        let it = st.query_map(params![c], |r| {
            Ok(EventRow {
                rowid: r.get(0)?,
                event_id: r.get(1)?,
                phase: r.get(2)?,
                agent_id: r.get(3)?,
                camera_id: r.get(4)?,
                json: r.get(5)?,
                received_at: r.get(6)?,
            })
        })?;
        it.collect::<Result<_, _>>()?
    };
    let mut last = c;
    for row in rows {
        fold_event(&tx, &row)?;
        if !out.events.contains(&row.event_id) {
            out.events.push(row.event_id.clone());
        }
        last = row.rowid;
    }
    set_cursor(&tx, "events", last)?;

    let c = effective_cursor(&tx, "clips", "SELECT COALESCE(MAX(rowid), 0) FROM clips")?;
    let rows: Vec<(i64, String, String, String, Vec<u8>)> = {
        let mut st = tx.prepare(
            "SELECT rowid, clip_id, agent_id, camera_id, manifest FROM clips
             WHERE rowid > ?1 ORDER BY rowid LIMIT 500",
        )?;
        let it = st.query_map(params![c], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        it.collect::<Result<_, _>>()?
    };
    let mut last = c;
    for (rowid, clip, agent, camera, manifest) in rows {
        for e in fold_clip(&tx, rowid, &clip, &agent, &camera, &manifest)? {
            if !out.events.contains(&e) {
                out.events.push(e);
            }
        }
        last = rowid;
    }
    set_cursor(&tx, "clips", last)?;

    let c = effective_cursor(&tx, "alerts", "SELECT COALESCE(MAX(id), 0) FROM alerts")?;
    {
        let mut st = tx.prepare(
            "SELECT id, kind, agent_id, camera_id, detail, at FROM alerts WHERE id > ?1 ORDER BY id LIMIT 500",
        )?;
        let it = st.query_map(params![c], |r| {
            Ok(serde_json::json!({
                "id": r.get::<_, i64>(0)?, "kind": r.get::<_, String>(1)?,
                "agent_id": r.get::<_, String>(2)?, "camera_id": r.get::<_, String>(3)?,
                "detail": r.get::<_, String>(4)?, "at": r.get::<_, i64>(5)?,
            }))
        })?;
        for a in it {
            out.alerts.push(a?);
        }
    }
    if let Some(id) = out.alerts.last().and_then(|a| a["id"].as_i64()) {
        set_cursor(&tx, "alerts", id)?;
    } else {
        set_cursor(&tx, "alerts", c)?;
    }
    tx.commit()?;
    Ok(out)
}

/// A fingerprint of the camera status tables; changes when any row changes.
fn cameras_fingerprint(conn: &Connection) -> rusqlite::Result<String> {
    let mut parts = Vec::new();
    for t in ["agent_status", "camera_health", "snapshots"] {
        let sql = format!(
            "SELECT COUNT(*) || ':' || COALESCE(SUM(received_at), 0) || ':' || COALESCE(MAX(received_at), 0) FROM {t}"
        );
        match conn.query_row(&sql, [], |r| r.get::<_, String>(0)) {
            Ok(s) => parts.push(s),
            Err(e) if is_missing_table(&e) => parts.push("-".into()),
            Err(e) => return Err(e),
        }
    }
    Ok(parts.join("|"))
}

/// How long a woken poller waits for more wake-ups before it polls.
const WAKE_COALESCE: Duration = Duration::from_millis(5);

/// The poller task: runs until the server shuts down.
pub async fn run_poller(state: AppState) {
    let mut tick = tokio::time::interval(state.opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut fingerprint = String::new();
    let mut failing = false;
    let mut shutdown = state.shutdown.clone();
    loop {
        let woken = tokio::select! {
            _ = tick.tick() => false,
            _ = state.opts.wake.notified() => true,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        if woken {
            // A burst of stored messages is one poll, not one each (every poll takes
            // the write lock the ingest needs): coalesce for a few ms.
            tokio::time::sleep(WAKE_COALESCE).await;
        }
        let fp_old = fingerprint.clone();
        let res = state
            .db
            .call(move |c| {
                let r = poll_once(c)?;
                let mut summaries = Vec::new();
                for id in &r.events {
                    if let Some(s) = events::summary(c, id)? {
                        summaries.push(s);
                    }
                }
                let fp = cameras_fingerprint(c)?;
                Ok::<_, WebError>((summaries, r.alerts, fp))
            })
            .await;
        match res {
            Ok((summaries, alerts, fp)) => {
                failing = false;
                for s in summaries {
                    let _ = state.live.send(LiveMsg {
                        kind: "event",
                        data: serde_json::to_string(&s).unwrap_or_default(),
                    });
                }
                for a in alerts {
                    let _ = state.live.send(LiveMsg {
                        kind: "alert",
                        data: a.to_string(),
                    });
                }
                if fp != fp_old {
                    if !fp_old.is_empty() {
                        let _ = state.live.send(LiveMsg {
                            kind: "cameras",
                            data: "{}".into(),
                        });
                    }
                    fingerprint = fp;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "Live poller cannot read the index; retrying");
                }
                failing = true;
            }
        }
    }
}

/// `GET /api/live`: server-sent events `event`, `alert`, `cameras`, `resync`.
pub async fn sse(
    State(state): State<AppState>,
    _auth: Auth<OperatorRole>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut shutdown = state.shutdown.clone();
    let stream = BroadcastStream::new(state.live.subscribe())
        .map(|m| {
            Ok(match m {
                Ok(m) => Event::default().event(m.kind).data(m.data),
                // The page fell behind: it reloads its first page.
                Err(BroadcastStreamRecvError::Lagged(_)) => {
                    Event::default().event("resync").data("{}")
                }
            })
        })
        .take_until(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
