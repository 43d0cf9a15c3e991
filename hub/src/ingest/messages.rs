//! The small JSON topics: `events`, `status` and `records` (chain resets, recorded
//! pieces' and announced clips' manifests, deletion records).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use vigil_evidence::chain::{ChainReset, Deletion};
use vigil_evidence::manifest::Manifest;
use vigil_evidence::record::Signed;

use super::chain::Link;
use super::{internal, Ingest, Rejection};
use crate::index::{AlertKind, ChainLinkRow};
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

    /// Handles `records`: verifies and stores a `chain_reset`, a manifest (`piece`: a
    /// recorded piece whose video stays on the box until pulled; `manifest`: an event
    /// clip announced ahead of its transfer) or a `deletion` record.
    pub fn record(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (key, msg): (_, RecordMessage) = self.small_message(agent, payload, "records")?;
        let canonical = B64
            .decode(msg.record_b64.as_bytes())
            .map_err(|e| Rejection::new("bad_record", format!("record_b64 is not base64: {e}")))?;
        match msg.kind.as_str() {
            "chain_reset" => self.reset_record(agent, &key, canonical, &msg.signature),
            "piece" | "manifest" => self.manifest_record(agent, &key, canonical, &msg.signature),
            "deletion" => self.deletion_record(agent, &key, canonical, &msg.signature),
            other => Err(Rejection::new(
                "bad_record",
                format!("record kind {:?} is not handled", shorten(other)),
            )),
        }
    }

    fn reset_record(
        &mut self,
        agent: &str,
        key: &vigil_evidence::keys::PublicKey,
        canonical: Vec<u8>,
        signature: &str,
    ) -> Result<(), Rejection> {
        let signed = Signed::<ChainReset>::from_files(canonical, signature.as_bytes())
            .map_err(|e| Rejection::new("bad_record", e.to_string()))?;
        signed
            .verify(key)
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

    fn manifest_record(
        &mut self,
        agent: &str,
        key: &vigil_evidence::keys::PublicKey,
        canonical: Vec<u8>,
        signature: &str,
    ) -> Result<(), Rejection> {
        let signed = Signed::<Manifest>::from_files(canonical, signature.as_bytes())
            .map_err(|e| Rejection::new("bad_record", e.to_string()))?;
        signed
            .verify(key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let m = signed.record();
        if m.agent_id != agent || !valid_id(&m.camera_id) {
            return Err(Rejection::new(
                "wrong_agent",
                "manifest names another agent or an invalid camera id",
            ));
        }
        let sha = signed.sha256().to_hex();
        let gap = match self.chain_check(m, &sha, false) {
            Ok(g) => g,
            Err(r) => {
                self.raise(AlertKind::Tamper, agent, &m.camera_id, &r.reason);
                return Err(r);
            }
        };
        let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        let segment = m.segment_id.hyphenated().to_string();
        let kind = if m.is_piece() { "piece" } else { "clip" };
        self.index
            .insert_record(
                &sha,
                kind,
                agent,
                &m.camera_id,
                &segment,
                m.seq,
                signed.canonical_bytes(),
                signed.signature_file().trim_end(),
            )
            .and_then(|_| {
                self.index.insert_link(&ChainLinkRow {
                    agent_id: agent.to_string(),
                    camera_id: m.camera_id.clone(),
                    segment_id: segment.clone(),
                    seq: m.seq,
                    kind,
                    id: m.clip_id.hyphenated().to_string(),
                    manifest_sha256: sha.clone(),
                    prev_manifest_sha256: m.prev_manifest_sha256.to_hex(),
                    start_ms: Some(ms(m.start)),
                    end_ms: Some(ms(m.end)),
                    size: Some(m.file.size),
                    recovered: m.piece.is_some_and(|p| p.recovered),
                    start_reason: m.piece.map(|p| p.start_reason.as_str()),
                })
            })
            .map_err(|e| internal("cannot store the record", e))?;
        if let Some(detail) = gap {
            self.raise(AlertKind::MissingClip, agent, &m.camera_id, &detail);
        }
        Ok(())
    }

    fn deletion_record(
        &mut self,
        agent: &str,
        key: &vigil_evidence::keys::PublicKey,
        canonical: Vec<u8>,
        signature: &str,
    ) -> Result<(), Rejection> {
        let signed = Signed::<Deletion>::from_files(canonical, signature.as_bytes())
            .map_err(|e| Rejection::new("bad_record", e.to_string()))?;
        signed
            .verify(key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let d = signed.record();
        if d.agent_id != agent || !valid_id(&d.camera_id) {
            return Err(Rejection::new(
                "wrong_agent",
                "deletion record names another agent or an invalid camera id",
            ));
        }
        let sha = signed.sha256().to_hex();
        let segment = d.segment_id.hyphenated().to_string();
        let link = Link {
            agent,
            camera: &d.camera_id,
            segment: segment.clone(),
            seq: d.seq,
            prev: d.prev_manifest_sha256.to_hex(),
            sha: &sha,
            id: sha.clone(),
            what: "deletion record",
        };
        let gap = match self.link_check(&link) {
            Ok(g) => g,
            Err(r) => {
                self.raise(AlertKind::Tamper, agent, &d.camera_id, &r.reason);
                return Err(r);
            }
        };
        let at_ms = (d.time.unix_timestamp_nanos() / 1_000_000) as i64;
        let pieces: Vec<(String, u64)> = d
            .pieces
            .iter()
            .map(|p| (p.segment_id.hyphenated().to_string(), p.seq))
            .collect();
        self.index
            .insert_record(
                &sha,
                "deletion",
                agent,
                &d.camera_id,
                &segment,
                d.seq,
                signed.canonical_bytes(),
                signed.signature_file().trim_end(),
            )
            .and_then(|_| {
                self.index.insert_link(&ChainLinkRow {
                    agent_id: agent.to_string(),
                    camera_id: d.camera_id.clone(),
                    segment_id: segment.clone(),
                    seq: d.seq,
                    kind: "deletion",
                    id: sha.clone(),
                    manifest_sha256: sha.clone(),
                    prev_manifest_sha256: d.prev_manifest_sha256.to_hex(),
                    start_ms: None,
                    end_ms: None,
                    size: None,
                    recovered: false,
                    start_reason: None,
                })
            })
            .and_then(|_| {
                self.index.mark_deleted(
                    agent,
                    &d.camera_id,
                    &pieces,
                    d.seq,
                    d.reason.as_str(),
                    at_ms,
                )
            })
            .map_err(|e| internal("cannot store the record", e))?;
        if let Some(detail) = gap {
            self.raise(AlertKind::MissingClip, agent, &d.camera_id, &detail);
        }
        Ok(())
    }
}
