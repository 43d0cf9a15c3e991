//! The camera wall: every camera of every agent, its state, latest snapshot
//! and last event; agents offline (Last Will) first and obvious.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::auth::{Auth, OperatorRole};
use super::db::{is_missing_table, now};
use super::error::WebError;
use super::events::url_segment;
use super::AppState;

/// One camera tile.
#[derive(Debug, Clone, Serialize)]
pub struct CameraTile {
    /// Camera id.
    pub camera_id: String,
    /// `streaming`, `starting`, `retrying`, `stopped`, `offline` (agent
    /// offline) or `unknown` (no health report yet).
    pub state: String,
    /// Why it is not streaming.
    pub reason: Option<String>,
    /// Since when it is in `state` (RFC 3339), when known.
    pub since: Option<String>,
    /// Seconds in that state, when known.
    pub seconds_in_state: Option<i64>,
    /// Latest snapshot URL and time.
    pub snapshot_url: Option<String>,
    /// When the snapshot was taken.
    pub snapshot_utc: Option<String>,
    /// Last event: id, label, start.
    pub last_event: Option<Value>,
    /// The agent's whole health JSON for this camera (counters).
    pub health: Option<Value>,
}

/// One agent and its cameras.
#[derive(Debug, Clone, Serialize)]
pub struct AgentTile {
    /// Agent id.
    pub agent_id: String,
    /// `online`, `offline` (Last Will or clean stop) or `unknown`.
    pub status: String,
    /// Since when (from the status message).
    pub since: Option<String>,
    /// Last message from the agent (Unix seconds).
    pub last_contact: Option<i64>,
    /// Revoked agents are shown but refused by the ingest.
    pub revoked: bool,
    /// Cameras, by id.
    pub cameras: Vec<CameraTile>,
}

fn ok_or_empty<T: Default>(r: rusqlite::Result<T>) -> rusqlite::Result<T> {
    match r {
        Err(e) if is_missing_table(&e) => Ok(T::default()),
        other => other,
    }
}

/// `camera_health` columns: agent, camera, state, reason, since, json, received_at.
type HealthRow = (String, String, String, Option<String>, String, String, i64);

/// Seconds since an RFC 3339 time.
fn seconds_since(s: &str) -> Option<i64> {
    super::live::unix_of(s).map(|t| (now() - t).max(0))
}

/// Builds the wall.
pub fn wall(conn: &Connection) -> Result<Vec<AgentTile>, WebError> {
    let mut agents: BTreeMap<String, AgentTile> = BTreeMap::new();
    let blank = |id: &str| AgentTile {
        agent_id: id.to_string(),
        status: "unknown".into(),
        since: None,
        last_contact: None,
        revoked: false,
        cameras: Vec::new(),
    };
    let enrolled: Vec<(String, Option<i64>)> = ok_or_empty((|| {
        let mut st = conn.prepare("SELECT agent_id, revoked_at FROM agents")?;
        let r = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1).unwrap_or(None))))?
            .collect::<Result<Vec<_>, _>>();
        r
    })())?;
    for (id, revoked) in enrolled {
        agents
            .entry(id.clone())
            .or_insert_with(|| blank(&id))
            .revoked = revoked.is_some();
    }
    let statuses: Vec<(String, String, i64)> = ok_or_empty((|| {
        let mut st = conn.prepare("SELECT agent_id, json, received_at FROM agent_status")?;
        let r = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>();
        r
    })())?;
    for (id, json, at) in statuses {
        let v: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        let a = agents.entry(id.clone()).or_insert_with(|| blank(&id));
        a.status = v
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        a.since = v.get("since").and_then(Value::as_str).map(str::to_string);
        a.last_contact = Some(at);
    }
    // Cameras: health rows, snapshots, and any camera that produced events or clips.
    let mut cams: BTreeMap<(String, String), CameraTile> = BTreeMap::new();
    let tile = |cam: &str| CameraTile {
        camera_id: cam.to_string(),
        state: "unknown".into(),
        reason: None,
        since: None,
        seconds_in_state: None,
        snapshot_url: None,
        snapshot_utc: None,
        last_event: None,
        health: None,
    };
    let health: Vec<HealthRow> = ok_or_empty((|| {
        let mut st = conn.prepare(
                "SELECT agent_id, camera_id, state, reason, since, json, received_at FROM camera_health",
            )?;
        let r = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>();
        r
    })())?;
    for (agent, cam, state, reason, since, json, at) in health {
        let t = cams
            .entry((agent.clone(), cam.clone()))
            .or_insert_with(|| tile(&cam));
        t.state = state;
        t.reason = reason;
        t.seconds_in_state = seconds_since(&since);
        t.since = Some(since);
        t.health = serde_json::from_str(&json).ok();
        let a = agents.entry(agent.clone()).or_insert_with(|| blank(&agent));
        a.last_contact = Some(a.last_contact.map_or(at, |x| x.max(at)));
    }
    let snaps: Vec<(String, String, String)> = ok_or_empty((|| {
        let mut st = conn.prepare("SELECT agent_id, camera_id, taken_utc FROM snapshots")?;
        let r = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>();
        r
    })())?;
    for (agent, cam, taken) in snaps {
        let t = cams
            .entry((agent.clone(), cam.clone()))
            .or_insert_with(|| tile(&cam));
        t.snapshot_url = Some(format!(
            "/media/cameras/{}/{}/snapshot.jpg",
            url_segment(&agent),
            url_segment(&cam)
        ));
        t.snapshot_utc = Some(taken);
    }
    let seen: Vec<(String, String)> = {
        let mut st = conn.prepare(
            "SELECT DISTINCT agent_id, camera_id FROM web_events
             UNION SELECT DISTINCT agent_id, camera_id FROM web_clips",
        )?;
        let r = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        r
    };
    for (agent, cam) in seen {
        cams.entry((agent, cam.clone()))
            .or_insert_with(|| tile(&cam));
    }
    let mut last = conn.prepare(
        "SELECT event_id, label, start_utc, ended FROM web_events WHERE agent_id = ?1 AND camera_id = ?2
         ORDER BY first_rowid DESC LIMIT 1",
    )?;
    for ((agent, cam), mut t) in cams {
        t.last_event = last
            .query_row(params![agent, cam], |r| {
                Ok(serde_json::json!({
                    "id": r.get::<_, String>(0)?, "label": r.get::<_, String>(1)?,
                    "start_utc": r.get::<_, String>(2)?,
                    "state": if r.get::<_, i64>(3)? != 0 { "ended" } else { "ongoing" },
                }))
            })
            .optional()?;
        let a = agents.entry(agent.clone()).or_insert_with(|| blank(&agent));
        if a.status == "offline" {
            t.state = "offline".into();
            t.reason = Some("agent offline".into());
            t.since = a.since.clone();
            t.seconds_in_state = a.since.as_deref().and_then(seconds_since);
        }
        a.cameras.push(t);
    }
    let mut out: Vec<AgentTile> = agents.into_values().collect();
    // Offline agents first: the operator must see them at a glance.
    out.sort_by_key(|a| (a.status != "offline", a.agent_id.clone()));
    Ok(out)
}

/// `GET /api/cameras`.
pub async fn api_wall(
    State(st): State<AppState>,
    _a: Auth<OperatorRole>,
) -> Result<Json<Value>, WebError> {
    let agents = st.db.call(|c| wall(c)).await?;
    Ok(Json(serde_json::json!({"agents": agents, "now": now()})))
}
