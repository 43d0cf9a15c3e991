//! Where the workspace, its binaries and the sample footage are.
//!
//! `CARGO_BIN_EXE_*` only exists for binaries of the test's own package, so the harness
//! builds `vigil-agent` and `vigil-verify` itself, once per test process, with the same
//! cargo that runs the tests (cargo's own lock serialises concurrent builds; an
//! up-to-date build is a no-op). `VIGIL_TESTS_NO_BUILD=1` skips that step and uses
//! whatever is in the target dir (for runs where `make test` built the binaries first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

/// Root of the Cargo workspace (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Cargo's target dir (`CARGO_TARGET_DIR` when set, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Build the agent and verifier binaries once per process.
pub fn ensure_built() -> Result<()> {
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build() -> Result<()> {
    if std::env::var_os("VIGIL_TESTS_NO_BUILD").is_some_and(|v| v == "1") {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "-q",
            "-p",
            "vigil-agent",
            "-p",
            "vigil-evidence",
            "-p",
            "vigil-hub",
            "--bins",
        ])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cargo:?} build"))?;
    if !out.status.success() {
        bail!(
            "cargo build of vigil-agent/vigil-evidence failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn bin(name: &str) -> Result<PathBuf> {
    ensure_built()?;
    let path = target_dir().join("debug").join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// Path to `vigil-agent`, built if needed.
pub fn agent_bin() -> Result<PathBuf> {
    bin("vigil-agent")
}

/// Path to `vigil-hub`, built if needed.
pub fn hub_bin() -> Result<PathBuf> {
    bin("vigil-hub")
}

/// Path to `vigil-verify`, built if needed.
pub fn verify_bin() -> Result<PathBuf> {
    bin("vigil-verify")
}

/// A sample file made by `make setup` (`target/samples/NAME`).
pub fn sample(name: &str) -> Result<PathBuf> {
    let path = workspace_root().join("target/samples").join(name);
    if !path.is_file() {
        bail!("sample {} is missing: run `make setup`", path.display());
    }
    Ok(path)
}
