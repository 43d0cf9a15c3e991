//! Investigators' clip search and on-demand re-verification.
//!
//! Every clip in `clips` was verified at ingest (signature under the enrolled
//! key, file SHA-256, every GOP hash, chain position). `POST
//! /api/clips/{id}/verify` repeats the signature and file checks against the
//! stored bytes now and keeps the result in `clip_checks`.

use axum::extract::{Path, Query, State};
use axum::Json;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_evidence::keys::PublicKey;
use vigil_evidence::manifest::SignedManifest;

use super::audit;
use super::auth::{Auth, InvestigatorRole, ViewerRole};
use super::db::now;
use super::error::WebError;
use super::events::parse_time;
use super::media::{is_sha_hex, parse_clip_id};
use super::AppState;
use crate::files::Layout;

/// Query of `GET /api/clips`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipFilter {
    /// Camera id.
    pub camera: Option<String>,
    /// Agent id.
    pub agent: Option<String>,
    /// Clip overlaps [from, to] (RFC 3339 or `YYYY-MM-DDTHH:MM` UTC).
    pub from: Option<String>,
    /// See `from`.
    pub to: Option<String>,
    /// A label of an event in the clip.
    pub label: Option<String>,
    /// A zone of an event in the clip.
    pub zone: Option<String>,
    /// Clips of flagged events only (`true`).
    pub flagged: Option<String>,
    /// Cursor from the previous page.
    pub before: Option<i64>,
    /// Page size 1-200 (default 50).
    pub limit: Option<i64>,
}

fn nonempty(o: &Option<String>) -> Option<&str> {
    o.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A page of stored clips, newest first.
pub fn search(conn: &Connection, f: &ClipFilter) -> Result<Vec<Value>, WebError> {
    let mut w = vec!["1 = 1".to_string()];
    let mut p: Vec<SqlValue> = Vec::new();
    let mut push = |cond: &str, v: SqlValue, w: &mut Vec<String>| {
        p.push(v);
        w.push(cond.replace('?', &format!("?{}", p.len())));
    };
    if let Some(c) = nonempty(&f.camera) {
        push("w.camera_id = ?", SqlValue::Text(c.into()), &mut w);
    }
    if let Some(a) = nonempty(&f.agent) {
        push("w.agent_id = ?", SqlValue::Text(a.into()), &mut w);
    }
    if let Some(t) = nonempty(&f.from) {
        push(
            "w.end_unix >= ?",
            SqlValue::Integer(parse_time(t, "from")?),
            &mut w,
        );
    }
    if let Some(t) = nonempty(&f.to) {
        push(
            "w.start_unix <= ?",
            SqlValue::Integer(parse_time(t, "to")?),
            &mut w,
        );
    }
    if let Some(l) = nonempty(&f.label) {
        push(
            "EXISTS (SELECT 1 FROM json_each(w.labels) j WHERE j.value = ?)",
            SqlValue::Text(l.into()),
            &mut w,
        );
    }
    if let Some(z) = nonempty(&f.zone) {
        push(
            "EXISTS (SELECT 1 FROM web_event_clips ec JOIN web_events e ON e.event_id = ec.event_id,
                     json_each(e.zones) j WHERE ec.clip_id = w.clip_id AND j.value = ?)",
            SqlValue::Text(z.into()),
            &mut w,
        );
    }
    match nonempty(&f.flagged) {
        None | Some("any") | Some("false") => {}
        Some("true") => w.push(
            "EXISTS (SELECT 1 FROM web_event_clips ec WHERE ec.clip_id = w.clip_id AND
             (SELECT kind FROM event_annotations a WHERE a.event_id = ec.event_id
              AND a.kind IN ('flag', 'unflag') ORDER BY id DESC LIMIT 1) = 'flag')"
                .into(),
        ),
        Some(o) => {
            return Err(WebError::BadRequest(format!(
                "flagged={o:?}: use true or any"
            )))
        }
    }
    if let Some(b) = f.before {
        push("w.clip_rowid < ?", SqlValue::Integer(b), &mut w);
    }
    p.push(SqlValue::Integer(f.limit.unwrap_or(50).clamp(1, 200)));
    let sql = format!(
        "SELECT w.clip_id, w.clip_rowid, w.agent_id, w.camera_id, w.start_utc, w.end_utc, w.labels,
                c.size, c.sha256, c.stored_at, c.seq, c.segment_id, k.ok, k.detail, k.at,
                (SELECT json_group_array(event_id) FROM web_event_clips ec WHERE ec.clip_id = w.clip_id)
         FROM web_clips w JOIN clips c ON c.clip_id = w.clip_id
         LEFT JOIN clip_checks k ON k.clip_id = w.clip_id
         WHERE {} ORDER BY w.clip_rowid DESC LIMIT ?{}",
        w.join(" AND "),
        p.len()
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st.query_map(params_from_iter(p), |r| {
        let id: String = r.get(0)?;
        let check: Option<i64> = r.get(12)?;
        Ok(json!({
            "clip_id": id, "cursor": r.get::<_, i64>(1)?,
            "agent_id": r.get::<_, String>(2)?, "camera_id": r.get::<_, String>(3)?,
            "start_utc": r.get::<_, String>(4)?, "end_utc": r.get::<_, String>(5)?,
            "labels": serde_json::from_str::<Value>(&r.get::<_, String>(6)?).unwrap_or(Value::Null),
            "size": r.get::<_, i64>(7)?, "sha256": r.get::<_, String>(8)?,
            "stored_at": r.get::<_, i64>(9)?, "seq": r.get::<_, i64>(10)?,
            "segment_id": r.get::<_, String>(11)?,
            "verify": match check {
                None => json!({"status": "verified", "by": "ingest"}),
                Some(ok) => json!({"status": if ok != 0 { "verified" } else { "failed" },
                    "by": "recheck", "detail": r.get::<_, String>(13)?, "at": r.get::<_, i64>(14)?}),
            },
            "event_ids": serde_json::from_str::<Value>(&r.get::<_, String>(15)?).unwrap_or(Value::Null),
            "url": format!("/media/clips/{id}"),
            "download_url": format!("/media/clips/{id}/download"),
        }))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `GET /api/clips`.
pub async fn api_search(
    State(st): State<AppState>,
    _a: Auth<InvestigatorRole>,
    Query(f): Query<ClipFilter>,
) -> Result<Json<Value>, WebError> {
    let limit = f.limit.unwrap_or(50).clamp(1, 200);
    let clips = st.db.call(move |c| search(c, &f)).await?;
    let next = (clips.len() as i64 == limit)
        .then(|| clips.last().and_then(|c| c["cursor"].as_i64()))
        .flatten();
    Ok(Json(json!({"clips": clips, "next_before": next})))
}

/// The public key with `key_id` that `agent` enrolled (current or replaced).
pub fn agent_key(conn: &Connection, agent: &str, key_id: &str) -> Result<Option<String>, WebError> {
    let from_history = conn
        .query_row(
            "SELECT public_key_pem FROM agent_keys WHERE agent_id = ?1 AND key_id = ?2",
            params![agent, key_id],
            |r| r.get::<_, String>(0),
        )
        .optional();
    match from_history {
        Ok(Some(p)) => return Ok(Some(p)),
        Ok(None) => {}
        Err(e) if super::db::is_missing_table(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(conn
        .query_row(
            "SELECT public_key_pem FROM agents WHERE agent_id = ?1 AND key_id = ?2",
            params![agent, key_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Re-checks a stored clip: manifest signature under the enrolled key, then
/// size, SHA-256 and GOP hashes of the file. `Ok(Err(sentence))` on a failure.
pub fn recheck(
    conn: &Connection,
    layout: &Layout,
    clip_id: &str,
) -> Result<Result<(), String>, WebError> {
    let row: Option<(String, Vec<u8>, String, String)> = conn
        .query_row(
            "SELECT agent_id, manifest, signature, sha256 FROM clips WHERE clip_id = ?1",
            params![clip_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (agent, manifest, sig, sha) =
        row.ok_or_else(|| WebError::NotFound(format!("no stored clip {clip_id}")))?;
    let signed = match SignedManifest::from_files(manifest, sig.as_bytes()) {
        Ok(s) => s,
        Err(e) => return Ok(Err(format!("stored manifest does not parse: {e}"))),
    };
    let key_id = signed.record().key_id.to_hex();
    let Some(pem) = agent_key(conn, &agent, &key_id)? else {
        return Ok(Err(format!(
            "key {key_id} is not enrolled for agent {agent}"
        )));
    };
    let key = match PublicKey::from_pem(&pem) {
        Ok(k) => k,
        Err(e) => return Ok(Err(format!("enrolled key of {agent} does not parse: {e}"))),
    };
    if let Err(e) = signed.verify(&key) {
        return Ok(Err(format!("manifest signature: {e}")));
    }
    if !is_sha_hex(&sha) {
        return Ok(Err("stored sha256 is malformed".into()));
    }
    let bytes = match std::fs::read(layout.clip_path(&sha)) {
        Ok(b) => b,
        Err(e) => return Ok(Err(format!("clip file cannot be read: {e}"))),
    };
    Ok(crate::ingest::verify_clip(signed.record(), &bytes).map_err(|r| r.reason))
}

/// `POST /api/clips/{id}/verify`.
pub async fn api_verify(
    State(st): State<AppState>,
    Auth(user, _): Auth<InvestigatorRole>,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id = parse_clip_id(&id)?;
    let layout = st.layout.clone();
    st.db
        .call(move |c| {
            let res = recheck(c, &layout, &id)?;
            let (ok, detail) = match &res {
                Ok(()) => (
                    true,
                    "signature, file SHA-256 and every GOP hash match".to_string(),
                ),
                Err(s) => (false, s.clone()),
            };
            c.execute(
                "INSERT INTO clip_checks (clip_id, ok, detail, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(clip_id) DO UPDATE SET ok = ?2, detail = ?3, at = ?4",
                params![id, ok, detail, now()],
            )?;
            audit::append(
                c,
                &user.username,
                "clip_verify",
                &id,
                &json!({"ok": ok, "detail": detail}),
            )?;
            Ok(Json(json!({"clip_id": id, "ok": ok, "detail": detail})))
        })
        .await
}

/// agent, camera, segment, seq, size, sha256, manifest.
type ClipMeta = (String, String, String, i64, i64, String, Vec<u8>);

/// `GET /api/clips/{id}`: one clip's metadata and its events.
pub async fn api_detail(
    State(st): State<AppState>,
    _a: Auth<ViewerRole>,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let id = parse_clip_id(&id)?;
    st.db
        .call(move |c| {
            let row: Option<ClipMeta> = c
                .query_row(
                    "SELECT agent_id, camera_id, segment_id, seq, size, sha256, manifest FROM clips WHERE clip_id = ?1",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                )
                .optional()?;
            let (agent, camera, segment, seq, size, sha, manifest) =
                row.ok_or_else(|| WebError::NotFound(format!("no stored clip {id}")))?;
            Ok(Json(json!({
                "clip_id": id, "agent_id": agent, "camera_id": camera, "segment_id": segment,
                "seq": seq, "size": size, "sha256": sha,
                "manifest": serde_json::from_slice::<Value>(&manifest).unwrap_or(Value::Null),
                "url": format!("/media/clips/{id}"),
            })))
        })
        .await
}
