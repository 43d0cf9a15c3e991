//! Small durable-write helpers shared by the key, chain and bundle writers.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Fsyncs the directory containing `path`, so a create or rename in it is durable.
pub(crate) fn fsync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fsync_dir(parent)
}

/// Fsyncs a directory.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("cannot fsync directory {}", dir.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `data` to `path` atomically: write `path.tmp`, fsync it, rename over
/// `path`, fsync the directory. After a crash `path` holds either the old or
/// the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let ctx = |what: &str, p: &Path| format!("cannot {what} {}", p.display());
    let mut f = File::create(&tmp).map_err(|e| Error::io(ctx("create", &tmp), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(ctx("write", &tmp), e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error::io(ctx("rename into place", path), e))?;
    fsync_parent(path)
}

/// Writes a new file and fsyncs it (no rename: used inside fresh directories).
pub(crate) fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = File::create(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}
