//! Live state the agents report: health (per agent and per camera) and the latest
//! snapshot per camera. Each row is replaced by the newer message (upsert); these
//! tables hold "now", not history.

use rusqlite::params;

use super::{now, Index};

/// One camera's line of a health message, as stored in `camera_health`.
#[derive(Debug, Clone)]
pub struct CameraHealthRow<'a> {
    /// Reporting agent.
    pub agent_id: &'a str,
    /// Camera (validated id).
    pub camera_id: &'a str,
    /// `starting`, `streaming`, `retrying` or `stopped`.
    pub state: &'a str,
    /// Why it is not streaming, when the agent says.
    pub reason: Option<&'a str>,
    /// RFC 3339 time the camera entered `state`.
    pub since: &'a str,
    /// The camera's whole JSON object (every counter), for the web page.
    pub json: &'a str,
}

impl Index {
    /// Replaces the agent-level health (the whole message, and its `at`).
    pub fn set_agent_health(&self, agent_id: &str, at: &str, json: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO agent_health (agent_id, at, json, received_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(agent_id) DO UPDATE SET at = ?2, json = ?3, received_at = ?4",
            params![agent_id, at, json, now()],
        )?;
        Ok(())
    }

    /// Replaces one camera's health row.
    pub fn set_camera_health(&self, h: &CameraHealthRow<'_>) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO camera_health (agent_id, camera_id, state, reason, since, json, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(agent_id, camera_id) DO UPDATE SET state = ?3, reason = ?4, since = ?5,
                 json = ?6, received_at = ?7",
            params![
                h.agent_id,
                h.camera_id,
                h.state,
                h.reason,
                h.since,
                h.json,
                now()
            ],
        )?;
        Ok(())
    }

    /// Replaces a camera's latest snapshot.
    pub fn set_snapshot(
        &self,
        agent_id: &str,
        camera_id: &str,
        jpeg: &[u8],
        taken_utc: &str,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO snapshots (agent_id, camera_id, jpeg, taken_utc, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(agent_id, camera_id) DO UPDATE SET jpeg = ?3, taken_utc = ?4, received_at = ?5",
            params![agent_id, camera_id, jpeg, taken_utc, now()],
        )?;
        Ok(())
    }
}
