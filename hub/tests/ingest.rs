//! Ingest without a broker: manifests and chunks fed straight into `Ingest::handle`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use time::OffsetDateTime;
use uuid::Uuid;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{ClockSync, ManifestDraft, PieceInfo, PieceStart, SignedManifest};
use vigil_hub::ingest::CHUNK_SIZE;
use vigil_hub::{AckStatus, Ingest};

const AGENT: &str = "agent-1";
const CAMERA: &str = "cam-front";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4")
}

/// Cuts `secs` seconds starting at `start` from the sample with ffmpeg (stream copy).
fn cut(dir: &Path, name: &str, start: u32, secs: u32) -> Vec<u8> {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-ss",
            &start.to_string(),
            "-t",
            &secs.to_string(),
            "-i",
        ])
        .arg(sample())
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg failed");
    std::fs::read(&out).expect("clip written")
}

/// A fake agent: key, chain store, and the ability to sign clips.
struct FakeAgent {
    key: SigningKey,
    chain: ChainStore,
    pem_path: PathBuf,
}

impl FakeAgent {
    fn new(dir: &Path, name: &str) -> FakeAgent {
        let key = SigningKey::generate(&dir.join(format!("{name}.key"))).unwrap();
        let pem_path = dir.join(format!("{name}.pub.pem"));
        std::fs::write(&pem_path, key.public_key().to_pem()).unwrap();
        let chain = ChainStore::open(&dir.join(format!("{name}-chain"))).unwrap();
        FakeAgent {
            key,
            chain,
            pem_path,
        }
    }

    fn pem(&self) -> String {
        std::fs::read_to_string(&self.pem_path).unwrap()
    }

    fn sign(&mut self, agent_id: &str, bytes: &[u8]) -> SignedManifest {
        self.chain
            .ensure_segment(
                &self.key,
                agent_id,
                "0.1.0",
                CAMERA,
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let draft = ManifestDraft {
            agent_id: agent_id.into(),
            agent_version: "0.1.0".into(),
            camera_id: CAMERA.into(),
            clip_id: Uuid::now_v7(),
            start: now,
            end: now,
            clock_sync: ClockSync::Unknown,
            events: vec![],
            clip: ClipDescription::from_mp4(bytes).unwrap(),
            model: None,
            part: None,
            piece: None,
        };
        self.chain.sign_clip(&self.key, draft).unwrap()
    }

    /// A recorded piece of `bytes` said to cover `[start, end)` (seconds after `t0`).
    fn sign_piece(
        &mut self,
        bytes: &[u8],
        t0: OffsetDateTime,
        (start, end): (i64, i64),
        start_reason: PieceStart,
    ) -> SignedManifest {
        self.chain
            .ensure_segment(&self.key, AGENT, "0.1.0", CAMERA, t0)
            .unwrap();
        let draft = ManifestDraft {
            agent_id: AGENT.into(),
            agent_version: "0.1.0".into(),
            camera_id: CAMERA.into(),
            clip_id: Uuid::now_v7(),
            start: t0 + time::Duration::seconds(start),
            end: t0 + time::Duration::seconds(end),
            clock_sync: ClockSync::Unknown,
            events: vec![],
            clip: ClipDescription::from_mp4(bytes).unwrap(),
            model: None,
            part: None,
            piece: Some(PieceInfo {
                recovered: false,
                start_reason,
            }),
        };
        self.chain.sign_clip(&self.key, draft).unwrap()
    }
}

/// A piece manifest as the agent spools it on `records`.
fn piece_record(m: &SignedManifest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "piece",
        "record_b64": B64.encode(m.canonical_bytes()),
        "signature": m.signature_file(),
    }))
    .unwrap()
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
    .unwrap()
}

fn manifest_topic(agent: &str, m: &SignedManifest) -> String {
    format!("vigil/v1/{agent}/clips/{}/manifest", m.record().clip_id)
}

fn chunk_topic(agent: &str, m: &SignedManifest, n: u64) -> String {
    format!("vigil/v1/{agent}/clips/{}/chunk/{n}", m.record().clip_id)
}

fn chunk(bytes: &[u8], n: u64) -> &[u8] {
    let s = (n * CHUNK_SIZE) as usize;
    &bytes[s..(s + CHUNK_SIZE as usize).min(bytes.len())]
}

/// Sends the manifest, then every chunk the hub asks for; returns the final ack status.
fn transfer(hub: &mut Ingest, agent: &str, m: &SignedManifest, bytes: &[u8]) -> AckStatus {
    let out = hub.handle(&manifest_topic(agent, m), &manifest_msg(m));
    let (_, ack) = out.ack.expect("manifest is acked");
    if ack.status != AckStatus::Missing {
        return ack.status;
    }
    let mut last = None;
    for n in ack.missing {
        let out = hub.handle(&chunk_topic(agent, m, n), chunk(bytes, n));
        assert!(
            out.rejected.is_none(),
            "chunk {n} rejected: {:?}",
            out.rejected
        );
        if let Some((_, a)) = out.ack {
            last = Some(a.status);
        }
    }
    last.expect("the last chunk is acked")
}

/// A 4 s clip signed by a fresh agent enrolled as `AGENT` in a fresh hub under `dir`.
fn one_signed_clip(dir: &Path) -> (Vec<u8>, Ingest, SignedManifest) {
    let bytes = cut(dir, "a.mp4", 0, 4);
    let mut agent = FakeAgent::new(dir, "a");
    let hub = Ingest::open(&dir.join("data")).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let m = agent.sign(AGENT, &bytes);
    (bytes, hub, m)
}

fn count(hub: &Ingest, sql: &str) -> i64 {
    hub.index().count(sql).unwrap()
}

#[test]
fn stores_verified_clip_byte_identical_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = cut(tmp.path(), "a.mp4", 0, 4);
    assert!(bytes.len() as u64 > CHUNK_SIZE, "want a multi-chunk clip");
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let data = tmp.path().join("data");
    let mut hub = Ingest::open(&data).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let m = agent.sign(AGENT, &bytes);

    assert_eq!(transfer(&mut hub, AGENT, &m, &bytes), AckStatus::Stored);
    let sha = m.record().file.sha256.to_hex();
    let stored = std::fs::read(hub.layout().clip_path(&sha)).unwrap();
    assert_eq!(stored, bytes, "stored clip is byte-identical");
    // The same clip again: acked stored, stored once.
    assert_eq!(transfer(&mut hub, AGENT, &m, &bytes), AckStatus::Stored);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 1);
    // Late duplicate chunks of a stored clip are ignored, not errors.
    let out = hub.handle(&chunk_topic(AGENT, &m, 0), chunk(&bytes, 0));
    assert!(out.rejected.is_none() && out.ack.is_none());
    assert!(!hub.layout().incoming(AGENT, &m.record().clip_id).exists());
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM alerts"), 0);
}

/// The agent's way: every clip on the two fixed topics, ids in the payload.
#[test]
fn clip_on_the_fixed_topics_is_stored_and_bad_framing_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, mut hub, m) = one_signed_clip(tmp.path());
    let clip = m.record().clip_id.to_string();
    let manifest_topic = format!("vigil/v1/{AGENT}/clips/manifest");
    let chunk_topic = format!("vigil/v1/{AGENT}/clips/chunk");
    let with_clip_id = |id: &str| {
        let mut v: serde_json::Value = serde_json::from_slice(&manifest_msg(&m)).unwrap();
        v["clip_id"] = id.into();
        serde_json::to_vec(&v).unwrap()
    };
    let code = |hub: &mut Ingest, t: &str, p: &[u8]| hub.handle(t, p).rejected.map(|r| r.code);

    // Without a clip id, or naming another clip than the signed manifest: refused.
    assert_eq!(
        code(&mut hub, &manifest_topic, &manifest_msg(&m)),
        Some("bad_json")
    );
    let other = uuid::Uuid::now_v7().to_string();
    let out = hub.handle(&manifest_topic, &with_clip_id(&other));
    assert_eq!(out.rejected.map(|r| r.code), Some("wrong_clip"));
    assert_eq!(out.ack.map(|(_, a)| a.status), Some(AckStatus::Rejected));

    let out = hub.handle(&manifest_topic, &with_clip_id(&clip));
    let (acks, ack) = out.ack.expect("manifest is acked");
    assert_eq!(acks, format!("vigil/v1/{AGENT}/acks"));
    assert_eq!(ack.status, AckStatus::Missing);
    // A chunk without its header line, or with the header of an unknown clip.
    assert_eq!(
        code(&mut hub, &chunk_topic, chunk(&bytes, 0)),
        Some("bad_chunk")
    );
    let stray = [format!("{other} 0\n").as_bytes(), chunk(&bytes, 0)].concat();
    assert_eq!(code(&mut hub, &chunk_topic, &stray), Some("no_manifest"));
    let mut last = None;
    for n in ack.missing {
        let msg = [format!("{clip} {n}\n").as_bytes(), chunk(&bytes, n)].concat();
        let out = hub.handle(&chunk_topic, &msg);
        assert!(out.rejected.is_none(), "chunk {n}: {:?}", out.rejected);
        last = out.ack.map(|(_, a)| a.status).or(last);
    }
    assert_eq!(last, Some(AckStatus::Stored));
    let stored = std::fs::read(hub.layout().clip_path(&m.record().file.sha256.to_hex())).unwrap();
    assert_eq!(stored, bytes, "stored clip is byte-identical");
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 1);
}

#[test]
fn unknown_agent_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = cut(tmp.path(), "a.mp4", 0, 2);
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let mut hub = Ingest::open(&tmp.path().join("data")).unwrap();
    let m = agent.sign(AGENT, &bytes);
    let out = hub.handle(&manifest_topic(AGENT, &m), &manifest_msg(&m));
    assert_eq!(out.rejected.unwrap().code, "unknown_agent");
    assert_eq!(out.ack.unwrap().1.status, AckStatus::Rejected);
    let out = hub.handle(&chunk_topic(AGENT, &m, 0), chunk(&bytes, 0));
    assert_eq!(out.rejected.unwrap().code, "unknown_agent");
    assert!(!tmp.path().join("data/incoming").exists());
    assert_eq!(hub.rejected_counts().get("unknown_agent"), Some(&2));
}

#[test]
fn manifest_signed_by_another_key_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = cut(tmp.path(), "a.mp4", 0, 2);
    let enrolled = FakeAgent::new(tmp.path(), "enrolled");
    let mut impostor = FakeAgent::new(tmp.path(), "impostor");
    let mut hub = Ingest::open(&tmp.path().join("data")).unwrap();
    hub.enroll(AGENT, &enrolled.pem()).unwrap();
    let m = impostor.sign(AGENT, &bytes);
    let out = hub.handle(&manifest_topic(AGENT, &m), &manifest_msg(&m));
    assert_eq!(out.rejected.unwrap().code, "bad_signature");
    assert_eq!(out.ack.unwrap().1.status, AckStatus::Rejected);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 0);
}

#[test]
fn hostile_chunks_and_messages_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = cut(tmp.path(), "a.mp4", 0, 4);
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let data = tmp.path().join("data");
    let mut hub = Ingest::open(&data).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let m = agent.sign(AGENT, &bytes);
    let chunks = m.record().file.size.div_ceil(CHUNK_SIZE);
    assert_eq!(
        hub.handle(&manifest_topic(AGENT, &m), &manifest_msg(&m))
            .ack
            .unwrap()
            .1
            .status,
        AckStatus::Missing
    );
    let code = |hub: &mut Ingest, t: &str, p: &[u8]| hub.handle(t, p).rejected.map(|r| r.code);
    assert_eq!(
        code(&mut hub, &chunk_topic(AGENT, &m, chunks), chunk(&bytes, 0)),
        Some("chunk_out_of_range")
    );
    assert_eq!(
        code(&mut hub, &chunk_topic(AGENT, &m, 0), b"short"),
        Some("bad_chunk_length")
    );
    assert_eq!(
        code(
            &mut hub,
            &format!("vigil/v1/{AGENT}/clips/../chunk/0"),
            b"x"
        ),
        Some("bad_topic")
    );
    assert_eq!(
        code(
            &mut hub,
            &format!("vigil/v1/{AGENT}/clips/{}/manifest", m.record().clip_id),
            b"{not json"
        ),
        Some("bad_json")
    );
    assert_eq!(
        code(&mut hub, &format!("vigil/v1/{AGENT}/events"), b"[]"),
        Some("bad_event")
    );
    // Another agent's manifest on our topic.
    let mut other = FakeAgent::new(tmp.path(), "other");
    hub.enroll("agent-2", &other.pem()).unwrap();
    let m2 = other.sign("agent-2", &bytes);
    let t = format!("vigil/v1/agent-2/clips/{}/manifest", m.record().clip_id);
    assert_eq!(code(&mut hub, &t, &manifest_msg(&m2)), Some("wrong_clip"));
    // Nothing stored; only the pending transfer exists.
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 0);
    // The transfer still completes with good chunks.
    for n in 0..chunks {
        hub.handle(&chunk_topic(AGENT, &m, n), chunk(&bytes, n));
    }
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 1);
}

#[test]
fn path_like_agent_ids_are_rejected_and_never_touch_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut hub = Ingest::open(&data).unwrap();
    let clip = Uuid::now_v7();
    for agent in [
        "..",
        ".",
        "a/../../x",
        "a b",
        "%2e%2e",
        "\u{0}",
        &"a".repeat(65),
    ] {
        for t in [
            format!("vigil/v1/{agent}/clips/{clip}/manifest"),
            format!("vigil/v1/{agent}/clips/{clip}/chunk/0"),
            format!("vigil/v1/{agent}/events"),
        ] {
            let out = hub.handle(&t, b"{}");
            assert_eq!(out.rejected.map(|r| r.code), Some("bad_topic"), "{t}");
            assert!(out.ack.is_none());
        }
    }
    assert!(!data.join("incoming").exists());
    let entries: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing written next to the data dir");
}

#[test]
fn hub_restart_mid_transfer_resumes_with_only_missing_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = cut(tmp.path(), "a.mp4", 0, 4);
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let data = tmp.path().join("data");
    let m = agent.sign(AGENT, &bytes);
    let chunks = m.record().file.size.div_ceil(CHUNK_SIZE);
    assert!(chunks >= 2);
    {
        let mut hub = Ingest::open(&data).unwrap();
        hub.enroll(AGENT, &agent.pem()).unwrap();
        let ack = hub
            .handle(&manifest_topic(AGENT, &m), &manifest_msg(&m))
            .ack
            .unwrap()
            .1;
        assert_eq!(ack.missing, (0..chunks).collect::<Vec<_>>());
        // Only chunk 0 arrives before the "crash".
        assert!(hub
            .handle(&chunk_topic(AGENT, &m, 0), chunk(&bytes, 0))
            .rejected
            .is_none());
    }
    let mut hub = Ingest::open(&data).unwrap();
    let ack = hub
        .handle(&manifest_topic(AGENT, &m), &manifest_msg(&m))
        .ack
        .unwrap()
        .1;
    assert_eq!(ack.status, AckStatus::Missing);
    assert_eq!(ack.missing, (1..chunks).collect::<Vec<_>>());
    assert_eq!(transfer(&mut hub, AGENT, &m, &bytes), AckStatus::Stored);
    let sha = m.record().file.sha256.to_hex();
    assert_eq!(std::fs::read(hub.layout().clip_path(&sha)).unwrap(), bytes);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn chain_gap_alerts_and_conflicting_seq_is_tamper() {
    let tmp = tempfile::tempdir().unwrap();
    let a = cut(tmp.path(), "a.mp4", 0, 2);
    let b = cut(tmp.path(), "b.mp4", 2, 2);
    let c = cut(tmp.path(), "c.mp4", 4, 2);
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let mut hub = Ingest::open(&tmp.path().join("data")).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let m1 = agent.sign(AGENT, &a);
    // Snapshot the chain state after seq 1: signing from the copy forks the segment.
    copy_dir(&tmp.path().join("a-chain"), &tmp.path().join("fork-chain"));
    let _m2 = agent.sign(AGENT, &b); // never delivered
    let m3 = agent.sign(AGENT, &c);
    assert_eq!(transfer(&mut hub, AGENT, &m1, &a), AckStatus::Stored);
    assert_eq!(transfer(&mut hub, AGENT, &m3, &c), AckStatus::Stored);
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'missing_clip'"
        ),
        1
    );

    let mut fork = FakeAgent {
        key: SigningKey::load(&tmp.path().join("a.key")).unwrap(),
        chain: ChainStore::open(&tmp.path().join("fork-chain")).unwrap(),
        pem_path: agent.pem_path.clone(),
    };
    let f2 = fork.sign(AGENT, &b);
    let f3 = fork.sign(AGENT, &c);
    assert_eq!(f3.record().segment_id, m1.record().segment_id);
    assert_eq!(f3.record().seq, 3);
    // seq 3 already holds m3: tamper, rejected at the manifest.
    let out = hub.handle(&manifest_topic(AGENT, &f3), &manifest_msg(&f3));
    assert_eq!(out.rejected.unwrap().code, "tamper");
    assert_eq!(out.ack.unwrap().1.status, AckStatus::Rejected);
    // f2 fills the gap at seq 2 but stored seq 3 does not link to it: tamper.
    let out = hub.handle(&manifest_topic(AGENT, &f2), &manifest_msg(&f2));
    assert_eq!(out.rejected.unwrap().code, "tamper");
    assert_eq!(
        count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'tamper'"),
        2
    );
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 2);
}

#[test]
fn altered_chunk_fails_verification_and_is_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, mut hub, m) = one_signed_clip(tmp.path());
    let mut bad = bytes.clone();
    let last = bad.len() - 100;
    bad[last] ^= 0xff;
    let ack = hub
        .handle(&manifest_topic(AGENT, &m), &manifest_msg(&m))
        .ack
        .unwrap()
        .1;
    let mut final_ack = None;
    for n in ack.missing {
        let out = hub.handle(&chunk_topic(AGENT, &m, n), chunk(&bad, n));
        if out.ack.is_some() {
            assert_eq!(out.rejected.unwrap().code, "verification_failed");
            final_ack = out.ack;
        }
    }
    assert_eq!(final_ack.unwrap().1.status, AckStatus::Rejected);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 0);
    assert_eq!(
        count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'rejected'"),
        1
    );
    // The agent can retry with good bytes.
    assert_eq!(transfer(&mut hub, AGENT, &m, &bytes), AckStatus::Stored);
}

#[test]
fn revoked_agent_messages_are_rejected_and_counted_and_evidence_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let a = cut(tmp.path(), "a.mp4", 0, 2);
    let b = cut(tmp.path(), "b.mp4", 2, 2);
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let data = tmp.path().join("data");
    let mut hub = Ingest::open(&data).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let m1 = agent.sign(AGENT, &a);
    assert_eq!(transfer(&mut hub, AGENT, &m1, &a), AckStatus::Stored);
    vigil_hub::enroll::revoke(&data, AGENT).unwrap();
    let m2 = agent.sign(AGENT, &b);
    let out = hub.handle(&manifest_topic(AGENT, &m2), &manifest_msg(&m2));
    assert_eq!(out.rejected.unwrap().code, "revoked_agent");
    assert_eq!(out.ack.unwrap().1.status, AckStatus::Rejected);
    let out = hub.handle(
        &format!("vigil/v1/{AGENT}/events"),
        br#"{"phase":"start","event":{"id":"e1","camera_id":"cam-front"}}"#,
    );
    assert_eq!(out.rejected.unwrap().code, "revoked_agent");
    assert_eq!(hub.rejected_counts().get("revoked_agent"), Some(&2));
    // What was stored before the revocation stays.
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM clips"), 1);
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM events"), 0);
}

#[test]
fn telemetry_messages_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = FakeAgent::new(tmp.path(), "a");
    let mut hub = Ingest::open(&tmp.path().join("data")).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let code = |hub: &mut Ingest, t: &str, p: &str| {
        hub.handle(&format!("vigil/v1/{AGENT}/{t}"), p.as_bytes())
            .rejected
            .map(|r| r.code)
    };
    let now = "2026-11-23T13:00:00Z";
    let cam = |state: &str| {
        format!(
            r#"{{"at":"{now}","cameras":[{{"camera_id":"cam-front","state":"{state}","reason":null,"since":"{now}","fps_in":25.0}}],"outbox":{{"entries":0,"bytes":0,"limit_bytes":1,"dropped_entries":0,"dropped_bytes":0}}}}"#
        )
    };
    assert_eq!(
        code(&mut hub, "health", &cam("dancing")),
        Some("bad_health")
    );
    assert_eq!(
        code(
            &mut hub,
            "health",
            &cam("streaming").replace(now, "yesterday")
        ),
        Some("bad_time")
    );
    assert_eq!(code(&mut hub, "health", &cam("streaming")), None);
    assert_eq!(code(&mut hub, "health", &cam("stopped")), None);
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM camera_health WHERE state = 'stopped'"
        ),
        1,
        "upserted, not appended"
    );
    let jpeg = B64.encode([0xFF, 0xD8, 0xFF, 0xDB, 0xFF, 0xD9]);
    let snap = |camera: &str| {
        format!(
            r#"{{"camera_id":"{camera}","taken_utc":"{now}","width":1,"height":1,"jpeg_b64":"{jpeg}"}}"#
        )
    };
    assert_eq!(
        code(&mut hub, "cameras/cam-front/snapshot", &snap("cam-back")),
        Some("wrong_camera")
    );
    assert_eq!(
        code(&mut hub, "cameras/../snapshot", &snap("..")),
        Some("bad_topic")
    );
    assert_eq!(
        code(&mut hub, "cameras/cam-front/snapshot", &snap("cam-front")),
        None
    );
    let drop = |kind: &str| {
        format!(
            r#"{{"kind":"{kind}","clip_id":null,"camera_id":"cam-front","seq":null,"bytes":10,"reason":"full","at":"{now}"}}"#
        )
    };
    assert_eq!(code(&mut hub, "drops", &drop("oops")), Some("bad_drop"));
    assert_eq!(code(&mut hub, "drops", &drop("outbox_drop")), None);
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'outbox_drop'"
        ),
        1
    );
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM snapshots"), 1);
}

#[test]
fn schema_v0_index_is_migrated_keeping_its_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        // The first slice's tables, with an agent and an alert in them.
        let c = rusqlite::Connection::open(data.join("index.sqlite")).unwrap();
        c.execute_batch(
            "CREATE TABLE agents (agent_id TEXT PRIMARY KEY, public_key_pem TEXT NOT NULL,
                 key_id TEXT NOT NULL, enrolled_at INTEGER NOT NULL);
             CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT,
                 kind TEXT NOT NULL CHECK (kind IN ('missing_clip', 'tamper', 'rejected')),
                 agent_id TEXT NOT NULL, camera_id TEXT NOT NULL, detail TEXT NOT NULL, at INTEGER NOT NULL);
             INSERT INTO agents VALUES ('old-agent', 'PEM', 'abcd', 1);
             INSERT INTO alerts (kind, agent_id, camera_id, detail, at) VALUES ('tamper', 'old-agent', 'c', 'd', 2);",
        )
        .unwrap();
    }
    let hub = Ingest::open(&data).unwrap();
    assert_eq!(
        count(&hub, "PRAGMA user_version"),
        vigil_hub::index::schema::SCHEMA_VERSION
    );
    assert_eq!(
        count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'tamper'"),
        1
    );
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM agents WHERE mqtt_password_hash IS NULL"
        ),
        1
    );
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM agent_keys"), 1);
    hub.index()
        .alert(
            vigil_hub::index::AlertKind::OutboxDrop,
            "old-agent",
            "c",
            "d",
        )
        .unwrap();
    // Version 2's alert kind and drop-report table are there.
    hub.index()
        .alert(vigil_hub::index::AlertKind::Forgery, "old-agent", "-", "d")
        .unwrap();
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM drop_reports"), 0);
    drop(hub);
    // Opening again is a no-op.
    let hub = Ingest::open(&data).unwrap();
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM alerts"), 3);
}

/// Events, records and drop reports that name their outbox entry are acknowledged by
/// it once stored: a duplicate (the agent sending it again after a lost ack) is acked
/// and stores nothing twice; a message that can never be stored is acked `rejected`;
/// a message without an entry (older agents) gets no entry ack; a malformed entry name
/// is refused without an ack.
#[test]
fn spooled_messages_are_acked_end_to_end_and_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = FakeAgent::new(tmp.path(), "a");
    let mut hub = Ingest::open(&tmp.path().join("data")).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let topic = |t: &str| format!("vigil/v1/{AGENT}/{t}");
    let event = r#"{"phase":"start","entry":"events/17-cam-front-e1-start.json","event":{"id":"e1","camera_id":"cam-front"}}"#;
    for round in 0..3 {
        let out = hub.handle(&topic("events"), event.as_bytes());
        assert!(out.rejected.is_none(), "round {round}: {:?}", out.rejected);
        let (t, ack) = out.entry_ack.expect("an entry ack");
        assert_eq!(t, topic("acks"));
        assert_eq!(ack.entry, "events/17-cam-front-e1-start.json");
        assert_eq!(ack.status, AckStatus::Stored);
        let json = serde_json::to_value(&ack).unwrap();
        assert_eq!(json["status"], "stored");
        assert!(json.get("clip_id").is_none(), "entry acks carry no clip id");
    }
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM events"), 1);

    let bad = r#"{"phase":"sideways","entry":"events/18-cam-front-e2-x.json","event":{"id":"e2","camera_id":"cam-front"}}"#;
    let out = hub.handle(&topic("events"), bad.as_bytes());
    assert_eq!(out.rejected.map(|r| r.code), Some("bad_event"));
    let (_, ack) = out.entry_ack.expect("a rejected ack");
    assert_eq!(ack.status, AckStatus::Rejected);
    assert!(ack.reason.unwrap_or_default().starts_with("bad_event"));

    let old = r#"{"phase":"start","event":{"id":"e3","camera_id":"cam-front"}}"#;
    let out = hub.handle(&topic("events"), old.as_bytes());
    assert!(out.rejected.is_none() && out.entry_ack.is_none());
    assert_eq!(count(&hub, "SELECT COUNT(*) FROM events"), 2);

    for name in ["drops/../../x.json", "events/a", "records/x.json", ""] {
        let p = format!(
            r#"{{"phase":"start","entry":{name:?},"event":{{"id":"e9","camera_id":"cam-front"}}}}"#
        );
        let out = hub.handle(&topic("events"), p.as_bytes());
        let want = if name == "events/a" {
            None
        } else {
            Some("bad_entry")
        };
        assert_eq!(out.rejected.map(|r| r.code), want, "{name:?}");
    }

    // A drop report sent twice raises one alert.
    let drop_report = r#"{"kind":"outbox_drop","clip_id":null,"camera_id":"cam-front","seq":4,"bytes":9,"reason":"outbox over its byte limit","at":"2026-12-04T10:00:00Z","entry":"drops/19-cam-front-seq4.json"}"#;
    for _ in 0..2 {
        let out = hub.handle(&topic("drops"), drop_report.as_bytes());
        assert!(out.rejected.is_none(), "{:?}", out.rejected);
        assert_eq!(
            out.entry_ack.map(|(_, a)| a.status),
            Some(AckStatus::Stored)
        );
    }
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'outbox_drop'"
        ),
        1
    );
}

/// Seconds missing between recorded pieces whose seqs follow each other: a piece that says
/// it continues the stream but starts later than the previous one ended is a
/// `missing_clip` alert, once (a resend raises nothing); a piece after an agent restart
/// explains its gap and raises nothing.
#[test]
fn a_time_gap_between_pieces_that_continue_each_other_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = cut(tmp.path(), "p.mp4", 0, 2);
    let mut agent = FakeAgent::new(tmp.path(), "a");
    let mut hub = Ingest::open(&tmp.path().join("data")).unwrap();
    hub.enroll(AGENT, &agent.pem()).unwrap();
    let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let pieces = [
        agent.sign_piece(&bytes, t0, (0, 60), PieceStart::AgentStart),
        agent.sign_piece(&bytes, t0, (60, 120), PieceStart::Continues),
        // 6 s after the previous piece's end, yet "continues": nothing explains them.
        agent.sign_piece(&bytes, t0, (126, 186), PieceStart::Continues),
        // After an agent restart: the gap is "not recorded", not missing.
        agent.sign_piece(&bytes, t0, (200, 260), PieceStart::AgentStart),
        agent.sign_piece(&bytes, t0, (260, 320), PieceStart::Continues),
    ];
    let topic = format!("vigil/v1/{AGENT}/records");
    let alerts = |hub: &Ingest| {
        count(
            hub,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'missing_clip'",
        )
    };
    for (i, p) in pieces.iter().enumerate() {
        let out = hub.handle(&topic, &piece_record(p));
        assert!(out.rejected.is_none(), "piece {i}: {:?}", out.rejected);
        let expected = if i >= 2 { 1 } else { 0 };
        assert_eq!(alerts(&hub), expected, "after piece seq {}", i + 1);
    }
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM alerts WHERE kind = 'missing_clip'
             AND detail LIKE '%seq 3 %continues seq 2, but 6.0 s between%'"
        ),
        1,
        "the alert names the pieces and the missing seconds"
    );
    // The agent resends the piece (its ack was lost): stored once, no second alert.
    let out = hub.handle(&topic, &piece_record(&pieces[2]));
    assert!(out.rejected.is_none(), "{:?}", out.rejected);
    assert_eq!(alerts(&hub), 1);
    assert_eq!(
        count(
            &hub,
            "SELECT COUNT(*) FROM chain_links WHERE kind = 'piece'"
        ),
        5
    );
}
