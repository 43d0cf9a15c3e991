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
        let db = |e| internal("cannot read the chain", e);
        let seg = m.segment_id.hyphenated().to_string();
        let (a, c) = (m.agent_id.as_str(), m.camera_id.as_str());
        let clip_s = m.clip_id.hyphenated().to_string();
        if let Some(other) = self.index.at_seq(a, c, &seg, m.seq).map_err(db)? {
            if other.clip_id != clip_s {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "camera {c} segment {seg} seq {} already holds clip {}; clip {clip_s} claims the same place",
                        m.seq, other.clip_id
                    ),
                ));
            }
        }
        let prev = m.prev_manifest_sha256.to_hex();
        if m.seq == 1 {
            if let Some(reset) = self.index.reset_sha256(a, c, &seg).map_err(db)? {
                if reset != prev {
                    return Err(Rejection::new(
                        "tamper",
                        format!(
                            "clip {clip_s} (seq 1) does not link to segment {seg}'s chain_reset"
                        ),
                    ));
                }
            }
        } else if let Some(p) = self.index.at_seq(a, c, &seg, m.seq - 1).map_err(db)? {
            if p.manifest_sha256 != prev {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "clip {clip_s} (seq {}) does not link to the stored seq {} (clip {})",
                        m.seq,
                        m.seq - 1,
                        p.clip_id
                    ),
                ));
            }
        }
        if let Some(nx) = self.index.at_seq(a, c, &seg, m.seq + 1).map_err(db)? {
            if nx.prev_manifest_sha256 != manifest_sha {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "the stored seq {} (clip {}) does not link to clip {clip_s}",
                        m.seq + 1,
                        nx.clip_id
                    ),
                ));
            }
        }
        let last = self.index.last_seq(a, c, &seg).map_err(db)?.unwrap_or(0);
        if m.seq > last + 1 {
            return Ok(Some(format!(
                "camera {c} segment {seg}: seq {}..={} missing before clip {clip_s} (seq {})",
                last + 1,
                m.seq - 1,
                m.seq
            )));
        }
        Ok(None)
    }
}
