//! Agent telemetry (docs/mqtt.md): `health` (QoS 0, every 10 s) upserts
//! `agent_health` and one `camera_health` row per camera; `cameras/{camera}/snapshot`
//! (QoS 0, retained) replaces the camera's row in `snapshots`; `drops` (QoS 1)
//! becomes an `outbox_drop` alert.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{internal, Ingest, Rejection};
use crate::index::{AlertKind, CameraHealthRow};
use crate::topic::{shorten, valid_id};

/// Largest snapshot JPEG (decoded), bytes.
pub const MAX_SNAPSHOT_JPEG: usize = 512 * 1024;
/// Most cameras one health message may list.
pub const MAX_HEALTH_CAMERAS: usize = 256;

/// Camera states of contract v1.
const STATES: [&str; 4] = ["starting", "streaming", "retrying", "stopped"];

#[derive(Deserialize)]
struct HealthMessage {
    at: String,
    cameras: Vec<serde_json::Value>,
}

/// The fields of a camera entry the hub indexes (the rest is kept as JSON).
#[derive(Deserialize)]
struct CameraHealth {
    camera_id: String,
    state: String,
    #[serde(default)]
    reason: Option<String>,
    since: String,
}

#[derive(Deserialize)]
struct SnapshotMessage {
    camera_id: String,
    taken_utc: String,
    jpeg_b64: String,
}

#[derive(Deserialize)]
struct DropMessage {
    kind: String,
    #[serde(default)]
    clip_id: Option<String>,
    camera_id: String,
    #[serde(default)]
    seq: Option<u64>,
    bytes: u64,
    reason: String,
    at: String,
    /// The agent's outbox entry (newer agents): the report is recorded once under it.
    #[serde(default)]
    entry: Option<String>,
}

fn rfc3339(what: &str, s: &str) -> Result<(), Rejection> {
    OffsetDateTime::parse(s, &Rfc3339).map(|_| ()).map_err(|_| {
        Rejection::new(
            "bad_time",
            format!("{what} {:?} is not an RFC 3339 time", shorten(s)),
        )
    })
}

fn camera_id(what: &str, id: &str) -> Result<(), Rejection> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Rejection::new(
            "bad_camera_id",
            format!("{what} {:?} is not 1-64 of [A-Za-z0-9_-]", shorten(id)),
        ))
    }
}

impl Ingest {
    /// Handles `health`: validates every camera entry, then upserts all of them.
    pub fn health(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (_, msg): (_, HealthMessage) = self.small_message(agent, payload, "health")?;
        rfc3339("at", &msg.at)?;
        if msg.cameras.len() > MAX_HEALTH_CAMERAS {
            return Err(Rejection::new(
                "bad_health",
                format!(
                    "{} cameras listed; the limit is {MAX_HEALTH_CAMERAS}",
                    msg.cameras.len()
                ),
            ));
        }
        let mut rows = Vec::with_capacity(msg.cameras.len());
        for (i, v) in msg.cameras.iter().enumerate() {
            let c: CameraHealth = serde_json::from_value(v.clone())
                .map_err(|e| Rejection::new("bad_health", format!("cameras[{i}]: {e}")))?;
            camera_id(&format!("cameras[{i}].camera_id"), &c.camera_id)?;
            if !STATES.contains(&c.state.as_str()) {
                return Err(Rejection::new(
                    "bad_health",
                    format!(
                        "cameras[{i}].state {:?} is not one of {STATES:?}",
                        shorten(&c.state)
                    ),
                ));
            }
            rfc3339(&format!("cameras[{i}].since"), &c.since)?;
            rows.push((c, v.to_string()));
        }
        let json = String::from_utf8_lossy(payload);
        self.index
            .set_agent_health(agent, &msg.at, &json)
            .map_err(|e| internal("cannot store the health", e))?;
        for (c, json) in &rows {
            self.index
                .set_camera_health(&CameraHealthRow {
                    agent_id: agent,
                    camera_id: &c.camera_id,
                    state: &c.state,
                    reason: c.reason.as_deref(),
                    since: &c.since,
                    json,
                })
                .map_err(|e| internal("cannot store a camera's health", e))?;
        }
        Ok(())
    }

    /// Handles `cameras/{camera}/snapshot`: a JPEG (checked by its magic) replaces the last one.
    pub fn snapshot(&mut self, agent: &str, camera: &str, payload: &[u8]) -> Result<(), Rejection> {
        if payload.is_empty() {
            // An empty retained message clears the retained snapshot at the broker.
            return Ok(());
        }
        let (_, msg): (_, SnapshotMessage) = self.small_message(agent, payload, "snapshot")?;
        if msg.camera_id != camera {
            return Err(Rejection::new(
                "wrong_camera",
                format!(
                    "snapshot names camera {:?} but came on camera {camera:?}'s topic",
                    shorten(&msg.camera_id)
                ),
            ));
        }
        rfc3339("taken_utc", &msg.taken_utc)?;
        let jpeg = B64
            .decode(msg.jpeg_b64.as_bytes())
            .map_err(|e| Rejection::new("bad_snapshot", format!("jpeg_b64 is not base64: {e}")))?;
        if jpeg.len() > MAX_SNAPSHOT_JPEG {
            return Err(Rejection::new(
                "too_large",
                format!(
                    "snapshot JPEG is {} bytes; the limit is {MAX_SNAPSHOT_JPEG}",
                    jpeg.len()
                ),
            ));
        }
        if !(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9])) {
            return Err(Rejection::new(
                "bad_snapshot",
                "jpeg_b64 is not a JPEG (no FF D8 FF start / FF D9 end)",
            ));
        }
        self.index
            .set_snapshot(agent, camera, &jpeg, &msg.taken_utc)
            .map_err(|e| internal("cannot store the snapshot", e))
    }

    /// Handles `drops`: the agent discarded undelivered outbox data; raises an alert.
    pub fn drops(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (_, m): (_, DropMessage) = self.small_message(agent, payload, "drops")?;
        if m.kind != "outbox_drop" {
            return Err(Rejection::new(
                "bad_drop",
                format!("kind {:?} is not outbox_drop", shorten(&m.kind)),
            ));
        }
        camera_id("camera_id", &m.camera_id)?;
        rfc3339("at", &m.at)?;
        let clip = match &m.clip_id {
            Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
                Rejection::new(
                    "bad_drop",
                    format!("clip_id {:?} is not a UUID", shorten(c)),
                )
            })?),
            None => None,
        };
        let what = match (clip, m.seq) {
            (Some(c), Some(s)) => format!("clip {c} (seq {s})"),
            (Some(c), None) => format!("clip {c}"),
            (None, Some(s)) => format!("seq {s}"),
            (None, None) => "an entry".to_string(),
        };
        let reason: String = m
            .reason
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        let detail = format!(
            "agent {agent} dropped {what} of camera {} ({} bytes) from its outbox at {}: {reason}",
            m.camera_id, m.bytes, m.at
        );
        match &m.entry {
            Some(entry) => {
                let first = self
                    .index
                    .drop_report(agent, entry, &m.camera_id, &detail)
                    .map_err(|e| internal("cannot record the drop report", e))?;
                if first {
                    tracing::warn!(kind = ?AlertKind::OutboxDrop, agent, camera = %m.camera_id, detail, "Raised an alert");
                }
            }
            None => self.raise(AlertKind::OutboxDrop, agent, &m.camera_id, &detail),
        }
        Ok(())
    }
}
