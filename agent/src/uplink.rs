//! Uplink: publishes the outbox to the hub over MQTT (docs/mqtt.md) and deletes an
//! entry only when it is safe: events and chain records once the broker acknowledged
//! them (QoS 1 PubAck), clips only when the hub acked `stored` (end to end).
//!
//! Two threads: `uplink-net` drives the rumqttc connection and forwards what matters
//! (connect, PubAck, hub acks) over a channel; `uplink` walks the outbox and publishes.
//! A clip transfer is resumable: after any reconnect the manifest is sent again and
//! the hub answers with the chunks it still lacks.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use base64::Engine;
use rumqttc::{Client, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use serde::Deserialize;

/// Chunk size of clip transfers (docs/mqtt.md).
pub const CHUNK_SIZE: usize = 256 * 1024;

/// How long a shutdown waits for the outbox to drain.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// `[uplink]` in agent.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Broker URL, `mqtt://host:port` (default port 1883).
    pub broker: String,
    /// MQTT username (the hub prints it at enrolment), if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// MQTT password; prefer `password_env` to keep it out of the file.
    #[serde(default)]
    pub password: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

impl UplinkConfig {
    /// Problems with the config, each naming its key.
    pub fn problems(&self, key: &str) -> Vec<String> {
        match parse_broker(&self.broker) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("{key}.broker: {e}")],
        }
    }
}

/// `mqtt://host[:port]` → (host, port).
pub fn parse_broker(url: &str) -> Result<(String, u16), String> {
    let rest = match url.split_once("://") {
        Some(("mqtt", rest)) => rest,
        Some(("mqtts", _)) => {
            return Err("mqtts:// (TLS) is not supported by this build yet; use mqtt:// on a trusted network or a TLS tunnel".into())
        }
        Some((scheme, _)) => return Err(format!("scheme {scheme:?} is not mqtt://")),
        None => return Err(format!("{url:?} is not a URL; use mqtt://host:1883")),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("port {p:?} is not a number 1-65535"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    Ok((host.to_string(), port))
}

/// What the network thread tells the publisher.
enum Note {
    Connected,
    Disconnected(String),
    /// A publish left with this packet id (in the order `publish` was called).
    Sent(u16),
    /// The broker acknowledged this packet id.
    PubAck(u16),
    /// The hub answered about a clip.
    HubAck(HubAck),
}

/// The hub's answer about a clip (docs/mqtt.md `acks`).
#[derive(Debug, Deserialize)]
pub struct HubAck {
    /// Which clip.
    pub clip_id: String,
    /// `missing`, `stored` or `rejected`.
    pub status: String,
    /// Chunks the hub lacks (for `missing`).
    #[serde(default)]
    pub missing: Vec<u32>,
    /// Why (for `rejected`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Run the uplink until `shutdown`; blocks the calling thread.
pub fn run(
    agent_id: &str,
    config: &UplinkConfig,
    outbox: &Path,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let (host, port) = parse_broker(&config.broker).map_err(anyhow::Error::msg)?;
    let root = format!("vigil/v1/{agent_id}");
    let mut opts = MqttOptions::new(agent_id, host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(2 << 20, 2 << 20);
    opts.set_last_will(LastWill::new(
        format!("{root}/status"),
        status_payload("offline"),
        QoS::AtLeastOnce,
        true,
    ));
    let password = match (&config.password, &config.password_env) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
            anyhow::anyhow!("uplink.password_env: environment variable {var} is not set")
        })?),
        _ => None,
    };
    if let Some(user) = &config.username {
        opts.set_credentials(user.clone(), password.unwrap_or_default());
    }
    // Bounded request queue: a slow link blocks the publisher instead of growing memory.
    let (client, mut connection) = Client::new(opts, 16);
    let (tx, rx) = mpsc::channel::<Note>();
    let acks_topic = format!("{root}/acks");
    // The network thread outlives the publisher's drain; it stops after it.
    let net_stop = Arc::new(AtomicBool::new(false));
    let net_shutdown = net_stop.clone();
    let net = std::thread::Builder::new()
        .name("uplink-net".into())
        .spawn(move || {
            for item in connection.iter() {
                if net_shutdown.load(Ordering::SeqCst) {
                    break;
                }
                let note = match item {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => Note::Connected,
                    Ok(Event::Incoming(Incoming::PubAck(a))) => Note::PubAck(a.pkid),
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Note::Sent(pkid),
                    Ok(Event::Incoming(Incoming::Publish(p))) if p.topic == acks_topic => {
                        match serde_json::from_slice::<HubAck>(&p.payload) {
                            Ok(a) => Note::HubAck(a),
                            Err(e) => {
                                tracing::warn!(error = %e, "Ignoring a malformed hub ack");
                                continue;
                            }
                        }
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Note::Disconnected(e.to_string()));
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                if tx.send(note).is_err() {
                    break;
                }
            }
        })?;
    let mut publisher = Publisher {
        client,
        root,
        outbox: outbox.to_path_buf(),
        connected: false,
        unacked_sent: VecDeque::new(),
        in_flight: HashMap::new(),
        clip: None,
    };
    let mut last_error: Option<String> = None;
    let mut drain_since: Option<Instant> = None;
    loop {
        // On shutdown, keep delivering for a bounded grace period; the outbox is durable,
        // so what is left goes out at the next start.
        if shutdown.load(Ordering::SeqCst) {
            let since = *drain_since.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN_GRACE || publisher.is_idle() {
                break;
            }
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Note::Connected) => {
                tracing::info!(broker = %config.broker, "Uplink connected");
                last_error = None;
                publisher.on_connect()?;
            }
            Ok(Note::Disconnected(e)) => {
                if publisher.connected || last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(broker = %config.broker, error = %e, "Uplink disconnected; outbox keeps everything until the hub acknowledges it");
                }
                last_error = Some(e);
                publisher.on_disconnect();
            }
            Ok(Note::Sent(pkid)) => publisher.on_sent(pkid),
            Ok(Note::PubAck(pkid)) => publisher.on_puback(pkid),
            Ok(Note::HubAck(a)) => publisher.on_hub_ack(&a)?,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if publisher.connected {
            publisher.pump()?;
        }
    }
    net_stop.store(true, Ordering::SeqCst);
    let _ = publisher.client.disconnect();
    let _ = net.join();
    Ok(())
}

fn status_payload(state: &str) -> Vec<u8> {
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

/// The clip being transferred.
struct ClipTransfer {
    dir: PathBuf,
    clip_id: String,
    /// When the manifest was last sent; resent if the hub stays silent.
    asked: Instant,
}

struct Publisher {
    client: Client,
    root: String,
    outbox: PathBuf,
    connected: bool,
    /// Files published, waiting for their packet id (FIFO, same order as publishes).
    unacked_sent: VecDeque<PathBuf>,
    /// Packet id → file to delete on PubAck.
    in_flight: HashMap<u16, PathBuf>,
    clip: Option<ClipTransfer>,
}

impl Publisher {
    fn on_connect(&mut self) -> anyhow::Result<()> {
        self.connected = true;
        self.unacked_sent.clear();
        self.in_flight.clear();
        self.client
            .subscribe(format!("{}/acks", self.root), QoS::AtLeastOnce)?;
        self.client.publish(
            format!("{}/status", self.root),
            QoS::AtLeastOnce,
            true,
            status_payload("online"),
        )?;
        // Status is not a file: keep the FIFO aligned with publishes that are.
        self.unacked_sent.push_back(PathBuf::new());
        if let Some(c) = &mut self.clip {
            c.asked = Instant::now() - Duration::from_secs(60);
        }
        Ok(())
    }

    /// Nothing waiting in the outbox and nothing in flight.
    fn is_idle(&self) -> bool {
        self.clip.is_none()
            && self.in_flight.is_empty()
            && self.unacked_sent.is_empty()
            && ["events", "records", "clips"]
                .iter()
                .all(|sub| list(&self.outbox.join(sub)).is_empty())
    }

    fn on_disconnect(&mut self) {
        self.connected = false;
        self.unacked_sent.clear();
        self.in_flight.clear();
    }

    fn on_sent(&mut self, pkid: u16) {
        if let Some(path) = self.unacked_sent.pop_front() {
            if !path.as_os_str().is_empty() {
                self.in_flight.insert(pkid, path);
            }
        }
    }

    fn on_puback(&mut self, pkid: u16) {
        if let Some(path) = self.in_flight.remove(&pkid) {
            // A chain record's signature file goes with it.
            let _ = std::fs::remove_file(path.with_extension("sig"));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "Cannot delete a delivered outbox entry");
            }
        }
    }

    /// Publish what is waiting: events and records first (small, live), then one clip.
    fn pump(&mut self) -> anyhow::Result<()> {
        for sub in ["events", "records"] {
            let mut names: Vec<PathBuf> = list(&self.outbox.join(sub))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            names.sort();
            for path in names {
                if self.unacked_sent.contains(&path) || self.in_flight.values().any(|p| p == &path)
                {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let payload = if sub == "records" {
                    let sig =
                        std::fs::read_to_string(path.with_extension("sig")).unwrap_or_default();
                    serde_json::json!({
                        "kind": "chain_reset",
                        "record_b64": base64::engine::general_purpose::STANDARD.encode(&bytes),
                        "signature": sig,
                    })
                    .to_string()
                    .into_bytes()
                } else {
                    bytes
                };
                self.client.publish(
                    format!("{}/{sub}", self.root),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )?;
                self.unacked_sent.push_back(path);
            }
        }
        if self.clip.is_none() {
            let mut dirs: Vec<PathBuf> = list(&self.outbox.join("clips"))
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
                    asked: Instant::now() - Duration::from_secs(60),
                });
            }
        }
        let resend = self
            .clip
            .as_ref()
            .is_some_and(|c| c.asked.elapsed() > Duration::from_secs(10));
        if resend {
            self.send_manifest()?;
        }
        Ok(())
    }

    fn send_manifest(&mut self) -> anyhow::Result<()> {
        let Some(c) = &mut self.clip else {
            return Ok(());
        };
        let manifest = std::fs::read(c.dir.join("manifest.json"))?;
        let signature = std::fs::read_to_string(c.dir.join("manifest.sig"))?;
        let size = std::fs::metadata(c.dir.join("clip.mp4"))?.len();
        let chunks = size.div_ceil(CHUNK_SIZE as u64);
        let payload = serde_json::json!({
            "manifest_b64": base64::engine::general_purpose::STANDARD.encode(&manifest),
            "signature": signature,
            "size": size,
            "chunk_size": CHUNK_SIZE,
            "chunks": chunks,
        });
        self.client.publish(
            format!("{}/clips/{}/manifest", self.root, c.clip_id),
            QoS::AtLeastOnce,
            false,
            payload.to_string().into_bytes(),
        )?;
        self.unacked_sent.push_back(PathBuf::new());
        c.asked = Instant::now();
        Ok(())
    }

    fn on_hub_ack(&mut self, ack: &HubAck) -> anyhow::Result<()> {
        let Some(c) = &self.clip else { return Ok(()) };
        if c.clip_id != ack.clip_id {
            return Ok(());
        }
        match ack.status.as_str() {
            "missing" => {
                let data = std::fs::read(c.dir.join("clip.mp4"))?;
                let topic = format!("{}/clips/{}/chunk", self.root, c.clip_id);
                let mut sent = 0usize;
                for &n in &ack.missing {
                    let start = n as usize * CHUNK_SIZE;
                    let Some(chunk) = data.get(start..(start + CHUNK_SIZE).min(data.len())) else {
                        continue;
                    };
                    if chunk.is_empty() {
                        continue;
                    }
                    self.client.publish(
                        format!("{topic}/{n}"),
                        QoS::AtLeastOnce,
                        false,
                        chunk.to_vec(),
                    )?;
                    self.unacked_sent.push_back(PathBuf::new());
                    sent += 1;
                }
                tracing::debug!(clip = %c.clip_id, chunks = sent, "Sent missing chunks");
                if let Some(c) = &mut self.clip {
                    c.asked = Instant::now();
                }
            }
            "stored" => {
                let dir = c.dir.clone();
                tracing::info!(clip = %c.clip_id, "Hub stored the clip; removing it from the outbox");
                let trash = dir.with_extension("delivered.tmp");
                std::fs::rename(&dir, &trash)?;
                std::fs::remove_dir_all(&trash)?;
                self.clip = None;
            }
            "rejected" => {
                let reason = ack.reason.clone().unwrap_or_default();
                tracing::error!(clip = %c.clip_id, reason = %reason, "Hub rejected a clip; kept in outbox/rejected for inspection");
                let dest = self.outbox.join("rejected");
                std::fs::create_dir_all(&dest)?;
                std::fs::rename(&c.dir, dest.join(&c.clip_id))?;
                self.clip = None;
            }
            other => tracing::warn!(status = other, "Unknown hub ack status"),
        }
        Ok(())
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884"),
            Ok(("127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_broker("mqtt://hub.local"),
            Ok(("hub.local".into(), 1883))
        );
        assert!(parse_broker("mqtts://x").unwrap_err().contains("TLS"));
        assert!(parse_broker("http://x").unwrap_err().contains("http"));
        assert!(parse_broker("mqtt://x:99999").unwrap_err().contains("port"));
    }
}
