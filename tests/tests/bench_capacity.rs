//! The capacity benchmark harness (`bench/capacity.sh`, part of `make bench`) in its
//! quick mode, so it cannot rot: cost per camera against the physical limit for both
//! sample cameras, and the cameras-per-box search, with real figures.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::{agent_bin, workspace_root};

#[test]
fn capacity_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let work = tempfile::tempdir()?;
    let bin = agent_bin()?
        .parent()
        .context("binary directory")?
        .to_path_buf();
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("bench/capacity.sh"))
        .env("BIN", &bin)
        .env("QUICK", "1")
        .env("RUNS", "1")
        .env("BARE_MS", "15")
        .env("WORK", work.path());
    let out = vigil_tests::run("bench/capacity.sh", cmd, Duration::from_secs(170))?.ok()?;
    let md = out.stdout;
    let cells = |prefix: &str| -> Result<Vec<String>> {
        let line = md
            .lines()
            .find(|l| l.starts_with(prefix))
            .with_context(|| format!("no row {prefix:?} in:\n{md}"))?;
        Ok(line.split('|').map(|c| c.trim().to_string()).collect())
    };
    for camera in ["| 1080p15 |", "| 768x576@10 |"] {
        let row = cells(camera)?;
        let ratio: f64 = row[6]
            .parse()
            .with_context(|| format!("ratio in {row:?}"))?;
        assert!(ratio > 0.0, "{md}");
    }
    // The search measured at least the first N: all cameras streamed, figures present.
    let first = cells("| 2 |")?;
    let fps_ratio: f64 = first[2].parse().with_context(|| format!("{first:?}"))?;
    assert!(fps_ratio > 0.5, "{md}");
    let age: f64 = first[3].parse().with_context(|| format!("{first:?}"))?;
    assert!(age.is_finite() && age > 0.0, "no result age: {md}");
    assert!(md.contains("Largest N that passed"), "{md}");
    Ok(())
}
