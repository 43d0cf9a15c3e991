//! The recording store on disk: sealed pieces, capture journals, the camera's
//! ledger of chain records, and legal holds.
//!
//! ```text
//! <dir>/<camera>/pieces/<piece_id>/{manifest.json, manifest.sig, pubkey.pem, clip.mp4}
//! <dir>/<camera>/pieces/<piece_id>/announced     the hub was sent its manifest (outbox)
//! <dir>/<camera>/journal/<piece_id>.vjl          the piece being recorded (journal.rs)
//! <dir>/<camera>/ledger/<segment>/<seq 12>.{json,sig}   every chain record of the camera
//! <dir>/holds.json                               legal holds set by the hub
//! ```
//!
//! A piece directory has the clip-directory format (docs/evidence.md §6), so the
//! uplink sends a pulled or held piece like any clip and `vigil-verify` checks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use vigil_evidence::chain::ChainRecord;
use vigil_evidence::clipdir::{CLIP_FILE, MANIFEST_FILE};
use vigil_evidence::digest::Sha256Digest;
use vigil_evidence::manifest::Manifest;

/// Marker written into a piece directory once its manifest is spooled for the hub.
pub const ANNOUNCED: &str = "announced";

/// One sealed piece as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceEntry {
    /// Piece (clip) id.
    pub id: Uuid,
    /// Camera.
    pub camera_id: String,
    /// Chain position.
    pub segment_id: Uuid,
    /// Chain position.
    pub seq: u64,
    /// SHA-256 of the manifest.
    pub manifest_sha256: Sha256Digest,
    /// First frame.
    pub start: OffsetDateTime,
    /// Last frame.
    pub end: OffsetDateTime,
    /// Size of clip.mp4.
    pub size: u64,
    /// Rebuilt from a journal after a crash.
    pub recovered: bool,
}

/// A legal hold: pieces of `camera_id` overlapping `[from, to]` are kept and uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// Hub's id for the hold.
    pub hold_id: String,
    /// Camera.
    pub camera_id: String,
    /// Start of the held window.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// End of the held window.
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// Why (as the hub was told).
    pub reason: String,
    /// Case number.
    pub case: String,
}

/// The store: an index of sealed pieces per camera, kept in step with the disk.
pub struct RecordingStore {
    dir: PathBuf,
    pieces: BTreeMap<String, Vec<PieceEntry>>,
    holds: Vec<Hold>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> anyhow::Error {
    move |e| anyhow::anyhow!("{what}: {e}")
}

impl RecordingStore {
    /// Opens (creating) the store at `dir` and indexes every sealed piece.
    pub fn open(dir: &Path) -> anyhow::Result<RecordingStore> {
        std::fs::create_dir_all(dir).map_err(io(format!(
            "cannot create the recording directory {}",
            dir.display()
        )))?;
        let holds = match std::fs::read(dir.join("holds.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!(
                    "{}: legal holds do not parse ({e}); fix or restore the file, never delete it while holds are active",
                    dir.join("holds.json").display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(format!("cannot read {}", dir.join("holds.json").display()))(e)),
        };
        let mut store = RecordingStore {
            dir: dir.to_path_buf(),
            pieces: BTreeMap::new(),
            holds,
        };
        for camera in crate::outbox::list(dir) {
            if !camera.is_dir() {
                continue;
            }
            let Some(id) = camera.file_name().map(|n| n.to_string_lossy().to_string()) else {
                continue;
            };
            store.reindex(&id);
        }
        Ok(store)
    }

    /// Re-reads one camera's pieces from disk (sealed directories only).
    pub fn reindex(&mut self, camera_id: &str) {
        let mut list = Vec::new();
        for p in crate::outbox::list(&self.camera_dir(camera_id).join("pieces")) {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            if name.as_deref().is_none_or(|n| n.ends_with(".tmp")) {
                continue;
            }
            match read_entry(&p) {
                Ok(e) => list.push(e),
                Err(e) => {
                    tracing::error!(piece = %p.display(), error = %e, "A recorded piece cannot be read; it is left in place and not exported")
                }
            }
        }
        list.sort_by_key(|e| (e.start, e.seq));
        self.pieces.insert(camera_id.to_string(), list);
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<camera>`.
    pub fn camera_dir(&self, camera_id: &str) -> PathBuf {
        self.dir.join(camera_id)
    }

    /// Where a sealed piece lives.
    pub fn piece_dir(&self, camera_id: &str, id: Uuid) -> PathBuf {
        self.camera_dir(camera_id)
            .join("pieces")
            .join(id.to_string())
    }

    /// Where a piece's capture journal lives.
    pub fn journal_path(&self, camera_id: &str, id: Uuid) -> PathBuf {
        self.camera_dir(camera_id)
            .join("journal")
            .join(format!("{id}.vjl"))
    }

    /// Every journal left on disk, per camera (startup recovery).
    pub fn journals(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for camera in crate::outbox::list(&self.dir) {
            for j in crate::outbox::list(&camera.join("journal")) {
                if j.extension().is_some_and(|e| e == "vjl") {
                    out.push(j);
                }
            }
        }
        out.sort();
        out
    }

    /// Piece directories left as `.tmp` by an interrupted seal.
    pub fn tmp_pieces(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for camera in crate::outbox::list(&self.dir) {
            for p in crate::outbox::list(&camera.join("pieces")) {
                if p.to_string_lossy().ends_with(".tmp") {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Sealed pieces of a camera, oldest first.
    pub fn pieces(&self, camera_id: &str) -> &[PieceEntry] {
        self.pieces.get(camera_id).map_or(&[], Vec::as_slice)
    }

    /// Every camera with pieces.
    pub fn cameras(&self) -> Vec<String> {
        self.pieces.keys().cloned().collect()
    }

    /// Adds a newly sealed piece to the index.
    pub fn add(&mut self, entry: PieceEntry) {
        let list = self.pieces.entry(entry.camera_id.clone()).or_default();
        list.push(entry);
        list.sort_by_key(|e| (e.start, e.seq));
    }

    /// Pieces of `camera_id` overlapping `[from, to)`.
    pub fn overlapping(
        &self,
        camera_id: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Vec<PieceEntry> {
        self.pieces(camera_id)
            .iter()
            .filter(|p| p.end >= from && p.start < to)
            .cloned()
            .collect()
    }

    /// Active holds.
    pub fn holds(&self) -> &[Hold] {
        &self.holds
    }

    /// True when a hold covers any part of the piece.
    pub fn is_held(&self, p: &PieceEntry) -> bool {
        self.holds
            .iter()
            .any(|h| h.camera_id == p.camera_id && p.end >= h.from && p.start <= h.to)
    }

    /// Adds or replaces a hold (by id) and persists the list (tmp, fsync, rename).
    pub fn set_hold(&mut self, hold: Hold) -> anyhow::Result<()> {
        self.holds.retain(|h| h.hold_id != hold.hold_id);
        self.holds.push(hold);
        self.save_holds()
    }

    /// Releases a hold; returns whether it existed.
    pub fn release_hold(&mut self, hold_id: &str) -> anyhow::Result<bool> {
        let before = self.holds.len();
        self.holds.retain(|h| h.hold_id != hold_id);
        let found = self.holds.len() != before;
        if found {
            self.save_holds()?;
        }
        Ok(found)
    }

    fn save_holds(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.holds)?;
        crate::outbox::write_durable(&self.dir, "holds.json", &bytes)
    }

    /// Removes a sealed piece (after its deletion record is durable).
    pub fn remove(&mut self, p: &PieceEntry) -> anyhow::Result<()> {
        let dir = self.piece_dir(&p.camera_id, p.id);
        let doomed = dir.with_extension("deleted.tmp");
        if dir.exists() {
            std::fs::rename(&dir, &doomed)
                .map_err(io(format!("cannot move {} aside", dir.display())))?;
        }
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed)
                .map_err(io(format!("cannot delete {}", doomed.display())))?;
        }
        if let Some(list) = self.pieces.get_mut(&p.camera_id) {
            list.retain(|e| e.id != p.id);
        }
        Ok(())
    }

    /// The ledger of chain records (shared with the sealer).
    pub fn ledger(&self) -> Ledger {
        Ledger {
            dir: self.dir.clone(),
        }
    }
}

/// Every chain record of every recorded camera, written before its commit, so an
/// export from the box alone carries the whole chain slice between its pieces (event
/// clips leave the outbox once the hub has them; their manifests stay here).
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    /// Writes a chain record into the camera's ledger (before it is committed: a
    /// record whose seq is then reused by another is simply overwritten).
    pub fn put(&self, record: &ChainRecord) -> anyhow::Result<()> {
        let dir = self
            .dir
            .join(record.camera_id())
            .join("ledger")
            .join(record.segment_id().to_string());
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let (bytes, sig) = record.files();
        let stem = format!("{:012}", record.seq());
        crate::outbox::write_durable(&dir, &format!("{stem}.sig"), sig.as_bytes())?;
        crate::outbox::write_durable(&dir, &format!("{stem}.json"), bytes)
    }

    /// Every ledger record of a camera, by (segment, seq); unreadable ones are skipped
    /// with an error log (the export then shows the gap).
    pub fn records(&self, camera_id: &str) -> Vec<ChainRecord> {
        let mut out = Vec::new();
        for seg in crate::outbox::list(&self.dir.join(camera_id).join("ledger")) {
            let mut files: Vec<PathBuf> = crate::outbox::list(&seg)
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
                .collect();
            files.sort();
            for f in files {
                let rec = std::fs::read(&f)
                    .ok()
                    .zip(std::fs::read(f.with_extension("sig")).ok());
                match rec.map(|(j, s)| ChainRecord::from_files(j, &s)) {
                    Some(Ok(r)) => out.push(r),
                    _ => tracing::error!(record = %f.display(), "A ledger record cannot be read"),
                }
            }
        }
        out
    }
}

/// Reads a sealed piece's manifest into an index entry.
pub fn read_entry(dir: &Path) -> anyhow::Result<PieceEntry> {
    let bytes = std::fs::read(dir.join(MANIFEST_FILE)).map_err(io(format!(
        "cannot read {}",
        dir.join(MANIFEST_FILE).display()
    )))?;
    let m: Manifest = vigil_evidence::record::decode(&bytes)?;
    let size = std::fs::metadata(dir.join(CLIP_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(entry_of(&m, Sha256Digest::of(&bytes), size))
}

/// The index entry of a piece manifest.
pub fn entry_of(m: &Manifest, manifest_sha256: Sha256Digest, size: u64) -> PieceEntry {
    PieceEntry {
        id: m.clip_id,
        camera_id: m.camera_id.clone(),
        segment_id: m.segment_id,
        seq: m.seq,
        manifest_sha256,
        start: m.start,
        end: m.end,
        size,
        recovered: m.piece.is_some_and(|p| p.recovered),
    }
}
