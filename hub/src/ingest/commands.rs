//! Hub → agent commands for recordings (docs/mqtt.md `commands`): pending pulls and
//! active holds are sent on `vigil/v1/{agent}/commands` and resent every
//! [`RESEND`] until every piece they cover is stored at the hub (the agent treats a
//! repeat as a no-op), so a request made while the agent is offline completes when it
//! comes back. A pull is complete once the hub holds every piece of the window the
//! agent has reported and not deleted; a hold keeps its status `active` until released.

use rusqlite::params;
use serde_json::json;
use time::OffsetDateTime;
use vigil_evidence::record::utc_ms::format_unix_ms;

use super::Ingest;

/// How long the hub waits for a request's pieces before it sends the command again.
pub const RESEND: i64 = 15;

impl Ingest {
    /// Commands due now (topic, payload); marks them sent. Errors are logged, not fatal.
    pub fn due_commands(&mut self) -> Vec<(String, Vec<u8>)> {
        match self.due_commands_inner() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "Cannot read pending recording requests");
                Vec::new()
            }
        }
    }

    fn due_commands_inner(&mut self) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
        let conn = self.index.conn();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut st = conn.prepare(
            "SELECT id, kind, agent_id, camera_id, from_ms, to_ms, case_number, reason, status,
                    last_sent_at IS NULL OR last_sent_at <= ?1
             FROM recording_requests
             WHERE status IN ('pending', 'active', 'releasing')",
        )?;
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            i64,
            String,
            String,
            String,
            bool,
        );
        let rows: Vec<Row> = st
            .query_map(params![now - RESEND], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        // Every request is looked at on every tick, so a pull is `complete` as soon as its
        // last piece is stored; only sending to the agent waits for `due` (RESEND).
        for (id, kind, agent, camera, from, to, case, reason, status, due) in rows {
            let topic = crate::topic::commands_topic(&agent);
            if status == "releasing" && due {
                let body = json!({"kind": "release", "hold_id": id});
                out.push((topic, body.to_string().into_bytes()));
                conn.execute(
                    "UPDATE recording_requests SET status = 'released', last_sent_at = ?2, completed_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                continue;
            }
            // Pieces the agent reported for the window and the hub lacks.
            let (known, lacking): (i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(c.clip_id IS NULL AND l.deleted_seq IS NULL), 0)
                 FROM chain_links l LEFT JOIN clips c ON c.clip_id = l.id
                 WHERE l.agent_id = ?1 AND l.camera_id = ?2 AND l.kind = 'piece'
                   AND l.end_ms >= ?3 AND l.start_ms < ?4",
                params![agent, camera, from, to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let covered = known > 0 && lacking == 0;
            if kind == "pull" && covered {
                conn.execute(
                    "UPDATE recording_requests SET status = 'complete', completed_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                tracing::info!(request = %id, agent, camera, pieces = known, "Recorded window pulled completely");
                continue;
            }
            if !due || status == "releasing" {
                continue;
            }
            if kind == "hold" && covered {
                // Held and every piece is here: nothing to send until something changes.
                conn.execute(
                    "UPDATE recording_requests SET last_sent_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                continue;
            }
            let body = if kind == "pull" {
                json!({"kind": "pull", "request_id": id, "camera_id": camera,
                       "from": format_unix_ms(from), "to": format_unix_ms(to)})
            } else {
                json!({"kind": "hold", "hold_id": id, "camera_id": camera,
                       "from": format_unix_ms(from), "to": format_unix_ms(to), "reason": reason, "case": case})
            };
            out.push((topic, body.to_string().into_bytes()));
            conn.execute(
                "UPDATE recording_requests SET last_sent_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
        }
        Ok(out)
    }
}
