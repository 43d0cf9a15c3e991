//! `--log-format json`: every log line of a running hub is one JSON object with a
//! level, a timestamp and the message, for log shippers; text stays the default.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn json_log_format_gives_one_object_per_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[broker.embedded]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
            tmp.path().join("data")
        ),
    )
    .expect("config");
    let mut hub = Command::new(env!("CARGO_BIN_EXE_vigil-hub"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vigil-hub starts");
    let out = hub.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("web listening on"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "hub never said it listens: {lines:?}");
        if let Ok(l) = rx.recv_timeout(left) {
            lines.push(l);
        }
    }
    let _ = hub.kill();
    let _ = hub.wait();
    // Every stdout line is a log object (nothing printed around the logger).
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        assert!(v["fields"]["message"].is_string(), "{l}");
    }
}
