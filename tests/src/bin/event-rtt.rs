//! Event round trip to the hub, the figure behind the trust-boundary benchmark
//! (`bench/trust.sh`): logs in as an enrolled agent, publishes `N` event messages one
//! at a time at QoS 1 with an `entry` (as the agent does), and times each from the
//! publish to the hub's `stored` entry ack — broker (and its front), hub ingest, the
//! SQLite commit and the ack on the way back. Plain MQTT, or TLS with `--ca FILE`.
//! Prints `{"n":N,"p50_ms":…,"p95_ms":…,"max_ms":…}`.
//!
//! `event-rtt HOST PORT USER PASSWORD N [--ca FILE]`

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, user, pass, n, rest @ ..] = args.as_slice() else {
        bail!("usage: event-rtt HOST PORT USER PASSWORD N [--ca FILE]");
    };
    let (port, n): (u16, usize) = (port.parse().context("PORT")?, n.parse().context("N")?);
    let mut o = MqttOptions::new(user.clone(), host.clone(), port);
    o.set_credentials(user.clone(), pass.clone());
    o.set_keep_alive(Duration::from_secs(15));
    if let [flag, ca] = rest {
        if flag != "--ca" {
            bail!(
                "unknown option {flag:?}; usage: event-rtt HOST PORT USER PASSWORD N [--ca FILE]"
            );
        }
        o.set_transport(vigil_tests::tls::rumqttc_transport(std::path::Path::new(
            ca,
        ))?);
    }
    let (client, mut conn) = Client::new(o, 16);
    let mut n_net = rumqttc::NetworkOptions::new();
    n_net.set_tcp_nodelay(true);
    conn.eventloop.set_network_options(n_net);
    let acks = format!("vigil/v1/{user}/acks");
    let topic = format!("vigil/v1/{user}/events");
    let mut times = Vec::with_capacity(n);
    let mut sent: Option<(String, Instant)> = None;
    let mut i = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    for ev in conn.iter() {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} events acknowledged within 120 s",
                times.len()
            );
        }
        match ev.context("connection")? {
            Event::Incoming(Packet::ConnAck(_)) => {
                client.subscribe(&acks, QoS::AtLeastOnce)?;
            }
            Event::Incoming(Packet::SubAck(_)) => {}
            Event::Incoming(Packet::Publish(p)) if p.topic == acks => {
                let v: serde_json::Value = serde_json::from_slice(&p.payload)?;
                if let Some((entry, at)) = &sent {
                    if v["entry"] == *entry && v["status"] == "stored" {
                        times.push(at.elapsed().as_secs_f64() * 1000.0);
                        sent = None;
                    }
                }
            }
            _ => {}
        }
        if sent.is_none() && times.len() == n {
            break;
        }
        if sent.is_none() && i < n {
            let id = format!("rtt-{}-{i}", std::process::id());
            let entry = format!("events/{i}-cam1-{id}-start.json");
            let msg = serde_json::json!({"phase": "start", "entry": entry,
                "event": {"id": id, "camera_id": "cam1", "label": "person", "top_score": 0.9}});
            client.publish(&topic, QoS::AtLeastOnce, false, msg.to_string())?;
            sent = Some((entry, Instant::now()));
            i += 1;
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{}",
        serde_json::json!({"n": times.len(), "p50_ms": pct(0.5), "p95_ms": pct(0.95), "max_ms": pct(1.0)})
    );
    Ok(())
}
