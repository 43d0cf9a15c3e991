//! The publishing half of the uplink: walks the outbox, publishes, and deletes
//! on the right acknowledgement. Never blocks on the MQTT request queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rumqttc::{Client, QoS};
use vigil_evidence::transfer::{chunk_header, parse_entry, ENTRY_KINDS};

use super::{HubAck, CHUNK_SIZE, MAX_UNACKED_CHUNKS};
use crate::metrics::UplinkStats;
use crate::outbox::{list, Outbox};

/// How long the hub may stay silent about a clip before its manifest is sent again,
/// and about a broker-acknowledged event, record or drop report before it is
/// published again (the hub stores each once: duplicates are acked, not stored).
pub(super) const HUB_SILENCE: Duration = Duration::from_secs(10);

/// `status` payload.
pub fn status_payload(state: &str) -> Vec<u8> {
    serde_json::json!({
        "state": state,
        "version": env!("CARGO_PKG_VERSION"),
        "since": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
    .to_string()
    .into_bytes()
}

/// What a publish was, so its PubAck can be acted on.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    /// An outbox file (events, records with their `.sig`, drops): on PubAck it waits for
    /// the hub's entry ack, which deletes it.
    File(PathBuf),
    /// A chunk of the current clip (counts against `MAX_UNACKED_CHUNKS`).
    Chunk,
    /// Anything else (status, manifest, live messages).
    Other,
}

/// The clip being transferred.
struct ClipTransfer {
    dir: PathBuf,
    clip_id: String,
    /// When the manifest was last sent; resent if the hub stays silent.
    asked: Instant,
    /// Chunks the hub asked for and not yet published.
    pending: VecDeque<u32>,
}

pub(super) struct Publisher {
    /// Counters for the metrics endpoint.
    stats: Arc<UplinkStats>,
    client: Client,
    root: String,
    outbox: Arc<Outbox>,
    /// True between ConnAck and the next failure.
    connected: bool,
    /// Set by the network thread as soon as the link fails.
    link_down: Arc<AtomicBool>,
    /// Publishes waiting for their packet id (FIFO, same order as publishes).
    unacked_sent: VecDeque<Sent>,
    /// Packet id → what to do on its PubAck.
    in_flight: HashMap<u16, Sent>,
    /// Outbox files in `unacked_sent`, `in_flight` or `awaiting_hub`: `pump` skips them
    /// in O(1) (an outbox of thousands of events, left by a long outage, made it
    /// quadratic). Only files in this set are deleted by a hub ack.
    queued: HashSet<PathBuf>,
    /// Files the broker acknowledged, with when: the hub's entry ack deletes them; one
    /// the hub stays silent about for [`HUB_SILENCE`] is published again (the broker
    /// may have lost it with a hub that died before storing it).
    awaiting_hub: HashMap<PathBuf, Instant>,
    /// Chunks published and not yet PubAcked.
    chunks_unacked: usize,
    clip: Option<ClipTransfer>,
}

impl Publisher {
    pub(super) fn new(
        client: Client,
        root: String,
        outbox: Arc<Outbox>,
        link_down: Arc<AtomicBool>,
        stats: Arc<UplinkStats>,
    ) -> Publisher {
        Publisher {
            stats,
            client,
            root,
            outbox,
            connected: false,
            link_down,
            unacked_sent: VecDeque::new(),
            in_flight: HashMap::new(),
            queued: HashSet::new(),
            awaiting_hub: HashMap::new(),
            chunks_unacked: 0,
            clip: None,
        }
    }

    pub(super) fn connected(&self) -> bool {
        self.connected && !self.link_down.load(Ordering::SeqCst)
    }

    pub(super) fn disconnect(&self) {
        let _ = self.client.try_disconnect();
    }

    /// Queue one publish without blocking; false when the queue is full or the link is down.
    fn send(
        &mut self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        what: Sent,
    ) -> bool {
        if self.link_down.load(Ordering::SeqCst) {
            return false;
        }
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {
                if what == Sent::Chunk {
                    self.chunks_unacked += 1;
                }
                if let Sent::File(path) = &what {
                    self.queued.insert(path.clone());
                }
                self.unacked_sent.push_back(what);
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn on_connect(&mut self) {
        self.connected = true;
        self.forget_session();
        for sub in ["acks", "commands"] {
            if let Err(e) = self
                .client
                .try_subscribe(format!("{}/{sub}", self.root), QoS::AtLeastOnce)
            {
                tracing::warn!(error = %e, topic = sub, "Cannot subscribe to the hub's topic yet");
            }
        }
        let status = status_payload("online");
        self.send(
            format!("{}/status", self.root),
            QoS::AtLeastOnce,
            true,
            status,
            Sent::Other,
        );
        if let Some(c) = &mut self.clip {
            // Resume: ask the hub again what it still lacks.
            c.pending.clear();
            c.asked = Instant::now() - HUB_SILENCE * 2;
        }
    }

    /// Nothing waiting in the outbox and nothing in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.clip.is_none()
            && self.in_flight.is_empty()
            && self.unacked_sent.is_empty()
            && ["events", "records", "drops", "clips"].iter().all(|sub| {
                list(&self.outbox.dir().join(sub))
                    .iter()
                    .all(|p| p.to_string_lossy().ends_with(".tmp"))
            })
    }

    pub(super) fn on_disconnect(&mut self) {
        self.connected = false;
        self.forget_session();
    }

    /// Drops what was queued or in flight on the last session: nothing of it will be
    /// acknowledged now, and the next pump sends the files again (also those the broker
    /// had acknowledged: a hub that died took the broker's copy with it).
    fn forget_session(&mut self) {
        self.unacked_sent.clear();
        self.in_flight.clear();
        self.queued.clear();
        self.awaiting_hub.clear();
        self.chunks_unacked = 0;
    }

    pub(super) fn on_sent(&mut self, pkid: u16) {
        let Some(what) = self.unacked_sent.pop_front() else {
            return;
        };
        // What leaves the books without a PubAck to wait for (QoS 0, or an entry pushed
        // out by a reused packet id, which rumqttc should never do): a file goes again
        // on the next pump, a chunk frees its window slot.
        let released = if pkid == 0 {
            Some(what)
        } else {
            self.in_flight.insert(pkid, what)
        };
        match released {
            Some(Sent::File(path)) => {
                self.queued.remove(&path);
            }
            Some(Sent::Chunk) => self.chunks_unacked = self.chunks_unacked.saturating_sub(1),
            Some(Sent::Other) | None => {}
        }
    }

    pub(super) fn on_puback(&mut self, pkid: u16) {
        match self.in_flight.remove(&pkid) {
            Some(Sent::File(path)) => {
                // The broker has it; the hub's entry ack deletes it. (The hub may have
                // answered already: then it is no longer queued and nothing waits.)
                if self.queued.contains(&path) {
                    self.awaiting_hub.insert(path, Instant::now());
                }
            }
            Some(Sent::Chunk) => self.chunks_unacked = self.chunks_unacked.saturating_sub(1),
            Some(Sent::Other) | None => {}
        }
    }

    /// A live message (QoS 0, never spooled): dropped when the queue is full.
    pub(super) fn publish_live(&mut self, sub: &str, payload: Vec<u8>, retain: bool) {
        let topic = format!("{}/{sub}", self.root);
        if !self.send(topic, QoS::AtMostOnce, retain, payload, Sent::Other) {
            tracing::debug!(
                topic = sub,
                "Live message skipped: the uplink queue is full"
            );
        }
    }

    /// Publish what is waiting: events, records and drop reports first (small,
    /// live), then one clip, chunk by chunk within `MAX_UNACKED_CHUNKS`.
    pub(super) fn pump(&mut self) {
        // Broker-acknowledged entries the hub never answered go again.
        let silent: Vec<PathBuf> = self
            .awaiting_hub
            .iter()
            .filter(|(_, since)| since.elapsed() > HUB_SILENCE)
            .map(|(p, _)| p.clone())
            .collect();
        if !silent.is_empty() {
            tracing::info!(
                entries = silent.len(),
                "The hub did not confirm storing some events/records/drop reports within 10 s; publishing them again"
            );
        }
        for p in silent {
            self.awaiting_hub.remove(&p);
            self.queued.remove(&p);
        }
        // One message per file, each acknowledged by the hub by its entry name.
        for sub in ENTRY_KINDS {
            let mut names: Vec<PathBuf> = list(&self.outbox.dir().join(sub))
                .into_iter()
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "json")
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            names.sort();
            for path in names {
                if self.queued.contains(&path) {
                    continue;
                }
                let what = Sent::File(path.clone());
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let entry = format!("{sub}/{name}");
                let payload = if sub == "records" {
                    let Ok(sig) = std::fs::read_to_string(path.with_extension("sig")) else {
                        tracing::warn!(path = %path.display(), "Chain record without its .sig; not publishing it");
                        continue;
                    };
                    let Some(kind) = crate::outbox::record_kind(name) else {
                        tracing::error!(path = %path.display(), "A chain record of unknown kind; moved to outbox/rejected for inspection");
                        self.set_aside(&path, sub);
                        continue;
                    };
                    serde_json::json!({
                        "kind": kind,
                        "record_b64": base64::engine::general_purpose::STANDARD.encode(&bytes),
                        "signature": sig,
                        "entry": entry,
                    })
                    .to_string()
                    .into_bytes()
                } else {
                    match with_entry(&bytes, &entry) {
                        Some(p) => p,
                        None => {
                            // Our own file, written whole (tmp → fsync → rename): only a
                            // damaged disk gets here. Keep it for inspection, do not loop.
                            tracing::error!(path = %path.display(), "An outbox entry is not a JSON object; moved to outbox/rejected for inspection");
                            self.set_aside(&path, sub);
                            continue;
                        }
                    }
                };
                let topic = format!("{}/{sub}", self.root);
                if !self.send(topic, QoS::AtLeastOnce, false, payload, what) {
                    return;
                }
            }
        }
        if self.clip.is_none() {
            let mut dirs: Vec<PathBuf> = list(&self.outbox.dir().join("clips"))
                .into_iter()
                .filter(|p| p.is_dir() && !p.to_string_lossy().ends_with(".tmp"))
                .collect();
            dirs.sort();
            if let Some(dir) = dirs.into_iter().next() {
                let clip_id = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                self.clip = Some(ClipTransfer {
                    dir,
                    clip_id,
                    asked: Instant::now() - HUB_SILENCE * 2,
                    pending: VecDeque::new(),
                });
            }
        }
        let Some(c) = &self.clip else { return };
        if !c.dir.exists() {
            // Dropped by the outbox bound while in transfer (reported there).
            tracing::warn!(clip = %c.clip_id, "The clip in transfer left the outbox (dropped for space); moving on");
            self.clip = None;
            return;
        }
        if c.asked.elapsed() > HUB_SILENCE {
            self.send_manifest();
        }
        self.send_chunks();
    }

    fn send_manifest(&mut self) {
        let Some(c) = &self.clip else { return };
        let read = |dir: &Path| -> std::io::Result<(Vec<u8>, String, u64)> {
            Ok((
                std::fs::read(dir.join("manifest.json"))?,
                std::fs::read_to_string(dir.join("manifest.sig"))?,
                std::fs::metadata(dir.join("clip.mp4"))?.len(),
            ))
        };
        let (manifest, signature, size) = match read(&c.dir) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(clip = %c.clip_id, error = %e, "Cannot read the clip in transfer (dropped for space?); moving on");
                self.clip = None;
                return;
            }
        };
        let chunks = size.div_ceil(CHUNK_SIZE as u64);
        let payload = serde_json::json!({
            "clip_id": c.clip_id,
            "manifest_b64": base64::engine::general_purpose::STANDARD.encode(&manifest),
            "signature": signature,
            "size": size,
            "chunk_size": CHUNK_SIZE,
            "chunks": chunks,
        });
        let topic = format!("{}/clips/manifest", self.root);
        if self.send(
            topic,
            QoS::AtLeastOnce,
            false,
            payload.to_string().into_bytes(),
            Sent::Other,
        ) {
            if let Some(c) = &mut self.clip {
                c.asked = Instant::now();
            }
        }
    }

    /// Publishes pending chunks while fewer than `MAX_UNACKED_CHUNKS` are unacked.
    fn send_chunks(&mut self) {
        while self.chunks_unacked < MAX_UNACKED_CHUNKS {
            let Some(c) = &mut self.clip else { return };
            let Some(&n) = c.pending.front() else { return };
            let (dir, clip_id) = (c.dir.clone(), c.clip_id.clone());
            let header = chunk_header(&clip_id, u64::from(n));
            let chunk = match read_chunk(&dir.join("clip.mp4"), n, header.as_bytes()) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    c.pending.pop_front();
                    continue;
                }
                Err(e) => {
                    tracing::warn!(clip = %clip_id, error = %e, "Cannot read the clip in transfer (dropped for space?); moving on");
                    self.clip = None;
                    return;
                }
            };
            let topic = format!("{}/clips/chunk", self.root);
            if !self.send(topic, QoS::AtLeastOnce, false, chunk, Sent::Chunk) {
                return;
            }
            if let Some(c) = &mut self.clip {
                c.pending.pop_front();
                // The hub is busy receiving, not silent.
                c.asked = Instant::now();
            }
        }
    }

    /// Moves an outbox file (and a record's `.sig`) to `outbox/rejected/{kind}-{name}`.
    fn set_aside(&mut self, path: &Path, sub: &str) {
        self.queued.remove(path);
        self.awaiting_hub.remove(path);
        let dest = self.outbox.dir().join("rejected");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let target = dest.join(format!("{sub}-{name}"));
        let moved = std::fs::create_dir_all(&dest).and_then(|()| std::fs::rename(path, &target));
        if let Err(e) = moved {
            tracing::warn!(path = %path.display(), error = %e, "Cannot move a rejected outbox entry aside");
        }
        if sub == "records" {
            let _ = std::fs::rename(path.with_extension("sig"), target.with_extension("sig"));
        }
    }

    /// The hub's answer about an event, record or drop report.
    fn on_entry_ack(&mut self, entry: &str, ack: &HubAck) {
        let Some(path) = entry_path(self.outbox.dir(), entry) else {
            tracing::warn!(entry = %entry.chars().take(80).collect::<String>(), "Ignoring a hub ack for an entry name this agent never uses");
            return;
        };
        // Only what this session published is deleted (a stale ack for a file that went
        // again meanwhile is harmless: the hub stored it either way).
        if !self.queued.contains(&path) {
            return;
        }
        let sub = entry.split('/').next().unwrap_or_default();
        match ack.status.as_str() {
            "stored" => {
                self.queued.remove(&path);
                self.awaiting_hub.remove(&path);
                self.stats.messages_acked.fetch_add(1, Ordering::Relaxed);
                // A chain record's signature file goes with it.
                if sub == "records" {
                    let _ = std::fs::remove_file(path.with_extension("sig"));
                }
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "Cannot delete a delivered outbox entry");
                    }
                }
            }
            "rejected" => {
                let reason = ack.reason.clone().unwrap_or_default();
                tracing::error!(entry, reason = %reason, "Hub rejected an outbox entry; kept in outbox/rejected for inspection");
                self.set_aside(&path, sub);
            }
            other => tracing::warn!(status = other, "Unknown hub ack status for an entry"),
        }
    }

    pub(super) fn on_hub_ack(&mut self, ack: &HubAck) {
        if let Some(entry) = &ack.entry {
            self.on_entry_ack(entry, ack);
            return;
        }
        let Some(c) = &mut self.clip else { return };
        if ack.clip_id.as_deref() != Some(c.clip_id.as_str()) {
            return;
        }
        match ack.status.as_str() {
            "missing" => {
                c.pending = ack.missing.iter().copied().collect();
                c.asked = Instant::now();
                tracing::debug!(clip = %c.clip_id, chunks = c.pending.len(), "Hub asked for chunks");
                self.send_chunks();
            }
            "stored" => {
                let dir = c.dir.clone();
                tracing::info!(clip = %c.clip_id, "Hub stored the clip; removing it from the outbox");
                self.stats.clips_stored.fetch_add(1, Ordering::Relaxed);
                let trash = dir.with_extension("delivered.tmp");
                let removed =
                    std::fs::rename(&dir, &trash).and_then(|()| std::fs::remove_dir_all(&trash));
                if let Err(e) = removed {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(clip = %c.clip_id, error = %e, "Cannot delete a delivered clip");
                    }
                }
                self.clip = None;
            }
            "rejected" => {
                let reason = ack.reason.clone().unwrap_or_default();
                tracing::error!(clip = %c.clip_id, reason = %reason, "Hub rejected a clip; kept in outbox/rejected for inspection");
                self.stats.clips_rejected.fetch_add(1, Ordering::Relaxed);
                let dest = self.outbox.dir().join("rejected");
                let moved = std::fs::create_dir_all(&dest)
                    .and_then(|()| std::fs::rename(&c.dir, dest.join(&c.clip_id)));
                if let Err(e) = moved {
                    tracing::warn!(clip = %c.clip_id, error = %e, "Cannot move a rejected clip aside");
                }
                self.clip = None;
            }
            other => tracing::warn!(status = other, "Unknown hub ack status"),
        }
    }
}

/// `bytes` (a JSON object) with `"entry": entry` added, so the hub can name it in its ack.
fn with_entry(bytes: &[u8], entry: &str) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.as_object_mut()?
        .insert("entry".into(), serde_json::Value::String(entry.into()));
    serde_json::to_vec(&v).ok()
}

/// The outbox file an entry ack names ([`parse_entry`]; our entries are `.json` files);
/// anything else is no entry of ours.
fn entry_path(outbox: &Path, entry: &str) -> Option<PathBuf> {
    let (kind, name) = parse_entry(entry)?;
    name.ends_with(".json")
        .then(|| outbox.join(kind).join(name))
}

/// Chunk `n` of a file (None past its end) after `header` (the message's header
/// line), read with a seek: a clip is never held in memory whole.
fn read_chunk(path: &Path, n: u32, header: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = n as u64 * CHUNK_SIZE as u64;
    if start >= len {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(header.len() + CHUNK_SIZE);
    buf.extend_from_slice(header);
    buf.resize(header.len() + ((len - start) as usize).min(CHUNK_SIZE), 0);
    f.read_exact(&mut buf[header.len()..])?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_map_only_to_outbox_files() {
        let o = Path::new("/box/outbox");
        assert_eq!(
            entry_path(o, "events/1-cam1-e1-start.json"),
            Some(o.join("events/1-cam1-e1-start.json"))
        );
        assert_eq!(
            entry_path(o, "drops/2-cam1-seq3.json"),
            Some(o.join("drops/2-cam1-seq3.json"))
        );
        for bad in [
            "clips/x.json",
            "events/../../etc/passwd",
            "events/a/b.json",
            "events/.1.json.tmp",
            "events/",
            "events",
            "records/1-cam1-chain_reset.sig",
            "events/a b.json",
        ] {
            assert_eq!(entry_path(o, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_entry_name_is_added_to_the_message() -> anyhow::Result<()> {
        let out = with_entry(
            br#"{"phase":"start","event":{"id":"e1"}}"#,
            "events/1-c-e1-start.json",
        )
        .ok_or_else(|| anyhow::anyhow!("an object gets the field"))?;
        let v: serde_json::Value = serde_json::from_slice(&out)?;
        assert_eq!(v["entry"], "events/1-c-e1-start.json");
        assert_eq!(v["event"]["id"], "e1");
        assert!(with_entry(b"[1,2]", "events/x.json").is_none());
        assert!(with_entry(b"not json", "events/x.json").is_none());
        Ok(())
    }
}
