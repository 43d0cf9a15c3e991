//! Running `vigil-agent` and `vigil-verify` one-shot commands.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::bins::{agent_bin, verify_bin};
use crate::process::{run, Finished};

/// `vigil-agent record --url URL --seconds S --out DIR --json [extra...]` within `timeout`.
pub fn record(
    url: &str,
    seconds: f64,
    out: &Path,
    extra: &[&str],
    timeout: Duration,
) -> Result<Finished> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.args([
        "record",
        "--url",
        url,
        "--seconds",
        &seconds.to_string(),
        "--json",
        "--out",
    ])
    .arg(out)
    .args(extra);
    run("vigil-agent record", cmd, timeout)
}

/// The `--json` summary line of a successful record.
pub fn summary(out: &Finished) -> Result<Value> {
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| {
            format!(
                "record printed no JSON summary; stdout:\n{}\nstderr:\n{}",
                out.stdout, out.stderr
            )
        })?;
    serde_json::from_str(line).with_context(|| format!("bad summary {line:?}"))
}

/// `vigil-agent keygen --key PATH`; returns the public key PEM it printed.
pub fn keygen(key: &Path) -> Result<String> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.arg("keygen").arg("--key").arg(key);
    let out = run("vigil-agent keygen", cmd, Duration::from_secs(20))?.ok()?;
    let start = out
        .stdout
        .find("-----BEGIN")
        .with_context(|| format!("keygen printed no PEM: {}", out.stdout))?;
    Ok(out.stdout[start..].to_string())
}

/// `vigil-verify PATH --trust PEM --json`.
pub fn verify(path: &Path, trust: &Path) -> Result<Finished> {
    let mut cmd = Command::new(verify_bin()?);
    cmd.arg(path).arg("--trust").arg(trust).arg("--json");
    run("vigil-verify", cmd, Duration::from_secs(20))
}
