//! `Type=notify`: a real `vigil-hub run` started the way systemd starts it
//! (`NOTIFY_SOCKET`, `WATCHDOG_USEC`) tells the service manager READY=1, pings the
//! watchdog while its ingest loop runs, and says STOPPING=1 on SIGTERM before exiting 0.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Collects datagrams until one contains `want` or the deadline passes.
fn wait_for(sock: &UnixDatagram, want: &str, timeout: Duration, seen: &mut String) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains(want) {
                return true;
            }
        }
    }
    false
}

#[test]
fn hub_notifies_systemd_ready_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
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
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "3000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vigil-hub starts");
    let mut seen = String::new();
    let ready = wait_for(&sock, "READY=1", Duration::from_secs(30), &mut seen);
    let pinged = ready && wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5), &mut seen);
    // As systemd stops a unit: SIGTERM.
    let _ = Command::new("kill")
        .args(["-TERM", &hub.id().to_string()])
        .status();
    let stopping = wait_for(&sock, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = hub.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = hub.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(ready, "no READY=1; got {seen:?}");
    assert!(seen.contains("STATUS=web on 127.0.0.1:"), "{seen:?}");
    assert!(
        pinged,
        "no watchdog ping within 5 s of a 3 s watchdog; got {seen:?}"
    );
    assert!(stopping, "no STOPPING=1 on SIGTERM; got {seen:?}");
    assert!(
        status.is_some_and(|s| s.success()),
        "hub did not exit 0 after SIGTERM: {status:?}"
    );
}
