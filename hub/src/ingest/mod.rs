//! Ingest: turns agent messages into verified, indexed evidence.
//!
//! Flow per docs/mqtt.md: a signed manifest opens a transfer (kept on disk in
//! `DATA/incoming/...`, so a hub restart resumes it), chunks land as `<n>.part`
//! files, and the last chunk triggers verification (file SHA-256 and every GOP
//! hash against the signed manifest), the chain check, the durable store and
//! the index row — only then is `stored` acked.
//!
//! Modules: [`clip`] (manifests, chunks, verification, store), [`chain`] (the
//! per-camera chain check), [`messages`] (events, status, chain records),
//! [`telemetry`] (health, snapshots, outbox drops).
//!
//! Every function here takes untrusted input: failures are [`Rejection`]s with
//! a stable code and a sentence, never panics.

mod chain;
mod clip;
mod commands;
mod doctor;
mod messages;
mod telemetry;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_evidence::keys::PublicKey;

use crate::files::Layout;
use crate::index::{AlertKind, Index};
use crate::metrics::HubCounters;
use crate::topic::{self, parse_clip_id, shorten, Topic};
use vigil_evidence::transfer::{parse_entry, split_chunk, MAX_ENTRY};

pub use clip::verify_clip;

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

/// Why a message was refused: a stable code (for counters) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable label, e.g. `unknown_agent`.
    pub code: &'static str,
    /// What was wrong, for the log and the `rejected` ack.
    pub reason: String,
}

impl Rejection {
    pub(crate) fn new(code: &'static str, reason: impl Into<String>) -> Rejection {
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

pub(crate) fn internal(what: &str, e: impl std::fmt::Display) -> Rejection {
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
    pub(crate) fn stored(clip: &Uuid) -> Ack {
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

/// The hub's answer about an event, chain record or drop report that named its outbox
/// `entry` (docs/mqtt.md `acks`): sent only once the message is stored (or refused
/// for good), so the agent deletes its copy only then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryAck {
    /// The `entry` field of the message, echoed.
    pub entry: String,
    /// `stored` or `rejected` (never `missing`).
    pub status: AckStatus,
    /// Why, for `rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `entry` of a message on `kind`'s topic (`events`, `records`, `drops`): `None`
/// when the message has none (agents before end-to-end acks), an error when it is not
/// `{kind}/{file name}` by [`parse_entry`] (it would name no outbox file of the agent's).
fn entry_of(kind: &str, payload: &[u8]) -> Result<Option<String>, Rejection> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        entry: Option<String>,
    }
    let Ok(Entry { entry: Some(entry) }) = serde_json::from_slice::<Entry>(payload) else {
        // No entry, or not JSON: the handler says what is wrong with the message.
        return Ok(None);
    };
    if parse_entry(&entry).is_some_and(|(k, _)| k == kind) {
        Ok(Some(entry))
    } else {
        Err(Rejection::new(
            "bad_entry",
            format!(
                "entry {:?} is not {kind}/ and a file name of [A-Za-z0-9._-], at most {MAX_ENTRY} bytes",
                shorten(&entry)
            ),
        ))
    }
}

/// What handling one message produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// An ack to publish: (topic, ack).
    pub ack: Option<(String, Ack)>,
    /// An entry ack to publish: (topic, ack).
    pub entry_ack: Option<(String, EntryAck)>,
    /// Set when the message was refused.
    pub rejected: Option<Rejection>,
    /// Another message to publish (QoS 1): (topic, payload), e.g. a doctor reply.
    pub reply: Option<(String, Vec<u8>)>,
    /// Nothing an operator sees changed: a clip chunk that did not end its transfer.
    /// (The web's live poller is woken for every other message.)
    pub quiet: bool,
}

/// Limits from `[ingest]` in hub.toml.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest clip accepted, bytes.
    pub max_clip_bytes: u64,
    /// Clips one agent may have half-received at once.
    pub max_pending_per_agent: usize,
    /// A half-received clip untouched this long is discarded when a new one needs room.
    pub transfer_timeout: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_clip_bytes: MAX_CLIP_BYTES,
            max_pending_per_agent: MAX_PENDING_PER_AGENT,
            transfer_timeout: Duration::from_secs(3600),
        }
    }
}

/// The hub's ingest state: the index and the data directory.
pub struct Ingest {
    layout: Layout,
    index: Index,
    limits: IngestLimits,
    /// Counters since start, shared with the metrics endpoint (the log line of a
    /// rejection is emitted with its count).
    counters: Arc<HubCounters>,
}

impl Ingest {
    /// Opens (creating) the data directory and its index.
    pub fn open(data_dir: &Path) -> anyhow::Result<Ingest> {
        Ingest::open_with(data_dir, IngestLimits::default())
    }

    /// Opens with explicit limits.
    pub fn open_with(data_dir: &Path, limits: IngestLimits) -> anyhow::Result<Ingest> {
        fs::create_dir_all(data_dir)?;
        let layout = Layout::new(data_dir);
        let index = Index::open(&layout.index())?;
        Ok(Ingest {
            layout,
            index,
            limits,
            counters: Arc::new(HubCounters::default()),
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
    pub fn rejected_counts(&self) -> BTreeMap<&'static str, u64> {
        self.counters.rejected_counts()
    }

    /// The counters the metrics endpoint reads.
    pub fn counters(&self) -> Arc<HubCounters> {
        self.counters.clone()
    }

    /// Enrolls `agent_id` with the PEM public key (see [`crate::enroll`]); returns the key id.
    pub fn enroll(&self, agent_id: &str, pem: &str) -> anyhow::Result<String> {
        Ok(crate::enroll::enroll_in(&self.index, agent_id, pem, false)?.key_id)
    }

    /// Handles one message from the broker.
    pub fn handle(&mut self, topic_str: &str, payload: &[u8]) -> Outcome {
        let started = Instant::now();
        let (kind, out) = self.handle_topic(topic_str, payload);
        self.counters.handled(kind, started.elapsed());
        out
    }

    fn handle_topic(&mut self, topic_str: &str, payload: &[u8]) -> (&'static str, Outcome) {
        let mut out = Outcome::default();
        let t = match topic::parse(topic_str) {
            Ok(t) => t,
            Err(reason) => {
                out.rejected = Some(Rejection::new("bad_topic", reason));
                self.count(&out, topic_str);
                return ("bad_topic", out);
            }
        };
        let kind = t.kind();
        match t {
            Topic::ClipManifest { agent } => match manifest_clip_id(payload) {
                Ok(clip) => self.on_manifest(&agent, &clip, payload, &mut out),
                Err(r) => out.rejected = Some(r),
            },
            Topic::ClipChunk { agent } => match split_chunk(payload) {
                Ok((clip, n, bytes)) => self.on_chunk(&agent, &clip, n, bytes, &mut out),
                Err(reason) => {
                    out.rejected = Some(Rejection::new("bad_chunk", reason));
                    out.quiet = true;
                }
            },
            Topic::Manifest { agent, clip } => self.on_manifest(&agent, &clip, payload, &mut out),
            Topic::Chunk { agent, clip, n } => self.on_chunk(&agent, &clip, n, payload, &mut out),
            Topic::Events { agent } => {
                self.with_entry_ack(&agent, "events", payload, &mut out, |i| {
                    i.event(&agent, payload).map(|()| i.counters.event())
                })
            }
            Topic::Status { agent } => {
                if let Err(r) = self.status(&agent, payload) {
                    out.rejected = Some(r);
                }
            }
            Topic::Records { agent } => {
                self.with_entry_ack(&agent, "records", payload, &mut out, |i| {
                    i.record(&agent, payload)
                })
            }
            Topic::Health { agent } => {
                if let Err(r) = self.health(&agent, payload) {
                    out.rejected = Some(r);
                }
            }
            Topic::Snapshot { agent, camera } => {
                if let Err(r) = self.snapshot(&agent, &camera, payload) {
                    out.rejected = Some(r);
                }
            }
            Topic::Drops { agent } => {
                self.with_entry_ack(&agent, "drops", payload, &mut out, |i| {
                    i.drops(&agent, payload)
                })
            }
            Topic::Doctor { agent } => match self.doctor(&agent, payload) {
                Ok(reply) => out.reply = Some((topic::doctor_reply_topic(&agent), reply)),
                Err(r) => out.rejected = Some(r),
            },
        }
        self.count(&out, topic_str);
        (kind, out)
    }

    /// Handles a spooled message (`events`, `records`, `drops`) with `handle`, then
    /// acks its entry: `stored` once handled (also for a duplicate, which stores
    /// nothing twice), `rejected` when the message can never be stored; nothing on an
    /// internal error (the disk, the index) or for an agent not enrolled (or revoked),
    /// so the agent keeps it and sends it again.
    fn with_entry_ack(
        &mut self,
        agent: &str,
        kind: &str,
        payload: &[u8],
        out: &mut Outcome,
        handle: impl FnOnce(&mut Self) -> Result<(), Rejection>,
    ) {
        let entry = match entry_of(kind, payload) {
            Ok(e) => e,
            Err(r) => {
                out.rejected = Some(r);
                return;
            }
        };
        let result = handle(self);
        let ack = match &result {
            Ok(()) => Some((AckStatus::Stored, None)),
            // Kept on the box: a transient failure, or an agent not (or no longer)
            // enrolled here, whose evidence an admin may still want.
            Err(r) if matches!(r.code, "internal_error" | "unknown_agent" | "revoked_agent") => {
                None
            }
            Err(r) => Some((
                AckStatus::Rejected,
                Some(format!("{}: {}", r.code, r.reason)),
            )),
        };
        if let (Some(entry), Some((status, reason))) = (entry, ack) {
            out.entry_ack = Some((
                topic::acks_topic(agent),
                EntryAck {
                    entry,
                    status,
                    reason,
                },
            ));
        }
        if let Err(r) = result {
            out.rejected = Some(r);
        }
    }

    /// A clip's manifest: the ack (`missing`, `stored` or `rejected`) goes back.
    fn on_manifest(&mut self, agent: &str, clip: &Uuid, payload: &[u8], out: &mut Outcome) {
        let ack = match self.manifest(agent, clip, payload) {
            Ok(a) => a,
            Err(r) => {
                let a = Ack::rejected(clip, &r);
                out.rejected = Some(r);
                a
            }
        };
        out.ack = Some((topic::acks_topic(agent), ack));
    }

    /// One chunk of a clip (`bytes` without any header).
    fn on_chunk(&mut self, agent: &str, clip: &Uuid, n: u64, bytes: &[u8], out: &mut Outcome) {
        match self.chunk(agent, clip, n, bytes) {
            Ok(ack) => {
                self.counters.chunk(bytes.len() as u64);
                if let Some(a) = ack {
                    if a.status == AckStatus::Stored {
                        self.counters.clip_stored();
                    }
                    out.ack = Some((topic::acks_topic(agent), a));
                }
            }
            Err(r) => {
                // A verification failure ends the transfer: tell the agent.
                if matches!(r.code, "verification_failed" | "tamper") {
                    out.ack = Some((topic::acks_topic(agent), Ack::rejected(clip, &r)));
                }
                out.rejected = Some(r);
            }
        }
        // Only a chunk that ends its clip's transfer (stored or refused) has an ack.
        out.quiet = out.ack.is_none();
    }

    fn count(&mut self, out: &Outcome, topic_str: &str) {
        if let Some(r) = &out.rejected {
            let total = self.counters.rejected(r.code);
            tracing::warn!(
                code = r.code,
                topic = %shorten(topic_str),
                reason = %r.reason,
                total,
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
        if row.revoked_at.is_some() {
            return Err(Rejection::new(
                "revoked_agent",
                format!("agent {agent:?} was revoked; its messages are refused"),
            ));
        }
        PublicKey::from_pem(&row.public_key_pem)
            .map_err(|e| internal("the enrolled key does not parse", e))
    }

    pub(crate) fn raise(&self, kind: AlertKind, agent: &str, camera: &str, detail: &str) {
        tracing::warn!(kind = ?kind, agent, camera, detail, "Raised an alert");
        if let Err(e) = self.index.alert(kind, agent, camera, detail) {
            tracing::error!(error = %e, "Cannot record an alert");
        }
    }

    /// The common start of the small JSON topics: size bound, enrolled agent, parse.
    pub(crate) fn small_message<T: serde::de::DeserializeOwned>(
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
}

/// The clip a manifest message on the fixed `clips/manifest` topic is for: its
/// `clip_id` field (the signed manifest inside must name the same clip).
fn manifest_clip_id(payload: &[u8]) -> Result<Uuid, Rejection> {
    #[derive(Deserialize)]
    struct ClipId {
        clip_id: String,
    }
    let m: ClipId = serde_json::from_slice(payload).map_err(|e| {
        Rejection::new(
            "bad_json",
            format!("manifest message on clips/manifest needs a clip_id: {e}"),
        )
    })?;
    parse_clip_id(&m.clip_id).map_err(|reason| Rejection::new("bad_manifest", reason))
}
