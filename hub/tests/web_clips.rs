//! Clips over real HTTP (range requests, downloads, audit) and evidence
//! export verified offline by `vigil-verify`. Clips are real footage signed
//! by a fake agent and delivered through the hub's own `Ingest`.

mod web_common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use web_common::{event_json, wait_for, FakeAgent, TestHub};

fn range(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("range", HeaderValue::from_str(v).unwrap());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_playback_supports_range_requests() {
    let hub = TestHub::start(|_| {}).await;
    let bytes = web_common::cut(hub.tmp.path(), "a.mp4", 0, 4);
    let mut agent = FakeAgent::new(hub.tmp.path(), &hub.data, "agent-1", "cam-1");
    let clip = agent.deliver(&hub.data, &bytes, &[("ev-1", "person")]);
    let op = hub.login("op").await;
    let url = format!("/media/clips/{clip}");
    // Whole file.
    let r = op.req(Method::GET, &url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        bytes.as_slice(),
        "original bytes"
    );
    // A range in the middle (what a seek asks for).
    let r = op.get_with(&url, range("bytes=1000-1999")).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert_eq!(r.headers()["content-length"], "1000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);
    // Open-ended and suffix ranges.
    let r = op.get_with(&url, range("bytes=0-")).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().len(), bytes.len());
    let r = op.get_with(&url, range("bytes=-100")).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 100..]
    );
    // Beyond the end: 416 with the size.
    let r = op
        .get_with(&url, range(&format!("bytes={}-", bytes.len() + 10)))
        .await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );
    // Download: attachment.
    let r = op.req(Method::GET, &format!("{url}/download"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cd = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cd.starts_with("attachment") && cd.contains(&clip), "{cd}");
    // Views are audited once per view (bytes=0- or no range), not per seek.
    let adm = hub.login("adm").await;
    let a = adm.json("/api/audit?limit=500").await;
    let count = |action: &str| {
        a["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["action"] == action && e["subject"] == clip.as_str() && e["actor"] == "op"
            })
            .count()
    };
    assert_eq!(count("clip_view"), 2, "GET without range + bytes=0-");
    assert_eq!(count("clip_download"), 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_shows_its_verified_clip() {
    let hub = TestHub::start(|_| {}).await;
    let bytes = web_common::cut(hub.tmp.path(), "a.mp4", 0, 2);
    let mut agent = FakeAgent::new(hub.tmp.path(), &hub.data, "agent-1", "cam-1");
    hub.index()
        .insert_event(
            "ev-1",
            "start",
            "agent-1",
            "cam-1",
            &event_json("ev-1", "start", "cam-1", "person", &["door"], None),
        )
        .unwrap();
    let op = hub.login("op").await;
    wait_for("event folded", Duration::from_secs(5), || async {
        (op.req(Method::GET, "/api/events/ev-1", None).await.status() == StatusCode::OK)
            .then_some(())
    })
    .await;
    assert_eq!(op.json("/api/events/ev-1").await["event"]["clip"], "none");
    let clip = agent.deliver(&hub.data, &bytes, &[("ev-1", "person")]);
    let d = wait_for("clip linked", Duration::from_secs(5), || async {
        let d = op.json("/api/events/ev-1").await;
        (d["event"]["clip"] == "verified").then_some(d)
    })
    .await;
    assert_eq!(d["clips"][0]["clip_id"], clip.as_str());
    assert_eq!(
        d["clips"][0]["url"],
        format!("/media/clips/{clip}").as_str()
    );
    assert!(d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "clip_stored"));
    // Re-verification (investigator) passes, then fails once the file is altered.
    let inv = hub.login("inv").await;
    let v = inv
        .post(&format!("/api/clips/{clip}/verify"), json!({}))
        .await;
    assert_eq!(v["ok"], true, "{v}");
    let sha: String = hub
        .sqlite()
        .query_row(
            "SELECT sha256 FROM clips WHERE clip_id = ?1",
            [&clip],
            |r| r.get(0),
        )
        .unwrap();
    let path = hub
        .data
        .join("clips")
        .join(&sha[..2])
        .join(format!("{sha}.mp4"));
    let mut altered = std::fs::read(&path).unwrap();
    let n = altered.len();
    altered[n - 10] ^= 0xFF;
    std::fs::write(&path, &altered).unwrap();
    let v = inv
        .post(&format!("/api/clips/{clip}/verify"), json!({}))
        .await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(op.json("/api/events/ev-1").await["event"]["clip"], "failed");
    let s = inv.json("/api/clips").await;
    assert_eq!(s["clips"][0]["verify"]["status"], "failed");
    hub.stop().await;
}

fn vigil_verify() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if std::env::var_os("VIGIL_TESTS_NO_BUILD").is_none() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "vigil-evidence",
                "--bin",
                "vigil-verify",
            ])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(st.success(), "cargo build vigil-verify");
    }
    root.join("target/debug/vigil-verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_bundle_verifies_offline() {
    let hub = TestHub::start(|_| {}).await;
    let mut agent = FakeAgent::new(hub.tmp.path(), &hub.data, "agent-1", "cam-1");
    let mut clips = Vec::new();
    for (i, start) in [0u32, 4, 8].iter().enumerate() {
        let bytes = web_common::cut(hub.tmp.path(), &format!("c{i}.mp4"), *start, 2);
        let ev = format!("ev-{i}");
        clips.push(agent.deliver(&hub.data, &bytes, &[(&ev, "person")]));
    }
    let inv = hub.login("inv").await;
    wait_for("clips folded", Duration::from_secs(5), || async {
        (inv.json("/api/clips").await["clips"]
            .as_array()
            .unwrap()
            .len()
            == 3)
            .then_some(())
    })
    .await;
    // The investigator watched one clip before exporting (custody shows it).
    let r = inv
        .req(Method::GET, &format!("/media/clips/{}", clips[1]), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Export clips 2 and 3 by clip id and by event id.
    let x = inv
        .post(
            "/api/exports",
            json!({"case_number": "CASE 2026/0042", "clip_ids": [clips[1]], "event_ids": ["ev-2"]}),
        )
        .await;
    assert_eq!(x["clips"], 2);
    assert_eq!(x["requested_by"], "inv");
    let name = x["file_name"].as_str().unwrap();
    assert!(
        name.starts_with("vigil-evidence-CASE_2026_0042-") && name.ends_with(".zip"),
        "{name}"
    );
    let r = inv
        .req(Method::GET, x["download_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(name));
    let zip = r.bytes().await.unwrap();
    let zpath = hub.tmp.path().join(name);
    std::fs::write(&zpath, &zip).unwrap();
    assert_eq!(
        vigil_evidence::digest::Sha256Digest::of(&zip).to_hex(),
        x["sha256"].as_str().unwrap()
    );

    let out = Command::new(vigil_verify())
        .arg(&zpath)
        .arg("--trust")
        .arg(&agent.pem_path)
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["verdict"],
        "OK",
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(report["clips"].as_array().unwrap().len(), 2);

    // Custody log: the export request, the storage records and the view.
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zpath).unwrap()).unwrap();
    let mut custody = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("custody/custody.jsonl").unwrap(),
        &mut custody,
    )
    .unwrap();
    let lines: Vec<Value> = custody
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "export");
    assert_eq!(lines[0]["case_number"], "CASE 2026/0042");
    assert_eq!(lines[0]["requested_by"], "inv");
    assert_eq!(lines.iter().filter(|l| l["type"] == "stored").count(), 2);
    assert!(lines.iter().any(|l| l["type"] == "audit"
        && l["action"] == "clip_view"
        && l["subject"] == clips[1].as_str()));

    // A tampered copy is refused by the verifier.
    let mut bad = zip.to_vec();
    let pos = bad.windows(4).position(|w| w == b"mdat").unwrap() + 100;
    bad[pos] ^= 0xFF;
    let bpath = hub.tmp.path().join("tampered.zip");
    std::fs::write(&bpath, &bad).unwrap();
    let out = Command::new(vigil_verify())
        .arg(&bpath)
        .arg("--trust")
        .arg(&agent.pem_path)
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "tampered bundle must not verify"
    );

    // The export is audited and listed; bad requests are refused.
    let list = inv.json("/api/exports").await;
    assert_eq!(list["exports"][0]["case_number"], "CASE 2026/0042");
    let r = inv
        .req(
            Method::POST,
            "/api/exports",
            Some(json!({"case_number": "", "clip_ids": [clips[0]]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = inv
        .req(
            Method::POST,
            "/api/exports",
            Some(json!({"case_number": "C1"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = inv
        .req(
            Method::POST,
            "/api/exports",
            Some(json!({"case_number": "C1", "clip_ids": ["../../etc/passwd"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let adm = hub.login("adm").await;
    let a = adm.json("/api/audit?limit=500").await;
    let acts: Vec<&str> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        acts.contains(&"export_create") && acts.contains(&"export_download"),
        "{acts:?}"
    );
    hub.stop().await;
}
