//! `vigil-agent doctor` against a real camsim, a real key and the real model.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil-agent")
}

/// A camsim process, killed on drop.
struct Sim {
    child: Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn camsim() -> Sim {
    let mut child = Command::new(bin())
        .args(["camsim", "--port", "0", "--path", "/cam1", "--file"])
        .arg(root().join("target/samples/vtest.mp4"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("camsim");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    assert!(line.contains("serving rtsp://"), "camsim said {line:?}");
    let url = line.split_whitespace().last().expect("url").to_string();
    Sim { child, url }
}

fn keygen(key: &Path) {
    let status = Command::new(bin())
        .args(["keygen", "--key"])
        .arg(key)
        .stdout(Stdio::null())
        .status()
        .expect("keygen");
    assert!(status.success());
}

fn write_config(dir: &Path, key: &Path, cameras: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {out:?}\n\
         [detect]\nmodel = {model:?}\n",
        chain = dir.join("chain"),
        out = dir.join("outbox"),
        model = root().join("models/yolox_nano.toml"),
    );
    for (id, url) in cameras {
        text.push_str(&format!("[[cameras]]\nid = \"{id}\"\nurl = \"{url}\"\n"));
    }
    let config = dir.join("agent.toml");
    std::fs::write(&config, text).expect("config");
    config
}

fn doctor(config: &Path, json: bool) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(["doctor", "--camera-timeout-seconds", "10", "--config"])
        .arg(config)
        .env(
            "ORT_DYLIB_PATH",
            root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("doctor")
}

fn checks(out: &Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<serde_json::Value>(&stdout) {
        Ok(serde_json::Value::Array(a)) => a,
        other => panic!("doctor --json printed {other:?}: {stdout}"),
    }
}

fn find<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:?}"))
}

#[test]
fn doctor_passes_on_a_healthy_box() {
    let sim = camsim();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("agent.key");
    keygen(&key);
    let config = write_config(dir.path(), &key, &[("cam1", &sim.url)]);

    let text = doctor(&config, false);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(0), "doctor said:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("OK")), "{stdout}");

    let out = doctor(&config, true);
    assert_eq!(out.status.code(), Some(0));
    let checks = checks(&out);
    for c in &checks {
        assert_ne!(c["status"], "FAIL", "{c}");
    }
    let cam = find(&checks, "camera cam1");
    assert_eq!(cam["status"], "OK");
    let detail = cam["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("h264 768x576"), "{detail}");
    assert!(detail.contains("key frame received"), "{detail}");
    let model = find(&checks, "model");
    assert_eq!(model["status"], "OK");
    assert!(
        model["detail"].as_str().unwrap_or_default().contains(" ms"),
        "{model}"
    );
    assert_eq!(find(&checks, "signing key")["status"], "OK");
    assert_eq!(find(&checks, "outbox")["status"], "OK");
    assert_eq!(find(&checks, "config")["status"], "OK");
}

#[test]
fn doctor_names_a_refused_camera_and_a_readable_key_with_fixes() {
    use std::os::unix::fs::PermissionsExt;
    let sim = camsim();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("agent.key");
    keygen(&key);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // A port nobody listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dead = format!("rtsp://user:s3cret@127.0.0.1:{port}/cam2");
    let config = write_config(dir.path(), &key, &[("cam1", &sim.url), ("cam2", &dead)]);

    let text = doctor(&config, false);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(1), "doctor said:\n{stdout}");
    assert!(!stdout.contains("s3cret"), "password leaked:\n{stdout}");
    let fail_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fail_lines.iter().any(|l| l.contains("camera cam2")),
        "{stdout}"
    );
    assert!(
        fail_lines.iter().any(|l| l.contains("signing key")),
        "{stdout}"
    );

    let out = doctor(&config, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
    let checks = checks(&out);
    let cam2 = find(&checks, "camera cam2");
    assert_eq!(cam2["status"], "FAIL");
    let detail = cam2["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("refused"), "{detail}");
    assert!(detail.contains("***@127.0.0.1"), "{detail}");
    assert!(cam2["fix"].as_str().is_some_and(|f| !f.is_empty()));
    let key_check = find(&checks, "signing key");
    assert_eq!(key_check["status"], "FAIL");
    assert!(
        key_check["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("chmod 600"),
        "{key_check}"
    );
    assert_eq!(find(&checks, "camera cam1")["status"], "OK");
}
