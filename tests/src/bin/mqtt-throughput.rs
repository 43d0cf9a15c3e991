//! Raw broker throughput, the baseline of the hub ingest benchmark (`bench/run.sh`):
//! publishes the bytes of every file given, cut into the uplink's 256 KiB chunks, at
//! QoS 1 with the agent's window (at most 8 chunks unacknowledged), to a subscriber on
//! the same broker that only counts bytes. Prints
//! `{"bytes":N,"messages":M,"seconds":S}` (from the first publish to the last byte
//! received). No verification, no disk: what the broker and MQTT cost alone.
//!
//! `mqtt-throughput HOST PORT FILE...`

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const CHUNK: usize = 262_144;
const WINDOW: usize = 8;

fn options(id: &str, host: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, host, port);
    o.set_max_packet_size(4 << 20, 4 << 20);
    o.set_keep_alive(Duration::from_secs(15));
    o
}

/// TCP_NODELAY, as the agent and the hub use.
fn nodelay() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, files @ ..] = args.as_slice() else {
        bail!("usage: mqtt-throughput HOST PORT FILE...");
    };
    let port: u16 = port.parse().context("PORT")?;
    let mut chunks = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("read {f}"))?;
        chunks.extend(bytes.chunks(CHUNK).map(<[u8]>::to_vec));
    }
    let total: usize = chunks.iter().map(Vec::len).sum();
    let messages = chunks.len();

    // Subscriber: counts bytes, reports when all arrived.
    let (sub, mut sub_conn) = Client::new(options("bench-sub", host, port), 64);
    sub_conn.eventloop.set_network_options(nodelay());
    let (ready_tx, ready) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        let mut got = 0usize;
        for ev in sub_conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = sub.subscribe("bench/raw/#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    got += p.payload.len();
                    if got >= total {
                        let _ = done_tx.send(Instant::now());
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("subscriber: {e}");
                    return;
                }
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(10))
        .context("the subscriber did not subscribe within 10 s")?;

    let (publisher, mut conn) = Client::new(options("bench-pub", host, port), 64);
    conn.eventloop.set_network_options(nodelay());
    let mut next = 0usize;
    let mut unacked = 0usize;
    let mut started: Option<Instant> = None;
    for ev in conn.iter() {
        match ev.context("publisher connection")? {
            Event::Incoming(Packet::ConnAck(_)) => started = Some(Instant::now()),
            Event::Incoming(Packet::PubAck(_)) => unacked = unacked.saturating_sub(1),
            _ => {}
        }
        if started.is_some() {
            while unacked < WINDOW && next < messages {
                publisher.try_publish(
                    format!("bench/raw/{next}"),
                    QoS::AtLeastOnce,
                    false,
                    std::mem::take(&mut chunks[next]),
                )?;
                next += 1;
                unacked += 1;
            }
        }
        if next == messages && unacked == 0 {
            break;
        }
    }
    let started = started.context("never connected")?;
    let end = done
        .recv_timeout(Duration::from_secs(120))
        .context("the subscriber did not receive every byte within 120 s")?;
    println!(
        "{}",
        serde_json::json!({
            "bytes": total,
            "messages": messages,
            "seconds": end.duration_since(started).as_secs_f64(),
        })
    );
    Ok(())
}
