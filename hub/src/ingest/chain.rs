//! The per-camera chain check of a clip against what is already stored.

use vigil_evidence::manifest::Manifest;

use super::{internal, Ingest, Rejection};

impl Ingest {
    /// Checks `m` against the stored chain of its segment. `Err` (code
    /// `tamper`) for a conflicting clip or a broken link; `Ok(Some(detail))`
    /// for a gap before it (a missing-clip alert once stored).
    pub(super) fn chain_check(
        &self,
        m: &Manifest,
        manifest_sha: &str,
        _final: bool,
    ) -> Result<Option<String>, Rejection> {
        let at = Link {
            agent: &m.agent_id,
            camera: &m.camera_id,
            segment: m.segment_id.hyphenated().to_string(),
            seq: m.seq,
            prev: m.prev_manifest_sha256.to_hex(),
            sha: manifest_sha,
            id: m.clip_id.hyphenated().to_string(),
            what: if m.is_piece() {
                "recorded piece"
            } else {
                "clip"
            },
        };
        self.link_check(&at)
    }

    /// The check of any record at a seq (clip, piece or deletion record).
    pub(super) fn link_check(&self, l: &Link) -> Result<Option<String>, Rejection> {
        let db = |e| internal("cannot read the chain", e);
        let (a, c, seg, what, id) = (l.agent, l.camera, l.segment.as_str(), l.what, l.id.as_str());
        if let Some(other) = self.index.at_seq(a, c, seg, l.seq).map_err(db)? {
            if other.clip_id != id {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "camera {c} segment {seg} seq {} already holds {}; {what} {id} claims the same place",
                        l.seq, other.clip_id
                    ),
                ));
            }
        }
        if l.seq == 1 {
            if let Some(reset) = self.index.reset_sha256(a, c, seg).map_err(db)? {
                if reset != l.prev {
                    return Err(Rejection::new(
                        "tamper",
                        format!("{what} {id} (seq 1) does not link to segment {seg}'s chain_reset"),
                    ));
                }
            }
        } else if let Some(p) = self.index.at_seq(a, c, seg, l.seq - 1).map_err(db)? {
            if p.manifest_sha256 != l.prev {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "{what} {id} (seq {}) does not link to the stored seq {} ({})",
                        l.seq,
                        l.seq - 1,
                        p.clip_id
                    ),
                ));
            }
        }
        if let Some(nx) = self.index.at_seq(a, c, seg, l.seq + 1).map_err(db)? {
            if nx.prev_manifest_sha256 != l.sha {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "the stored seq {} ({}) does not link to {what} {id}",
                        l.seq + 1,
                        nx.clip_id
                    ),
                ));
            }
        }
        let last = self.index.last_seq(a, c, seg).map_err(db)?.unwrap_or(0);
        if l.seq > last + 1 {
            return Ok(Some(format!(
                "camera {c} segment {seg}: seq {}..={} missing before {what} {id} (seq {})",
                last + 1,
                l.seq - 1,
                l.seq
            )));
        }
        Ok(None)
    }
}

/// A record's position, for [`Ingest::link_check`].
pub(super) struct Link<'a> {
    pub agent: &'a str,
    pub camera: &'a str,
    pub segment: String,
    pub seq: u64,
    pub prev: String,
    pub sha: &'a str,
    pub id: String,
    pub what: &'static str,
}
