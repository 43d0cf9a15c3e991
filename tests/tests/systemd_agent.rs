//! `Type=notify` for the agent: started the way systemd starts it (`NOTIFY_SOCKET`,
//! `WATCHDOG_USEC`), `vigil-agent run` says READY=1 once its cameras run, pings the
//! watchdog from its event loop, and says STOPPING=1 on SIGTERM before exiting 0.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;
use vigil_tests::{agent, agent_bin, sample, workspace_root, Camsim, Proc};

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
fn agent_notifies_systemd_ready_watchdog_and_stopping() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let key = dir.path().join("agent.key");
    agent::keygen(&key)?;
    let root = workspace_root();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n[[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\n",
            chain = dir.path().join("chain"),
            outbox = dir.path().join("outbox"),
            model = root.join("models/yolox_nano.toml"),
            cam = camsim.url(),
        ),
    )?;
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "3000000")
        .env(
            "ORT_DYLIB_PATH",
            root.join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    let mut agent = Proc::spawn("vigil-agent run", cmd)?;
    let mut seen = String::new();
    let ready = wait_for(&sock, "READY=1", Duration::from_secs(30), &mut seen);
    let before = seen.matches("WATCHDOG=1").count();
    // Two pings at least: the loop keeps pinging, not just once at start.
    let pinged = ready && {
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.matches("WATCHDOG=1").count() < before + 2 && Instant::now() < deadline {
            wait_for(&sock, "\u{0}", Duration::from_millis(300), &mut seen);
        }
        seen.matches("WATCHDOG=1").count() >= before + 2
    };
    agent.signal(Signal::SIGTERM)?;
    let stopping = wait_for(&sock, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let status = agent.wait_timeout(Duration::from_secs(20))?;
    assert!(ready, "no READY=1; got {seen:?}\n{}", agent.stderr());
    assert!(seen.contains("STATUS=1 camera(s)"), "{seen:?}");
    assert!(
        pinged,
        "fewer than 2 watchdog pings in 5 s of a 3 s watchdog: {seen:?}"
    );
    assert!(stopping, "no STOPPING=1 on SIGTERM: {seen:?}");
    assert!(
        status.is_some_and(|s| s.success()),
        "agent exit: {status:?}\n{}",
        agent.stderr()
    );
    Ok(())
}
