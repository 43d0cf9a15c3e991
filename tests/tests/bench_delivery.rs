//! The delivery benchmark harness (`bench/delivery.sh`, part of `make bench`) in its
//! quick mode, so it cannot rot: it must run end to end on the built binaries and
//! print both tables with real figures (every clip stored at the hub, events indexed).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::{agent_bin, workspace_root};

#[test]
fn delivery_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let work = tempfile::tempdir()?;
    let bin = agent_bin()?
        .parent()
        .context("binary directory")?
        .to_path_buf();
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("bench/delivery.sh"))
        .env("BIN", &bin)
        .env("QUICK", "1")
        .env("RUNS", "1")
        .env("WORK", work.path());
    let out = vigil_tests::run("bench/delivery.sh", cmd, Duration::from_secs(150))?.ok()?;
    let md = out.stdout;
    let row = |prefix: &str| -> Result<Vec<String>> {
        let line = md
            .lines()
            .find(|l| l.starts_with(prefix))
            .with_context(|| format!("no row {prefix:?} in:\n{md}"))?;
        Ok(line.split('|').map(|c| c.trim().to_string()).collect())
    };
    let raw = row("| raw broker")?;
    let hub = row("| `vigil-agent deliver`")?;
    let mbs = |r: &[String]| {
        r[3].parse::<f64>()
            .with_context(|| format!("MB/s in {r:?}"))
    };
    assert!(mbs(&raw)? > 0.0 && mbs(&hub)? > 0.0, "{md}");
    let ratio: f64 = hub[5]
        .parse()
        .with_context(|| format!("ratio in {hub:?}"))?;
    assert!(ratio > 0.0, "{md}");
    let latency = row("| event message")?;
    let n: u32 = latency[2].parse()?;
    let (p50, p95): (f64, f64) = (latency[3].parse()?, latency[4].parse()?);
    assert!(n >= 1 && p50 > 0.0 && p95 >= p50, "{latency:?}");
    let start = row("| event start")?;
    let n: u32 = start[2].parse()?;
    assert!(n >= 1 && start[3].parse::<f64>()? > 0.0, "{start:?}");
    Ok(())
}
