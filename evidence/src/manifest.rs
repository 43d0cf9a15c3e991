//! Manifest v1: the signed description of one clip and its place in the
//! camera's hash chain.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::clip::{ClipDescription, Codec, GopEntry};
use crate::digest::Sha256Digest;
use crate::record::{check_id, check_v7, utc_ms, Record, Signed};

/// A clip manifest together with its canonical bytes and signature.
pub type SignedManifest = Signed<Manifest>;

/// Manifest v1. Field order here is irrelevant: the canonical encoding sorts keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable id of the agent (box) that recorded and signed the clip.
    pub agent_id: String,
    /// Version string of the agent software, for later forensics.
    pub agent_version: String,
    /// Id of the signing key (SHA-256 of its SPKI DER); selects the verifying key.
    pub key_id: Sha256Digest,
    /// Camera the clip comes from; chains are per camera.
    pub camera_id: String,
    /// Unique id of this clip (UUIDv7).
    pub clip_id: Uuid,
    /// Chain segment this manifest belongs to (UUIDv7 of its `chain_reset`).
    pub segment_id: Uuid,
    /// Position in the segment: 1, 2, 3, ... (the segment's reset is 0).
    pub seq: u64,
    /// SHA-256 of the canonical bytes of record `seq - 1` of this segment
    /// (the `chain_reset` for seq 1). Never null.
    pub prev_manifest_sha256: Sha256Digest,
    /// UTC time of the first frame, per the agent's clock.
    #[serde(with = "utc_ms")]
    pub start: OffsetDateTime,
    /// UTC time just after the last frame.
    #[serde(with = "utc_ms")]
    pub end: OffsetDateTime,
    /// Whether the agent's clock was synchronised when the clip was recorded.
    pub clock_sync: ClockSync,
    /// Detection events that caused or overlap the clip (may be empty).
    pub events: Vec<EventRef>,
    /// The clip file as stored.
    pub file: FileInfo,
    /// Video stream facts (informational; the GOP hashes are what is checked).
    pub video: VideoInfo,
    /// Per-GOP hashes in decode order.
    pub gops: Vec<GopEntry>,
    /// Detector model in use, if any.
    pub model: Option<ModelInfo>,
    /// Set when a long recording was split into several clips.
    pub part: Option<PartInfo>,
    /// Set on a piece of continuous recording (docs/evidence.md §4.1). Absent, not
    /// `null`, on event clips, so manifests written before the field existed keep
    /// their canonical bytes; `"piece": null` is therefore not canonical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piece: Option<PieceInfo>,
}

/// A piece of a camera's continuous recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PieceInfo {
    /// True when the piece was rebuilt from the capture journal after the agent
    /// stopped without sealing it (crash, power cut): it ends where the journal did.
    pub recovered: bool,
    /// What came right before the piece's first frame.
    pub start_reason: PieceStart,
}

/// Why a piece starts where it does: says whether time before it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PieceStart {
    /// Follows the previous piece of the same stream without a gap.
    Continues,
    /// First piece after the agent (re)started: nothing was recorded while it was down.
    AgentStart,
    /// First piece after the camera's stream was lost and reconnected.
    StreamRestart,
}

impl PieceStart {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PieceStart::Continues => "continues",
            PieceStart::AgentStart => "agent_start",
            PieceStart::StreamRestart => "stream_restart",
        }
    }
}

/// State of the agent's clock when the clip was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSync {
    /// NTP/PTP (or similar) reported the clock synchronised.
    Synchronized,
    /// The clock was known not to be synchronised; times may be off.
    Unsynchronized,
    /// The agent could not tell.
    Unknown,
}

/// A detection event referenced by a clip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRef {
    /// Event id as published by the agent.
    pub id: String,
    /// Detected class, e.g. "person".
    pub label: String,
}

/// Size and hash of the clip file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Sha256Digest,
}

/// Facts about the video stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoInfo {
    /// Codec.
    pub codec: Codec,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Number of frames.
    pub frames: u64,
    /// Duration in ms.
    pub duration_ms: u64,
}

/// Detector model identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Model name, e.g. "yolov8n".
    pub name: String,
    /// SHA-256 of the model file.
    pub sha256: Sha256Digest,
}

/// Links the clips of one long recording split into parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartInfo {
    /// Id shared by all parts of the recording (UUIDv7).
    pub recording_id: Uuid,
    /// 0-based position of this clip in the recording.
    pub index: u32,
}

/// Everything about a clip except its chain position and key, which the
/// chain store fills in ([`crate::chain::ChainStore::sign_clip`]).
#[derive(Debug, Clone)]
pub struct ManifestDraft {
    /// See [`Manifest::agent_id`].
    pub agent_id: String,
    /// See [`Manifest::agent_version`].
    pub agent_version: String,
    /// See [`Manifest::camera_id`].
    pub camera_id: String,
    /// See [`Manifest::clip_id`]; `Uuid::now_v7()` normally.
    pub clip_id: Uuid,
    /// See [`Manifest::start`].
    pub start: OffsetDateTime,
    /// See [`Manifest::end`].
    pub end: OffsetDateTime,
    /// See [`Manifest::clock_sync`].
    pub clock_sync: ClockSync,
    /// See [`Manifest::events`].
    pub events: Vec<EventRef>,
    /// The clip as described by [`ClipDescription::from_mp4`].
    pub clip: ClipDescription,
    /// See [`Manifest::model`].
    pub model: Option<ModelInfo>,
    /// See [`Manifest::part`].
    pub part: Option<PartInfo>,
    /// See [`Manifest::piece`].
    pub piece: Option<PieceInfo>,
}

/// Where a new record goes in a camera's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    /// The current segment.
    pub segment_id: Uuid,
    /// The seq the new record takes.
    pub seq: u64,
    /// Hash of the record at `seq - 1`.
    pub prev_manifest_sha256: Sha256Digest,
}

impl ManifestDraft {
    /// Builds the manifest for `link`, signed by the key `key_id`.
    pub fn into_manifest(self, key_id: Sha256Digest, link: ChainLink) -> Manifest {
        let c = self.clip;
        Manifest {
            agent_id: self.agent_id,
            agent_version: self.agent_version,
            key_id,
            camera_id: self.camera_id,
            clip_id: self.clip_id,
            segment_id: link.segment_id,
            seq: link.seq,
            prev_manifest_sha256: link.prev_manifest_sha256,
            start: self.start,
            end: self.end,
            clock_sync: self.clock_sync,
            events: self.events,
            file: FileInfo {
                size: c.file_size,
                sha256: c.file_sha256,
            },
            video: VideoInfo {
                codec: c.codec,
                width: u32::from(c.width),
                height: u32::from(c.height),
                frames: c.frame_count,
                duration_ms: c.duration_ms,
            },
            gops: c.gops,
            model: self.model,
            part: self.part,
            piece: self.piece,
        }
    }
}

impl Manifest {
    /// True for a piece of continuous recording, false for an event clip.
    pub fn is_piece(&self) -> bool {
        self.piece.is_some()
    }
}

impl Record for Manifest {
    const TYPE: &'static str = "clip_manifest";
    const DOMAIN: &'static [u8] = b"vigil.manifest.v1\0";
    const WHAT: &'static str = "manifest";

    fn validate(&self) -> Result<(), String> {
        check_id("agent_id", &self.agent_id)?;
        check_id("agent_version", &self.agent_version)?;
        check_id("camera_id", &self.camera_id)?;
        check_v7("clip_id", &self.clip_id)?;
        check_v7("segment_id", &self.segment_id)?;
        if self.seq == 0 {
            return Err("seq is 0, which is reserved for the segment's chain_reset".into());
        }
        if self.end < self.start {
            return Err("end is before start".into());
        }
        if self.events.len() > 10_000 {
            return Err("events has more than 10000 entries".into());
        }
        for (i, e) in self.events.iter().enumerate() {
            check_id(&format!("events[{i}].id"), &e.id)?;
            check_id(&format!("events[{i}].label"), &e.label)?;
        }
        for (i, g) in self.gops.iter().enumerate() {
            if g.index as usize != i {
                return Err(format!("gops[{i}].index is {}, expected {i}", g.index));
            }
        }
        if let Some(m) = &self.model {
            check_id("model.name", &m.name)?;
        }
        if let Some(p) = &self.part {
            check_v7("part.recording_id", &p.recording_id)?;
        }
        Ok(())
    }

    fn key_id(&self) -> Sha256Digest {
        self.key_id
    }
}
