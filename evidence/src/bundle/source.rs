//! Read access to a clip directory or bundle (directory or `.zip`) that
//! treats every name and size inside as hostile: no absolute paths, no `..`,
//! no symlinks, bounded entry counts, and every read capped by a byte limit
//! that does not trust the sizes the archive declares (zip bombs stop there).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Most files a bundle may hold.
pub const MAX_ENTRIES: usize = 100_000;
/// Longest path inside a bundle.
pub const MAX_PATH_LEN: usize = 512;
/// Largest clip file read into memory.
pub const MAX_CLIP_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Largest text file (manifest, signature, key, list, custody log) read.
pub const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 8;

/// A readable bundle or clip directory.
pub enum Source {
    /// A directory on disk.
    Dir {
        /// Root directory.
        root: PathBuf,
        /// Relative `/`-separated path -> size.
        files: BTreeMap<String, u64>,
    },
    /// A zip archive.
    Zip {
        /// The archive.
        archive: zip::ZipArchive<File>,
        /// Relative path -> entry index.
        files: BTreeMap<String, usize>,
    },
}

/// Checks one relative path from a bundle; returns why it is unsafe.
pub fn check_path(name: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "unsafe path {:?} in bundle: {why}",
            name.chars().take(80).collect::<String>()
        ))
    };
    if name.is_empty() || name.len() > MAX_PATH_LEN {
        return bad("empty or too long");
    }
    if name.starts_with('/') || name.contains('\\') || name.contains(':') || name.contains('\0') {
        return bad("absolute, or contains \\ : or NUL");
    }
    if name.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("empty, . or .. component");
    }
    Ok(())
}

impl Source {
    /// Opens a directory or zip file.
    pub fn open(path: &Path) -> Result<Source> {
        let meta = fs::symlink_metadata(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        if meta.is_dir() {
            let mut files = BTreeMap::new();
            walk(path, "", 0, &mut files)?;
            return Ok(Source::Dir {
                root: path.to_path_buf(),
                files,
            });
        }
        let file = File::open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| {
            Error::Bundle(format!(
                "{} is neither a directory nor a readable zip file ({e})",
                path.display()
            ))
        })?;
        if archive.len() > MAX_ENTRIES {
            return Err(Error::Bundle(format!(
                "zip has {} entries, more than {MAX_ENTRIES}",
                archive.len()
            )));
        }
        let mut files = BTreeMap::new();
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| Error::Bundle(format!("zip entry {i} is unreadable ({e})")))?;
            let name = String::from_utf8(entry.name_raw().to_vec()).map_err(|_| {
                Error::Bundle(format!("zip entry {i} has a name that is not UTF-8"))
            })?;
            if entry.is_dir() {
                continue;
            }
            check_path(&name).map_err(Error::Bundle)?;
            if files.insert(name.clone(), i).is_some() {
                return Err(Error::Bundle(format!("zip holds {name:?} twice")));
            }
        }
        Ok(Source::Zip { archive, files })
    }

    /// All file paths, sorted.
    pub fn paths(&self) -> Vec<String> {
        match self {
            Source::Dir { files, .. } => files.keys().cloned().collect(),
            Source::Zip { files, .. } => files.keys().cloned().collect(),
        }
    }

    /// True if `path` is a file in the source.
    pub fn contains(&self, path: &str) -> bool {
        match self {
            Source::Dir { files, .. } => files.contains_key(path),
            Source::Zip { files, .. } => files.contains_key(path),
        }
    }

    /// Reads `path`, failing if it holds more than `limit` bytes (counted as
    /// read, not as declared). `Ok(None)` if there is no such file.
    pub fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let reader: Box<dyn Read + '_> = match self {
            Source::Dir { root, files } => {
                if !files.contains_key(path) {
                    return Ok(None);
                }
                let full = root.join(path);
                let f = File::open(&full)
                    .map_err(|e| Error::io(format!("cannot read {}", full.display()), e))?;
                Box::new(f)
            }
            Source::Zip { archive, files } => {
                let Some(&i) = files.get(path) else {
                    return Ok(None);
                };
                let entry = archive
                    .by_index(i)
                    .map_err(|e| Error::Bundle(format!("cannot read {path} from the zip ({e})")))?;
                Box::new(entry)
            }
        };
        let mut buf = Vec::new();
        reader
            .take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {path}"), e))?;
        if buf.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: path.to_string(),
                limit,
            });
        }
        Ok(Some(buf))
    }
}

fn walk(dir: &Path, prefix: &str, depth: usize, files: &mut BTreeMap<String, u64>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Bundle(format!(
            "directories nested deeper than {MAX_DEPTH} under {prefix}"
        )));
    }
    let entries =
        fs::read_dir(dir).map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| Error::Bundle(format!("file name {n:?} is not UTF-8")))?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        check_path(&rel).map_err(Error::Bundle)?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {rel}"), e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::Bundle(format!(
                "{rel} is a symbolic link; bundles must hold plain files"
            )));
        } else if meta.is_dir() {
            walk(&entry.path(), &rel, depth + 1, files)?;
        } else if meta.is_file() {
            if files.len() >= MAX_ENTRIES {
                return Err(Error::Bundle(format!("more than {MAX_ENTRIES} files")));
            }
            files.insert(rel, meta.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_path;

    #[test]
    fn hostile_paths_are_rejected() {
        for p in [
            "../x",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "C:\\x",
            "a\\b",
            "./a",
            "a/.",
            "",
            "a\0b",
        ] {
            assert!(check_path(p).is_err(), "{p:?} should be rejected");
        }
        for p in ["manifest-sha256.txt", "clips/0001/clip.mp4", "keys/ab.pem"] {
            assert!(check_path(p).is_ok(), "{p:?} should be accepted");
        }
    }
}
