//! Delivery end to end with real processes: camsim → agent → Mosquitto → hub.
//! The broker goes down for 30 s while people keep walking through; afterwards the hub
//! holds every clip the agent signed, exactly once, in chain order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil_tests::stack::{self, sql};
use vigil_tests::{sample, wait_until, Camsim, Mosquitto};

/// Every topic published under `filter` on the broker at `port`, across broker
/// restarts, until the returned flag is set.
fn watch_topics(port: u16, filter: &str) -> (Arc<Mutex<BTreeSet<String>>>, Arc<AtomicBool>) {
    let mut opts = rumqttc::MqttOptions::new("topic-watcher", "127.0.0.1", port);
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut connection) = rumqttc::Client::new(opts, 16);
    let topics: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (t, s, filter) = (topics.clone(), stop.clone(), filter.to_string());
    std::thread::spawn(move || {
        for item in connection.iter() {
            if s.load(Ordering::SeqCst) {
                break;
            }
            match item {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    // A clean session: subscribe again after every (re)connection.
                    let _ = client.try_subscribe(filter.as_str(), rumqttc::QoS::AtMostOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if let Ok(mut set) = t.lock() {
                        set.insert(p.topic);
                    }
                }
                Ok(_) => {}
                // The broker is down: back off before the next connection attempt.
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    (topics, stop)
}

#[test]
fn broker_outage_loses_nothing_and_duplicates_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start()?;
    let port = broker.port();
    let (topics, stop_watching) = watch_topics(port, "vigil/v1/a1/#");
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let data = dir.path().join("hub");
    let (key, _pem) = stack::enroll(dir.path(), &data, "a1")?;
    let _hub = stack::spawn_hub(&broker.url(), &data)?;
    let outbox = dir.path().join("outbox");
    let config = stack::agent_config(
        dir.path(),
        &key,
        camsim.url(),
        &format!("broker = \"{}\"", broker.url()),
    )?;
    let mut agent_proc = stack::spawn_agent(&config, 75)?;
    let db = data.join("index.sqlite");

    // Some clips go through while the broker is up.
    wait_until(
        Duration::from_secs(40),
        "a first clip stored at the hub",
        || sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n.parse::<u32>().unwrap_or(0) >= 1),
    )?;
    // Broker down for 30 s while events keep happening.
    drop(broker);
    let down = Instant::now();
    let stored_before = sql(&db, "SELECT COUNT(*) FROM clips")?;
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    let spooled_while_down = std::fs::read_dir(outbox.join("clips"))?.count();
    let _broker = Mosquitto::start_on(port)?;

    let status = agent_proc
        .wait_timeout(Duration::from_secs(120))?
        .context("agent did not exit")?;
    assert!(status.success(), "agent failed:\n{}", agent_proc.stderr());
    let log = agent_proc.stderr();
    let signed = log.matches("Clip signed and spooled").count();
    assert!(
        spooled_while_down >= 1,
        "no clip was made while the broker was down"
    );
    wait_until(Duration::from_secs(30), "every signed clip stored", || {
        sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n == signed.to_string())
    })
    .with_context(|| {
        format!(
            "hub has {:?} of {signed} clips (before outage {stored_before}); agent log:\n{log}",
            sql(&db, "SELECT COUNT(*) FROM clips")
        )
    })?;
    // Exactly once, in chain order: seqs 1..=n, no duplicate clip or seq.
    // The hub's whole chain (clips and the recorded pieces it knows by their records).
    let (seqs, want) =
        vigil_tests::stack::chain_seqs(&db, "agent_id='a1' AND camera_id='cam1'", signed)?;
    assert_eq!(seqs, want);
    assert_eq!(
        sql(&db, "SELECT COUNT(DISTINCT clip_id) FROM clips")?,
        signed.to_string()
    );
    // No video in two clips: people overlap all the time in this footage, and each GOP
    // (by its hash: the 75 s run is shorter than one 79.5 s loop of the file) must be in
    // exactly one clip of the camera, not in one clip per person.
    let manifests = sql(
        &db,
        "SELECT CAST(manifest AS TEXT) FROM clips WHERE camera_id='cam1' ORDER BY seq",
    )?;
    let mut seen = std::collections::HashMap::new();
    for (i, line) in manifests.lines().enumerate() {
        let m: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("manifest of clip {}", i + 1))?;
        for gop in m["gops"].as_array().context("manifest without gops")? {
            let hash = gop["sha256"].as_str().context("GOP without sha256")?;
            if let Some(first) = seen.insert(hash.to_string(), i + 1) {
                panic!(
                    "GOP {hash} is in clip {first} and clip {} of the chain",
                    i + 1
                );
            }
        }
    }
    assert!(!seen.is_empty(), "no GOP in any manifest");
    assert_eq!(
        sql(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind IN ('missing_clip','tamper')"
        )?,
        "0"
    );
    // Nothing left in the agent's outbox.
    assert_eq!(std::fs::read_dir(outbox.join("clips"))?.count(), 0);
    // Clips go on two fixed topics (ids in the payload): brokers keep per-topic state
    // (the embedded one for the life of the process), so topics must not grow per clip.
    stop_watching.store(true, Ordering::SeqCst);
    let topics = topics
        .lock()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))?
        .clone();
    let fixed: BTreeSet<String> = [
        "status",
        "events",
        "records",
        "clips/manifest",
        "clips/chunk",
        "health",
        "cameras/cam1/snapshot",
        "drops",
        "acks",
    ]
    .iter()
    .map(|t| format!("vigil/v1/a1/{t}"))
    .collect();
    assert!(
        topics.is_subset(&fixed),
        "topics outside the fixed set: {:?}",
        topics.difference(&fixed).collect::<Vec<_>>()
    );
    for t in ["clips/manifest", "clips/chunk", "acks"] {
        assert!(
            topics.contains(&format!("vigil/v1/a1/{t}")),
            "no message on {t} seen"
        );
    }
    Ok(())
}
