//! Delivery end to end through the hub's embedded broker: camsim → vigil-agent →
//! vigil-hub (rumqttd in-process, per-agent MQTT login from `agent add`). The hub —
//! which is also the broker — is stopped for 30 s while people keep walking through;
//! afterwards it holds every clip the agent signed, exactly once, in chain order.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil_tests::stack::{enroll_embedded, sql, EmbeddedEnrolment};
use vigil_tests::{agent_bin, free_port, sample, wait_until, workspace_root, Camsim, Proc};

#[test]
fn hub_outage_with_embedded_broker_loses_nothing_and_duplicates_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let data = dir.path().join("hub");
    let port = free_port()?;
    let url = format!("mqtt://127.0.0.1:{port}");
    // The `[uplink]` lines printed by agent add go into agent.toml as they are.
    let EmbeddedEnrolment { key, uplink, .. } = enroll_embedded(dir.path(), &data, "a1", &url)?;
    let hub_config = vigil_tests::stack::embedded_hub_config(dir.path(), &data, port, "")?;
    let hub = vigil_tests::stack::spawn_embedded_hub(&hub_config)?;

    let root = workspace_root();
    let outbox = dir.path().join("outbox");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n[uplink]\n{uplink}\n\
             [[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\npost_roll_seconds = 1.0\n",
            chain = dir.path().join("chain"),
            model = root.join("models/yolox_nano.toml"),
            cam = camsim.url(),
        ),
    )?;
    let mut agent_cmd = Command::new(agent_bin()?);
    agent_cmd
        .args(["run", "--seconds", "75", "--config"])
        .arg(&config)
        .env(
            "ORT_DYLIB_PATH",
            root.join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    let mut agent_proc = Proc::spawn("vigil-agent run", agent_cmd)?;
    let db = data.join("index.sqlite");

    wait_until(
        Duration::from_secs(40),
        "a first clip stored at the hub",
        || sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n.parse::<u32>().unwrap_or(0) >= 1),
    )
    .with_context(|| format!("agent log:\n{}", agent_proc.stderr()))?;
    // Hub (and with it the broker) down for 30 s while events keep happening.
    let mut hub = hub;
    let (status, killed) = hub.terminate(Duration::from_secs(15))?;
    assert!(
        status.success() && !killed,
        "hub did not stop cleanly on SIGTERM ({status}); stderr:\n{}",
        hub.stderr()
    );
    let hub_log_1 = hub.stdout();
    drop(hub);
    let down = Instant::now();
    let stored_before = sql(&db, "SELECT COUNT(*) FROM clips")?;
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down.elapsed()));
    let spooled_while_down = std::fs::read_dir(outbox.join("clips"))?.count();
    let hub = vigil_tests::stack::spawn_embedded_hub(&hub_config)?;

    let status = agent_proc
        .wait_timeout(Duration::from_secs(120))?
        .context("agent did not exit")?;
    assert!(status.success(), "agent failed:\n{}", agent_proc.stderr());
    let log = agent_proc.stderr();
    let signed = log.matches("Clip signed and spooled").count();
    assert!(
        spooled_while_down >= 1,
        "no clip was made while the hub was down"
    );
    wait_until(Duration::from_secs(30), "every signed clip stored", || {
        sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n == signed.to_string())
    })
    .with_context(|| {
        format!(
            "hub has {:?} of {signed} clips (before outage {stored_before}); agent log:\n{log}\nhub log (first run):\n{hub_log_1}\nhub log:\n{}",
            sql(&db, "SELECT COUNT(*) FROM clips"),
            hub.stdout()
        )
    })?;
    // The hub's whole chain (clips and the recorded pieces it knows by their records).
    let (seqs, want) =
        vigil_tests::stack::chain_seqs(&db, "agent_id='a1' AND camera_id='cam1'", signed)?;
    assert_eq!(seqs, want);
    assert_eq!(
        sql(&db, "SELECT COUNT(DISTINCT clip_id) FROM clips")?,
        signed.to_string()
    );
    assert_eq!(
        sql(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind IN ('missing_clip','tamper')"
        )?,
        "0"
    );
    assert_eq!(std::fs::read_dir(outbox.join("clips"))?.count(), 0);
    Ok(())
}
