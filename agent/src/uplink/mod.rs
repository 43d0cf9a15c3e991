//! Uplink: publishes the outbox to the hub over MQTT (docs/mqtt.md) and deletes an
//! entry only once the hub has stored it (end to end): events, chain records and drop
//! reports on the hub's `{"entry": …, "status": "stored"}` ack, clips on `stored` for
//! the clip. A broker's PubAck only means the broker has it: an entry acked by the
//! broker and not by the hub within [`publisher::HUB_SILENCE`] is published again
//! (the hub is idempotent). Also publishes live `health` and `snapshot` messages
//! (QoS 0, never spooled).
//!
//! Two threads: `uplink-net` drives the rumqttc connection and forwards what matters
//! (connect, PubAck, hub acks) over a channel; `uplink` walks the outbox and publishes.
//! The publisher never blocks on the MQTT request queue (`try_publish`; a full
//! queue waits for the next round), so shutdown is always prompt.

mod options;
mod publisher;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, LastWill, Outgoing, QoS};
use serde::Deserialize;

pub use options::{explain, parse_broker, Broker, UplinkConfig};
use publisher::Publisher;

use crate::live::Live;
use crate::metrics::UplinkStats;
use crate::outbox::Outbox;

/// Network options of every agent MQTT connection: TCP_NODELAY on.
pub fn nodelay() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

/// Chunk size of clip transfers (docs/mqtt.md).
pub const CHUNK_SIZE: usize = 256 * 1024;

/// Chunks of the current clip queued or published and not yet acknowledged by the
/// broker: bounds the clip bytes held in memory by the uplink to
/// `MAX_UNACKED_CHUNKS` × `CHUNK_SIZE` (2 MiB).
pub const MAX_UNACKED_CHUNKS: usize = 8;

/// rumqttc request queue length.
const REQUEST_QUEUE: usize = 16;
/// Notes handled between two pumps at most (a pump also runs when none are waiting).
const MAX_NOTES_PER_PUMP: usize = 4096;

/// How long a shutdown waits for the outbox to drain.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What the network thread tells the publisher.
enum Note {
    Connected,
    Disconnected(String),
    /// A publish left with this packet id (in the order `publish` was called).
    Sent(u16),
    /// The broker acknowledged this packet id.
    PubAck(u16),
    /// The hub answered about a clip or an outbox entry.
    HubAck(HubAck),
    /// A new outbox entry is durable: publish it now.
    NewEntry,
}

/// The hub's answer about a clip or an outbox entry (docs/mqtt.md `acks`): exactly one
/// of `clip_id` and `entry` is set.
#[derive(Debug, Deserialize)]
pub struct HubAck {
    /// Which clip (clip transfers).
    #[serde(default)]
    pub clip_id: Option<String>,
    /// Which event, record or drop report: the `entry` the agent put in the message
    /// (`events/<file name>`, `records/…`, `drops/…`).
    #[serde(default)]
    pub entry: Option<String>,
    /// `missing` (clips only), `stored` or `rejected`.
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
    outbox: Arc<Outbox>,
    live: Option<Arc<dyn Live>>,
    shutdown: Arc<AtomicBool>,
    stats: Arc<UplinkStats>,
    commands: Option<mpsc::Sender<crate::recording::commands::HubCommand>>,
) -> anyhow::Result<()> {
    let root = format!("vigil/v1/{agent_id}");
    let mut opts = config.mqtt_options(agent_id)?;
    opts.set_last_will(LastWill::new(
        format!("{root}/status"),
        publisher::status_payload("offline"),
        QoS::AtLeastOnce,
        true,
    ));
    // Broker-side bound of unacked QoS 1 publishes; MAX_UNACKED_CHUNKS is tighter for clips.
    opts.set_inflight(32);
    let (client, mut connection) = Client::new(opts, REQUEST_QUEUE);
    // The clip transfer is request/response (manifest → missing, last chunk → stored)
    // and events are small: without TCP_NODELAY, Nagle + delayed ACKs add ~40 ms to
    // each round trip (BENCHMARKS.md, delivery).
    connection.eventloop.set_network_options(nodelay());
    let (tx, rx) = mpsc::channel::<Note>();
    let wake = tx.clone();
    outbox.on_new_entry(Box::new(move || {
        let _ = wake.send(Note::NewEntry);
    }));
    let acks_topic = format!("{root}/acks");
    let commands_topic = format!("{root}/commands");
    // Set by the network thread the moment the link fails, before the note is
    // read: the publisher stops queueing into a dead session at once.
    let link_down = Arc::new(AtomicBool::new(true));
    // The network thread outlives the publisher's drain; it stops after it.
    let net_stop = Arc::new(AtomicBool::new(false));
    let (net_shutdown, net_down) = (net_stop.clone(), link_down.clone());
    let (net_done_tx, net_done) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("uplink-net".into())
        .spawn(move || {
            let _done = net_done_tx;
            for item in connection.iter() {
                if net_shutdown.load(Ordering::SeqCst) {
                    break;
                }
                let note = match item {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        net_down.store(false, Ordering::SeqCst);
                        Note::Connected
                    }
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
                    Ok(Event::Incoming(Incoming::Publish(p))) if p.topic == commands_topic => {
                        match (
                            crate::recording::commands::HubCommand::parse(&p.payload),
                            &commands,
                        ) {
                            (Ok(c), Some(to)) => {
                                let _ = to.send(c);
                            }
                            (Ok(_), None) => {}
                            (Err(e), _) => tracing::warn!(error = %e, "Ignoring a hub command"),
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        net_down.store(true, Ordering::SeqCst);
                        if tx.send(Note::Disconnected(e.to_string())).is_err() {
                            break;
                        }
                        // Reconnect pacing, but stay responsive to shutdown.
                        for _ in 0..10 {
                            if net_shutdown.load(Ordering::SeqCst) {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue;
                    }
                };
                if tx.send(note).is_err() {
                    break;
                }
            }
        })?;
    let mut publisher = Publisher::new(client, root, outbox.clone(), link_down, stats.clone());
    let mut last_error: Option<String> = None;
    let mut drain_since: Option<Instant> = None;
    let health_every = Duration::from_secs_f64(config.health_interval_seconds);
    let snapshot_every = Duration::from_secs_f64(config.snapshot_interval_seconds);
    let mut next_health = Instant::now();
    let mut next_snapshot = Instant::now();
    loop {
        // On shutdown, keep delivering for a bounded grace period; the outbox is durable,
        // so what is left goes out at the next start.
        if shutdown.load(Ordering::SeqCst) {
            let since = *drain_since.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN_GRACE || publisher.is_idle() || !publisher.connected() {
                break;
            }
        }
        // Every note that is waiting, then one pump: after an outage thousands of
        // PubAcks arrive at once, and pumping (listing the outbox) after each was slow.
        let mut notes = Vec::new();
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(note) => notes.push(note),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while notes.len() < MAX_NOTES_PER_PUMP {
            match rx.try_recv() {
                Ok(note) => notes.push(note),
                Err(_) => break,
            }
        }
        for note in notes {
            match note {
                Note::Connected => {
                    tracing::info!(broker = %config.broker, "Uplink connected");
                    stats.connected.store(true, Ordering::Relaxed);
                    stats.connects.fetch_add(1, Ordering::Relaxed);
                    last_error = None;
                    publisher.on_connect();
                }
                Note::Disconnected(e) => {
                    if publisher.connected() || last_error.as_deref() != Some(e.as_str()) {
                        tracing::warn!(broker = %config.broker, error = %explain(&e, config), "Uplink not connected to the broker; the outbox keeps everything until the hub acknowledges it");
                    }
                    last_error = Some(e);
                    stats.connected.store(false, Ordering::Relaxed);
                    publisher.on_disconnect();
                }
                Note::Sent(pkid) => publisher.on_sent(pkid),
                Note::PubAck(pkid) => publisher.on_puback(pkid),
                Note::HubAck(a) => publisher.on_hub_ack(&a),
                Note::NewEntry => {}
            }
        }
        if publisher.connected() {
            if let Some(live) = &live {
                if Instant::now() >= next_health {
                    next_health = Instant::now() + health_every;
                    publisher.publish_live("health", live.health(), false);
                }
                if Instant::now() >= next_snapshot {
                    next_snapshot = Instant::now() + snapshot_every;
                    for (camera, payload) in live.snapshots() {
                        publisher.publish_live(
                            &format!("cameras/{camera}/snapshot"),
                            payload,
                            true,
                        );
                    }
                }
            }
            publisher.pump();
        }
    }
    net_stop.store(true, Ordering::SeqCst);
    outbox.on_new_entry(Box::new(|| {}));
    publisher.disconnect();
    // The network thread may sit in a connect attempt (up to rumqttc's 5 s timeout);
    // everything durable is on disk, so do not hold shutdown hostage to it.
    let _ = net_done.recv_timeout(Duration::from_secs(2));
    Ok(())
}
