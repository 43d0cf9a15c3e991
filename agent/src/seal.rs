//! Sealing a clip: remux GOPs, describe (hash + GOP hashes, one pass), sign at the
//! camera's next chain link, write the clip directory as `.tmp`, commit the chain
//! head (fsynced), then rename the directory into place.
//! Shared by `record` and `run`, so both produce the same evidence.

use std::io::Write;
use std::path::{Path, PathBuf};

use gstreamer as gst;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::clipdir::{CLIP_FILE, MANIFEST_FILE, PUBKEY_FILE, SIGNATURE_FILE};
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{
    ClockSync, EventRef, ManifestDraft, ModelInfo, PartInfo, PieceInfo, SignedManifest,
};
use vigil_evidence::record::Signed;

use crate::ingest::clip::{cut_clip, ClipError, MuxedClip};
use crate::ingest::ring::Gop;

/// Who signs and where the chain lives.
pub struct Sealer<'a> {
    /// The agent's signing key.
    pub key: &'a SigningKey,
    /// Per-camera chain state.
    pub chain: &'a mut ChainStore,
    /// Agent id written into manifests.
    pub agent_id: &'a str,
    /// Detector that found the events (name + SHA-256 of the model file), if any.
    pub model: Option<ModelInfo>,
    /// The recording store's ledger: every manifest goes in before it is committed.
    pub ledger: Option<crate::recording::store::Ledger>,
}

/// What the manifest says about a clip beyond its video.
pub struct ClipMeta {
    /// UUIDv7; also names the clip directory.
    pub clip_id: uuid::Uuid,
    /// Events the clip holds.
    pub events: Vec<EventRef>,
    /// Position in a long recording split into parts.
    pub part: Option<PartInfo>,
    /// Set for a piece of continuous recording.
    pub piece: Option<PieceInfo>,
}

/// Why a clip could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error(transparent)]
    Evidence(#[from] vigil_evidence::Error),
    #[error("{0}")]
    Io(String),
}

/// A muxed and described clip, not yet signed: its size is known, so the
/// outbox can make room for it before it takes a seq.
pub struct PreparedClip {
    /// The muxed clip (file bytes in `muxed.mp4`).
    pub muxed: MuxedClip,
    description: ClipDescription,
    start: time::OffsetDateTime,
    end: time::OffsetDateTime,
}

impl PreparedClip {
    /// Bytes the clip directory will take (clip plus a generous allowance for
    /// the manifest, signature and public key).
    pub fn dir_bytes(&self) -> u64 {
        self.muxed.mp4.len() as u64 + 64 * 1024
    }
}

/// Mux `gops` and describe the result (hash + GOP hashes, one pass).
pub fn prepare(gops: &[Gop], caps: &gst::Caps) -> Result<PreparedClip, SealError> {
    let muxed = cut_clip(gops, caps)?;
    let start = gops
        .first()
        .map(|g| g.start_wall())
        .ok_or(ClipError::Empty)?;
    let end = gops
        .last()
        .and_then(|g| g.units.last())
        .map(|u| u.wall)
        .unwrap_or(start);
    let description = ClipDescription::from_mp4(&muxed.mp4)?;
    Ok(PreparedClip {
        muxed,
        description,
        start,
        end,
    })
}

impl Sealer<'_> {
    /// Mux `gops`, sign the clip as the camera's next link and write it to `dir`.
    /// Returns the manifest and the muxed clip. See [`Sealer::seal_prepared`].
    pub fn seal(
        &mut self,
        camera_id: &str,
        gops: &[Gop],
        caps: &gst::Caps,
        meta: ClipMeta,
        dir: &Path,
    ) -> Result<(SignedManifest, MuxedClip), SealError> {
        let prepared = prepare(gops, caps)?;
        self.seal_prepared(camera_id, prepared, meta, dir)
    }

    /// Sign a prepared clip as the camera's next link and release it at `dir`.
    ///
    /// Order (crash-safe, docs/architecture.md "Outbox"): sign the manifest at the
    /// chain's next link; write every file into `<dir>.tmp/` and fsync each, the
    /// directory and its parent; commit the manifest to the chain state (fsynced);
    /// rename `<dir>.tmp` to `dir`; fsync the parent. A crash before the commit
    /// leaves a `.tmp` whose seq was never used (discarded and reported at
    /// startup); a crash after it leaves a `.tmp` whose manifest is the chain
    /// head (completed at startup, see [`recover_tmp_clip`]). So no seq is ever
    /// committed without its clip.
    pub fn seal_prepared(
        &mut self,
        camera_id: &str,
        prepared: PreparedClip,
        meta: ClipMeta,
        dir: &Path,
    ) -> Result<(SignedManifest, MuxedClip), SealError> {
        let PreparedClip {
            muxed,
            description,
            start,
            end,
        } = prepared;
        let link = self.chain.next_link(camera_id)?;
        let manifest = ManifestDraft {
            agent_id: self.agent_id.to_string(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            camera_id: camera_id.to_string(),
            clip_id: meta.clip_id,
            start,
            end,
            clock_sync: ClockSync::Unknown,
            events: meta.events,
            clip: description,
            model: self.model.clone(),
            part: meta.part,
            piece: meta.piece,
        }
        .into_manifest(self.key.key_id(), link);
        let signed: SignedManifest = Signed::sign(&manifest, self.key)?;
        if dir.exists() {
            return Err(SealError::Io(format!(
                "clip directory {} already exists",
                dir.display()
            )));
        }
        let tmp = tmp_path(dir);
        write_tmp_dir(&tmp, &muxed.mp4, &signed, &self.key.public_key())?;
        if let Some(ledger) = &self.ledger {
            ledger
                .put(&vigil_evidence::chain::ChainRecord::Manifest(
                    signed.clone(),
                ))
                .map_err(|e| SealError::Io(e.to_string()))?;
        }
        self.chain.commit(&signed)?;
        std::fs::rename(&tmp, dir).map_err(|e| {
            SealError::Io(format!("cannot rename {} into place: {e}", tmp.display()))
        })?;
        fsync_parent(dir)?;
        Ok((signed, muxed))
    }
}

/// `<dir>.tmp`.
pub fn tmp_path(dir: &Path) -> PathBuf {
    let mut t = dir.as_os_str().to_owned();
    t.push(".tmp");
    PathBuf::from(t)
}

fn write_tmp_dir(
    tmp: &Path,
    clip: &[u8],
    signed: &SignedManifest,
    pubkey: &vigil_evidence::keys::PublicKey,
) -> Result<(), SealError> {
    let io = |what: &str, e: std::io::Error| SealError::Io(format!("{what}: {e}"));
    if tmp.exists() {
        // Left over from an attempt that never committed: never released, safe to redo.
        std::fs::remove_dir_all(tmp)
            .map_err(|e| io(&format!("cannot remove {}", tmp.display()), e))?;
    }
    std::fs::create_dir_all(tmp).map_err(|e| io(&format!("cannot create {}", tmp.display()), e))?;
    // The manifest first: a crash mid-write still leaves which camera and seq it was.
    for (name, bytes) in [
        (MANIFEST_FILE, signed.canonical_bytes()),
        (SIGNATURE_FILE, signed.signature_file().as_bytes()),
        (PUBKEY_FILE, pubkey.to_pem().as_bytes()),
        (CLIP_FILE, clip),
    ] {
        let path = tmp.join(name);
        let mut f = std::fs::File::create(&path)
            .map_err(|e| io(&format!("cannot create {}", path.display()), e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&format!("cannot write {}", path.display()), e))?;
    }
    std::fs::File::open(tmp)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&format!("cannot fsync {}", tmp.display()), e))?;
    fsync_parent(tmp)
}

fn fsync_parent(path: &Path) -> Result<(), SealError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| SealError::Io(format!("cannot fsync {}: {e}", parent.display())))
}

/// What a leftover `<clip>.tmp` directory turned out to be at startup.
#[derive(Debug, PartialEq, Eq)]
pub enum TmpClip {
    /// Its manifest is the camera's chain head: it was committed; renamed into place.
    Completed,
    /// Never committed (its seq is free again); the caller discards and reports it.
    Uncommitted {
        /// Camera of the manifest, if it could be read.
        camera_id: Option<String>,
        /// Seq it would have had.
        seq: Option<u64>,
    },
}

/// Decide what a leftover `<clip>.tmp` directory is, and complete it if its
/// manifest was committed (it is the camera's chain head and every file is there).
pub fn recover_tmp_clip(chain: &ChainStore, tmp: &Path, dir: &Path) -> Result<TmpClip, SealError> {
    let manifest = std::fs::read(tmp.join(MANIFEST_FILE)).ok();
    let sig = std::fs::read(tmp.join(SIGNATURE_FILE)).ok();
    let parsed: Option<SignedManifest> = match (manifest, sig) {
        (Some(m), Some(s)) => Signed::from_files(m, &s).ok(),
        _ => None,
    };
    let Some(signed) = parsed else {
        let camera_id = std::fs::read(tmp.join(MANIFEST_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v.get("camera_id")
                    .and_then(|c| c.as_str())
                    .map(String::from)
            });
        return Ok(TmpClip::Uncommitted {
            camera_id,
            seq: None,
        });
    };
    let m = signed.record();
    let committed = chain.head(&m.camera_id).is_ok_and(|h| {
        h.segment_id == m.segment_id && h.seq == m.seq && h.sha256 == signed.sha256()
    });
    let complete = std::fs::metadata(tmp.join(CLIP_FILE)).is_ok_and(|md| md.len() == m.file.size)
        && tmp.join(PUBKEY_FILE).exists();
    if committed && complete {
        std::fs::rename(tmp, dir).map_err(|e| {
            SealError::Io(format!("cannot rename {} into place: {e}", tmp.display()))
        })?;
        fsync_parent(dir)?;
        return Ok(TmpClip::Completed);
    }
    Ok(TmpClip::Uncommitted {
        camera_id: Some(m.camera_id.clone()),
        seq: Some(m.seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepared clip from an MP4 file (the muxing step is tested elsewhere).
    fn prepared(mp4: &[u8]) -> PreparedClip {
        let description = match ClipDescription::from_mp4(mp4) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let now = time::OffsetDateTime::now_utc();
        PreparedClip {
            muxed: MuxedClip {
                mp4: mp4.to_vec(),
                frames: 0,
                duration: std::time::Duration::ZERO,
            },
            description,
            start: now,
            end: now,
        }
    }

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn interrupted_seals_are_completed_after_the_commit_and_discarded_before_it() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4");
        let mp4 = match std::fs::read(&sample) {
            Ok(b) => b,
            Err(e) => panic!("{}: {e}; run `make setup`", sample.display()),
        };
        let dir = ok(tempfile::tempdir());
        let key = ok(SigningKey::generate(&dir.path().join("agent.key")));
        let mut chain = ok(ChainStore::open(&dir.path().join("chain")));
        ok(chain.ensure_segment(&key, "a1", "0", "cam1", time::OffsetDateTime::now_utc()));
        let clips = dir.path().join("clips");
        ok(std::fs::create_dir_all(&clips));
        let mut sealer = Sealer {
            key: &key,
            chain: &mut chain,
            agent_id: "a1",
            model: None,
            ledger: None,
        };
        let seal = |sealer: &mut Sealer| {
            let clip_id = uuid::Uuid::now_v7();
            let d = clips.join(clip_id.to_string());
            let meta = ClipMeta {
                clip_id,
                events: Vec::new(),
                part: None,
                piece: None,
            };
            let (signed, _) = ok(sealer.seal_prepared("cam1", prepared(&mp4), meta, &d));
            (d, signed.record().seq)
        };
        // Crash before the commit: a `.tmp` whose seq is not the chain head.
        let (a, seq_a) = seal(&mut sealer);
        assert_eq!(seq_a, 1);
        let stale = clips.join(format!("{}.tmp", uuid::Uuid::now_v7()));
        ok(std::fs::create_dir_all(&stale));
        for f in [CLIP_FILE, MANIFEST_FILE, SIGNATURE_FILE, PUBKEY_FILE] {
            ok(std::fs::copy(a.join(f), stale.join(f)));
        }
        let (_, seq_b) = seal(&mut sealer);
        assert_eq!(seq_b, 2);
        let r = ok(recover_tmp_clip(
            sealer.chain,
            &stale,
            &stale.with_extension(""),
        ));
        assert_eq!(
            r,
            TmpClip::Uncommitted {
                camera_id: Some("cam1".into()),
                seq: Some(1)
            }
        );
        // Crash after the commit, before the rename: completed, and it verifies.
        let (c, seq_c) = seal(&mut sealer);
        assert_eq!(seq_c, 3);
        let tmp = tmp_path(&c);
        ok(std::fs::rename(&c, &tmp));
        assert_eq!(
            ok(recover_tmp_clip(sealer.chain, &tmp, &c)),
            TmpClip::Completed
        );
        let back = ok(vigil_evidence::clipdir::read_clip_dir(&c));
        ok(back.manifest.verify(&key.public_key()));
        assert_eq!(back.manifest.record().seq, 3);
        assert!(!tmp.exists());
    }
}
