//! `vigil-agent run` against camsim with the real model: calm events, signed clips.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use vigil_evidence::verify::{verify_path, Verdict};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn run_produces_calm_events_and_verified_clips_in_chain_order() {
    let bin = env!("CARGO_BIN_EXE_vigil-agent");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sim = Command::new(bin)
        .args(["camsim", "--port", "0", "--path", "/cam1", "--file"])
        .arg(root().join("target/samples/vtest.mp4"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("camsim");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let url = line.split_whitespace().last().expect("url").to_string();
    let key = dir.path().join("agent.key");
    let status = Command::new(bin)
        .args(["keygen", "--key"])
        .arg(&key)
        .stdout(Stdio::null())
        .status()
        .expect("keygen");
    assert!(status.success());
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {out:?}\n\
             [detect]\nmodel = {model:?}\n[[cameras]]\nid = \"cam1\"\nurl = \"{url}\"\n",
            chain = dir.path().join("chain"),
            out = dir.path().join("outbox"),
            model = root().join("models/yolox_nano.toml"),
        ),
    )
    .expect("config");
    let out = Command::new(bin)
        .args(["run", "--seconds", "30", "--config"])
        .arg(&config)
        .env(
            "ORT_DYLIB_PATH",
            root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        )
        .output()
        .expect("run");
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let events_dir = dir.path().join("outbox/events");
    let names: Vec<String> = std::fs::read_dir(&events_dir)
        .expect("events dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let starts = names.iter().filter(|n| n.ends_with("-start.json")).count();
    let ends: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with("-end.json"))
        .cloned()
        .collect();
    // People walk through all the time: there are events, but one per person, not per
    // frame (30 s at 5 fps is 150 analysed frames).
    assert!(starts >= 2, "only {starts} events in 30 s of pedestrians");
    assert!(starts <= 30, "{starts} events in 30 s is not calm");
    // Every started event was ended (on shutdown at the latest).
    assert_eq!(starts, ends.len(), "{names:?}");

    // Every clip verifies under the agent's key; seqs are 1..=n without gaps; every
    // ended event is in some clip's manifest.
    let pubkey = vigil_evidence::keys::SigningKey::load(&key)
        .expect("key")
        .public_key();
    let mut seqs = Vec::new();
    let mut clip_events = HashSet::new();
    for entry in std::fs::read_dir(dir.path().join("outbox/clips")).expect("clips") {
        let path = entry.expect("entry").path();
        let report = verify_path(&path, std::slice::from_ref(&pubkey)).expect("verify");
        assert_eq!(report.verdict, Verdict::Ok, "{}", report.to_human());
        let clip = vigil_evidence::clipdir::read_clip_dir(&path).expect("clip dir");
        let m = clip.manifest.record();
        seqs.push(m.seq);
        let model = m.model.as_ref().expect("manifest names the detector model");
        assert_eq!(model.name, "yolox_nano");
        assert_eq!(
            model.sha256.to_hex(),
            "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd"
        );
        clip_events.extend(m.events.iter().map(|e| e.id.clone()));
    }
    seqs.sort_unstable();
    assert!(!seqs.is_empty());
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for end in &ends {
        let text = std::fs::read_to_string(events_dir.join(end)).expect("event");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let id = v["event"]["id"].as_str().expect("id").to_string();
        assert!(clip_events.contains(&id), "event {id} has no clip");
    }
}
