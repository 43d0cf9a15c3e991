//! A real `vigil-hub run` process with its embedded broker on a free port: agents log
//! in with the credentials from `vigil-hub agent add`, deliver a signed clip, health,
//! a snapshot and an outbox drop; bad logins are refused at CONNECT; a restart on the
//! same data directory keeps everything.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use time::OffsetDateTime;
use uuid::Uuid;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{ClockSync, ManifestDraft, SignedManifest};
use vigil_hub::ingest::CHUNK_SIZE;
use vigil_hub::{Ack, AckStatus};

const HUB: &str = env!("CARGO_BIN_EXE_vigil-hub");

/// A `vigil-hub run` child; SIGKILLed on drop if still running.
struct Hub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Hub {
    fn start(config: &Path) -> (Hub, u16) {
        let mut child = Command::new(HUB)
            .args(["run", "--web-listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,rumqttd=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vigil-hub starts");
        let out = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("hub| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut hub = Hub { child, lines };
        let port = hub.wait_line("broker listening on ", Duration::from_secs(30));
        let port = port
            .split_whitespace()
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .expect("the log line names the port");
        (hub, port)
    }

    /// Text after `needle` in the first stdout line containing it.
    fn wait_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(i) = l.find(needle) {
                        return l[i + needle.len()..].to_string();
                    }
                }
                Err(e) => panic!("no line with {needle:?} from the hub: {e}"),
            }
        }
    }

    /// Sends `signal` (`TERM`, `INT`), then the exit status within 20 s.
    fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "hub did not exit after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `vigil-hub agent add ID` → the MQTT password it printed.
fn agent_add(data: &Path, id: &str, pem: &Path) -> String {
    let out = Command::new(HUB)
        .args(["agent", "add", id, "--public-key"])
        .arg(pem)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("agent add runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("[uplink]"), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("MQTT password: "))
        .expect("password printed")
        .to_string()
}

/// Connects and waits for ConnAck: Ok(client) or Err(what happened).
async fn connect(port: u16, user: &str, pass: &str) -> Result<(AsyncClient, EventLoop), String> {
    let mut o = MqttOptions::new(user, "127.0.0.1", port);
    o.set_max_packet_size(2 << 20, 2 << 20);
    o.set_credentials(user, pass);
    let (client, mut el) = AsyncClient::new(o, 64);
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no answer within 10 s".to_string())?;
    r.map(|_| (client, el))
}

/// Retries a good login until the hub is listening (agents are refused before that).
async fn connect_eventually(port: u16, user: &str, pass: &str) -> (AsyncClient, EventLoop) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connect(port, user, pass).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "login as {user} failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn sample_clip(dir: &Path) -> Vec<u8> {
    let out = dir.join("a.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-t", "4", "-i"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success());
    std::fs::read(&out).expect("clip written")
}

fn sign(dir: &Path, key: &SigningKey, bytes: &[u8]) -> SignedManifest {
    let mut chain = ChainStore::open(&dir.join("chain")).unwrap();
    chain
        .ensure_segment(key, "a1", "0.1.0", "cam-1", OffsetDateTime::now_utc())
        .unwrap();
    let now = OffsetDateTime::now_utc();
    chain
        .sign_clip(
            key,
            ManifestDraft {
                agent_id: "a1".into(),
                agent_version: "0.1.0".into(),
                camera_id: "cam-1".into(),
                clip_id: Uuid::now_v7(),
                start: now,
                end: now,
                clock_sync: ClockSync::Unknown,
                events: vec![],
                clip: ClipDescription::from_mp4(bytes).unwrap(),
                model: None,
                part: None,
                piece: None,
            },
        )
        .unwrap()
}

/// Publishes the manifest (again every 2 s while unanswered) and the chunks asked for,
/// until the hub acks `stored`.
async fn deliver(client: &AsyncClient, el: &mut EventLoop, m: &SignedManifest, bytes: &[u8]) {
    let clip_id = m.record().clip_id;
    client
        .subscribe("vigil/v1/a1/acks", QoS::AtLeastOnce)
        .await
        .unwrap();
    let size = bytes.len() as u64;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "manifest_b64": B64.encode(m.canonical_bytes()),
        "signature": m.signature_file(),
        "size": size,
        "chunk_size": CHUNK_SIZE,
        "chunks": size.div_ceil(CHUNK_SIZE),
    }))
    .unwrap();
    let topic = format!("vigil/v1/a1/clips/{clip_id}/manifest");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut asked = Instant::now() - Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no stored ack within 60 s");
        if asked.elapsed() > Duration::from_secs(2) {
            client
                .publish(&topic, QoS::AtLeastOnce, false, manifest.clone())
                .await
                .unwrap();
            asked = Instant::now();
        }
        let ev = match tokio::time::timeout(Duration::from_millis(200), el.poll()).await {
            Ok(ev) => ev.expect("connection stays up"),
            Err(_) => continue,
        };
        let Event::Incoming(Packet::Publish(p)) = ev else {
            continue;
        };
        let ack: Ack = serde_json::from_slice(&p.payload).unwrap();
        match ack.status {
            AckStatus::Stored => return,
            AckStatus::Rejected => panic!("rejected: {:?}", ack.reason),
            AckStatus::Missing => {
                asked = Instant::now() + Duration::from_secs(30);
                for n in ack.missing {
                    let s = (n * CHUNK_SIZE) as usize;
                    let e = (s + CHUNK_SIZE as usize).min(bytes.len());
                    client
                        .publish(
                            format!("vigil/v1/a1/clips/{clip_id}/chunk/{n}"),
                            QoS::AtLeastOnce,
                            false,
                            bytes[s..e].to_vec(),
                        )
                        .await
                        .unwrap();
                }
            }
        }
    }
}

fn count(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Drives the event loop until `cond` holds on the index (deadline 20 s).
async fn until(el: &mut EventLoop, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        let _ = tokio::time::timeout(Duration::from_millis(100), el.poll()).await;
    }
}

fn write_config(path: &Path, data: &Path, port: u16) {
    std::fs::write(
        path,
        format!(
            "data_dir = {:?}\n[broker]\nmode = \"embedded\"\n[broker.embedded]\nlisten = \"127.0.0.1:{port}\"\n",
            data.to_string_lossy()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_logins_clip_telemetry_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    let key = SigningKey::generate(&tmp.path().join("a1.key")).unwrap();
    let pem = tmp.path().join("a1.pem");
    std::fs::write(&pem, key.public_key().to_pem()).unwrap();
    let other = SigningKey::generate(&tmp.path().join("a2.key")).unwrap();
    let pem2 = tmp.path().join("a2.pem");
    std::fs::write(&pem2, other.public_key().to_pem()).unwrap();
    let pass = agent_add(&data, "a1", &pem);
    let pass2 = agent_add(&data, "a2", &pem2);
    let st = Command::new(HUB)
        .args(["agent", "revoke", "a2", "--data-dir"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = sample_clip(tmp.path());
    let m = sign(tmp.path(), &key, &bytes);
    let db = data.join("index.sqlite");

    let config = tmp.path().join("hub.toml");
    write_config(&config, &data, 0);
    let (hub, port) = Hub::start(&config);
    let (client, mut el) = connect_eventually(port, "a1", &pass).await;
    // The hub is listening now: bad logins are refused at CONNECT.
    for (user, pw, why) in [
        ("a1", "wrong-password", "wrong password"),
        ("nobody", pass.as_str(), "unknown user"),
        ("a2", pass2.as_str(), "revoked agent"),
        ("hub.ingest", "guess", "the hub's internal user"),
    ] {
        assert!(
            connect(port, user, pw).await.is_err(),
            "{why}: login accepted"
        );
    }

    deliver(&client, &mut el, &m, &bytes).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM clips"), 1);
    let sha = m.record().file.sha256.to_hex();
    let stored = std::fs::read(data.join(format!("clips/{}/{sha}.mp4", &sha[..2]))).unwrap();
    assert_eq!(stored, bytes);

    // Telemetry: health (QoS 0), a retained snapshot (QoS 0), an outbox drop (QoS 1).
    let now = "2026-11-23T13:00:00Z";
    let health = serde_json::json!({
        "at": now,
        "cameras": [{"camera_id": "cam-1", "state": "retrying", "reason": "connection refused",
            "since": now, "fps_in": 0.0, "fps_analysed": 0.0, "bitrate_kbps": 0.0,
            "last_frame_age_ms": null, "reconnects": 3, "dropped_analysis_frames": 0,
            "detect_p95_ms": null}],
        "outbox": {"entries": 2, "bytes": 1000, "limit_bytes": 1_000_000,
            "dropped_entries": 1, "dropped_bytes": 500}
    });
    client
        .publish(
            "vigil/v1/a1/health",
            QoS::AtMostOnce,
            false,
            health.to_string(),
        )
        .await
        .unwrap();
    let jpeg = [
        0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0xFF, 0xD9,
    ];
    let not_jpeg = serde_json::json!({"camera_id": "cam-1", "taken_utc": now, "width": 2,
        "height": 2, "jpeg_b64": B64.encode(b"GIF89a not a jpeg")});
    client
        .publish(
            "vigil/v1/a1/cameras/cam-1/snapshot",
            QoS::AtMostOnce,
            true,
            not_jpeg.to_string(),
        )
        .await
        .unwrap();
    let snap = serde_json::json!({"camera_id": "cam-1", "taken_utc": now, "width": 2,
        "height": 2, "jpeg_b64": B64.encode(jpeg)});
    client
        .publish(
            "vigil/v1/a1/cameras/cam-1/snapshot",
            QoS::AtMostOnce,
            true,
            snap.to_string(),
        )
        .await
        .unwrap();
    let drop_msg = serde_json::json!({"kind": "outbox_drop", "clip_id": Uuid::now_v7(),
        "camera_id": "cam-1", "seq": 7, "bytes": 500, "reason": "outbox over its byte limit",
        "at": now});
    client
        .publish(
            "vigil/v1/a1/drops",
            QoS::AtLeastOnce,
            false,
            drop_msg.to_string(),
        )
        .await
        .unwrap();
    until(&mut el, "health, snapshot and drop stored", || {
        count(&db, "SELECT COUNT(*) FROM camera_health WHERE agent_id='a1' AND camera_id='cam-1' AND state='retrying' AND reason='connection refused'") == 1
            && count(&db, "SELECT COUNT(*) FROM snapshots WHERE agent_id='a1' AND camera_id='cam-1'") == 1
            && count(&db, "SELECT COUNT(*) FROM alerts WHERE kind='outbox_drop'") == 1
    })
    .await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM agent_health WHERE agent_id='a1'"),
        1
    );
    let c = rusqlite::Connection::open(&db).unwrap();
    let stored_jpeg: Vec<u8> = c
        .query_row("SELECT jpeg FROM snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored_jpeg, jpeg, "the JPEG is stored, the GIF was refused");
    drop(c);
    drop(client);

    let status = hub.stop("TERM");
    assert!(status.success(), "hub exit status after SIGTERM: {status}");

    // Restart on the same data dir and port: everything is still there, and the
    // same clip again is acknowledged `stored` without a second copy.
    write_config(&config, &data, port);
    let (hub, port2) = Hub::start(&config);
    assert_eq!(port2, port);
    let (client, mut el) = connect_eventually(port, "a1", &pass).await;
    deliver(&client, &mut el, &m, &bytes).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM clips"), 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM camera_health"), 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM snapshots"), 1);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM alerts WHERE kind='outbox_drop'"),
        1
    );
    assert!(connect(port, "a2", &pass2).await.is_err(), "still revoked");
    // Ctrl-C (SIGINT) is a clean stop too.
    let status = hub.stop("INT");
    assert!(status.success(), "hub exit status after SIGINT: {status}");
}

/// Connects as `user`, publishes one message (or subscribes to `subscribe`), and
/// returns whether the broker closed the connection within 10 s.
async fn closed_after(
    port: u16,
    user: &str,
    pass: &str,
    publish: Option<(&str, Vec<u8>, QoS)>,
    subscribe: Option<&str>,
) -> bool {
    let (client, mut el) = connect_eventually(port, user, pass).await;
    if let Some((topic, payload, qos)) = publish {
        client.publish(topic, qos, false, payload).await.unwrap();
    }
    if let Some(filter) = subscribe {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    }
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if el.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    r.is_ok()
}

/// Agent b2, logged in with its own valid credentials, tries every one of agent a1's
/// topics (and a Last Will and subscriptions on them): each attempt closes b2's
/// connection, nothing of it reaches the index or a1's state, and an alert names b2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_speak_or_listen_for_another() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    let mut pass = Vec::new();
    for id in ["a1", "b2"] {
        let key = SigningKey::generate(&tmp.path().join(format!("{id}.key"))).unwrap();
        let pem = tmp.path().join(format!("{id}.pem"));
        std::fs::write(&pem, key.public_key().to_pem()).unwrap();
        pass.push(agent_add(&data, id, &pem));
    }
    let (pa, pb) = (pass[0].clone(), pass[1].clone());
    let db = data.join("index.sqlite");
    let config = tmp.path().join("hub.toml");
    write_config(&config, &data, 0);
    let (hub, port) = Hub::start(&config);

    // a1 is online and streaming.
    let (a1, mut a1_el) = connect_eventually(port, "a1", &pa).await;
    let online =
        serde_json::json!({"state": "online", "version": "0.1.0", "since": "2026-12-04T10:00:00Z"});
    a1.publish(
        "vigil/v1/a1/status",
        QoS::AtLeastOnce,
        true,
        online.to_string(),
    )
    .await
    .unwrap();
    until(&mut a1_el, "a1 online", || {
        count(
            &db,
            "SELECT COUNT(*) FROM agent_status WHERE agent_id='a1' AND json LIKE '%online%'",
        ) == 1
    })
    .await;

    let now = "2026-12-04T10:00:01Z";
    let event = serde_json::json!({"phase": "start", "entry": "events/1-cam-x-e1-start.json",
        "event": {"id": "forged-1", "camera_id": "cam-x", "label": "person", "top_score": 0.99}});
    let health = serde_json::json!({"at": now, "cameras": [{"camera_id": "cam-x", "state": "streaming",
        "since": now}], "outbox": {}});
    let offline = serde_json::json!({"state": "offline", "version": "0.1.0", "since": now});
    let snap = serde_json::json!({"camera_id": "cam-x", "taken_utc": now, "width": 2, "height": 2,
        "jpeg_b64": B64.encode([0xFF, 0xD8, 0xFF, 0xE0, 0xFF, 0xD9])});
    let drop_msg = serde_json::json!({"kind": "outbox_drop", "clip_id": null, "camera_id": "cam-x",
        "seq": 1, "bytes": 1, "reason": "forged", "at": now});
    let clip = Uuid::now_v7();
    let forged: Vec<(String, Vec<u8>)> = vec![
        ("vigil/v1/a1/events".into(), event.to_string().into_bytes()),
        (
            "vigil/v1/a1/status".into(),
            offline.to_string().into_bytes(),
        ),
        ("vigil/v1/a1/health".into(), health.to_string().into_bytes()),
        (
            "vigil/v1/a1/cameras/cam-x/snapshot".into(),
            snap.to_string().into_bytes(),
        ),
        (
            "vigil/v1/a1/drops".into(),
            drop_msg.to_string().into_bytes(),
        ),
        (
            "vigil/v1/a1/records".into(),
            b"{\"kind\":\"chain_reset\"}".to_vec(),
        ),
        (
            "vigil/v1/a1/clips/manifest".into(),
            format!("{{\"clip_id\":\"{clip}\"}}").into_bytes(),
        ),
        (
            "vigil/v1/a1/clips/chunk".into(),
            format!("{clip} 0\nxx").into_bytes(),
        ),
        (format!("vigil/v1/a1/clips/{clip}/manifest"), b"{}".to_vec()),
        (format!("vigil/v1/a1/clips/{clip}/chunk/0"), b"xx".to_vec()),
        ("vigil/v1/a1/doctor".into(), b"{\"nonce\":\"n1\"}".to_vec()),
        // Hub→agent topics: not even an agent's own.
        (
            "vigil/v1/a1/acks".into(),
            format!("{{\"clip_id\":\"{clip}\",\"status\":\"stored\",\"missing\":[]}}").into_bytes(),
        ),
        ("vigil/v1/b2/acks".into(), b"{}".to_vec()),
        ("vigil/v1/a1/doctor/reply".into(), b"{}".to_vec()),
    ];
    for (topic, payload) in &forged {
        for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
            assert!(
                closed_after(port, "b2", &pb, Some((topic, payload.clone(), qos)), None).await,
                "b2 publishing on {topic} at {qos:?} was not cut off"
            );
        }
    }
    for filter in ["vigil/v1/a1/acks", "vigil/v1/+/acks", "#", "vigil/v1/a1/#"] {
        assert!(
            closed_after(port, "b2", &pb, None, Some(filter)).await,
            "b2 subscribing to {filter} was not cut off"
        );
    }
    // A Last Will on a1's status is refused at CONNECT.
    let mut o = MqttOptions::new("b2", "127.0.0.1", port);
    o.set_credentials("b2", &pb);
    o.set_last_will(rumqttc::LastWill::new(
        "vigil/v1/a1/status",
        offline.to_string(),
        QoS::AtLeastOnce,
        true,
    ));
    let (_c, mut el) = AsyncClient::new(o, 8);
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return false,
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await;
    assert_eq!(
        refused,
        Ok(true),
        "a will on another agent's status is refused"
    );

    // b2's own topics still work: its events are stored under b2.
    let (b2, mut b2_el) = connect_eventually(port, "b2", &pb).await;
    let own =
        serde_json::json!({"phase": "start", "event": {"id": "b2-own", "camera_id": "cam-b"}});
    b2.publish(
        "vigil/v1/b2/events",
        QoS::AtLeastOnce,
        false,
        own.to_string(),
    )
    .await
    .unwrap();
    until(&mut b2_el, "b2's own event", || {
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE event_id='b2-own' AND agent_id='b2'",
        ) == 1
    })
    .await;

    // Nothing b2 forged is anywhere; a1 is still online; an alert names b2.
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE agent_id='a1'"),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE event_id='forged-1'"),
        0
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM camera_health"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM agent_health"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM snapshots"), 0);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM alerts WHERE kind='outbox_drop'"),
        0
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM chain_records"), 0);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM agent_status WHERE agent_id='a1' AND json LIKE '%online%'"
        ),
        1,
        "a1 is still online"
    );
    assert!(
        count(&db, "SELECT COUNT(*) FROM alerts WHERE kind='forgery' AND agent_id='b2' AND detail LIKE '%\"b2\"%'") >= 1,
        "an alert names b2"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind='forgery' AND agent_id<>'b2'"
        ),
        0
    );
    // a1's session was never disturbed.
    a1.publish(
        "vigil/v1/a1/events",
        QoS::AtLeastOnce,
        false,
        serde_json::json!({"phase": "start", "event": {"id": "a1-own", "camera_id": "cam-1"}})
            .to_string(),
    )
    .await
    .unwrap();
    until(&mut a1_el, "a1's own event", || {
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE event_id='a1-own' AND agent_id='a1'",
        ) == 1
    })
    .await;
    drop(hub);
}
