//! The hub's uplink against a real Mosquitto broker with a fake agent publishing
//! over rumqttc (Debian's /usr/sbin/mosquitto, installed by `make setup`).

use std::path::Path;
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
use vigil_evidence::manifest::{ClockSync, ManifestDraft};
use vigil_hub::ingest::CHUNK_SIZE;
use vigil_hub::uplink::{self, BrokerSettings};
use vigil_hub::{Ack, AckStatus, Ingest};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(dir: &Path) -> (Broker, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Broker(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_agent_delivers_a_clip_through_mosquitto() {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is missing: run `make setup` (installs Debian's mosquitto)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let clip_path = tmp.path().join("a.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-t", "4", "-i"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&clip_path)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&clip_path).unwrap();

    // Agent key, chain and signed manifest.
    let key = SigningKey::generate(&tmp.path().join("agent.key")).unwrap();
    let mut chain = ChainStore::open(&tmp.path().join("chain")).unwrap();
    chain
        .ensure_segment(&key, "agent-1", "0.1.0", "cam-1", OffsetDateTime::now_utc())
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let m = chain
        .sign_clip(
            &key,
            ManifestDraft {
                agent_id: "agent-1".into(),
                agent_version: "0.1.0".into(),
                camera_id: "cam-1".into(),
                clip_id: Uuid::now_v7(),
                start: now,
                end: now,
                clock_sync: ClockSync::Unknown,
                events: vec![],
                clip: ClipDescription::from_mp4(&bytes).unwrap(),
                model: None,
                part: None,
                piece: None,
            },
        )
        .unwrap();
    let clip_id = m.record().clip_id;

    let data = tmp.path().join("data");
    let hub = Ingest::open(&data).unwrap();
    hub.enroll("agent-1", &key.public_key().to_pem()).unwrap();

    let (_broker, port) = start_broker(tmp.path());
    let settings = BrokerSettings::from_url(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let hub_task = tokio::spawn(uplink::run(settings, hub, Default::default(), async {
        let _ = stop_rx.await;
    }));

    // Fake agent.
    let mut o = MqttOptions::new("agent-1", "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 64);
    client
        .subscribe("vigil/v1/agent-1/acks", QoS::AtLeastOnce)
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
    let mtopic = format!("vigil/v1/agent-1/clips/{clip_id}/manifest");
    // Hostile publisher traffic on the same broker first.
    client
        .publish(
            "vigil/v1/intruder/clips/not-a-uuid/chunk/0",
            QoS::AtLeastOnce,
            false,
            vec![0u8; 10],
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_manifest = Instant::now() - Duration::from_secs(10);
    let mut stored = false;
    while !stored {
        assert!(Instant::now() < deadline, "no stored ack within 30 s");
        // Until the hub answers (it may not be subscribed yet), re-send the manifest.
        if last_manifest.elapsed() > Duration::from_millis(500) {
            client
                .publish(&mtopic, QoS::AtLeastOnce, false, manifest.clone())
                .await
                .unwrap();
            last_manifest = Instant::now();
        }
        let ev = match tokio::time::timeout(Duration::from_millis(200), el.poll()).await {
            Ok(ev) => ev.unwrap(),
            Err(_) => continue,
        };
        if let Event::Incoming(Packet::Publish(p)) = ev {
            let ack: Ack = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(ack.clip_id, clip_id.to_string());
            match ack.status {
                AckStatus::Missing => {
                    // The hub is subscribed now: an event is delivered before the clip completes.
                    client
            .publish("vigil/v1/agent-1/events", QoS::AtLeastOnce, false,
                br#"{"phase":"start","event":{"id":"ev-1","camera_id":"cam-1","label":"person"}}"#.to_vec())
            .await
            .unwrap();
                    last_manifest = Instant::now() + Duration::from_secs(60);
                    for n in ack.missing {
                        let s = (n * CHUNK_SIZE) as usize;
                        let e = (s + CHUNK_SIZE as usize).min(bytes.len());
                        client
                            .publish(
                                format!("vigil/v1/agent-1/clips/{clip_id}/chunk/{n}"),
                                QoS::AtLeastOnce,
                                false,
                                bytes[s..e].to_vec(),
                            )
                            .await
                            .unwrap();
                    }
                }
                AckStatus::Stored => stored = true,
                AckStatus::Rejected => panic!("rejected: {:?}", ack.reason),
            }
        }
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), hub_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let hub = Ingest::open(&data).unwrap();
    assert_eq!(hub.index().count("SELECT COUNT(*) FROM clips").unwrap(), 1);
    assert_eq!(hub.index().count("SELECT COUNT(*) FROM events").unwrap(), 1);
    let sha = m.record().file.sha256.to_hex();
    assert_eq!(std::fs::read(hub.layout().clip_path(&sha)).unwrap(), bytes);
}
