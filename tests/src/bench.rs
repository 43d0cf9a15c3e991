//! Running a `bench/` script in its quick mode and reading its Markdown tables, for the
//! tests that keep the benchmark harness from rotting.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{agent_bin, workspace_root};

/// Runs `bench/<script>` with QUICK=1, RUNS=1, the built binaries and a temp WORK dir,
/// plus `env`; returns its stdout (the Markdown section) or fails with its output.
pub fn run_quick(script: &str, env: &[(&str, &str)], timeout: Duration) -> Result<String> {
    let work = tempfile::tempdir()?;
    let bin = agent_bin()?
        .parent()
        .context("binary directory")?
        .to_path_buf();
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("bench").join(script))
        .env("BIN", &bin)
        .env("QUICK", "1")
        .env("RUNS", "1")
        .env("WORK", work.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(crate::run(script, cmd, timeout)?.ok()?.stdout)
}

/// The cells of the first table row of `md` that starts with `prefix`.
pub fn row(md: &str, prefix: &str) -> Result<Vec<String>> {
    let line = md
        .lines()
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no row {prefix:?} in:\n{md}"))?;
    Ok(line.split('|').map(|c| c.trim().to_string()).collect())
}
