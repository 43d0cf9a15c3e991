//! `make demo` itself, headless and bounded: scripts/demo.sh with the debug binaries,
//! a free web port and a temp data dir, stopped after 45 s. The demo must show person
//! events at the hub, a web page that answers, and clips that `vigil-verify` accepts.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use vigil_tests::{ensure_built, free_port, workspace_root, Proc};

#[test]
fn make_demo_delivers_events_and_verified_clips() -> Result<()> {
    ensure_built()?;
    let root = workspace_root();
    let data = tempfile::tempdir()?;
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/demo.sh"))
        .env("VIGIL_BIN", vigil_tests::bins::target_dir().join("debug"))
        .env("DEMO_SECONDS", "45")
        .env("DEMO_WEB_PORT", free_port()?.to_string())
        .env("DEMO_DATA", data.path().join("demo"))
        .current_dir(&root);
    let mut demo = Proc::spawn("make demo (scripts/demo.sh)", cmd)?;
    let status = demo.wait_timeout(Duration::from_secs(150))?;
    let out = demo.stdout();
    let status =
        status.ok_or_else(|| anyhow::anyhow!("the demo did not stop by itself:\n{out}"))?;
    assert!(status.success(), "demo failed:\n{out}\n{}", demo.stderr());
    assert!(
        out.contains("log in as  demo / "),
        "no login printed:\n{out}"
    );
    assert!(out.contains("web page answered"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(" OK, ") && l.contains("not OK"))
        .unwrap_or_default();
    let ok: u32 = line
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        ok >= 1 && line.contains(", 0 not OK"),
        "clips: {line:?}\n{out}"
    );
    Ok(())
}
