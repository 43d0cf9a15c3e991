//! The chain's own signed records: `chain_reset` (opens a segment) and
//! `checkpoint` (anchors a segment's head so a deleted tail is detectable).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::digest::Sha256Digest;
use crate::error::Result;
use crate::keys::PublicKey;
use crate::manifest::{Manifest, SignedManifest};
use crate::record::{check_id, check_v7, decode_signature_file, utc_ms, Record, Signed};

/// A signed chain reset.
pub type SignedChainReset = Signed<ChainReset>;
/// A signed checkpoint.
pub type SignedCheckpoint = Signed<Checkpoint>;
/// A signed deletion record.
pub type SignedDeletion = Signed<Deletion>;

/// Most pieces one deletion record may name (retention deletes in batches).
pub const MAX_DELETED_PIECES: usize = 1000;

/// Why recorded pieces were deleted on the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletionReason {
    /// The recording store reached its `max_bytes`.
    MaxBytes,
    /// The pieces were older than the camera's `max_days`.
    MaxDays,
    /// The disk was full: pieces younger than `min_days` had to go.
    DiskFull,
}

impl DeletionReason {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionReason::MaxBytes => "max_bytes",
            DeletionReason::MaxDays => "max_days",
            DeletionReason::DiskFull => "disk_full",
        }
    }
}

/// One piece a deletion record removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletedPiece {
    /// Segment of the piece's manifest.
    pub segment_id: Uuid,
    /// Seq of the piece's manifest.
    pub seq: u64,
    /// The piece (its manifest's `clip_id`).
    pub clip_id: Uuid,
    /// SHA-256 of the piece's manifest.
    pub manifest_sha256: Sha256Digest,
    /// First frame.
    #[serde(with = "utc_ms")]
    pub start: OffsetDateTime,
    /// After the last frame.
    #[serde(with = "utc_ms")]
    pub end: OffsetDateTime,
    /// Bytes freed (the piece's clip file).
    pub size: u64,
}

/// A signed statement that recorded pieces were deleted by policy; occupies a
/// seq in the camera's chain like a manifest, so the deletion itself cannot be
/// hidden and a piece gone without one is a gap nobody can explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deletion {
    /// Agent that deleted and signed.
    pub agent_id: String,
    /// Agent software version.
    pub agent_version: String,
    /// Signing key id.
    pub key_id: Sha256Digest,
    /// Camera whose pieces these were.
    pub camera_id: String,
    /// Segment this record belongs to.
    pub segment_id: Uuid,
    /// Position in the segment (>= 1).
    pub seq: u64,
    /// Hash of the record at `seq - 1`.
    pub prev_manifest_sha256: Sha256Digest,
    /// When the pieces were deleted.
    #[serde(with = "utc_ms")]
    pub time: OffsetDateTime,
    /// Which policy deleted them.
    pub reason: DeletionReason,
    /// Free text: the bound that was reached, e.g. "store 10.2 GB > max_bytes 10 GB".
    pub detail: String,
    /// The pieces, oldest first.
    pub pieces: Vec<DeletedPiece>,
}

/// Why a new segment was started. Always signed, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The state directory had never been initialised (first start, or the
    /// whole directory was lost: the agent cannot tell these apart).
    NewStore,
    /// The store exists but had no state for this camera (new camera, or its
    /// state file was deleted).
    NewCamera,
    /// The camera's state file was unreadable or failed its checksum.
    StateCorrupt,
    /// The state was intact but written under another key or agent id.
    KeyChanged,
}

/// Opens a new chain segment for a camera; occupies seq 0 of that segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainReset {
    /// Agent that started the segment.
    pub agent_id: String,
    /// Agent software version.
    pub agent_version: String,
    /// Signing key id.
    pub key_id: Sha256Digest,
    /// Camera whose chain this is.
    pub camera_id: String,
    /// Id of the new segment (UUIDv7); every manifest in it repeats it.
    pub segment_id: Uuid,
    /// When the segment was started.
    #[serde(with = "utc_ms")]
    pub time: OffsetDateTime,
    /// Why.
    pub reason: ResetReason,
    /// Free-text detail, e.g. the parse error of a corrupt state file.
    pub detail: String,
    /// The head of the previous segment when it is known (`key_changed`).
    pub previous: Option<ChainHead>,
}

/// A segment's head: its last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    /// Segment id.
    pub segment_id: Uuid,
    /// Seq of the last record (0 = only the reset).
    pub seq: u64,
    /// SHA-256 of that record's canonical bytes.
    pub sha256: Sha256Digest,
}

/// A signed statement of a segment's head at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Agent that signed it.
    pub agent_id: String,
    /// Signing key id.
    pub key_id: Sha256Digest,
    /// Camera.
    pub camera_id: String,
    /// Segment.
    pub segment_id: Uuid,
    /// Seq of the segment's last committed record at `time`.
    pub head_seq: u64,
    /// SHA-256 of that record.
    pub head_sha256: Sha256Digest,
    /// When the checkpoint was made.
    #[serde(with = "utc_ms")]
    pub time: OffsetDateTime,
}

impl Record for ChainReset {
    const TYPE: &'static str = "chain_reset";
    const DOMAIN: &'static [u8] = b"vigil.chain_reset.v1\0";
    const WHAT: &'static str = "chain reset";

    fn validate(&self) -> std::result::Result<(), String> {
        check_id("agent_id", &self.agent_id)?;
        check_id("agent_version", &self.agent_version)?;
        check_id("camera_id", &self.camera_id)?;
        check_v7("segment_id", &self.segment_id)?;
        if self.detail.len() > 4096 {
            return Err("detail is longer than 4096 bytes".into());
        }
        Ok(())
    }

    fn key_id(&self) -> Sha256Digest {
        self.key_id
    }
}

impl Record for Deletion {
    const TYPE: &'static str = "deletion";
    const DOMAIN: &'static [u8] = b"vigil.deletion.v1\0";
    const WHAT: &'static str = "deletion record";

    fn validate(&self) -> std::result::Result<(), String> {
        check_id("agent_id", &self.agent_id)?;
        check_id("agent_version", &self.agent_version)?;
        check_id("camera_id", &self.camera_id)?;
        check_v7("segment_id", &self.segment_id)?;
        if self.seq == 0 {
            return Err("seq is 0, which is reserved for the segment's chain_reset".into());
        }
        if self.detail.len() > 4096 {
            return Err("detail is longer than 4096 bytes".into());
        }
        if self.pieces.is_empty() || self.pieces.len() > MAX_DELETED_PIECES {
            return Err(format!(
                "pieces must name 1 to {MAX_DELETED_PIECES} pieces, not {}",
                self.pieces.len()
            ));
        }
        for (i, p) in self.pieces.iter().enumerate() {
            check_v7(&format!("pieces[{i}].segment_id"), &p.segment_id)?;
            check_v7(&format!("pieces[{i}].clip_id"), &p.clip_id)?;
            if p.end < p.start {
                return Err(format!("pieces[{i}].end is before its start"));
            }
        }
        Ok(())
    }

    fn key_id(&self) -> Sha256Digest {
        self.key_id
    }
}

impl Record for Checkpoint {
    const TYPE: &'static str = "checkpoint";
    const DOMAIN: &'static [u8] = b"vigil.checkpoint.v1\0";
    const WHAT: &'static str = "checkpoint";

    fn validate(&self) -> std::result::Result<(), String> {
        check_id("agent_id", &self.agent_id)?;
        check_id("camera_id", &self.camera_id)?;
        check_v7("segment_id", &self.segment_id)
    }

    fn key_id(&self) -> Sha256Digest {
        self.key_id
    }
}

/// A record that occupies a seq in a segment: a manifest or the opening reset.
#[derive(Debug, Clone)]
pub enum ChainRecord {
    /// A clip manifest (seq >= 1).
    Manifest(SignedManifest),
    /// The segment's reset (seq 0).
    Reset(SignedChainReset),
    /// Pieces deleted by retention (seq >= 1).
    Deletion(SignedDeletion),
}

impl ChainRecord {
    /// Parses a chain-slice entry, telling the two types apart by their `type` field.
    pub fn from_files(canonical: Vec<u8>, sig_file: &[u8]) -> Result<ChainRecord> {
        let signature = decode_signature_file(sig_file)?;
        if starts_as::<ChainReset>(&canonical) {
            Ok(ChainRecord::Reset(Signed::from_parts(
                canonical, signature,
            )?))
        } else if starts_as::<Deletion>(&canonical) {
            Ok(ChainRecord::Deletion(Signed::from_parts(
                canonical, signature,
            )?))
        } else {
            Ok(ChainRecord::Manifest(Signed::from_parts(
                canonical, signature,
            )?))
        }
    }

    /// Camera id.
    pub fn camera_id(&self) -> &str {
        match self {
            ChainRecord::Manifest(m) => &m.record().camera_id,
            ChainRecord::Reset(r) => &r.record().camera_id,
            ChainRecord::Deletion(d) => &d.record().camera_id,
        }
    }

    /// Segment id.
    pub fn segment_id(&self) -> Uuid {
        match self {
            ChainRecord::Manifest(m) => m.record().segment_id,
            ChainRecord::Reset(r) => r.record().segment_id,
            ChainRecord::Deletion(d) => d.record().segment_id,
        }
    }

    /// Seq (0 for a reset).
    pub fn seq(&self) -> u64 {
        match self {
            ChainRecord::Manifest(m) => m.record().seq,
            ChainRecord::Reset(_) => 0,
            ChainRecord::Deletion(d) => d.record().seq,
        }
    }

    /// The hash this record links back to (none for a reset).
    pub fn prev(&self) -> Option<Sha256Digest> {
        match self {
            ChainRecord::Manifest(m) => Some(m.record().prev_manifest_sha256),
            ChainRecord::Reset(_) => None,
            ChainRecord::Deletion(d) => Some(d.record().prev_manifest_sha256),
        }
    }

    /// SHA-256 of the canonical bytes.
    pub fn sha256(&self) -> Sha256Digest {
        match self {
            ChainRecord::Manifest(m) => m.sha256(),
            ChainRecord::Reset(r) => r.sha256(),
            ChainRecord::Deletion(d) => d.sha256(),
        }
    }

    /// Signing key id.
    pub fn key_id(&self) -> Sha256Digest {
        match self {
            ChainRecord::Manifest(m) => m.record().key_id,
            ChainRecord::Reset(r) => r.record().key_id,
            ChainRecord::Deletion(d) => d.record().key_id,
        }
    }

    /// Agent id.
    pub fn agent_id(&self) -> &str {
        match self {
            ChainRecord::Manifest(m) => &m.record().agent_id,
            ChainRecord::Reset(r) => &r.record().agent_id,
            ChainRecord::Deletion(d) => &d.record().agent_id,
        }
    }

    /// Checks the signature.
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        match self {
            ChainRecord::Manifest(m) => m.verify(key),
            ChainRecord::Reset(r) => r.verify(key),
            ChainRecord::Deletion(d) => d.verify(key),
        }
    }

    /// Canonical bytes and `.sig` file contents, for writing.
    pub fn files(&self) -> (&[u8], String) {
        match self {
            ChainRecord::Manifest(m) => (m.canonical_bytes(), m.signature_file()),
            ChainRecord::Reset(r) => (r.canonical_bytes(), r.signature_file()),
            ChainRecord::Deletion(d) => (d.canonical_bytes(), d.signature_file()),
        }
    }

    /// The manifest, if this is one.
    pub fn manifest(&self) -> Option<&Manifest> {
        match self {
            ChainRecord::Manifest(m) => Some(m.record()),
            ChainRecord::Reset(_) | ChainRecord::Deletion(_) => None,
        }
    }

    /// The deletion record, if this is one.
    pub fn deletion(&self) -> Option<&Deletion> {
        match self {
            ChainRecord::Deletion(d) => Some(d.record()),
            _ => None,
        }
    }
}

/// Cheap check of the `type` field without a full parse.
fn starts_as<R: Record>(canonical: &[u8]) -> bool {
    let needle = format!("\"type\":\"{}\"", R::TYPE);
    canonical
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
