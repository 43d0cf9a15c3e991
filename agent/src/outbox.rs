//! The outbox: the durable spool of everything that must reach the hub, bounded
//! in bytes. Layout, write order and invariants: docs/architecture.md, "Outbox".
//!
//! ```text
//! outbox/clips/<clip_id>/{manifest.json, manifest.sig, pubkey.pem, clip.mp4}
//! outbox/events/<unix_ns>-<camera>-<event_id>-<phase>.json
//! outbox/records/<unix_ns>-<camera>-{chain_reset,piece,manifest,deletion}.{sig,json}
//! outbox/drops/<unix_ns>-<camera>-<what>.json          drop reports (docs/mqtt.md `drops`)
//! ```
//!
//! Accounting is a directory scan, not a counter: the uplink deletes entries
//! concurrently and a crash may leave anything, so the disk is the only truth.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

use crate::detect::EventMessage;

/// Default `[outbox] max_bytes`: 2 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;

/// Sub-directories holding entries.
pub const KINDS: [&str; 4] = ["clips", "events", "records", "drops"];

/// A drop report (`vigil/v1/{agent}/drops`): the agent deleted something un-acked.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DropReport {
    /// Always `outbox_drop`.
    pub kind: String,
    /// The dropped clip, if it was a clip.
    pub clip_id: Option<uuid::Uuid>,
    /// Camera of the dropped entry (`unknown` when it could not be read).
    pub camera_id: String,
    /// Chain seq of the dropped clip, if known.
    pub seq: Option<u64>,
    /// Bytes deleted.
    pub bytes: u64,
    /// Why, in words an operator understands.
    pub reason: String,
    /// When, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Outbox totals for the `health` topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    /// Entries waiting (clip directories, events, records, drop reports).
    pub entries: u64,
    /// Bytes they take.
    pub bytes: u64,
    /// `[outbox] max_bytes`.
    pub limit_bytes: u64,
    /// Entries dropped since start (bound or startup clean-up).
    pub dropped_entries: u64,
    /// Bytes dropped since start.
    pub dropped_bytes: u64,
}

/// The spool; shared by the runtime (writes) and the uplink (deletes after acks).
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    limit_bytes: u64,
    dropped_entries: AtomicU64,
    dropped_bytes: AtomicU64,
    /// Serialises "make room, then write" so two writers cannot both count the same space.
    room: Mutex<()>,
    /// Tells the uplink a new entry is durable, so it publishes at once instead of on
    /// its next 200 ms round (events are live: this is event latency).
    wake: Wake,
}

/// The uplink's wake-up call (set once the uplink runs).
#[derive(Default)]
struct Wake(Mutex<Option<Box<dyn Fn() + Send>>>);

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

/// A leftover `.tmp` found at startup.
#[derive(Debug)]
pub struct Leftover {
    /// Its path.
    pub path: PathBuf,
    /// `clips`, `events`, `records` or `drops`.
    pub kind: &'static str,
    /// Bytes it holds.
    pub bytes: u64,
}

impl Outbox {
    /// Opens (creating) the outbox at `dir` with a byte bound.
    pub fn open(dir: &Path, limit_bytes: u64) -> anyhow::Result<Outbox> {
        for sub in KINDS {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create outbox {}: {e}; check outbox_dir and its permissions",
                    dir.join(sub).display()
                )
            })?;
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
            limit_bytes,
            dropped_entries: AtomicU64::new(0),
            dropped_bytes: AtomicU64::new(0),
            room: Mutex::new(()),
            wake: Wake::default(),
        })
    }

    /// Calls `f` after every new entry is durable (the uplink's wake-up).
    pub fn on_new_entry(&self, f: Box<dyn Fn() + Send>) {
        *self.wake.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// A new entry is durable: wake the uplink.
    pub fn notify_new_entry(&self) {
        if let Some(f) = self
            .wake
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f();
        }
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The byte bound.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    /// Where a clip's directory goes.
    pub fn clip_dir(&self, clip_id: uuid::Uuid) -> PathBuf {
        self.dir.join("clips").join(clip_id.to_string())
    }

    /// Startup: removes what was already delivered or dropped (`*.delivered.tmp`,
    /// `*.dropped.tmp`) and returns every other `.tmp` (an interrupted write) for
    /// the caller to complete or discard-and-report.
    pub fn leftovers(&self) -> Vec<Leftover> {
        let mut out = Vec::new();
        for kind in KINDS {
            for path in list(&self.dir.join(kind)) {
                let name = path.file_name().map(|n| n.to_string_lossy().to_string());
                let Some(name) = name else { continue };
                if !name.ends_with(".tmp") {
                    continue;
                }
                if name.ends_with(".delivered.tmp") || name.ends_with(".dropped.tmp") {
                    tracing::info!(path = %path.display(), "Removing an outbox entry whose deletion was interrupted");
                    let _ = remove_any(&path);
                    continue;
                }
                out.push(Leftover {
                    bytes: size_of(&path),
                    path,
                    kind,
                });
            }
        }
        out
    }

    /// Deletes an interrupted write and spools a drop report for it.
    pub fn discard_leftover(
        &self,
        left: &Leftover,
        camera_id: Option<&str>,
        clip_id: Option<uuid::Uuid>,
        seq: Option<u64>,
    ) -> anyhow::Result<()> {
        let camera = camera_id
            .map(String::from)
            .or_else(|| camera_from_name(&left.path))
            .unwrap_or_else(|| "unknown".into());
        let reason = format!(
            "incomplete {} entry found at startup (the agent stopped while writing it); discarded",
            left.kind.trim_end_matches('s')
        );
        tracing::error!(path = %left.path.display(), clip = ?clip_id, camera = %camera, seq = ?seq, bytes = left.bytes, reason = %reason, "Discarding an incomplete outbox entry");
        self.put_drop(&DropReport {
            kind: "outbox_drop".into(),
            clip_id,
            camera_id: camera,
            seq,
            bytes: left.bytes,
            reason,
            at: OffsetDateTime::now_utc(),
        })?;
        remove_any(&left.path)?;
        self.count_drop(left.bytes);
        Ok(())
    }

    fn count_drop(&self, bytes: u64) {
        self.dropped_entries.fetch_add(1, Ordering::Relaxed);
        self.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Totals from a scan of the directory (temp entries excluded).
    pub fn stats(&self) -> OutboxStats {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for kind in KINDS {
            for path in list(&self.dir.join(kind)) {
                if is_tmp(&path) || path.extension().is_some_and(|e| e == "sig") {
                    // A record's .sig travels with its .json: one entry.
                    if !is_tmp(&path) {
                        bytes += size_of(&path);
                    }
                    continue;
                }
                entries += 1;
                bytes += size_of(&path);
            }
        }
        OutboxStats {
            entries,
            bytes,
            limit_bytes: self.limit_bytes,
            dropped_entries: self.dropped_entries.load(Ordering::Relaxed),
            dropped_bytes: self.dropped_bytes.load(Ordering::Relaxed),
        }
    }

    /// Makes room for `incoming` bytes: while the outbox plus `incoming` exceeds
    /// the bound, the OLDEST clip directory is reported (durable drop report
    /// first) and deleted. Never touches the entry being written (it is not in
    /// the outbox yet). Returns the drops made. Hold the returned guard while
    /// writing the new entry.
    pub fn make_room(
        &self,
        incoming: u64,
    ) -> anyhow::Result<(std::sync::MutexGuard<'_, ()>, Vec<DropReport>)> {
        let guard = self.room.lock().unwrap_or_else(|p| p.into_inner());
        let mut drops = Vec::new();
        let mut used = self.stats().bytes;
        if used.saturating_add(incoming) <= self.limit_bytes {
            return Ok((guard, drops));
        }
        let mut clips: Vec<PathBuf> = list(&self.dir.join("clips"))
            .into_iter()
            .filter(|p| !is_tmp(p) && p.is_dir())
            .collect();
        // UUIDv7 names sort by creation time: oldest first.
        clips.sort();
        for clip in clips {
            if used.saturating_add(incoming) <= self.limit_bytes {
                break;
            }
            let bytes = size_of(&clip);
            let (camera_id, seq) = read_manifest_ids(&clip);
            let clip_id = clip
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<uuid::Uuid>().ok());
            let reason = format!(
                "outbox full: {used} bytes spooled + {incoming} incoming would exceed max_bytes {}; \
                 the oldest clip was dropped to keep the newest evidence (the hub has been unreachable \
                 or slower than the cameras)",
                self.limit_bytes
            );
            let report = DropReport {
                kind: "outbox_drop".into(),
                clip_id,
                camera_id: camera_id.unwrap_or_else(|| "unknown".into()),
                seq,
                bytes,
                reason,
                at: OffsetDateTime::now_utc(),
            };
            tracing::error!(clip = ?report.clip_id, camera = %report.camera_id, seq = ?report.seq, bytes, reason = %report.reason, "Dropping an undelivered clip from the outbox");
            // The report is durable before the clip goes: never a silent deletion.
            self.put_drop(&report)?;
            let trash = clip.with_extension("dropped.tmp");
            std::fs::rename(&clip, &trash)
                .map_err(|e| anyhow::anyhow!("cannot move {} aside: {e}", clip.display()))?;
            fsync_dir(&self.dir.join("clips"))?;
            remove_any(&trash)?;
            self.count_drop(bytes);
            used = used.saturating_sub(bytes);
            drops.push(report);
        }
        if used.saturating_add(incoming) > self.limit_bytes {
            tracing::warn!(
                used,
                incoming,
                limit = self.limit_bytes,
                "Outbox over its bound with no clip left to drop; writing the new entry anyway"
            );
        }
        Ok((guard, drops))
    }

    /// Spools an event message.
    pub fn put_event(&self, msg: &EventMessage) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(msg)?;
        let (_room, _) = self.make_room(bytes.len() as u64)?;
        let name = format!(
            "{}-{}-{}-{}.json",
            OffsetDateTime::now_utc().unix_timestamp_nanos(),
            msg.event.camera_id,
            msg.event.id,
            msg.phase.as_str()
        );
        write_durable(&self.dir.join("events"), &name, &bytes)?;
        self.notify_new_entry();
        Ok(())
    }

    /// Spools a signed chain record (signature first: the `.json` is what the uplink looks for).
    pub fn put_record(
        &self,
        camera: &str,
        kind: &str,
        canonical: &[u8],
        sig: &str,
    ) -> anyhow::Result<()> {
        let stem = format!(
            "{}-{camera}-{kind}",
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let dir = self.dir.join("records");
        write_durable(&dir, &format!("{stem}.sig"), sig.as_bytes())?;
        write_durable(&dir, &format!("{stem}.json"), canonical)?;
        self.notify_new_entry();
        Ok(())
    }

    /// Spools a drop report (never itself dropped by the bound).
    pub fn put_drop(&self, report: &DropReport) -> anyhow::Result<()> {
        let what = match (report.clip_id, report.seq) {
            (Some(id), _) => id.to_string(),
            (None, Some(seq)) => format!("seq{seq}"),
            (None, None) => "entry".into(),
        };
        let name = format!(
            "{}-{}-{what}.json",
            OffsetDateTime::now_utc().unix_timestamp_nanos(),
            report.camera_id
        );
        write_durable(&self.dir.join("drops"), &name, &serde_json::to_vec(report)?)?;
        self.notify_new_entry();
        Ok(())
    }
}

/// Kinds of chain record spooled under `records/` (the last `-` part of the name).
pub const RECORD_KINDS: [&str; 4] = ["chain_reset", "piece", "manifest", "deletion"];

/// The record kind of a `records/<ns>-<camera>-<kind>.{json,sig}` name.
pub fn record_kind(name: &str) -> Option<&'static str> {
    let stem = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".sig"))?;
    split_record_kind(stem).map(|(_, kind)| kind)
}

/// `(<before>, kind)` of a record stem `<before>-<kind>`.
fn split_record_kind(stem: &str) -> Option<(&str, &'static str)> {
    RECORD_KINDS.into_iter().find_map(|k| {
        stem.strip_suffix(k)
            .and_then(|b| b.strip_suffix('-'))
            .map(|b| (b, k))
    })
}

/// Camera id and seq from a clip directory's manifest, when readable.
fn read_manifest_ids(dir: &Path) -> (Option<String>, Option<u64>) {
    let v = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let camera = v
        .as_ref()
        .and_then(|v| v.get("camera_id"))
        .and_then(|c| c.as_str())
        .map(String::from);
    let seq = v
        .as_ref()
        .and_then(|v| v.get("seq"))
        .and_then(|s| s.as_u64());
    (camera, seq)
}

/// The camera in `.<ns>-<camera>-…` entry names (events, records, drops).
fn camera_from_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let name = name.trim_start_matches('.');
    let (_, rest) = name.split_once('-')?;
    // events: <camera>-<uuid 36>-<phase>.json(.tmp); records: <camera>-chain_reset.…; drops: <camera>-<what>.json
    if let Some(stem) = rest.split(".json").next() {
        if let Some((before, _phase)) = stem.rsplit_once('-') {
            if before.len() > 37 && before.as_bytes()[before.len() - 37] == b'-' {
                let (camera, uuid) = before.split_at(before.len() - 37);
                if uuid[1..].parse::<uuid::Uuid>().is_ok() {
                    return Some(camera.to_string());
                }
            }
        }
        if let Some((camera, _)) = split_record_kind(stem) {
            return Some(camera.to_string());
        }
    }
    None
}

fn is_tmp(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".tmp"))
}

/// Entries of a directory (empty when unreadable).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Bytes of a file, or of every file in a directory (one level: clip directories).
fn size_of(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => list(path)
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| m.len())
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn remove_any(path: &Path) -> anyhow::Result<()> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot delete {}: {e}", path.display())),
    }
}

fn fsync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| anyhow::anyhow!("cannot fsync {}: {e}", dir.display()))
}

/// Writes `<dir>/.<name>.tmp`, fsyncs it, renames it to `<dir>/<name>`, fsyncs `dir`.
pub fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        anyhow::anyhow!(
            "cannot write {} into the outbox: {e}",
            dir.join(name).display()
        )
    })
}

#[cfg(test)]
mod tests;
