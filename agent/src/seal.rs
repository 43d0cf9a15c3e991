//! Sealing a clip: remux GOPs, describe (hash + GOP hashes, one pass), sign into the
//! camera's chain (chain head fsynced before release), write the clip directory.
//! Shared by `record` and `run`, so both produce the same evidence.

use std::path::Path;

use gstreamer as gst;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{
    ClockSync, EventRef, ManifestDraft, ModelInfo, PartInfo, SignedManifest,
};

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
}

/// What the manifest says about a clip beyond its video.
pub struct ClipMeta {
    /// UUIDv7; also names the clip directory.
    pub clip_id: uuid::Uuid,
    /// Events the clip holds.
    pub events: Vec<EventRef>,
    /// Position in a long recording split into parts.
    pub part: Option<PartInfo>,
}

/// Why a clip could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error(transparent)]
    Evidence(#[from] vigil_evidence::Error),
}

impl Sealer<'_> {
    /// Mux `gops`, sign the clip as the camera's next link and write it to `dir`
    /// (`<dir>.tmp`, fsync, rename). Returns the manifest and the muxed clip.
    pub fn seal(
        &mut self,
        camera_id: &str,
        gops: &[Gop],
        caps: &gst::Caps,
        meta: ClipMeta,
        dir: &Path,
    ) -> Result<(SignedManifest, MuxedClip), SealError> {
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
        let signed = self.chain.sign_clip(
            self.key,
            ManifestDraft {
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
            },
        )?;
        vigil_evidence::clipdir::write_clip_dir(dir, &muxed.mp4, &signed, &self.key.public_key())?;
        Ok((signed, muxed))
    }
}
