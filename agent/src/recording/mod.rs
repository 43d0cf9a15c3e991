//! Continuous recording on the box: every recorded camera's own encoded bytes, in
//! pieces that start on key frames, each signed into the camera's chain within
//! moments of its last frame; crash-safe through a capture journal; deleted only by
//! policy, each deletion a signed chain record; legal holds kept and uploaded.
//!
//! ```text
//! camera unit ─▶ Recorder (journal.rs: one write per unit, fdatasync every sync_ms)
//!                    └─ key frame after piece_seconds / restart / shutdown ─▶ PieceDone
//! run loop: PieceDone ─▶ mux (seal.rs) ─▶ sign at the next link ─▶ pieces/<id>.tmp ─▶ ledger
//!           ─▶ chain commit ─▶ rename ─▶ outbox record "piece" (hub learns it) ─▶ announced
//!           ─▶ journal removed ─▶ retention (deletion record signed, committed, spooled, then rm)
//! ```
//!
//! Invariants (docs/architecture.md "Recording"):
//! 1. A unit is in the journal before the next unit is taken (one `write` each), and
//!    on disk within `sync_ms` (`fdatasync` from the sync thread).
//! 2. A piece directory without `.tmp` is complete and its manifest is committed (the
//!    clip-directory order of `seal.rs`); its journal is removed only after that.
//! 3. At startup: a `.tmp` piece whose manifest is the chain head is completed, any
//!    other discarded; every journal without a sealed piece is sealed as
//!    `recovered` from the units that reached the disk whole; a piece not yet
//!    announced is spooled again. So a crash leaves no silent gap in the chain.
//! 4. A piece is deleted only after the signed deletion record naming it is
//!    committed, in the ledger and spooled for the hub; a deletion interrupted
//!    between the record and the removal is finished at startup.
//! 5. Held pieces are never deleted; `min_days` is broken only by `disk_full`.

pub mod commands;
pub mod export;
pub mod journal;
pub mod recorder;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use serde::Deserialize;
use time::OffsetDateTime;
use vigil_evidence::chain::{ChainRecord, DeletedPiece, DeletionReason, MAX_DELETED_PIECES};
use vigil_evidence::manifest::PieceInfo;
use vigil_evidence::record::Signed;

use crate::ingest::camera::CameraStats;
use crate::ingest::ring::{AccessUnit, Gop};
use crate::outbox::Outbox;
use crate::seal::{ClipMeta, Sealer};
use recorder::{PieceDone, Recorder};
use store::{PieceEntry, RecordingStore, ANNOUNCED};

/// `[recording]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Store directory; default `recordings` beside `chain_dir`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Bound of the whole store (all cameras). Default 64 GiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Free space the disk must keep; below it pieces go even inside `min_days`
    /// (reason `disk_full`). Default 512 MiB.
    #[serde(default = "default_min_free")]
    pub min_free_bytes: u64,
    /// Target piece length: a piece ends at the first key frame after it. Default 60.
    #[serde(default = "default_piece_seconds")]
    pub piece_seconds: f64,
    /// How often the capture journal is `fdatasync`ed (the most a power cut loses). Default 1000.
    #[serde(default = "default_sync_ms")]
    pub sync_ms: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            dir: None,
            max_bytes: default_max_bytes(),
            min_free_bytes: default_min_free(),
            piece_seconds: default_piece_seconds(),
            sync_ms: default_sync_ms(),
        }
    }
}

fn default_max_bytes() -> u64 {
    64 << 30
}
fn default_min_free() -> u64 {
    512 << 20
}
fn default_piece_seconds() -> f64 {
    60.0
}
fn default_sync_ms() -> u64 {
    1000
}

impl RecordingConfig {
    /// Every problem, each naming its key.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if !(2.0..=600.0).contains(&self.piece_seconds) {
            p.push(format!(
                "{key}.piece_seconds: {} is outside 2..600 seconds",
                self.piece_seconds
            ));
        }
        if !(50..=2000).contains(&self.sync_ms) {
            p.push(format!(
                "{key}.sync_ms: {} is outside 50..2000 ms (a power cut loses at most this much)",
                self.sync_ms
            ));
        }
        if self.max_bytes < 1 << 20 {
            p.push(format!(
                "{key}.max_bytes: {} is below 1 MiB; not even one piece would fit (use tens of GiB on a real box)",
                self.max_bytes
            ));
        }
        p
    }
}

/// Per-camera retention policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Never delete younger pieces unless the disk is full.
    pub min_days: f64,
    /// Delete older pieces.
    pub max_days: f64,
}

/// One batch of pieces retention wants gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Doomed {
    /// Camera.
    pub camera_id: String,
    /// Which bound.
    pub reason: DeletionReason,
    /// The bound in words.
    pub detail: String,
    /// Pieces, oldest first.
    pub pieces: Vec<PieceEntry>,
}

/// What to delete now: pieces past `max_days`; then the oldest while the store is
/// over `max_bytes` (never inside `min_days`); then the oldest while the disk is
/// short of `min_free` (inside `min_days` too). Held pieces never. Pure, for tests.
pub fn plan(
    store: &RecordingStore,
    policies: &HashMap<String, Policy>,
    now: OffsetDateTime,
    max_bytes: u64,
    free_bytes: u64,
    min_free: u64,
) -> (Vec<Doomed>, Option<String>) {
    let days = |d: f64| time::Duration::seconds_f64(d * 86400.0);
    let mut out: Vec<Doomed> = Vec::new();
    let mut gone = std::collections::HashSet::new();
    let push = |out: &mut Vec<Doomed>,
                gone: &mut std::collections::HashSet<uuid::Uuid>,
                p: &PieceEntry,
                reason: DeletionReason,
                detail: &str| {
        gone.insert(p.id);
        match out.iter_mut().find(|d| {
            d.camera_id == p.camera_id && d.reason == reason && d.pieces.len() < MAX_DELETED_PIECES
        }) {
            Some(d) => d.pieces.push(p.clone()),
            None => out.push(Doomed {
                camera_id: p.camera_id.clone(),
                reason,
                detail: detail.to_string(),
                pieces: vec![p.clone()],
            }),
        }
    };
    for camera in store.cameras() {
        let Some(pol) = policies.get(&camera) else {
            continue;
        };
        let detail = format!("older than max_days {}", pol.max_days);
        for p in store.pieces(&camera) {
            if p.end < now - days(pol.max_days) && !store.is_held(p) {
                push(&mut out, &mut gone, p, DeletionReason::MaxDays, &detail);
            }
        }
    }
    let mut all: Vec<&PieceEntry> = store
        .cameras()
        .iter()
        .flat_map(|c| store.pieces(c).iter())
        .collect::<Vec<_>>();
    all.sort_by_key(|p| p.start);
    let mut total: u64 = all
        .iter()
        .filter(|p| !gone.contains(&p.id))
        .map(|p| p.size)
        .sum();
    let young = |p: &PieceEntry| {
        policies
            .get(&p.camera_id)
            .is_some_and(|pol| p.end >= now - days(pol.min_days))
    };
    let bytes_detail = format!("store over max_bytes {max_bytes}");
    for p in &all {
        if total <= max_bytes {
            break;
        }
        if gone.contains(&p.id) || store.is_held(p) || young(p) {
            continue;
        }
        total -= p.size;
        push(
            &mut out,
            &mut gone,
            p,
            DeletionReason::MaxBytes,
            &bytes_detail,
        );
    }
    let mut free = free_bytes;
    let disk_detail = format!("disk free below min_free_bytes {min_free}");
    for p in &all {
        if free >= min_free {
            break;
        }
        if gone.contains(&p.id) || store.is_held(p) {
            continue;
        }
        free += p.size;
        total -= p.size;
        push(
            &mut out,
            &mut gone,
            p,
            DeletionReason::DiskFull,
            &disk_detail,
        );
    }
    let short = if free < min_free {
        Some(format!(
            "the recording disk has {free} bytes free (min_free_bytes {min_free}) and every piece left is under a legal hold; new pieces may not be kept"
        ))
    } else if total > max_bytes {
        Some(format!(
            "the recording store holds {total} bytes, over max_bytes {max_bytes}, but the rest is inside min_days or held; it is kept"
        ))
    } else {
        None
    };
    (out, short)
}

/// Free bytes on the filesystem holding `path` (for an unprivileged process).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path has a NUL byte"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// The agent's recording: store, one recorder per recorded camera, the sync thread.
pub struct Recording {
    config: RecordingConfig,
    /// The store (pieces, holds, ledger).
    pub store: RecordingStore,
    policies: HashMap<String, Policy>,
    recorders: HashMap<String, Arc<Recorder>>,
    tx: Sender<PieceDone>,
    rx: Receiver<PieceDone>,
    stop: Arc<AtomicBool>,
    sync: Option<std::thread::JoinHandle<()>>,
    last_retention: Option<std::time::Instant>,
    /// The last "cannot keep" warning, so it is sent once per episode.
    short: Option<String>,
}

impl Recording {
    /// Opens the store at `dir` for the cameras with `record = true`.
    pub fn open(
        config: &RecordingConfig,
        dir: &Path,
        policies: HashMap<String, Policy>,
    ) -> anyhow::Result<Recording> {
        let (tx, rx) = mpsc::channel();
        Ok(Recording {
            config: config.clone(),
            store: RecordingStore::open(dir)?,
            policies,
            recorders: HashMap::new(),
            tx,
            rx,
            stop: Arc::new(AtomicBool::new(false)),
            sync: None,
            last_retention: None,
            short: None,
        })
    }

    /// The recorder feeding `camera_id`'s pieces (created on first call).
    pub fn recorder(&mut self, camera_id: &str, camera: Arc<CameraStats>) -> Arc<Recorder> {
        let journal_dir = self.store.camera_dir(camera_id).join("journal");
        let piece = Duration::from_secs_f64(self.config.piece_seconds);
        let tx = self.tx.clone();
        self.recorders
            .entry(camera_id.to_string())
            .or_insert_with(|| Arc::new(Recorder::new(camera_id, journal_dir, piece, camera, tx)))
            .clone()
    }

    /// Starts the thread that `fdatasync`s every journal each `sync_ms`.
    pub fn start_sync(&mut self) -> anyhow::Result<()> {
        let recorders: Vec<Arc<Recorder>> = self.recorders.values().cloned().collect();
        let stop = self.stop.clone();
        let every = Duration::from_millis(self.config.sync_ms);
        self.sync = Some(
            std::thread::Builder::new()
                .name("recording-sync".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(every);
                        for r in &recorders {
                            r.sync();
                        }
                    }
                })?,
        );
        Ok(())
    }

    /// Startup recovery (invariants 3 and 4), before any camera runs.
    pub fn recover(&mut self, sealer: &mut Sealer, outbox: &Outbox) -> anyhow::Result<()> {
        // `open` indexed every sealed piece; a completed `.tmp` adds one to its camera.
        let mut completed = std::collections::BTreeSet::new();
        for tmp in self.store.tmp_pieces() {
            let dir = PathBuf::from(tmp.to_string_lossy().trim_end_matches(".tmp").to_string());
            match crate::seal::recover_tmp_clip(sealer.chain, &tmp, &dir)? {
                crate::seal::TmpClip::Completed => {
                    tracing::info!(piece = %dir.display(), "Completed a recorded piece whose seal was interrupted after its chain commit");
                    // <dir>/<camera>/pieces/<id>
                    if let Some(camera) = dir
                        .parent()
                        .and_then(Path::parent)
                        .and_then(Path::file_name)
                    {
                        completed.insert(camera.to_string_lossy().to_string());
                    }
                }
                crate::seal::TmpClip::Uncommitted { .. } => {
                    // Never committed: its journal (still there) is sealed below.
                    std::fs::remove_dir_all(&tmp)?;
                }
            }
        }
        for camera in &completed {
            self.store.reindex(camera);
        }
        // One read of each camera's ledger serves both startup checks.
        let ledgers: Vec<(String, Vec<ChainRecord>)> = self
            .store
            .cameras()
            .into_iter()
            .map(|c| {
                let records = self.store.ledger().records(&c);
                (c, records)
            })
            .collect();
        for (camera, records) in &ledgers {
            self.finish_deletions(camera, records)?;
        }
        for path in self.store.journals() {
            self.recover_journal(&path, sealer, outbox)?;
        }
        for (camera, records) in &ledgers {
            for p in self.store.pieces(camera).to_vec() {
                let dir = self.store.piece_dir(camera, p.id);
                if !dir.join(ANNOUNCED).exists() {
                    let manifest = std::fs::read(dir.join(vigil_evidence::clipdir::MANIFEST_FILE))?;
                    let sig =
                        std::fs::read_to_string(dir.join(vigil_evidence::clipdir::SIGNATURE_FILE))?;
                    announce(&dir, camera, &manifest, &sig, outbox)?;
                }
            }
            // The ledger as read before the journals: a piece recovered from one is on
            // disk, so it could not be reported anyway.
            self.report_vanished(camera, records, outbox)?;
        }
        Ok(())
    }

    /// Pieces the ledger says were sealed but that are neither on disk nor named by a
    /// deletion record: removed outside the agent. Each is reported (the hub alerts).
    fn report_vanished(
        &self,
        camera: &str,
        records: &[ChainRecord],
        outbox: &Outbox,
    ) -> anyhow::Result<()> {
        let deleted: std::collections::HashSet<uuid::Uuid> = records
            .iter()
            .filter_map(ChainRecord::deletion)
            .flat_map(|d| d.pieces.iter().map(|p| p.clip_id))
            .collect();
        let present: std::collections::HashSet<uuid::Uuid> =
            self.store.pieces(camera).iter().map(|p| p.id).collect();
        for m in records
            .iter()
            .filter_map(ChainRecord::manifest)
            .filter(|m| m.is_piece())
        {
            if present.contains(&m.clip_id) || deleted.contains(&m.clip_id) {
                continue;
            }
            let reason = format!(
                "recording: piece seq {} of camera {camera} ({} to {}) is gone from the recording store without a deletion record: it was deleted or moved outside the agent",
                m.seq,
                vigil_evidence::record::utc_ms::format(&m.start),
                vigil_evidence::record::utc_ms::format(&m.end)
            );
            tracing::error!("{reason}");
            outbox.put_drop(&crate::outbox::DropReport {
                kind: "outbox_drop".into(),
                clip_id: Some(m.clip_id),
                camera_id: camera.to_string(),
                seq: Some(m.seq),
                bytes: m.file.size,
                reason,
                at: OffsetDateTime::now_utc(),
            })?;
        }
        Ok(())
    }

    /// Pieces a committed deletion record names but that are still on disk.
    fn finish_deletions(&mut self, camera: &str, records: &[ChainRecord]) -> anyhow::Result<()> {
        let doomed: std::collections::HashSet<uuid::Uuid> = records
            .iter()
            .filter_map(ChainRecord::deletion)
            .flat_map(|d| d.pieces.iter().map(|p| p.clip_id))
            .collect();
        for p in self.store.pieces(camera).to_vec() {
            if doomed.contains(&p.id) {
                tracing::info!(camera, piece = %p.id, "Finishing a deletion interrupted after its signed record");
                self.store.remove(&p)?;
            }
        }
        Ok(())
    }

    fn recover_journal(
        &mut self,
        path: &Path,
        sealer: &mut Sealer,
        outbox: &Outbox,
    ) -> anyhow::Result<()> {
        let j = match journal::read(path) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "A capture journal cannot be recovered; it is kept for inspection as .damaged");
                std::fs::rename(path, path.with_extension("vjl.damaged"))?;
                return Ok(());
            }
        };
        let h = &j.header;
        if self.store.piece_dir(&h.camera_id, h.piece_id).exists() {
            // Sealed before the crash; only the journal's removal was lost.
            std::fs::remove_file(path)?;
            return Ok(());
        }
        let units: Vec<AccessUnit> = j
            .units
            .iter()
            .map(|u| AccessUnit {
                buffer: gst::Buffer::from_slice(u.bytes.clone()),
                pts: u.pts.map(gst::ClockTime::from_nseconds),
                dts: u.dts.map(gst::ClockTime::from_nseconds),
                keyframe: u.keyframe,
                wall: OffsetDateTime::from_unix_timestamp_nanos(i128::from(u.wall_ns))
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            })
            .collect();
        let caps = gst::Caps::from_str(&h.caps).ok();
        match (caps, units.first().is_some_and(|u| u.keyframe)) {
            (Some(caps), true) => {
                tracing::warn!(camera = %h.camera_id, piece = %h.piece_id, units = units.len(), torn = j.torn, "Recovering a piece the agent did not seal (crash or power cut)");
                self.seal(
                    PieceDone {
                        camera_id: h.camera_id.clone(),
                        piece_id: h.piece_id,
                        units,
                        caps,
                        start_reason: h.start_reason,
                        recovered: true,
                    },
                    sealer,
                    outbox,
                )?;
            }
            _ => {
                tracing::warn!(camera = %h.camera_id, path = %path.display(), "A capture journal held no complete key frame; nothing to recover, removed");
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// Seals every finished piece (the run loop calls this each round).
    pub fn seal_ready(&mut self, sealer: &mut Sealer, outbox: &Outbox) -> anyhow::Result<usize> {
        let mut n = 0;
        while let Ok(done) = self.rx.try_recv() {
            self.seal(done, sealer, outbox)?;
            n += 1;
        }
        let due = self
            .last_retention
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
        if n > 0 || due {
            self.enforce_retention(sealer, outbox)?;
        }
        Ok(n)
    }

    /// Ends every piece in progress and seals it (shutdown), then stops the sync thread.
    pub fn drain(&mut self, sealer: &mut Sealer, outbox: &Outbox) -> anyhow::Result<()> {
        for r in self.recorders.values() {
            r.finish();
        }
        self.seal_ready(sealer, outbox)?;
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.sync.take() {
            let _ = t.join();
        }
        Ok(())
    }

    fn seal(
        &mut self,
        done: PieceDone,
        sealer: &mut Sealer,
        outbox: &Outbox,
    ) -> anyhow::Result<()> {
        let journal = self.store.journal_path(&done.camera_id, done.piece_id);
        let gops = into_gops(done.units);
        if gops.is_empty() {
            let _ = std::fs::remove_file(&journal);
            return Ok(());
        }
        let dir = self.store.piece_dir(&done.camera_id, done.piece_id);
        let sealed = crate::seal::prepare(&gops, &done.caps)
            .map_err(anyhow::Error::from)
            .and_then(|prepared| {
                let size = prepared.muxed.mp4.len() as u64;
                sealer
                    .seal_prepared(
                        &done.camera_id,
                        prepared,
                        ClipMeta {
                            clip_id: done.piece_id,
                            events: Vec::new(),
                            part: None,
                            piece: Some(PieceInfo {
                                recovered: done.recovered,
                                start_reason: done.start_reason,
                            }),
                        },
                        &dir,
                    )
                    .map(|(signed, _)| (signed, size))
                    .map_err(anyhow::Error::from)
            });
        let (signed, size) = match sealed {
            Ok(s) => s,
            Err(e) => {
                // Disk full or I/O: the piece is lost; say so, the hub alerts.
                let span = gops
                    .first()
                    .map(|g| g.start_wall())
                    .zip(gops.last().and_then(|g| g.units.last()).map(|u| u.wall));
                let reason = format!(
                    "recording: piece of camera {} {} could not be stored: {e}",
                    done.camera_id,
                    span.map(|(a, b)| format!("from {a} to {b}"))
                        .unwrap_or_default()
                );
                tracing::error!("{reason}");
                outbox.put_drop(&crate::outbox::DropReport {
                    kind: "outbox_drop".into(),
                    clip_id: Some(done.piece_id),
                    camera_id: done.camera_id.clone(),
                    seq: None,
                    bytes: gops.iter().map(|g| g.bytes as u64).sum(),
                    reason,
                    at: OffsetDateTime::now_utc(),
                })?;
                let _ = std::fs::remove_file(&journal);
                let _ = std::fs::remove_dir_all(crate::seal::tmp_path(&dir));
                return Ok(());
            }
        };
        announce(
            &dir,
            &done.camera_id,
            signed.canonical_bytes(),
            &signed.signature_file(),
            outbox,
        )?;
        let _ = std::fs::remove_file(&journal);
        let entry = store::entry_of(signed.record(), signed.sha256(), size);
        if self.store.is_held(&entry) {
            self.upload(&entry, outbox)?;
        }
        self.store.add(entry);
        tracing::info!(camera = %done.camera_id, piece = %done.piece_id, seq = signed.record().seq, bytes = size, recovered = done.recovered, "Recorded piece signed");
        Ok(())
    }

    /// Carries out a hub command (pull, hold, release).
    pub fn command(&mut self, c: commands::HubCommand, outbox: &Outbox) -> anyhow::Result<()> {
        use commands::HubCommand;
        match c {
            HubCommand::Pull {
                request_id,
                camera_id,
                from,
                to,
            } => {
                let pieces = self.store.overlapping(&camera_id, from, to);
                tracing::info!(request = %request_id, camera = %camera_id, pieces = pieces.len(), "Hub pulled a recorded window; uploading its pieces");
                for p in &pieces {
                    self.upload(p, outbox)?;
                }
            }
            HubCommand::Hold {
                hold_id,
                camera_id,
                from,
                to,
                reason,
                case,
            } => {
                let known = self.store.holds().iter().any(|h| h.hold_id == hold_id);
                self.store.set_hold(store::Hold {
                    hold_id: hold_id.clone(),
                    camera_id: camera_id.clone(),
                    from,
                    to,
                    reason,
                    case,
                })?;
                let pieces = self.store.overlapping(&camera_id, from, to);
                if !known {
                    tracing::info!(hold = %hold_id, camera = %camera_id, pieces = pieces.len(), "Legal hold set; its pieces are kept and uploaded");
                }
                for p in &pieces {
                    self.upload(p, outbox)?;
                }
            }
            HubCommand::Release { hold_id } => {
                if self.store.release_hold(&hold_id)? {
                    tracing::info!(hold = %hold_id, "Legal hold released; its pieces fall back under retention");
                }
            }
        }
        Ok(())
    }

    /// Puts a sealed piece into the outbox as a clip (hard links: no second copy on
    /// the box), unless it is there already. The uplink sends it like any clip.
    fn upload(&self, p: &PieceEntry, outbox: &Outbox) -> anyhow::Result<()> {
        use vigil_evidence::clipdir::{CLIP_FILE, MANIFEST_FILE, PUBKEY_FILE, SIGNATURE_FILE};
        let dest = outbox.clip_dir(p.id);
        if dest.exists() {
            return Ok(());
        }
        let src = self.store.piece_dir(&p.camera_id, p.id);
        let (_room, _drops) = outbox.make_room(p.size + 64 * 1024)?;
        let tmp = crate::seal::tmp_path(&dest);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        for f in [MANIFEST_FILE, SIGNATURE_FILE, PUBKEY_FILE, CLIP_FILE] {
            if std::fs::hard_link(src.join(f), tmp.join(f)).is_err() {
                // Another filesystem: a copy, fsynced.
                std::fs::copy(src.join(f), tmp.join(f))?;
                std::fs::File::open(tmp.join(f))?.sync_all()?;
            }
        }
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        if let Some(parent) = dest.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        outbox.notify_new_entry();
        Ok(())
    }

    /// Deletes what the policy says (invariant 4), signing a record per batch.
    pub fn enforce_retention(
        &mut self,
        sealer: &mut Sealer,
        outbox: &Outbox,
    ) -> anyhow::Result<()> {
        self.last_retention = Some(std::time::Instant::now());
        let free = free_bytes(self.store.dir()).unwrap_or(u64::MAX);
        let (doomed, short) = plan(
            &self.store,
            &self.policies,
            OffsetDateTime::now_utc(),
            self.config.max_bytes,
            free,
            self.config.min_free_bytes,
        );
        for d in doomed {
            self.delete(d, sealer, outbox)?;
        }
        if short != self.short {
            if let Some(s) = &short {
                tracing::error!("{s}");
                outbox.put_drop(&crate::outbox::DropReport {
                    kind: "outbox_drop".into(),
                    clip_id: None,
                    camera_id: "recording".into(),
                    seq: None,
                    bytes: 0,
                    reason: format!("recording: {s}"),
                    at: OffsetDateTime::now_utc(),
                })?;
            }
            self.short = short;
        }
        Ok(())
    }

    fn delete(&mut self, d: Doomed, sealer: &mut Sealer, outbox: &Outbox) -> anyhow::Result<()> {
        let pieces = d
            .pieces
            .iter()
            .map(|p| DeletedPiece {
                segment_id: p.segment_id,
                seq: p.seq,
                clip_id: p.id,
                manifest_sha256: p.manifest_sha256,
                start: p.start,
                end: p.end,
                size: p.size,
            })
            .collect();
        let record = sealer.chain.deletion_draft(
            sealer.key,
            env!("CARGO_PKG_VERSION"),
            &d.camera_id,
            OffsetDateTime::now_utc(),
            d.reason,
            &d.detail,
            pieces,
        )?;
        let signed = Signed::sign(&record, sealer.key)?;
        self.store
            .ledger()
            .put(&ChainRecord::Deletion(signed.clone()))?;
        sealer.chain.commit_deletion(&signed)?;
        outbox.put_record(
            &d.camera_id,
            "deletion",
            signed.canonical_bytes(),
            &signed.signature_file(),
        )?;
        for p in &d.pieces {
            self.store.remove(p)?;
        }
        tracing::info!(camera = %d.camera_id, pieces = d.pieces.len(), reason = d.reason.as_str(), seq = signed.record().seq, "Recorded pieces deleted by policy (signed)");
        Ok(())
    }
}

/// Spools a sealed piece's manifest (canonical bytes and `.sig` text) for the hub and
/// marks the piece at `dir` announced.
fn announce(
    dir: &Path,
    camera: &str,
    manifest: &[u8],
    sig: &str,
    outbox: &Outbox,
) -> anyhow::Result<()> {
    outbox.put_record(camera, "piece", manifest, sig)?;
    crate::outbox::write_durable(dir, ANNOUNCED, b"")
}

/// Splits decode-order units into GOPs at key frames (units before the first dropped).
pub fn into_gops(units: Vec<AccessUnit>) -> Vec<Gop> {
    let mut gops: Vec<Gop> = Vec::new();
    for u in units {
        let size = u.buffer.size();
        if u.keyframe {
            gops.push(Gop {
                units: vec![u],
                bytes: size,
            });
        } else if let Some(g) = gops.last_mut() {
            g.units.push(u);
            g.bytes += size;
        }
    }
    gops
}
