//! The hub's files under `DATA/`:
//!
//! ```text
//! DATA/index.sqlite                         the index (index.rs)
//! DATA/clips/<sha[0..2]>/<sha>.mp4           stored clips, content-addressed
//! DATA/incoming/<agent>/<clip_id>/manifest.json, manifest.sig, <n>.part
//! ```
//!
//! Invariants:
//! 1. Every file is written as `<name>.tmp`, fsynced, renamed, and its directory
//!    fsynced; a reader never sees a partial file under its final name.
//! 2. A clip file exists under `clips/` before its index row (index.rs).
//! 3. Path components come only from validated agent ids, re-spelled UUIDs,
//!    chunk numbers and hex digests: nothing is written outside `DATA/`.
//! 4. An incoming directory is deleted only after its clip was indexed (or rejected).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// Writes `bytes` to `path` atomically and durably (invariant 1).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Paths under the data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Layout rooted at `root`.
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite index.
    pub fn index(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }

    /// Final path of a clip with file hash `sha_hex` (64 lowercase hex digits).
    pub fn clip_path(&self, sha_hex: &str) -> PathBuf {
        self.root
            .join("clips")
            .join(&sha_hex[..2])
            .join(format!("{sha_hex}.mp4"))
    }

    /// Incoming directory of one agent (agent id already validated).
    pub fn incoming_agent(&self, agent: &str) -> PathBuf {
        self.root.join("incoming").join(agent)
    }

    /// Incoming directory of one clip.
    pub fn incoming(&self, agent: &str, clip: &Uuid) -> PathBuf {
        self.incoming_agent(agent)
            .join(clip.hyphenated().to_string())
    }
}

/// Chunk file name inside an incoming directory.
pub fn part_name(n: u64) -> String {
    format!("{n}.part")
}

/// Chunk numbers `0..chunks` not yet present in `dir`.
pub fn missing_parts(dir: &Path, chunks: u64) -> Vec<u64> {
    (0..chunks)
        .filter(|n| !dir.join(part_name(*n)).is_file())
        .collect()
}

/// Number of clips being received for an agent.
pub fn pending_count(agent_dir: &Path) -> usize {
    fs::read_dir(agent_dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0)
}

/// Fsyncs the parent directory of `path` (after a removal).
pub fn fsync_dir_of(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) => File::open(p)?.sync_all(),
        None => Ok(()),
    }
}

/// Removes the clip directories under `agent_dir` whose newest file is older than
/// `timeout` (abandoned transfers); returns how many were removed.
pub fn remove_stale(agent_dir: &Path, timeout: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(agent_dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.filter_map(Result::ok) {
        let dir = e.path();
        let newest = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|f| f.metadata().and_then(|m| m.modified()).ok())
            .chain(e.metadata().and_then(|m| m.modified()).ok())
            .max();
        let stale = newest
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > timeout);
        if dir.is_dir() && stale && fs::remove_dir_all(&dir).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        let _ = File::open(agent_dir).and_then(|d| d.sync_all());
    }
    removed
}
