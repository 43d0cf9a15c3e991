//! The chain state store: one small file per camera in a state directory,
//! replaced atomically (write tmp, fsync, rename, fsync dir) before a record
//! is released. See docs/evidence.md, "Chain state", for the invariants.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::records::{
    ChainHead, ChainReset, Checkpoint, DeletedPiece, Deletion, DeletionReason, ResetReason,
    SignedChainReset, SignedCheckpoint, SignedDeletion,
};
use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, write_atomic};
use crate::keys::SigningKey;
use crate::manifest::{ChainLink, ManifestDraft, SignedManifest};
use crate::record::Signed;

const MARKER: &str = "store.json";
const MARKER_BODY: &[u8] = b"{\"vigil_chain_store\":1}\n";
const MAX_STATE_FILE: u64 = 1024 * 1024;

/// What the store remembers about one camera's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraState {
    camera_id: String,
    /// Agent and key that own the segment; a mismatch forces a `key_changed` reset.
    agent_id: String,
    key_id: Sha256Digest,
    segment_id: Uuid,
    /// Seq and hash of the last committed record (0 and the reset's hash at first).
    head_seq: u64,
    head_sha256: Sha256Digest,
    /// The segment's signed reset (canonical bytes and signature, base64), kept
    /// so it can be re-published after a crash and exported in bundles.
    reset_b64: String,
    reset_sig_b64: String,
}

/// The on-disk wrapper: the state and a checksum over its canonical bytes.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    state: CameraState,
    sha256: Sha256Digest,
}

enum Loaded {
    Ok(CameraState),
    Missing,
    Corrupt(String),
}

/// Per-camera chain state in a directory. One `ChainStore` per directory and
/// process: it is not safe to share a state directory between processes.
#[derive(Debug)]
pub struct ChainStore {
    dir: PathBuf,
    /// True if the store marker was absent when opened (reset reason `new_store`).
    fresh: bool,
    /// Cache of states read or written by this process.
    cache: HashMap<String, CameraState>,
}

impl ChainStore {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<ChainStore> {
        fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("cannot create chain state directory {}", dir.display()),
                e,
            )
        })?;
        let marker = dir.join(MARKER);
        let fresh = !marker.exists();
        if fresh {
            write_atomic(&marker, MARKER_BODY)?;
        }
        Ok(ChainStore {
            dir: dir.to_path_buf(),
            fresh,
            cache: HashMap::new(),
        })
    }

    fn state_path(&self, camera_id: &str) -> PathBuf {
        let h = Sha256Digest::of(camera_id.as_bytes()).to_hex();
        self.dir.join(format!("camera-{}.state", &h[..32]))
    }

    fn load(&self, camera_id: &str) -> Result<Loaded> {
        if let Some(s) = self.cache.get(camera_id) {
            return Ok(Loaded::Ok(s.clone()));
        }
        let path = self.state_path(camera_id);
        let bytes = match fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) => return Err(Error::io(format!("cannot stat {}", path.display()), e)),
            Ok(m) if m.len() > MAX_STATE_FILE => {
                return Ok(Loaded::Corrupt(format!("state file is {} bytes", m.len())))
            }
            Ok(_) => fs::read(&path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?,
        };
        let file: StateFile = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => return Ok(Loaded::Corrupt(format!("state file does not parse: {e}"))),
        };
        if state_digest(&file.state)? != file.sha256 {
            return Ok(Loaded::Corrupt("state file checksum does not match".into()));
        }
        if file.state.camera_id != camera_id {
            return Ok(Loaded::Corrupt(format!(
                "state file belongs to camera {:?}",
                file.state.camera_id
            )));
        }
        Ok(Loaded::Ok(file.state))
    }

    fn save(&mut self, state: CameraState) -> Result<()> {
        let sha256 = state_digest(&state)?;
        let file = StateFile { state, sha256 };
        let bytes = serde_json::to_vec(&file).map_err(|e| Error::Chain(e.to_string()))?;
        write_atomic(&self.state_path(&file.state.camera_id), &bytes)?;
        self.cache.insert(file.state.camera_id.clone(), file.state);
        Ok(())
    }

    /// Makes sure `camera_id` has a usable segment owned by `key` and
    /// `agent_id`. If it has, returns `None`. Otherwise signs a `chain_reset`
    /// saying why, persists it as the new segment's head and returns it: the
    /// caller must publish it before any manifest of the new segment.
    pub fn ensure_segment(
        &mut self,
        key: &SigningKey,
        agent_id: &str,
        agent_version: &str,
        camera_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<SignedChainReset>> {
        let (reason, detail, previous) = match self.load(camera_id)? {
            Loaded::Ok(s) if s.key_id == key.key_id() && s.agent_id == agent_id => return Ok(None),
            Loaded::Ok(s) => (
                ResetReason::KeyChanged,
                format!(
                    "previous segment was signed by agent {:?} with key {}",
                    s.agent_id, s.key_id
                ),
                Some(ChainHead {
                    segment_id: s.segment_id,
                    seq: s.head_seq,
                    sha256: s.head_sha256,
                }),
            ),
            Loaded::Missing if self.fresh => (
                ResetReason::NewStore,
                "no chain state directory existed".into(),
                None,
            ),
            Loaded::Missing => (
                ResetReason::NewCamera,
                "no chain state for this camera".into(),
                None,
            ),
            Loaded::Corrupt(why) => {
                self.quarantine(camera_id, now)?;
                (ResetReason::StateCorrupt, why, None)
            }
        };
        let reset = ChainReset {
            agent_id: agent_id.to_string(),
            agent_version: agent_version.to_string(),
            key_id: key.key_id(),
            camera_id: camera_id.to_string(),
            segment_id: Uuid::now_v7(),
            time: now,
            reason,
            detail,
            previous,
        };
        let signed = Signed::sign(&reset, key)?;
        self.save(CameraState {
            camera_id: camera_id.to_string(),
            agent_id: agent_id.to_string(),
            key_id: key.key_id(),
            segment_id: reset.segment_id,
            head_seq: 0,
            head_sha256: signed.sha256(),
            reset_b64: B64.encode(signed.canonical_bytes()),
            reset_sig_b64: B64.encode(signed.signature()),
        })?;
        Ok(Some(signed))
    }

    /// Moves a corrupt state file aside (kept for forensics, never reused).
    fn quarantine(&mut self, camera_id: &str, now: OffsetDateTime) -> Result<()> {
        self.cache.remove(camera_id);
        let path = self.state_path(camera_id);
        let mut aside = path.clone().into_os_string();
        aside.push(format!(".corrupt-{}", now.unix_timestamp()));
        match fs::rename(&path, &aside) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                format!("cannot move corrupt state {} aside", path.display()),
                e,
            )),
        }
    }

    fn current(&self, camera_id: &str) -> Result<CameraState> {
        match self.load(camera_id)? {
            Loaded::Ok(s) => Ok(s),
            Loaded::Missing | Loaded::Corrupt(_) => Err(Error::Chain(format!(
                "camera {camera_id:?} has no usable chain segment; call ensure_segment first"
            ))),
        }
    }

    /// The position the next manifest of `camera_id` takes.
    pub fn next_link(&self, camera_id: &str) -> Result<ChainLink> {
        let s = self.current(camera_id)?;
        Ok(ChainLink {
            segment_id: s.segment_id,
            seq: s
                .head_seq
                .checked_add(1)
                .ok_or_else(|| Error::Chain("seq overflow".into()))?,
            prev_manifest_sha256: s.head_sha256,
        })
    }

    /// The segment's current head.
    pub fn head(&self, camera_id: &str) -> Result<ChainHead> {
        let s = self.current(camera_id)?;
        Ok(ChainHead {
            segment_id: s.segment_id,
            seq: s.head_seq,
            sha256: s.head_sha256,
        })
    }

    /// The reset that opened the camera's current segment (to re-publish or export).
    pub fn segment_reset(&self, camera_id: &str) -> Result<SignedChainReset> {
        let s = self.current(camera_id)?;
        let bytes = B64
            .decode(&s.reset_b64)
            .map_err(|e| Error::Chain(format!("stored reset is not base64: {e}")))?;
        Signed::from_files(bytes, s.reset_sig_b64.as_bytes())
    }

    /// Records `manifest` as the camera's new head. It must sit exactly at
    /// [`ChainStore::next_link`] and be signed by the segment's key. Only after
    /// this returns may the manifest be released (written to the outbox or published).
    pub fn commit(&mut self, manifest: &SignedManifest) -> Result<()> {
        let m = manifest.record();
        let link = ChainLink {
            segment_id: m.segment_id,
            seq: m.seq,
            prev_manifest_sha256: m.prev_manifest_sha256,
        };
        self.commit_link(&m.camera_id, link, m.key_id, manifest.sha256(), "manifest")
    }

    /// Records a deletion record as the camera's new head (same rules as [`ChainStore::commit`]).
    pub fn commit_deletion(&mut self, deletion: &SignedDeletion) -> Result<()> {
        let d = deletion.record();
        let link = ChainLink {
            segment_id: d.segment_id,
            seq: d.seq,
            prev_manifest_sha256: d.prev_manifest_sha256,
        };
        self.commit_link(
            &d.camera_id,
            link,
            d.key_id,
            deletion.sha256(),
            "deletion record",
        )
    }

    fn commit_link(
        &mut self,
        camera_id: &str,
        at: ChainLink,
        key_id: Sha256Digest,
        sha256: Sha256Digest,
        what: &str,
    ) -> Result<()> {
        let mut s = self.current(camera_id)?;
        let link = self.next_link(camera_id)?;
        if at != link {
            return Err(Error::Chain(format!(
                "{what} for camera {camera_id:?} has seq {} in segment {}, but the next link is seq {} in segment {}",
                at.seq, at.segment_id, link.seq, link.segment_id
            )));
        }
        if key_id != s.key_id {
            return Err(Error::Chain(format!(
                "{what} is signed by key {key_id}, the segment by {}",
                s.key_id
            )));
        }
        s.head_seq = at.seq;
        s.head_sha256 = sha256;
        self.save(s)
    }

    /// The deletion record naming `pieces` at the camera's next link, for `key` and the
    /// segment's agent, unsigned: the caller signs it, keeps a copy where it must (the
    /// agent's ledger) and then [`ChainStore::commit_deletion`]s it.
    #[allow(clippy::too_many_arguments)]
    pub fn deletion_draft(
        &self,
        key: &SigningKey,
        agent_version: &str,
        camera_id: &str,
        time: OffsetDateTime,
        reason: DeletionReason,
        detail: &str,
        pieces: Vec<DeletedPiece>,
    ) -> Result<Deletion> {
        let s = self.current(camera_id)?;
        let link = self.next_link(camera_id)?;
        Ok(Deletion {
            agent_id: s.agent_id.clone(),
            agent_version: agent_version.to_string(),
            key_id: key.key_id(),
            camera_id: camera_id.to_string(),
            segment_id: link.segment_id,
            seq: link.seq,
            prev_manifest_sha256: link.prev_manifest_sha256,
            time,
            reason,
            detail: detail.to_string(),
            pieces,
        })
    }

    /// Builds, signs and commits the next manifest for the draft's camera.
    /// Returns it ready to release.
    pub fn sign_clip(&mut self, key: &SigningKey, draft: ManifestDraft) -> Result<SignedManifest> {
        let link = self.next_link(&draft.camera_id)?;
        let manifest = draft.into_manifest(key.key_id(), link);
        let signed = Signed::sign(&manifest, key)?;
        self.commit(&signed)?;
        Ok(signed)
    }

    /// Signs a checkpoint of the camera's current head.
    pub fn checkpoint(
        &self,
        key: &SigningKey,
        camera_id: &str,
        now: OffsetDateTime,
    ) -> Result<SignedCheckpoint> {
        let s = self.current(camera_id)?;
        let cp = Checkpoint {
            agent_id: s.agent_id.clone(),
            key_id: key.key_id(),
            camera_id: camera_id.to_string(),
            segment_id: s.segment_id,
            head_seq: s.head_seq,
            head_sha256: s.head_sha256,
            time: now,
        };
        Signed::sign(&cp, key)
    }
}

fn state_digest(state: &CameraState) -> Result<Sha256Digest> {
    let value = serde_json::to_value(state).map_err(|e| Error::Chain(e.to_string()))?;
    let bytes = crate::canonical::encode(&value).map_err(Error::Chain)?;
    Ok(Sha256Digest::of(&bytes))
}
