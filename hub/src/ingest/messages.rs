//! The small JSON topics: `events`, `status` and `records` (chain resets, recorded
//! pieces' and announced clips' manifests, deletion records).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use vigil_evidence::chain::{ChainReset, Deletion};
use vigil_evidence::keys::PublicKey;
use vigil_evidence::manifest::Manifest;
use vigil_evidence::record::utc_ms::unix_ms;
use vigil_evidence::record::{Record, Signed};

use super::chain::link_of_manifest;
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

    /// Parses and verifies a signed record under the agent's enrolled `key`, and checks
    /// that it speaks for `agent` about a valid camera (`names` gives its agent and camera).
    fn verified<R: Record>(
        agent: &str,
        key: &PublicKey,
        canonical: Vec<u8>,
        signature: &str,
        names: impl Fn(&R) -> (&str, &str),
    ) -> Result<Signed<R>, Rejection> {
        let signed = Signed::<R>::from_files(canonical, signature.as_bytes())
            .map_err(|e| Rejection::new("bad_record", e.to_string()))?;
        signed
            .verify(key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let (a, camera) = names(signed.record());
        if a != agent || !valid_id(camera) {
            return Err(Rejection::new(
                "wrong_agent",
                format!("{} names another agent or an invalid camera id", R::WHAT),
            ));
        }
        Ok(signed)
    }

    fn reset_record(
        &mut self,
        agent: &str,
        key: &PublicKey,
        canonical: Vec<u8>,
        signature: &str,
    ) -> Result<(), Rejection> {
        let signed = Self::verified::<ChainReset>(agent, key, canonical, signature, |r| {
            (&r.agent_id, &r.camera_id)
        })?;
        let r = signed.record();
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
        key: &PublicKey,
        canonical: Vec<u8>,
        signature: &str,
    ) -> Result<(), Rejection> {
        let signed = Self::verified::<Manifest>(agent, key, canonical, signature, |m| {
            (&m.agent_id, &m.camera_id)
        })?;
        let link = link_of_manifest(signed.record(), &signed.sha256().to_hex());
        self.store_link(&link, &signed, |_| Ok(()))
    }

    fn deletion_record(
        &mut self,
        agent: &str,
        key: &PublicKey,
        canonical: Vec<u8>,
        signature: &str,
    ) -> Result<(), Rejection> {
        let signed = Self::verified::<Deletion>(agent, key, canonical, signature, |d| {
            (&d.agent_id, &d.camera_id)
        })?;
        let d = signed.record();
        let sha = signed.sha256().to_hex();
        let link = ChainLinkRow {
            agent_id: agent.to_string(),
            camera_id: d.camera_id.clone(),
            segment_id: d.segment_id.hyphenated().to_string(),
            seq: d.seq,
            kind: "deletion",
            id: sha.clone(),
            manifest_sha256: sha,
            prev_manifest_sha256: d.prev_manifest_sha256.to_hex(),
            start_ms: None,
            end_ms: None,
            size: None,
            recovered: false,
            start_reason: None,
        };
        let pieces: Vec<(String, u64)> = d
            .pieces
            .iter()
            .map(|p| (p.segment_id.hyphenated().to_string(), p.seq))
            .collect();
        self.store_link(&link, &signed, |index| {
            index.mark_deleted(
                agent,
                &d.camera_id,
                &pieces,
                d.seq,
                d.reason.as_str(),
                unix_ms(&d.time),
            )
        })
    }

    /// A record that occupies a seq: checked against the stored chain (a conflict is a
    /// `tamper` alert and rejection), stored in `chain_records` and `chain_links` (then
    /// `also`), and a gap before it (in seqs, or in time between recorded pieces that
    /// say they continue each other) raised as `missing_clip`.
    fn store_link<R: Record>(
        &mut self,
        link: &ChainLinkRow,
        signed: &Signed<R>,
        also: impl FnOnce(&crate::index::Index) -> rusqlite::Result<()>,
    ) -> Result<(), Rejection> {
        let (agent, camera) = (link.agent_id.as_str(), link.camera_id.as_str());
        let gap = match self.link_check(link) {
            Ok(g) => g,
            Err(r) => {
                self.raise(AlertKind::Tamper, agent, camera, &r.reason);
                return Err(r);
            }
        };
        let time_gap = self.piece_time_gap(link)?;
        let new = self
            .index
            .insert_record(
                &link.manifest_sha256,
                link.kind,
                agent,
                camera,
                &link.segment_id,
                link.seq,
                signed.canonical_bytes(),
                signed.signature_file().trim_end(),
            )
            .and_then(|_| self.index.insert_link(link))
            .and_then(|new| also(&self.index).map(|_| new))
            .map_err(|e| internal("cannot store the record", e))?;
        // A resent record (the ack did not reach the agent) raises nothing again.
        for detail in gap.iter().chain(&time_gap).filter(|_| new) {
            self.raise(AlertKind::MissingClip, agent, camera, detail);
        }
        Ok(())
    }
}
