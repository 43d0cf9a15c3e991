//! The per-camera chain check of a record (clip, piece, deletion) against what is
//! already stored.

use vigil_evidence::manifest::Manifest;
use vigil_evidence::record::utc_ms::unix_ms;

use super::{internal, Ingest, Rejection};
use crate::index::{ChainLinkRow, PieceTimes, PIECES_MEET_MS};
use vigil_evidence::record::utc_ms::format_unix_ms;

/// A manifest's place in the chain, as the index stores it (`chain_links`).
pub(super) fn link_of_manifest(m: &Manifest, manifest_sha: &str) -> ChainLinkRow {
    ChainLinkRow {
        agent_id: m.agent_id.clone(),
        camera_id: m.camera_id.clone(),
        segment_id: m.segment_id.hyphenated().to_string(),
        seq: m.seq,
        kind: if m.is_piece() { "piece" } else { "clip" },
        id: m.clip_id.hyphenated().to_string(),
        manifest_sha256: manifest_sha.to_string(),
        prev_manifest_sha256: m.prev_manifest_sha256.to_hex(),
        start_ms: Some(unix_ms(&m.start)),
        end_ms: Some(unix_ms(&m.end)),
        size: Some(m.file.size),
        recovered: m.piece.is_some_and(|p| p.recovered),
        start_reason: m.piece.map(|p| p.start_reason.as_str()),
    }
}

/// How alerts and rejections name a record of `kind`.
fn what(kind: &str) -> &'static str {
    match kind {
        "piece" => "recorded piece",
        "deletion" => "deletion record",
        _ => "clip",
    }
}

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
        self.link_check(&link_of_manifest(m, manifest_sha))
    }

    /// The check of any record at a seq (clip, piece or deletion record).
    pub(super) fn link_check(&self, l: &ChainLinkRow) -> Result<Option<String>, Rejection> {
        let db = |e| internal("cannot read the chain", e);
        let (a, c, seg, what, id) = (
            l.agent_id.as_str(),
            l.camera_id.as_str(),
            l.segment_id.as_str(),
            what(l.kind),
            l.id.as_str(),
        );
        let prev = l.prev_manifest_sha256.as_str();
        let sha = l.manifest_sha256.as_str();
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
                if reset != prev {
                    return Err(Rejection::new(
                        "tamper",
                        format!("{what} {id} (seq 1) does not link to segment {seg}'s chain_reset"),
                    ));
                }
            }
        } else if let Some(p) = self.index.at_seq(a, c, seg, l.seq - 1).map_err(db)? {
            if p.manifest_sha256 != prev {
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
            if nx.prev_manifest_sha256 != sha {
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

impl Ingest {
    /// A recorded piece that says it continues the stream must start where the previous
    /// piece of its segment ended (and the next one, if it continues, where this one
    /// ends). Seq gaps are caught by [`Ingest::link_check`]; this catches seconds missing
    /// between pieces whose seqs do follow each other. Returns the alert's words.
    pub(super) fn piece_time_gap(&self, l: &ChainLinkRow) -> Result<Option<String>, Rejection> {
        let (Some(start_ms), Some(end_ms), "piece") = (l.start_ms, l.end_ms, l.kind) else {
            return Ok(None);
        };
        let this = PieceTimes {
            seq: l.seq,
            start_ms,
            end_ms,
            start_reason: l.start_reason.unwrap_or_default().to_string(),
        };
        let [before, after] = self
            .index
            .piece_neighbours(&l.agent_id, &l.camera_id, &l.segment_id, l.seq)
            .map_err(|e| internal("cannot read the chain", e))?;
        let gap = |a: &PieceTimes, b: &PieceTimes| {
            (b.start_reason == "continues" && b.start_ms > a.end_ms + PIECES_MEET_MS).then(|| {
                format!(
                    "recorded piece seq {} of segment {} says it continues seq {}, but {:.1} s \
                     between {} and {} are in no piece and no record explains them",
                    b.seq,
                    l.segment_id,
                    a.seq,
                    (b.start_ms - a.end_ms) as f64 / 1000.0,
                    format_unix_ms(a.end_ms),
                    format_unix_ms(b.start_ms)
                )
            })
        };
        Ok(before
            .as_ref()
            .and_then(|b| gap(b, &this))
            .or_else(|| after.as_ref().and_then(|a| gap(&this, a))))
    }
}
