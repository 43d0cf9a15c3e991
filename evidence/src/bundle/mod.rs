//! Evidence bundles: a directory or `.zip` an investigator receives.
//!
//! ```text
//! manifest-sha256.txt          sha256sum lines over every other file, sorted by path
//! keys/<key_id>.pem            agent public keys (SPKI PEM)
//! clips/<NNNN>/clip.mp4        the original clip, byte for byte
//! clips/<NNNN>/manifest.json   its canonical manifest
//! clips/<NNNN>/manifest.sig    base64 DER signature
//! chain/<NNNN>.json|.sig       chain slice: every record (manifests and resets)
//!                              from the first clip's segment start or seq up to
//!                              the checkpoint's head, in chain order
//! checkpoints/<NNNN>.json|.sig the next checkpoint(s) after the last clip
//! custody/custody.jsonl        optional hub custody log (opaque JSON lines)
//! ```
//!
//! `<NNNN>` are 4-digit (or longer) positions in the order the writer was
//! given them. The verifier never relies on them: chain order is by seq.

pub mod source;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::chain::{ChainRecord, SignedCheckpoint};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, fsync_parent, write_synced};
use crate::keys::PublicKey;
use crate::manifest::SignedManifest;

/// Name of the checksum list at the bundle root.
pub const CHECKSUM_FILE: &str = "manifest-sha256.txt";
/// Name of the custody log.
pub const CUSTODY_FILE: &str = "custody/custody.jsonl";

enum Sink {
    Dir(PathBuf),
    Zip(Box<ZipWriter<File>>, PathBuf),
}

/// Writes a bundle. Files are added in any order; `finish` writes
/// `manifest-sha256.txt` last and makes everything durable.
pub struct BundleWriter {
    sink: Sink,
    /// Path -> digest of every file written so far (sorted for the list).
    written: BTreeMap<String, Sha256Digest>,
    clips: usize,
    chain: usize,
    checkpoints: usize,
}

impl BundleWriter {
    /// Starts a bundle directory at `path`, which must not exist yet.
    pub fn create_dir(path: &Path) -> Result<BundleWriter> {
        fs::create_dir(path).map_err(|e| {
            Error::io(
                format!("cannot create bundle directory {}", path.display()),
                e,
            )
        })?;
        Ok(Self::new(Sink::Dir(path.to_path_buf())))
    }

    /// Starts a bundle `.zip` at `path`, which must not exist yet.
    pub fn create_zip(path: &Path) -> Result<BundleWriter> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(format!("cannot create bundle {}", path.display()), e))?;
        Ok(Self::new(Sink::Zip(
            Box::new(ZipWriter::new(file)),
            path.to_path_buf(),
        )))
    }

    fn new(sink: Sink) -> BundleWriter {
        BundleWriter {
            sink,
            written: BTreeMap::new(),
            clips: 0,
            chain: 0,
            checkpoints: 0,
        }
    }

    fn put(&mut self, path: &str, data: &[u8]) -> Result<()> {
        source::check_path(path).map_err(Error::Bundle)?;
        if self.written.contains_key(path) {
            return Err(Error::Bundle(format!("{path} was already added")));
        }
        match &mut self.sink {
            Sink::Dir(root) => {
                let full = root.join(path);
                if let Some(parent) = full.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
                }
                write_synced(&full, data)?;
            }
            Sink::Zip(zip, _) => {
                // Video is already compressed; store it. Fixed timestamps keep
                // the archive reproducible.
                let method = if path.ends_with(".mp4") {
                    CompressionMethod::Stored
                } else {
                    CompressionMethod::Deflated
                };
                let opts = SimpleFileOptions::default()
                    .compression_method(method)
                    .large_file(data.len() as u64 >= u64::from(u32::MAX))
                    .last_modified_time(zip::DateTime::default());
                zip.start_file(path, opts)
                    .map_err(|e| Error::Bundle(format!("cannot add {path} to the zip ({e})")))?;
                zip.write_all(data)
                    .map_err(|e| Error::io(format!("cannot write {path} into the zip"), e))?;
            }
        }
        self.written
            .insert(path.to_string(), Sha256Digest::of(data));
        Ok(())
    }

    /// Adds an agent public key as `keys/<key_id>.pem` (once per key).
    pub fn add_key(&mut self, key: &PublicKey) -> Result<()> {
        let path = format!("keys/{}.pem", key.key_id());
        if self.written.contains_key(&path) {
            return Ok(());
        }
        self.put(&path, key.to_pem().as_bytes())
    }

    /// Adds a clip with its manifest and signature as the next `clips/<NNNN>/`.
    pub fn add_clip(&mut self, clip: &[u8], manifest: &SignedManifest) -> Result<()> {
        self.clips += 1;
        let dir = format!("clips/{:04}", self.clips);
        self.put(&format!("{dir}/clip.mp4"), clip)?;
        self.put(&format!("{dir}/manifest.json"), manifest.canonical_bytes())?;
        self.put(
            &format!("{dir}/manifest.sig"),
            manifest.signature_file().as_bytes(),
        )
    }

    /// Adds a chain-slice record as the next `chain/<NNNN>.json` + `.sig`.
    pub fn add_chain_record(&mut self, record: &ChainRecord) -> Result<()> {
        self.chain += 1;
        let (bytes, sig) = record.files();
        let (bytes, sig) = (bytes.to_vec(), sig);
        self.put(&format!("chain/{:04}.json", self.chain), &bytes)?;
        self.put(&format!("chain/{:04}.sig", self.chain), sig.as_bytes())
    }

    /// Adds a checkpoint as the next `checkpoints/<NNNN>.json` + `.sig`.
    pub fn add_checkpoint(&mut self, checkpoint: &SignedCheckpoint) -> Result<()> {
        self.checkpoints += 1;
        let n = self.checkpoints;
        self.put(
            &format!("checkpoints/{n:04}.json"),
            checkpoint.canonical_bytes(),
        )?;
        self.put(
            &format!("checkpoints/{n:04}.sig"),
            checkpoint.signature_file().as_bytes(),
        )
    }

    /// Adds the hub's custody log (JSON lines; opaque to the verifier, covered
    /// by `manifest-sha256.txt`).
    pub fn add_custody_log(&mut self, jsonl: &[u8]) -> Result<()> {
        self.put(CUSTODY_FILE, jsonl)
    }

    /// Adds `window.json`: the camera and time window the bundle was exported for,
    /// so the verifier checks the pieces cover it (docs/evidence.md §7).
    pub fn add_window(&mut self, window: &crate::verify::window::Window) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(window)
            .map_err(|e| Error::Bundle(format!("cannot encode the window ({e})")))?;
        self.put(crate::verify::window::WINDOW_FILE, &bytes)
    }

    /// Writes `manifest-sha256.txt` and makes the bundle durable.
    pub fn finish(mut self) -> Result<()> {
        let list = checksum_list(&self.written);
        self.put(CHECKSUM_FILE, list.as_bytes())?;
        match self.sink {
            Sink::Dir(root) => {
                for sub in ["", "keys", "clips", "chain", "checkpoints", "custody"] {
                    let d = root.join(sub);
                    if d.is_dir() {
                        fsync_dir(&d)?;
                    }
                }
                for i in 1..=self.clips {
                    fsync_dir(&root.join(format!("clips/{i:04}")))?;
                }
                fsync_parent(&root)
            }
            Sink::Zip(zip, path) => {
                let file = zip.finish().map_err(|e| {
                    Error::Bundle(format!("cannot finish {} ({e})", path.display()))
                })?;
                file.sync_all()
                    .map_err(|e| Error::io(format!("cannot fsync {}", path.display()), e))?;
                fsync_parent(&path)
            }
        }
    }
}

/// Formats a `sha256sum`-compatible list (`<hex>  <path>`), sorted by path.
pub fn checksum_list(files: &BTreeMap<String, Sha256Digest>) -> String {
    files
        .iter()
        .filter(|(p, _)| p.as_str() != CHECKSUM_FILE)
        .map(|(p, d)| format!("{d}  {p}\n"))
        .collect()
}

/// Parses a `sha256sum` list (text `"  "` or binary `" *"` separator).
pub fn parse_checksum_list(text: &[u8]) -> Result<BTreeMap<String, Sha256Digest>> {
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::Bundle(format!("{CHECKSUM_FILE} is not UTF-8")))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || {
            Error::Bundle(format!(
                "{CHECKSUM_FILE} line {}: expected `<64 hex digits>  <path>`",
                n + 1
            ))
        };
        let (hash, rest) = line.split_at_checked(64).ok_or_else(bad)?;
        let path = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(bad)?;
        let digest: Sha256Digest = hash.parse().map_err(|_| bad())?;
        source::check_path(path).map_err(Error::Bundle)?;
        if out.insert(path.to_string(), digest).is_some() {
            return Err(Error::Bundle(format!("{CHECKSUM_FILE} lists {path} twice")));
        }
    }
    Ok(out)
}
