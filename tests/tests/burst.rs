//! A burst through the embedded broker: an outbox of 1500 event messages and a few
//! signed clips (`outbox-fill`, as an agent left offline for a while would have),
//! handed over at once by `vigil-agent deliver` to `vigil-hub run`. Every message the
//! broker acknowledged must be indexed. Before the fix the hub's event loop waited for
//! room in a 16-message ingest queue while the ingest waited for the event loop to take
//! its acks: no keep-alive went out, the broker dropped the hub's session, and the
//! messages in it were lost (200 spooled, 67 indexed).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil_tests::stack::{enroll_embedded, sql, EmbeddedEnrolment};
use vigil_tests::{agent_bin, free_port, sample};

const EVENTS: u32 = 1500;
const CLIPS: u32 = 5;

#[test]
fn every_message_of_a_burst_is_indexed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("hub");
    let port = free_port()?;
    let broker_url = format!("mqtt://127.0.0.1:{port}");
    let EmbeddedEnrolment { key, uplink, .. } =
        enroll_embedded(dir.path(), &data, "a1", &broker_url)?;
    let (chain, outbox) = (dir.path().join("chain"), dir.path().join("outbox"));
    let mut fill = Command::new(env!("CARGO_BIN_EXE_outbox-fill"));
    fill.arg("--file")
        .arg(sample("vtest.mp4")?)
        .arg("--key")
        .arg(&key)
        .arg("--chain")
        .arg(&chain)
        .arg("--outbox")
        .arg(&outbox)
        .args(["--agent-id", "a1", "--gops", "1"])
        .args([
            "--clips",
            &CLIPS.to_string(),
            "--events",
            &EVENTS.to_string(),
        ]);
    vigil_tests::run("outbox-fill", fill, Duration::from_secs(60))?.ok()?;

    let hub_config = dir.path().join("hub.toml");
    std::fs::write(
        &hub_config,
        format!("data_dir = {data:?}\n[broker.embedded]\nlisten = \"127.0.0.1:{port}\"\n"),
    )?;
    let hub = vigil_tests::stack::spawn_embedded_hub(&hub_config)?;

    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [uplink]\n{uplink}\n[[cameras]]\nid = \"cam1\"\nurl = \"rtsp://127.0.0.1:9/unused\"\n"
        ),
    )?;
    let mut deliver = Command::new(agent_bin()?);
    deliver
        .args(["deliver", "--timeout-seconds", "120", "--config"])
        .arg(&agent_config);
    let out = vigil_tests::run("vigil-agent deliver", deliver, Duration::from_secs(150))?.ok()?;
    let summary: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).with_context(|| out.stdout.clone())?;
    assert_eq!(summary["entries_left"], 0, "{summary}");
    assert_eq!(summary["clips_stored"], CLIPS, "{summary}");

    // The broker acknowledged everything; the hub must index all of it (it may still
    // be working through its queue for a moment).
    let db = data.join("index.sqlite");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // An empty answer (the database busy for a moment) counts as "not yet".
        let events: u32 = sql(&db, "SELECT count(*) FROM events")?
            .trim()
            .parse()
            .unwrap_or(0);
        if events == EVENTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hub indexed {events} of {EVENTS} event messages"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let clips: u32 = sql(&db, "SELECT count(*) FROM clips")?.trim().parse()?;
    assert_eq!(clips, CLIPS);
    let gaps = sql(&db, "SELECT count(*) FROM alerts")?;
    assert_eq!(gaps.trim(), "0", "no gap or tamper alert for a clean chain");
    drop(hub);
    Ok(())
}
