//! The small JSON topics: `events`, `status` and `records` (chain resets).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use vigil_evidence::chain::ChainReset;
use vigil_evidence::record::Signed;

use super::{internal, Ingest, Rejection};
use crate::topic::{shorten, valid_id};

/// The records message of contract v1.
#[derive(Deserialize)]
struct RecordMessage {
    kind: String,
    record_b64: String,
    signature: String,
}

impl Ingest {
    /// Handles `events`: stores the message, idempotent on (event id, phase).
    pub fn event(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (_, v): (_, serde_json::Value) = self.small_message(agent, payload, "event")?;
        let phase = v.get("phase").and_then(|p| p.as_str()).unwrap_or("");
        if !matches!(phase, "start" | "update" | "end") {
            return Err(Rejection::new(
                "bad_event",
                format!("phase {:?} is not start, update or end", shorten(phase)),
            ));
        }
        let ev = v.get("event");
        let id = ev
            .and_then(|e| e.get("id"))
            .and_then(|x| x.as_str())
            .unwrap_or("");
        let camera = ev
            .and_then(|e| e.get("camera_id"))
            .and_then(|x| x.as_str())
            .unwrap_or("");
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(Rejection::new(
                "bad_event",
                "event.id must be a 1-128 byte string",
            ));
        }
        if !valid_id(camera) {
            return Err(Rejection::new(
                "bad_event",
                format!(
                    "event.camera_id {:?} is not 1-64 of [A-Za-z0-9_-]",
                    shorten(camera)
                ),
            ));
        }
        let json = String::from_utf8_lossy(payload);
        self.index
            .insert_event(id, phase, agent, camera, &json)
            .map_err(|e| internal("cannot store the event", e))?;
        // The event-latency benchmark pairs this line with the agent's "Event" line.
        tracing::debug!(agent, camera, event = id, phase, "Indexed an event");
        Ok(())
    }

    /// Handles `status`: keeps the agent's last status.
    pub fn status(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (_, v): (_, serde_json::Value) = self.small_message(agent, payload, "status")?;
        if !v.is_object() {
            return Err(Rejection::new(
                "bad_json",
                "status message is not a JSON object",
            ));
        }
        self.index
            .set_status(agent, &v.to_string())
            .map_err(|e| internal("cannot store the status", e))
    }

    /// Handles `records`: verifies and stores a `chain_reset`.
    pub fn record(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (key, msg): (_, RecordMessage) = self.small_message(agent, payload, "records")?;
        if msg.kind != "chain_reset" {
            return Err(Rejection::new(
                "bad_record",
                format!("record kind {:?} is not handled", shorten(&msg.kind)),
            ));
        }
        let canonical = B64
            .decode(msg.record_b64.as_bytes())
            .map_err(|e| Rejection::new("bad_record", format!("record_b64 is not base64: {e}")))?;
        let signed = Signed::<ChainReset>::from_files(canonical, msg.signature.as_bytes())
            .map_err(|e| Rejection::new("bad_record", e.to_string()))?;
        signed
            .verify(&key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let r = signed.record();
        if r.agent_id != agent || !valid_id(&r.camera_id) {
            return Err(Rejection::new(
                "wrong_agent",
                "chain_reset names another agent or an invalid camera id",
            ));
        }
        self.index
            .insert_record(
                &signed.sha256().to_hex(),
                "chain_reset",
                agent,
                &r.camera_id,
                &r.segment_id.hyphenated().to_string(),
                0,
                signed.canonical_bytes(),
                signed.signature_file().trim_end(),
            )
            .map_err(|e| internal("cannot store the record", e))?;
        Ok(())
    }
}
