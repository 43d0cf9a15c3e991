//! Clip directories: what the agent releases for one clip.
//!
//! ```text
//! <clip dir>/clip.mp4       the clip, byte for byte as hashed
//! <clip dir>/manifest.json  exact canonical manifest bytes
//! <clip dir>/manifest.sig   standard base64 of the DER signature, then "\n"
//! <clip dir>/pubkey.pem     the agent's SPKI PEM public key
//! ```

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, fsync_parent, write_synced};
use crate::keys::PublicKey;
use crate::manifest::SignedManifest;
use crate::record::Signed;

/// File names inside a clip directory.
pub const CLIP_FILE: &str = "clip.mp4";
/// Manifest file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Signature file name.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// Public key file name.
pub const PUBKEY_FILE: &str = "pubkey.pem";

/// A clip directory read back into memory.
#[derive(Debug)]
pub struct ClipDir {
    /// The clip bytes.
    pub clip: Vec<u8>,
    /// The parsed manifest (signature not yet checked).
    pub manifest: SignedManifest,
    /// The public key shipped alongside (untrusted until the caller says so).
    pub pubkey: PublicKey,
}

/// Writes a clip directory atomically: everything goes into `<dir>.tmp`, each
/// file is fsynced, then the directory is renamed to `dir` and the parent
/// fsynced. `dir` must not exist. Call only after the manifest was committed
/// to the chain store.
pub fn write_clip_dir(
    dir: &Path,
    clip: &[u8],
    manifest: &SignedManifest,
    pubkey: &PublicKey,
) -> Result<()> {
    if dir.exists() {
        return Err(Error::Bundle(format!(
            "clip directory {} already exists",
            dir.display()
        )));
    }
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    if tmp.exists() {
        // Left over from a crash before the rename: never released, safe to redo.
        fs::remove_dir_all(&tmp)
            .map_err(|e| Error::io(format!("cannot remove stale {}", tmp.display()), e))?;
    }
    fs::create_dir_all(&tmp)
        .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    write_synced(&tmp.join(CLIP_FILE), clip)?;
    write_synced(&tmp.join(PUBKEY_FILE), pubkey.to_pem().as_bytes())?;
    write_synced(
        &tmp.join(SIGNATURE_FILE),
        manifest.signature_file().as_bytes(),
    )?;
    write_synced(&tmp.join(MANIFEST_FILE), manifest.canonical_bytes())?;
    fsync_dir(&tmp)?;
    fs::rename(&tmp, dir)
        .map_err(|e| Error::io(format!("cannot rename {} into place", tmp.display()), e))?;
    fsync_parent(dir)
}

/// Reads a clip directory strictly (every file must be present and parse).
pub fn read_clip_dir(dir: &Path) -> Result<ClipDir> {
    let read = |name: &str| {
        fs::read(dir.join(name))
            .map_err(|e| Error::io(format!("cannot read {}", dir.join(name).display()), e))
    };
    let clip = read(CLIP_FILE)?;
    let manifest = Signed::from_files(read(MANIFEST_FILE)?, &read(SIGNATURE_FILE)?)?;
    let pem = String::from_utf8(read(PUBKEY_FILE)?)
        .map_err(|_| Error::PublicKeyInvalid("pubkey.pem is not UTF-8".into()))?;
    let pubkey = PublicKey::from_pem(&pem)?;
    Ok(ClipDir {
        clip,
        manifest,
        pubkey,
    })
}
