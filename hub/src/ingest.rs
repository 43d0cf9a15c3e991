//! Ingest: turns agent messages into verified, indexed evidence.
//!
//! Flow per docs/mqtt.md: a signed manifest opens a transfer (kept on disk in
//! `DATA/incoming/...`, so a hub restart resumes it), chunks land as `<n>.part`
//! files, and the last chunk triggers verification (file SHA-256 and every GOP
//! hash against the signed manifest), the chain check, the durable store and
//! the index row — only then is `stored` acked.
//!
//! Every function here takes untrusted input: failures are [`Rejection`]s with
//! a stable code and a sentence, never panics.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_evidence::chain::ChainReset;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::PublicKey;
use vigil_evidence::manifest::{Manifest, SignedManifest};
use vigil_evidence::record::Signed;

use crate::files::{self, missing_parts, part_name, pending_count, write_atomic, Layout};
use crate::index::{AlertKind, ClipRow, Index};
use crate::topic::{self, shorten, valid_id, Topic};

/// The only chunk size contract v1 allows.
pub const CHUNK_SIZE: u64 = 262_144;
/// Largest clip the hub accepts.
pub const MAX_CLIP_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest manifest message (JSON around the base64 manifest).
pub const MAX_MANIFEST_MESSAGE: usize = 4 * 1024 * 1024;
/// Largest event or status message.
pub const MAX_EVENT_MESSAGE: usize = 1024 * 1024;
/// Clips one agent may have in transfer at once (bounds disk held by half-received clips).
pub const MAX_PENDING_PER_AGENT: usize = 16;

const MANIFEST_FILE: &str = "manifest.json";
const SIGNATURE_FILE: &str = "manifest.sig";

/// Why a message was refused: a stable code (for counters) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable label, e.g. `unknown_agent`.
    pub code: &'static str,
    /// What was wrong, for the log and the `rejected` ack.
    pub reason: String,
}

impl Rejection {
    fn new(code: &'static str, reason: impl Into<String>) -> Rejection {
        Rejection {
            code,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Rejection {
    Rejection::new("internal_error", format!("{what}: {e}"))
}

/// Ack status of contract v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Send these chunks.
    Missing,
    /// Verified and indexed; the agent may delete its outbox entry.
    Stored,
    /// Refused; `reason` says why.
    Rejected,
}

/// The `acks` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Clip the ack is about.
    pub clip_id: String,
    /// What the hub did.
    pub status: AckStatus,
    /// Chunk numbers still needed (only for `missing`).
    pub missing: Vec<u64>,
    /// Why, for `rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Ack {
    fn stored(clip: &Uuid) -> Ack {
        Ack {
            clip_id: clip.hyphenated().to_string(),
            status: AckStatus::Stored,
            missing: Vec::new(),
            reason: None,
        }
    }

    /// A `rejected` ack for `clip` with the rejection's reason.
    pub fn rejected(clip: &Uuid, r: &Rejection) -> Ack {
        Ack {
            clip_id: clip.hyphenated().to_string(),
            status: AckStatus::Rejected,
            missing: Vec::new(),
            reason: Some(format!("{}: {}", r.code, r.reason)),
        }
    }
}

/// What handling one message produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// An ack to publish: (topic, ack).
    pub ack: Option<(String, Ack)>,
    /// Set when the message was refused.
    pub rejected: Option<Rejection>,
}

/// The manifest message of contract v1.
#[derive(Deserialize)]
struct ManifestMessage {
    manifest_b64: String,
    signature: String,
    size: u64,
    chunk_size: u64,
    chunks: u64,
}

/// The records message of contract v1.
#[derive(Deserialize)]
struct RecordMessage {
    kind: String,
    record_b64: String,
    signature: String,
}

/// The hub's ingest state: the index and the data directory.
pub struct Ingest {
    layout: Layout,
    index: Index,
    /// Rejections by code since start (the log line is emitted with each).
    rejected: BTreeMap<&'static str, u64>,
}

fn chunks_for(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

impl Ingest {
    /// Opens (creating) the data directory and its index.
    pub fn open(data_dir: &Path) -> anyhow::Result<Ingest> {
        fs::create_dir_all(data_dir)?;
        let layout = Layout::new(data_dir);
        let index = Index::open(&layout.index())?;
        Ok(Ingest {
            layout,
            index,
            rejected: BTreeMap::new(),
        })
    }

    /// The index, for queries.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Data directory layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Rejection counters by code.
    pub fn rejected_counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejected
    }

    /// Enrolls `agent_id` with the PEM public key; returns the key id.
    pub fn enroll(&self, agent_id: &str, pem: &str) -> anyhow::Result<String> {
        if !valid_id(agent_id) {
            anyhow::bail!(
                "agent id {agent_id:?} must be 1-64 characters of A-Z, a-z, 0-9, _ and -"
            );
        }
        let key = PublicKey::from_pem(pem)?;
        let key_id = key.key_id().to_hex();
        self.index.add_agent(agent_id, &key.to_pem(), &key_id)?;
        Ok(key_id)
    }

    /// Handles one message from the broker.
    pub fn handle(&mut self, topic_str: &str, payload: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        let t = match topic::parse(topic_str) {
            Ok(t) => t,
            Err(reason) => {
                out.rejected = Some(Rejection::new("bad_topic", reason));
                self.count(&out, topic_str);
                return out;
            }
        };
        match t {
            Topic::Manifest { agent, clip } => {
                let ack = match self.manifest(&agent, &clip, payload) {
                    Ok(a) => a,
                    Err(r) => {
                        let a = Ack::rejected(&clip, &r);
                        out.rejected = Some(r);
                        a
                    }
                };
                out.ack = Some((topic::acks_topic(&agent), ack));
            }
            Topic::Chunk { agent, clip, n } => match self.chunk(&agent, &clip, n, payload) {
                Ok(Some(a)) => out.ack = Some((topic::acks_topic(&agent), a)),
                Ok(None) => {}
                Err(r) => {
                    // A verification failure ends the transfer: tell the agent.
                    if matches!(r.code, "verification_failed" | "tamper") {
                        out.ack = Some((topic::acks_topic(&agent), Ack::rejected(&clip, &r)));
                    }
                    out.rejected = Some(r);
                }
            },
            Topic::Events { agent } => {
                if let Err(r) = self.event(&agent, payload) {
                    out.rejected = Some(r);
                }
            }
            Topic::Status { agent } => {
                if let Err(r) = self.status(&agent, payload) {
                    out.rejected = Some(r);
                }
            }
            Topic::Records { agent } => {
                if let Err(r) = self.record(&agent, payload) {
                    out.rejected = Some(r);
                }
            }
        }
        self.count(&out, topic_str);
        out
    }

    fn count(&mut self, out: &Outcome, topic_str: &str) {
        if let Some(r) = &out.rejected {
            *self.rejected.entry(r.code).or_insert(0) += 1;
            tracing::warn!(
                code = r.code,
                topic = %shorten(topic_str),
                reason = %r.reason,
                total = self.rejected.get(r.code).copied().unwrap_or(0),
                "Rejected a message"
            );
        }
    }

    fn agent_key(&self, agent: &str) -> Result<PublicKey, Rejection> {
        let row = self
            .index
            .agent(agent)
            .map_err(|e| internal("cannot read the agents table", e))?
            .ok_or_else(|| {
                Rejection::new(
                    "unknown_agent",
                    format!("agent {agent:?} is not enrolled (vigil-hub agent add)"),
                )
            })?;
        PublicKey::from_pem(&row.public_key_pem)
            .map_err(|e| internal("the enrolled key does not parse", e))
    }

    /// Handles `clips/{clip}/manifest`: returns the ack to send.
    pub fn manifest(&mut self, agent: &str, clip: &Uuid, payload: &[u8]) -> Result<Ack, Rejection> {
        if payload.len() > MAX_MANIFEST_MESSAGE {
            return Err(Rejection::new(
                "too_large",
                format!(
                    "manifest message is {} bytes; the limit is {MAX_MANIFEST_MESSAGE}",
                    payload.len()
                ),
            ));
        }
        let key = self.agent_key(agent)?;
        let msg: ManifestMessage = serde_json::from_slice(payload)
            .map_err(|e| Rejection::new("bad_json", format!("manifest message: {e}")))?;
        let canonical = B64.decode(msg.manifest_b64.as_bytes()).map_err(|e| {
            Rejection::new("bad_manifest", format!("manifest_b64 is not base64: {e}"))
        })?;
        let signed = SignedManifest::from_files(canonical, msg.signature.as_bytes())
            .map_err(|e| Rejection::new("bad_manifest", e.to_string()))?;
        signed
            .verify(&key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let m = signed.record();
        if m.agent_id != agent {
            return Err(Rejection::new(
                "wrong_agent",
                format!(
                    "manifest names agent {:?} but came on {agent:?}'s topic",
                    shorten(&m.agent_id)
                ),
            ));
        }
        if m.clip_id != *clip {
            return Err(Rejection::new(
                "wrong_clip",
                format!(
                    "manifest names clip {} but came on clip {clip}'s topic",
                    m.clip_id
                ),
            ));
        }
        if !valid_id(&m.camera_id) {
            return Err(Rejection::new(
                "bad_camera_id",
                format!(
                    "camera id {:?} is not 1-64 of [A-Za-z0-9_-]",
                    shorten(&m.camera_id)
                ),
            ));
        }
        let size = m.file.size;
        if size == 0 || size > MAX_CLIP_BYTES {
            return Err(Rejection::new(
                "bad_size",
                format!("clip size {size} is outside 1..={MAX_CLIP_BYTES}"),
            ));
        }
        if msg.size != size {
            return Err(Rejection::new(
                "bad_size",
                format!(
                    "message says size {} but the manifest says {size}",
                    msg.size
                ),
            ));
        }
        if msg.chunk_size != CHUNK_SIZE {
            return Err(Rejection::new(
                "bad_chunk_size",
                format!(
                    "chunk_size is {}; contract v1 requires {CHUNK_SIZE}",
                    msg.chunk_size
                ),
            ));
        }
        if msg.chunks != chunks_for(size) {
            return Err(Rejection::new(
                "bad_chunks",
                format!(
                    "chunks is {} but a {size}-byte clip has {}",
                    msg.chunks,
                    chunks_for(size)
                ),
            ));
        }
        let manifest_sha = signed.sha256().to_hex();
        if let Some(ack) = self.already_stored(agent, clip, &manifest_sha)? {
            return Ok(ack);
        }
        // Refuse early a clip that conflicts with the stored chain (saves the transfer).
        if let Err(r) = self.chain_check(m, &manifest_sha, false) {
            self.raise(AlertKind::Tamper, agent, &m.camera_id, &r.reason);
            return Err(r);
        }
        let dir = self.layout.incoming(agent, clip);
        let prior = fs::read(dir.join(MANIFEST_FILE)).ok();
        if prior.as_deref() != Some(signed.canonical_bytes()) {
            if prior.is_none()
                && pending_count(&self.layout.incoming_agent(agent)) >= MAX_PENDING_PER_AGENT
            {
                return Err(Rejection::new(
                    "too_many_pending",
                    format!("agent already has {MAX_PENDING_PER_AGENT} clips in transfer; finish those first"),
                ));
            }
            // A different signed manifest for the same clip id: start over.
            if prior.is_some() {
                let _ = fs::remove_dir_all(&dir);
            }
            write_atomic(
                &dir.join(SIGNATURE_FILE),
                signed.signature_file().as_bytes(),
            )
            .map_err(|e| internal("cannot write the pending signature", e))?;
            // manifest.json last: its presence marks a complete pending transfer.
            write_atomic(&dir.join(MANIFEST_FILE), signed.canonical_bytes())
                .map_err(|e| internal("cannot write the pending manifest", e))?;
        }
        let missing = missing_parts(&dir, chunks_for(size));
        if missing.is_empty() {
            // Every chunk is already here (e.g. the hub died before finishing): finish now.
            return self.finish(agent, clip, &dir, &signed);
        }
        Ok(Ack {
            clip_id: clip.hyphenated().to_string(),
            status: AckStatus::Missing,
            missing,
            reason: None,
        })
    }

    fn already_stored(
        &self,
        agent: &str,
        clip: &Uuid,
        manifest_sha: &str,
    ) -> Result<Option<Ack>, Rejection> {
        match self
            .index
            .clip(&clip.hyphenated().to_string())
            .map_err(|e| internal("cannot read the clips table", e))?
        {
            Some((a, sha)) if a == agent && sha == manifest_sha => Ok(Some(Ack::stored(clip))),
            Some(_) => Err(Rejection::new(
                "clip_id_conflict",
                format!("clip {clip} is already stored with a different manifest"),
            )),
            None => Ok(None),
        }
    }

    fn load_pending(&self, dir: &Path) -> Option<SignedManifest> {
        let canonical = fs::read(dir.join(MANIFEST_FILE)).ok()?;
        let sig = fs::read(dir.join(SIGNATURE_FILE)).ok()?;
        SignedManifest::from_files(canonical, &sig).ok()
    }

    /// Handles `clips/{clip}/chunk/{n}`; returns an ack when the clip completed.
    pub fn chunk(
        &mut self,
        agent: &str,
        clip: &Uuid,
        n: u64,
        payload: &[u8],
    ) -> Result<Option<Ack>, Rejection> {
        // Only agents that are enrolled can have a pending transfer, but check
        // first so an unknown agent never touches the disk.
        self.agent_key(agent)?;
        let dir = self.layout.incoming(agent, clip);
        let Some(signed) = self.load_pending(&dir) else {
            if self
                .index
                .clip(&clip.hyphenated().to_string())
                .map_err(|e| internal("cannot read the clips table", e))?
                .is_some()
            {
                return Ok(None); // A late duplicate of a clip already stored.
            }
            return Err(Rejection::new(
                "no_manifest",
                format!("chunk {n} of clip {clip} arrived without a manifest; publish the manifest first"),
            ));
        };
        let size = signed.record().file.size;
        let chunks = chunks_for(size);
        if n >= chunks {
            return Err(Rejection::new(
                "chunk_out_of_range",
                format!("chunk {n} of clip {clip} is out of range; the clip has {chunks} chunks"),
            ));
        }
        let expected = if n + 1 < chunks {
            CHUNK_SIZE
        } else {
            size - CHUNK_SIZE * (chunks - 1)
        };
        if payload.len() as u64 != expected {
            return Err(Rejection::new(
                "bad_chunk_length",
                format!(
                    "chunk {n} of clip {clip} has {} bytes; expected {expected}",
                    payload.len()
                ),
            ));
        }
        let part = dir.join(part_name(n));
        if !part.is_file() {
            write_atomic(&part, payload).map_err(|e| internal("cannot write a chunk", e))?;
        }
        if !missing_parts(&dir, chunks).is_empty() {
            return Ok(None);
        }
        self.finish(agent, clip, &dir, &signed).map(Some)
    }

    /// All chunks are present: verify, chain-check, store, index, clean up.
    fn finish(
        &mut self,
        agent: &str,
        clip: &Uuid,
        dir: &Path,
        signed: &SignedManifest,
    ) -> Result<Ack, Rejection> {
        let key = self.agent_key(agent)?;
        let m = signed.record();
        let result = self.verify_and_store(agent, clip, dir, signed, &key);
        match &result {
            Ok(_) => {
                let _ = fs::remove_dir_all(dir);
                let _ = files::fsync_dir_of(dir);
            }
            Err(r) if r.code == "internal_error" => {} // Keep the chunks; a retry may succeed.
            Err(r) => {
                let kind = if r.code == "tamper" {
                    AlertKind::Tamper
                } else {
                    AlertKind::Rejected
                };
                self.raise(
                    kind,
                    agent,
                    &m.camera_id,
                    &format!("clip {clip}: {}", r.reason),
                );
                let _ = fs::remove_dir_all(dir);
            }
        }
        result
    }

    fn verify_and_store(
        &mut self,
        agent: &str,
        clip: &Uuid,
        dir: &Path,
        signed: &SignedManifest,
        key: &PublicKey,
    ) -> Result<Ack, Rejection> {
        let m = signed.record();
        let manifest_sha = signed.sha256().to_hex();
        if let Some(ack) = self.already_stored(agent, clip, &manifest_sha)? {
            return Ok(ack);
        }
        signed
            .verify(key)
            .map_err(|e| Rejection::new("verification_failed", e.to_string()))?;
        let size = m.file.size;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for n in 0..chunks_for(size) {
            let part =
                fs::read(dir.join(part_name(n))).map_err(|e| internal("cannot read a chunk", e))?;
            bytes.extend_from_slice(&part);
        }
        verify_clip(m, &bytes)?;
        let gap = self.chain_check(m, &manifest_sha, true)?;
        let sha_hex = m.file.sha256.to_hex();
        let path = self.layout.clip_path(&sha_hex);
        let present = fs::metadata(&path)
            .map(|md| md.len() == size)
            .unwrap_or(false);
        if !present {
            write_atomic(&path, &bytes).map_err(|e| internal("cannot store the clip", e))?;
        }
        let rel = path
            .strip_prefix(self.layout.root())
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(&path));
        let clip_s = clip.hyphenated().to_string();
        let seg = m.segment_id.hyphenated().to_string();
        self.index
            .insert_clip(&ClipRow {
                clip_id: &clip_s,
                agent_id: agent,
                camera_id: &m.camera_id,
                segment_id: &seg,
                seq: m.seq,
                manifest: signed.canonical_bytes(),
                manifest_sha256: &manifest_sha,
                prev_manifest_sha256: &m.prev_manifest_sha256.to_hex(),
                signature: signed.signature_file().trim_end(),
                sha256: &sha_hex,
                size,
                path: &rel.to_string_lossy(),
            })
            .map_err(|e| internal("cannot index the clip", e))?;
        if let Some(detail) = gap {
            self.raise(AlertKind::MissingClip, agent, &m.camera_id, &detail);
        }
        tracing::info!(agent, camera = %m.camera_id, clip = %clip_s, seq = m.seq, size, "Stored a verified clip");
        Ok(Ack::stored(clip))
    }

    /// Checks `m` against the stored chain of its segment. `Err` (code
    /// `tamper`) for a conflicting clip or a broken link; `Ok(Some(detail))`
    /// for a gap before it (a missing-clip alert once stored).
    fn chain_check(
        &self,
        m: &Manifest,
        manifest_sha: &str,
        _final: bool,
    ) -> Result<Option<String>, Rejection> {
        let db = |e| internal("cannot read the chain", e);
        let seg = m.segment_id.hyphenated().to_string();
        let (a, c) = (m.agent_id.as_str(), m.camera_id.as_str());
        let clip_s = m.clip_id.hyphenated().to_string();
        if let Some(other) = self.index.at_seq(a, c, &seg, m.seq).map_err(db)? {
            if other.clip_id != clip_s {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "camera {c} segment {seg} seq {} already holds clip {}; clip {clip_s} claims the same place",
                        m.seq, other.clip_id
                    ),
                ));
            }
        }
        let prev = m.prev_manifest_sha256.to_hex();
        if m.seq == 1 {
            if let Some(reset) = self.index.reset_sha256(a, c, &seg).map_err(db)? {
                if reset != prev {
                    return Err(Rejection::new(
                        "tamper",
                        format!(
                            "clip {clip_s} (seq 1) does not link to segment {seg}'s chain_reset"
                        ),
                    ));
                }
            }
        } else if let Some(p) = self.index.at_seq(a, c, &seg, m.seq - 1).map_err(db)? {
            if p.manifest_sha256 != prev {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "clip {clip_s} (seq {}) does not link to the stored seq {} (clip {})",
                        m.seq,
                        m.seq - 1,
                        p.clip_id
                    ),
                ));
            }
        }
        if let Some(nx) = self.index.at_seq(a, c, &seg, m.seq + 1).map_err(db)? {
            if nx.prev_manifest_sha256 != manifest_sha {
                return Err(Rejection::new(
                    "tamper",
                    format!(
                        "the stored seq {} (clip {}) does not link to clip {clip_s}",
                        m.seq + 1,
                        nx.clip_id
                    ),
                ));
            }
        }
        let last = self.index.last_seq(a, c, &seg).map_err(db)?.unwrap_or(0);
        if m.seq > last + 1 {
            return Ok(Some(format!(
                "camera {c} segment {seg}: seq {}..={} missing before clip {clip_s} (seq {})",
                last + 1,
                m.seq - 1,
                m.seq
            )));
        }
        Ok(None)
    }

    fn raise(&self, kind: AlertKind, agent: &str, camera: &str, detail: &str) {
        tracing::warn!(kind = ?kind, agent, camera, detail, "Raised an alert");
        if let Err(e) = self.index.alert(kind, agent, camera, detail) {
            tracing::error!(error = %e, "Cannot record an alert");
        }
    }

    /// The common start of the small JSON topics: size bound, enrolled agent, parse.
    fn small_message<T: serde::de::DeserializeOwned>(
        &self,
        agent: &str,
        payload: &[u8],
        what: &str,
    ) -> Result<(PublicKey, T), Rejection> {
        if payload.len() > MAX_EVENT_MESSAGE {
            return Err(Rejection::new(
                "too_large",
                format!("{what} message is {} bytes", payload.len()),
            ));
        }
        let key = self.agent_key(agent)?;
        let msg = serde_json::from_slice(payload)
            .map_err(|e| Rejection::new("bad_json", format!("{what} message: {e}")))?;
        Ok((key, msg))
    }

    /// Handles `events`: stores the message, idempotent on (event id, phase).
    pub fn event(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (_, v): (_, serde_json::Value) = self.small_message(agent, payload, "event")?;
        let phase = v.get("phase").and_then(|p| p.as_str()).unwrap_or("");
        if !matches!(phase, "start" | "update" | "end") {
            return Err(Rejection::new(
                "bad_event",
                format!("phase {:?} is not start, update or end", shorten(phase)),
            ));
        }
        let ev = v.get("event");
        let id = ev
            .and_then(|e| e.get("id"))
            .and_then(|x| x.as_str())
            .unwrap_or("");
        let camera = ev
            .and_then(|e| e.get("camera_id"))
            .and_then(|x| x.as_str())
            .unwrap_or("");
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(Rejection::new(
                "bad_event",
                "event.id must be a 1-128 byte string",
            ));
        }
        if !valid_id(camera) {
            return Err(Rejection::new(
                "bad_event",
                format!(
                    "event.camera_id {:?} is not 1-64 of [A-Za-z0-9_-]",
                    shorten(camera)
                ),
            ));
        }
        let json = String::from_utf8_lossy(payload);
        self.index
            .insert_event(id, phase, agent, camera, &json)
            .map_err(|e| internal("cannot store the event", e))?;
        Ok(())
    }

    /// Handles `status`: keeps the agent's last status.
    pub fn status(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (_, v): (_, serde_json::Value) = self.small_message(agent, payload, "status")?;
        if !v.is_object() {
            return Err(Rejection::new(
                "bad_json",
                "status message is not a JSON object",
            ));
        }
        self.index
            .set_status(agent, &v.to_string())
            .map_err(|e| internal("cannot store the status", e))
    }

    /// Handles `records`: verifies and stores a `chain_reset`.
    pub fn record(&mut self, agent: &str, payload: &[u8]) -> Result<(), Rejection> {
        let (key, msg): (_, RecordMessage) = self.small_message(agent, payload, "records")?;
        if msg.kind != "chain_reset" {
            return Err(Rejection::new(
                "bad_record",
                format!("record kind {:?} is not handled", shorten(&msg.kind)),
            ));
        }
        let canonical = B64
            .decode(msg.record_b64.as_bytes())
            .map_err(|e| Rejection::new("bad_record", format!("record_b64 is not base64: {e}")))?;
        let signed = Signed::<ChainReset>::from_files(canonical, msg.signature.as_bytes())
            .map_err(|e| Rejection::new("bad_record", e.to_string()))?;
        signed
            .verify(&key)
            .map_err(|e| Rejection::new("bad_signature", e.to_string()))?;
        let r = signed.record();
        if r.agent_id != agent || !valid_id(&r.camera_id) {
            return Err(Rejection::new(
                "wrong_agent",
                "chain_reset names another agent or an invalid camera id",
            ));
        }
        self.index
            .insert_record(
                &signed.sha256().to_hex(),
                "chain_reset",
                agent,
                &r.camera_id,
                &r.segment_id.hyphenated().to_string(),
                0,
                signed.canonical_bytes(),
                signed.signature_file().trim_end(),
            )
            .map_err(|e| internal("cannot store the record", e))?;
        Ok(())
    }
}

/// Compares the received bytes with the signed manifest: size, file SHA-256
/// and every GOP hash (through `vigil-evidence`'s own MP4 reader).
pub fn verify_clip(m: &Manifest, bytes: &[u8]) -> Result<(), Rejection> {
    let fail = |s: String| Rejection::new("verification_failed", s);
    if bytes.len() as u64 != m.file.size {
        return Err(fail(format!(
            "clip has {} bytes; the manifest says {}",
            bytes.len(),
            m.file.size
        )));
    }
    let d = ClipDescription::from_mp4(bytes).map_err(|e| fail(e.to_string()))?;
    if d.file_sha256 != m.file.sha256 {
        return Err(fail(format!(
            "file SHA-256 is {}; the manifest says {}",
            d.file_sha256, m.file.sha256
        )));
    }
    if d.gops.len() != m.gops.len() {
        return Err(fail(format!(
            "clip has {} GOPs; the manifest lists {}",
            d.gops.len(),
            m.gops.len()
        )));
    }
    for (got, want) in d.gops.iter().zip(&m.gops) {
        if got != want {
            return Err(fail(format!(
                "GOP {} does not match the manifest",
                want.index
            )));
        }
    }
    Ok(())
}
