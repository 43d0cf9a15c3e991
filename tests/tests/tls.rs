//! The agent's uplink over TLS with a password, against Debian's Mosquitto with a
//! TLS listener and a password file (PKI made at test time with openssl):
//! the right CA and password deliver an event, live health and a live snapshot;
//! a wrong CA or a wrong password fails with a clear log line naming what to check.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use vigil_tests::mosquitto::Options;
use vigil_tests::tls::TestCa;
use vigil_tests::{
    agent, agent_bin, free_port, sample, wait_until, workspace_root, Camsim, Mosquitto, Proc,
};

/// Messages a watcher received: (topic, payload, retained).
type Received = Arc<Mutex<Vec<(String, Vec<u8>, bool)>>>;

/// An MQTT subscriber over TLS that records everything under `filter`.
struct Watcher {
    received: Received,
    stop: Arc<AtomicBool>,
}

impl Watcher {
    fn start(port: u16, ca: &Path, user: &str, password: &str, filter: &str) -> Result<Watcher> {
        let id = format!("watcher-{}", filter.len());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_credentials(user, password);
        opts.set_max_packet_size(4 << 20, 4 << 20);
        opts.set_transport(vigil_tests::tls::rumqttc_transport(ca)?);
        let (client, mut connection) = Client::new(opts, 16);
        client.subscribe(filter, QoS::AtLeastOnce)?;
        let received: Received = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let _client = client;
            for item in connection.iter() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                match item {
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let Ok(mut v) = r.lock() {
                            v.push((p.topic.clone(), p.payload.to_vec(), p.retain));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Ok(Watcher { received, stop })
    }

    fn find(&self, suffix: &str) -> Option<(Vec<u8>, bool)> {
        self.received.lock().ok().and_then(|v| {
            v.iter()
                .rev()
                .find(|(t, _, _)| t.ends_with(suffix))
                .map(|(_, p, r)| (p.clone(), *r))
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Setup {
    dir: tempfile::TempDir,
    key: PathBuf,
    camsim: Camsim,
}

fn agent_config(s: &Setup, name: &str, broker: &str, ca: &Path, password: &str) -> Result<PathBuf> {
    let pw = s.dir.path().join(format!("{name}.pw"));
    std::fs::write(&pw, format!("{password}\n"))?;
    let config = s.dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n\
             [uplink]\nbroker = \"{broker}\"\nusername = \"a1\"\npassword_file = {pw:?}\nca_file = {ca:?}\n\
             health_interval_seconds = 1\nsnapshot_interval_seconds = 1\n\
             [[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\npost_roll_seconds = 1.0\n",
            key = s.key,
            chain = s.dir.path().join(format!("{name}-chain")),
            outbox = s.dir.path().join(format!("{name}-outbox")),
            model = workspace_root().join("models/yolox_nano.toml"),
            cam = s.camsim.url(),
        ),
    )?;
    Ok(config)
}

fn spawn_agent(config: &Path) -> Result<Proc> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["run", "--seconds", "60", "--config"])
        .arg(config)
        .env(
            "ORT_DYLIB_PATH",
            workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    Proc::spawn("vigil-agent run", cmd)
}

#[test]
fn uplink_over_mqtts_with_password_delivers_and_a_wrong_ca_or_password_fails_clearly() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new(dir.path(), "vigil-test-ca")?;
    let other_ca = TestCa::new(dir.path(), "other-ca")?;
    let server = ca.server(dir.path(), "broker")?;
    let port = free_port()?;
    let broker = Mosquitto::start_with(
        port,
        &Options {
            tls: Some(server),
            users: vec![
                ("a1".into(), "agent-secret".into()),
                ("watcher".into(), "watch-secret".into()),
            ],
        },
    )?;
    assert!(broker.url().starts_with("mqtts://"));
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let key = dir.path().join("agent.key");
    agent::keygen(&key)?;
    let setup = Setup { dir, key, camsim };
    let watcher = Watcher::start(port, &ca.cert, "watcher", "watch-secret", "vigil/v1/a1/#")?;

    // check-config reads and parses the TLS files.
    let good = agent_config(&setup, "good", &broker.url(), &ca.cert, "agent-secret")?;
    let mut check = Command::new(agent_bin()?);
    check.args(["check-config", "--config"]).arg(&good);
    vigil_tests::run("check-config", check, Duration::from_secs(20))?.ok()?;
    let junk = setup.dir.path().join("junk.pem");
    std::fs::write(&junk, "not PEM\n")?;
    let bad = agent_config(&setup, "bad", &broker.url(), &junk, "x")?;
    let mut check = Command::new(agent_bin()?);
    check.args(["check-config", "--config"]).arg(&bad);
    let out = vigil_tests::run("check-config", check, Duration::from_secs(20))?;
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("uplink.ca_file:") && out.stderr.contains("junk.pem"),
        "{}",
        out.stderr
    );

    // Right CA and password: an event, health and a snapshot arrive over mqtts.
    let mut agent_proc = spawn_agent(&good)?;
    let result = wait_until(
        Duration::from_secs(50),
        "an event, health with cam1 streaming and a snapshot over mqtts",
        || {
            watcher.find("/events").is_some()
                && watcher.find("/cameras/cam1/snapshot").is_some()
                && watcher.find("/health").is_some_and(|(p, _)| {
                    serde_json::from_slice::<serde_json::Value>(&p).is_ok_and(|h| {
                        h["cameras"][0]["state"] == "streaming"
                            && h["cameras"][0]["fps_in"].as_f64().unwrap_or(0.0) > 0.0
                    })
                })
        },
    );
    let log = agent_proc.stderr();
    result.with_context(|| format!("agent log:\n{log}\nbroker log:\n{}", broker.stderr()))?;
    assert!(log.contains("Uplink connected"), "{log}");
    let (event, _) = watcher.find("/events").context("event")?;
    let event: serde_json::Value = serde_json::from_slice(&event)?;
    assert_eq!(event["event"]["camera_id"], "cam1");
    let (health, retained) = watcher.find("/health").context("health")?;
    assert!(!retained, "health is not retained");
    let health: serde_json::Value = serde_json::from_slice(&health)?;
    let cam = &health["cameras"][0];
    for field in [
        "camera_id",
        "state",
        "reason",
        "since",
        "fps_in",
        "fps_analysed",
        "bitrate_kbps",
        "last_frame_age_ms",
        "reconnects",
        "dropped_analysis_frames",
        "detect_p95_ms",
    ] {
        assert!(
            cam.get(field).is_some(),
            "health camera lacks {field}: {health}"
        );
    }
    assert!(
        cam["bitrate_kbps"].as_f64().unwrap_or(0.0) > 0.0,
        "{health}"
    );
    for field in [
        "entries",
        "bytes",
        "limit_bytes",
        "dropped_entries",
        "dropped_bytes",
    ] {
        assert!(
            health["outbox"][field].is_u64(),
            "outbox lacks {field}: {health}"
        );
    }
    // Retained: a subscriber that arrives later gets it from the broker at once.
    let late = Watcher::start(
        port,
        &ca.cert,
        "watcher",
        "watch-secret",
        "vigil/v1/a1/cameras/+/snapshot",
    )?;
    wait_until(Duration::from_secs(10), "the retained snapshot", || {
        late.find("/cameras/cam1/snapshot").is_some_and(|(_, r)| r)
    })?;
    drop(late);
    let (snap, _) = watcher.find("/cameras/cam1/snapshot").context("snapshot")?;
    assert!(snap.len() <= 512 * 1024);
    let snap: serde_json::Value = serde_json::from_slice(&snap)?;
    assert!(
        snap["width"].as_u64().is_some_and(|w| w > 0 && w <= 640),
        "{snap}"
    );
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(snap["jpeg_b64"].as_str().unwrap_or_default())?;
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    let (status, killed) = agent_proc.terminate(Duration::from_secs(15))?;
    assert!(
        status.success() && !killed,
        "{status:?}\n{}",
        agent_proc.stderr()
    );

    // Wrong CA: the TLS handshake fails, and the log says which setting to check.
    let wrong_ca = agent_config(
        &setup,
        "wrong-ca",
        &broker.url(),
        &other_ca.cert,
        "agent-secret",
    )?;
    let mut p = spawn_agent(&wrong_ca)?;
    wait_until(Duration::from_secs(30), "a clear TLS error", || {
        p.stderr().contains("not trusted")
    })
    .with_context(|| p.stderr())?;
    let log = p.stderr();
    eprintln!(
        "wrong CA: {}",
        log.lines()
            .find(|l| l.contains("not trusted"))
            .unwrap_or_default()
    );
    assert!(
        log.contains("uplink.ca_file") && log.contains("other-ca.pem"),
        "{log}"
    );
    assert!(!log.contains("Uplink connected"), "{log}");
    p.terminate(Duration::from_secs(15))?;

    // Wrong password: the broker refuses, and the log says so.
    let wrong_pw = agent_config(
        &setup,
        "wrong-pw",
        &broker.url(),
        &ca.cert,
        "not-the-password",
    )?;
    let mut p = spawn_agent(&wrong_pw)?;
    wait_until(Duration::from_secs(30), "a clear credentials error", || {
        p.stderr().contains("refused the credentials")
    })
    .with_context(|| p.stderr())?;
    let log = p.stderr();
    eprintln!(
        "wrong password: {}",
        log.lines()
            .find(|l| l.contains("refused the credentials"))
            .unwrap_or_default()
    );
    assert!(log.contains("uplink.username"), "{log}");
    assert!(!log.contains("Uplink connected"), "{log}");
    p.terminate(Duration::from_secs(15))?;
    Ok(())
}
