//! `vigil-hub check-config`: every problem at once with its key path, exit 2; a valid
//! file exits 0 with a one-line summary.

use std::process::Command;

const HUB: &str = env!("CARGO_BIN_EXE_vigil-hub");

fn check(text: &str) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hub.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(HUB)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn several_problems_are_reported_at_once_with_their_keys() {
    let (code, _, err) = check(
        r#"
[broker]
mode = "external"
[broker.external]
url = "htp://broker.lan"
password = "hunter2-secret"
password_file = "/nonexistent/pw"
[web]
listen = "localhost"
tls_key = "/nonexistent/key.pem"
camera_down_alert_seconds = 0
[ingest]
max_clip_bytes = 10
"#,
    );
    assert_eq!(code, 2, "{err}");
    for needle in [
        "broker.external.url: scheme \"htp\" is not mqtt:// or mqtts://",
        "broker.external.password: set only one of",
        "broker.external.username: is missing",
        "broker.external.password_file: file /nonexistent/pw does not exist",
        "web.listen:",
        "web.tls_cert: is missing",
        "web.tls_key: file /nonexistent/key.pem does not exist",
        "web.camera_down_alert_seconds:",
        "ingest.max_clip_bytes:",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    assert!(err.contains("9 problem(s)"), "{err}");
    assert!(!err.contains("hunter2"), "a secret was printed:\n{err}");
}

#[test]
fn unknown_key_and_bad_toml_exit_2_naming_the_key() {
    let (code, _, err) = check("[broker]\nmode = \"embedded\"\nlistne = \"0.0.0.0:1883\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("listne"), "{err}");
    let (code, _, err) = check("[ingest]\nmax_pending_per_agent = \"many\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("max_pending_per_agent"), "{err}");
}

#[test]
fn valid_config_exits_0_with_a_summary() {
    let (code, out, err) = check(
        "data_dir = \"/srv/vigil\"\n[broker.embedded]\nlisten = \"0.0.0.0:1883\"\n[ingest]\nmax_pending_per_agent = 4\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("OK") && out.contains("embedded broker on 0.0.0.0:1883"),
        "{out}"
    );
    let (code, out, _) = check("");
    assert_eq!(code, 0);
    assert!(out.contains("./vigil-data"), "{out}");
}

#[test]
fn example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hub.example.toml");
    let out = Command::new(HUB)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn agent_commands_take_the_data_dir_and_broker_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("hub.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[broker.embedded]\nlisten = \"127.0.0.1:18830\"\n",
            data.to_string_lossy()
        ),
    )
    .unwrap();
    let key = vigil_evidence::keys::SigningKey::generate(&tmp.path().join("a.key")).unwrap();
    let pem = tmp.path().join("a.pem");
    std::fs::write(&pem, key.public_key().to_pem()).unwrap();
    let hub = |args: &[&str]| {
        let out = Command::new(HUB)
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pem_s = pem.to_string_lossy().to_string();
    let out = hub(&["agent", "add", "box-1", "--public-key", &pem_s]);
    assert!(out.contains("broker = \"mqtt://127.0.0.1:18830\""), "{out}");
    assert!(out.contains("username = \"box-1\""), "{out}");
    assert!(data.join("index.sqlite").is_file());
    assert!(hub(&["agent", "list"]).contains("box-1\t"));
    hub(&["agent", "revoke", "box-1"]);
    let list = hub(&["agent", "list"]);
    assert!(list.contains("revoked"), "{list}");
}
