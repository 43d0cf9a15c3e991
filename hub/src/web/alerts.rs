//! Alerts that need a human: stored alerts (`missing_clip`, `tamper`,
//! `rejected`, `outbox_drop`, `forgery`) which an operator acknowledges, and live
//! conditions (a camera or agent down longer than
//! `Options::camera_down_alert_seconds`) that clear themselves.

use axum::extract::{Path, Query, State};
use axum::Json;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use super::auth::{Auth, OperatorRole};
use super::cameras::wall;
use super::db::now;
use super::error::WebError;
use super::AppState;

/// Query of `GET /api/alerts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Include acknowledged alerts (default false).
    pub all: Option<bool>,
    /// Most alerts returned (default 200, at most 1000).
    pub limit: Option<i64>,
}

/// Stored alerts, newest first.
pub fn stored(conn: &Connection, all: bool, limit: i64) -> Result<Vec<Value>, WebError> {
    let mut st = conn.prepare(
        "SELECT a.id, a.kind, a.agent_id, a.camera_id, a.detail, a.at, k.username, k.at
         FROM alerts a LEFT JOIN alert_acks k ON k.alert_id = a.id
         WHERE ?1 OR k.alert_id IS NULL ORDER BY a.id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![all, limit], |r| {
        Ok(json!({
            "id": r.get::<_, i64>(0)?, "kind": r.get::<_, String>(1)?,
            "agent_id": r.get::<_, String>(2)?, "camera_id": r.get::<_, String>(3)?,
            "detail": r.get::<_, String>(4)?, "at": r.get::<_, i64>(5)?,
            "acked_by": r.get::<_, Option<String>>(6)?, "acked_at": r.get::<_, Option<i64>>(7)?,
        }))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Cameras and agents down longer than `threshold` seconds.
pub fn conditions(conn: &Connection, threshold: i64) -> Result<Vec<Value>, WebError> {
    let mut out = Vec::new();
    for a in wall(conn)? {
        if a.status == "offline" {
            let secs = a
                .since
                .as_deref()
                .and_then(super::live::unix_of)
                .map(|t| now() - t);
            if secs.is_none_or(|s| s >= threshold) {
                out.push(json!({
                    "kind": "agent_offline", "agent_id": a.agent_id, "camera_id": null,
                    "since": a.since, "seconds": secs,
                    "detail": format!("agent {} is offline", a.agent_id),
                }));
            }
            continue;
        }
        for c in a.cameras {
            let down = matches!(c.state.as_str(), "retrying" | "stopped" | "offline");
            if down && c.seconds_in_state.is_some_and(|s| s >= threshold) {
                out.push(json!({
                    "kind": "camera_down", "agent_id": a.agent_id, "camera_id": c.camera_id,
                    "since": c.since, "seconds": c.seconds_in_state,
                    "detail": format!("{} {}{}", c.camera_id, c.state,
                        c.reason.map(|r| format!(": {r}")).unwrap_or_default()),
                }));
            }
        }
    }
    Ok(out)
}

/// `GET /api/alerts`.
pub async fn api_list(
    State(st): State<AppState>,
    _a: Auth<OperatorRole>,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, WebError> {
    let threshold = st.opts.camera_down_alert_seconds as i64;
    let all = q.all.unwrap_or(false);
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let v = st
        .db
        .call(move |c| {
            Ok(json!({
                "alerts": stored(c, all, limit)?,
                "conditions": conditions(c, threshold)?,
                "camera_down_alert_seconds": threshold,
            }))
        })
        .await?;
    Ok(Json(v))
}

/// `POST /api/alerts/{id}/ack`.
pub async fn api_ack(
    State(st): State<AppState>,
    Auth(user, _): Auth<OperatorRole>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(move |c| {
            let kind: Option<String> = c
                .query_row("SELECT kind FROM alerts WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()?;
            let kind = kind.ok_or_else(|| WebError::NotFound(format!("no alert {id}")))?;
            let n = c.execute(
                "INSERT OR IGNORE INTO alert_acks (alert_id, username, at) VALUES (?1, ?2, ?3)",
                params![id, user.username, now()],
            )?;
            if n == 1 {
                audit::append(
                    c,
                    &user.username,
                    "alert_ack",
                    &id.to_string(),
                    &json!({"kind": kind}),
                )?;
            }
            Ok(Json(json!({"id": id, "acked": true})))
        })
        .await
}
