//! `vigil-agent export`: an evidence bundle of a time window from the box's own
//! recording store, for a field tech or an investigator on site. The same bundle
//! format the hub exports (docs/evidence.md §7) with `window.json`, so
//! `vigil-verify DIR --trust agent.pem` checks the pieces, the chain between them and
//! that the window is covered (or which seconds are missing, and why).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use uuid::Uuid;
use vigil_evidence::bundle::BundleWriter;
use vigil_evidence::chain::{ChainRecord, ChainStore};
use vigil_evidence::keys::SigningKey;
use vigil_evidence::verify::window::Window;

use super::store::RecordingStore;
use crate::config::AgentConfig;

/// What `export` wrote.
#[derive(Debug, serde::Serialize)]
pub struct ExportSummary {
    /// Bundle path.
    pub out: PathBuf,
    /// Pieces in the bundle.
    pub pieces: usize,
    /// Chain records in its slice.
    pub chain_records: usize,
    /// Seconds of the window the pieces cover.
    pub covered_seconds: f64,
    /// Seconds of the window asked for.
    pub window_seconds: f64,
}

/// Writes the bundle of `camera`'s recording in `[from, to)` to `out` (a directory, or a
/// `.zip` file), which must not exist.
pub fn export(
    config: &AgentConfig,
    camera: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
    out: &Path,
) -> anyhow::Result<ExportSummary> {
    if to <= from {
        anyhow::bail!("--to must be after --from");
    }
    if !config.cameras.iter().any(|c| c.id == camera) {
        anyhow::bail!(
            "camera {camera:?} is not in the config; cameras: {}",
            config
                .cameras
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if out.exists() {
        anyhow::bail!("{} already exists; choose a new path", out.display());
    }
    let key = SigningKey::load(&config.key)?;
    let chain = ChainStore::open(&config.chain_dir)?;
    let store = RecordingStore::open(&config.recording_dir())?;
    let pieces = store.overlapping(camera, from, to);
    let ledger = store.ledger().records(camera);
    let overlaps = |a: OffsetDateTime, b: OffsetDateTime| b >= from && a < to;
    // Per segment, the first seq the slice must start at: the first piece of the
    // window, or a deletion record of a piece in it.
    let deleted = ledger
        .iter()
        .filter_map(ChainRecord::deletion)
        .flat_map(|d| d.pieces.iter())
        .filter(|p| overlaps(p.start, p.end))
        .map(|p| (p.segment_id, p.seq));
    let manifests = ledger
        .iter()
        .filter_map(ChainRecord::manifest)
        .filter(|m| m.is_piece() && overlaps(m.start, m.end))
        .map(|m| (m.segment_id, m.seq));
    let mut first: BTreeMap<Uuid, u64> = BTreeMap::new();
    for (segment, seq) in pieces
        .iter()
        .map(|p| (p.segment_id, p.seq))
        .chain(deleted)
        .chain(manifests)
    {
        first
            .entry(segment)
            .and_modify(|f| *f = (*f).min(seq))
            .or_insert(seq);
    }
    if first.is_empty() {
        anyhow::bail!(
            "camera {camera} has no recorded piece, and no record of one, between {from} and {to}; \
             nothing to export (the store holds {} piece(s) of it)",
            store.pieces(camera).len()
        );
    }
    let slice: Vec<&ChainRecord> = ledger
        .iter()
        .filter(|r| {
            first
                .get(&r.segment_id())
                .is_some_and(|&f| r.seq() + 1 >= f)
        })
        .collect();
    let mut w = if out.extension().is_some_and(|e| e == "zip") {
        BundleWriter::create_zip(out)?
    } else {
        BundleWriter::create_dir(out)?
    };
    w.add_key(&key.public_key())?;
    for p in &pieces {
        let dir = store.piece_dir(camera, p.id);
        let clip = vigil_evidence::clipdir::read_clip_dir(&dir)
            .map_err(|e| anyhow::anyhow!("piece {} ({}): {e}", p.id, dir.display()))?;
        w.add_clip(&clip.clip, &clip.manifest)?;
    }
    for r in &slice {
        w.add_chain_record(r)?;
    }
    if chain.head(camera).is_ok() {
        w.add_checkpoint(&chain.checkpoint(&key, camera, OffsetDateTime::now_utc())?)?;
    }
    w.add_window(&Window::new(camera, from, to))?;
    w.finish()?;
    let secs = |a: OffsetDateTime, b: OffsetDateTime| (b - a).as_seconds_f64().max(0.0);
    let covered = pieces
        .iter()
        .map(|p| secs(p.start.max(from), p.end.min(to)))
        .sum();
    let summary = ExportSummary {
        out: out.to_path_buf(),
        pieces: pieces.len(),
        chain_records: slice.len(),
        covered_seconds: covered,
        window_seconds: secs(from, to),
    };
    tracing::info!(
        camera,
        pieces = summary.pieces,
        covered_s = covered,
        "Exported a recorded window"
    );
    Ok(summary)
}
