//! A hostile publisher against a real `vigil-hub run` process on a real Mosquitto:
//! forged manifests, garbage and out-of-range chunks, oversized payloads, bad JSON,
//! path-like ids and another agent's topics. The hub must stay up, store nothing from
//! it, write nothing outside its data dir, and still store the enrolled agent's clip
//! afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use time::OffsetDateTime;
use uuid::Uuid;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{ClockSync, ManifestDraft, SignedManifest};
use vigil_hub::ingest::CHUNK_SIZE;
use vigil_hub::{Ack, AckStatus};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const AGENT: &str = "a1";
const CAMERA: &str = "cam1";

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free port")
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_broker(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("write mosquitto.conf");
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto starts (make setup installs it)");
    let broker = Killed(child);
    wait_until("mosquitto to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (broker, port)
}

fn clip_bytes(dir: &Path) -> Vec<u8> {
    let out = dir.join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-t", "3", "-i"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg failed to cut the sample");
    std::fs::read(&out).expect("clip written")
}

fn sign(key: &SigningKey, chain: &mut ChainStore, agent: &str, bytes: &[u8]) -> SignedManifest {
    chain
        .ensure_segment(key, agent, "0.1.0", CAMERA, OffsetDateTime::now_utc())
        .expect("segment");
    let now = OffsetDateTime::now_utc();
    chain
        .sign_clip(
            key,
            ManifestDraft {
                agent_id: agent.into(),
                agent_version: "0.1.0".into(),
                camera_id: CAMERA.into(),
                clip_id: Uuid::now_v7(),
                start: now,
                end: now,
                clock_sync: ClockSync::Unknown,
                events: vec![],
                clip: ClipDescription::from_mp4(bytes).expect("sample clip parses"),
                model: None,
                part: None,
                piece: None,
            },
        )
        .expect("sign")
}

fn manifest_msg(m: &SignedManifest) -> Vec<u8> {
    let size = m.record().file.size;
    serde_json::to_vec(&serde_json::json!({
        "manifest_b64": B64.encode(m.canonical_bytes()),
        "signature": m.signature_file(),
        "size": size,
        "chunk_size": CHUNK_SIZE,
        "chunks": size.div_ceil(CHUNK_SIZE),
    }))
    .expect("json")
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open index");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

/// Every path under `dir`, relative.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).expect("under dir").to_path_buf());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Publishes `msgs` and drives the event loop until the broker acked them all,
/// collecting hub acks on the side.
async fn publish_all(
    client: &AsyncClient,
    el: &mut rumqttc::EventLoop,
    msgs: Vec<(String, Vec<u8>)>,
    acks: &mut Vec<Ack>,
) {
    let n = msgs.len();
    for (t, p) in msgs {
        client
            .publish(t, QoS::AtLeastOnce, false, p)
            .await
            .expect("queue publish");
    }
    let mut puback = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while puback < n {
        assert!(Instant::now() < deadline, "broker acked {puback} of {n}");
        match tokio::time::timeout(Duration::from_millis(200), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => puback += 1,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                acks.push(serde_json::from_slice(&p.payload).expect("hub ack is JSON"))
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => panic!("hostile client lost the broker: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_publisher_cannot_store_anything_or_stop_the_hub() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bytes = clip_bytes(tmp.path());
    assert!(bytes.len() as u64 > CHUNK_SIZE, "want a multi-chunk clip");
    let (_broker, port) = start_broker(tmp.path());

    // The enrolled agent and an impostor with its own key.
    let key = SigningKey::generate(&tmp.path().join("a1.key")).expect("key");
    let mut chain = ChainStore::open(&tmp.path().join("a1-chain")).expect("chain");
    let evil = SigningKey::generate(&tmp.path().join("evil.key")).expect("key");
    let mut evil_chain = ChainStore::open(&tmp.path().join("evil-chain")).expect("chain");
    let pem = tmp.path().join("a1.pem");
    std::fs::write(&pem, key.public_key().to_pem()).expect("pem");

    let data = tmp.path().join("data");
    let hub_bin = env!("CARGO_BIN_EXE_vigil-hub");
    let st = Command::new(hub_bin)
        .args(["agent", "add", AGENT, "--public-key"])
        .arg(&pem)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("vigil-hub agent add runs");
    assert!(st.success(), "enrolment failed");
    let hub_log = tmp.path().join("hub.log");
    let log_file = std::fs::File::create(&hub_log).expect("log file");
    let mut hub = Killed(
        Command::new(hub_bin)
            .args([
                "run",
                "--web-listen",
                "127.0.0.1:0",
                "--broker",
                &format!("mqtt://127.0.0.1:{port}"),
            ])
            .arg("--data-dir")
            .arg(&data)
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("vigil-hub run starts"),
    );
    let log = || std::fs::read_to_string(&hub_log).unwrap_or_default();
    wait_until("the hub to connect", Duration::from_secs(20), || {
        log().contains("Connected to the broker")
    });

    let mut o = MqttOptions::new("mallory", "127.0.0.1", port);
    o.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut el) = AsyncClient::new(o, 256);
    // Mallory listens to a1's acks to learn what the hub answered.
    client
        .subscribe(format!("vigil/v1/{AGENT}/acks"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let mut acks = Vec::new();

    let forged = sign(&evil, &mut evil_chain, AGENT, &bytes);
    let forged_id = forged.record().clip_id;
    let ghost = sign(&evil, &mut evil_chain, "ghost", &bytes);
    let mut wrong_types: serde_json::Value =
        serde_json::from_slice(&manifest_msg(&forged)).expect("json");
    wrong_types["size"] = serde_json::json!("lots");
    let mut huge: serde_json::Value = serde_json::from_slice(&manifest_msg(&forged)).expect("json");
    huge["size"] = serde_json::json!(u64::MAX);
    huge["chunks"] = serde_json::json!(u64::MAX / CHUNK_SIZE);
    let random_clip = Uuid::now_v7();
    let t = |rest: &str| format!("vigil/v1/{AGENT}/{rest}");
    let attack: Vec<(String, Vec<u8>)> = vec![
        // A manifest for a1 signed with another key, then its chunks.
        (
            t(&format!("clips/{forged_id}/manifest")),
            manifest_msg(&forged),
        ),
        (
            t(&format!("clips/{forged_id}/chunk/0")),
            bytes[..CHUNK_SIZE as usize].to_vec(),
        ),
        // Chunks for clips no manifest announced, out of range, garbage lengths.
        (t(&format!("clips/{random_clip}/chunk/0")), vec![0xAB; 1000]),
        (
            t(&format!("clips/{random_clip}/chunk/99999999")),
            vec![0; 10],
        ),
        (t("clips/not-a-uuid/chunk/0"), vec![1, 2, 3]),
        (t("clips/..%2F..%2Fetc/chunk/0"), b"x".to_vec()),
        // Bad JSON, wrong types, absurd sizes.
        (t(&format!("clips/{random_clip}/manifest")), b"{not json".to_vec()),
        (
            t(&format!("clips/{forged_id}/manifest")),
            serde_json::to_vec(&wrong_types).expect("json"),
        ),
        (
            t(&format!("clips/{forged_id}/manifest")),
            serde_json::to_vec(&huge).expect("json"),
        ),
        // Oversized payloads (the broker accepts them; the hub must not choke).
        (
            t(&format!("clips/{random_clip}/manifest")),
            vec![b'{'; 3 << 20],
        ),
        (t("events"), vec![b' '; 2 << 20]),
        (t("events"), b"[1,2,3]".to_vec()),
        (t("records"), b"{\"kind\":\"chain_reset\"}".to_vec()),
        // An agent that was never enrolled, and path-like agent ids.
        (
            format!("vigil/v1/ghost/clips/{}/manifest", ghost.record().clip_id),
            manifest_msg(&ghost),
        ),
        (
            "vigil/v1/ghost/events".into(),
            br#"{"phase":"start","event":{"id":"0190aaaa-0000-7000-8000-000000000000","camera_id":"x","label":"person"}}"#.to_vec(),
        ),
        ("vigil/v1/../events".into(), b"{}".to_vec()),
        ("vigil/v1/..%2f..%2ftmp/status".into(), b"{}".to_vec()),
    ];
    publish_all(&client, &mut el, attack, &mut acks).await;

    // The hub processes messages in order: once it answered a marker manifest that
    // follows the attack, it has seen the whole attack.
    let marker = sign(&evil, &mut evil_chain, AGENT, &bytes);
    let marker_id = marker.record().clip_id.to_string();
    publish_all(
        &client,
        &mut el,
        vec![(
            t(&format!("clips/{marker_id}/manifest")),
            manifest_msg(&marker),
        )],
        &mut acks,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !acks.iter().any(|a| a.clip_id == marker_id) {
        assert!(
            Instant::now() < deadline,
            "the hub never answered after the attack; log:\n{}",
            log()
        );
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_millis(200), el.poll()).await
        {
            acks.push(serde_json::from_slice(&p.payload).expect("hub ack is JSON"));
        }
    }
    assert!(
        hub.0.try_wait().expect("try_wait").is_none(),
        "the hub died during the attack; log:\n{}",
        log()
    );
    for a in acks.iter().filter(|a| a.clip_id == forged_id.to_string()) {
        assert_eq!(
            a.status,
            AckStatus::Rejected,
            "forged manifest was not rejected: {a:?}"
        );
    }
    assert!(acks
        .iter()
        .any(|a| a.clip_id == marker_id && a.status == AckStatus::Rejected));
    let db = data.join("index.sqlite");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM clips"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM chain_records"), 0);
    // Nothing was written outside the data dir, and nothing for the ghost inside it.
    let mut top: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            "a1-chain",
            "a1.key",
            "a1.pem",
            "clip.mp4",
            "data",
            "evil-chain",
            "evil.key",
            "hub.log",
            "mosquitto.conf"
        ]
    );
    let inside = tree(&data);
    assert!(
        !inside
            .iter()
            .any(|p| p.to_string_lossy().contains("ghost") || p.to_string_lossy().contains("..")),
        "hostile ids reached the disk: {inside:?}"
    );
    let text = log();
    for code in ["bad_signature", "unknown_agent", "bad_topic", "bad_json"] {
        assert!(
            text.contains(code),
            "hub log does not count {code}:\n{text}"
        );
    }

    // The enrolled agent still gets its clip stored, byte-identical.
    let good = sign(&key, &mut chain, AGENT, &bytes);
    let good_id = good.record().clip_id.to_string();
    let mut msgs = vec![(t(&format!("clips/{good_id}/manifest")), manifest_msg(&good))];
    for n in 0..(bytes.len() as u64).div_ceil(CHUNK_SIZE) {
        let s = (n * CHUNK_SIZE) as usize;
        let e = (s + CHUNK_SIZE as usize).min(bytes.len());
        msgs.push((
            t(&format!("clips/{good_id}/chunk/{n}")),
            bytes[s..e].to_vec(),
        ));
    }
    publish_all(&client, &mut el, msgs, &mut acks).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !acks
        .iter()
        .any(|a| a.clip_id == good_id && a.status == AckStatus::Stored)
    {
        assert!(
            Instant::now() < deadline,
            "the enrolled agent's clip was not stored after the attack; acks {acks:?}; log:\n{}",
            log()
        );
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_millis(200), el.poll()).await
        {
            acks.push(serde_json::from_slice(&p.payload).expect("hub ack is JSON"));
        }
    }
    assert_eq!(count(&db, "SELECT COUNT(*) FROM clips"), 1);
    let sha = good.record().file.sha256.to_hex();
    let stored =
        std::fs::read(vigil_hub::files::Layout::new(&data).clip_path(&sha)).expect("stored clip");
    assert_eq!(stored, bytes);
    let _ = hub.0.kill();
}
