//! `vigil-agent camsim` as a test camera on a port the OS picks.

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bins::agent_bin;
use crate::process::Proc;

/// How long camsim may take to print its URL (it demuxes the whole file first).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running sample camera; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Camsim {
    proc: Proc,
    url: String,
    port: u16,
}

impl Camsim {
    /// Serve `file` at `/cam1` on a free port.
    pub fn start(file: &Path) -> Result<Camsim> {
        Self::start_on(file, 0, "/cam1")
    }

    /// Serve `file` at `path` on `port` (0 = let camsim pick).
    pub fn start_on(file: &Path, port: u16, path: &str) -> Result<Camsim> {
        let mut cmd = Command::new(agent_bin()?);
        cmd.arg("camsim").arg("--file").arg(file).args([
            "--port",
            &port.to_string(),
            "--path",
            path,
        ]);
        let mut proc = Proc::spawn("camsim", cmd)?;
        let line = proc.next_line(START_TIMEOUT)?;
        let Some(url) = line.strip_prefix("camsim: serving ") else {
            bail!(
                "camsim printed {line:?}, not its URL; stderr:\n{}",
                proc.stderr()
            );
        };
        let url = url.trim().to_string();
        let port = url
            .strip_prefix("rtsp://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|hostport| hostport.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .with_context(|| format!("no port in camsim URL {url:?}"))?;
        Ok(Camsim { proc, url, port })
    }

    /// `rtsp://127.0.0.1:PORT/cam1`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The RTSP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Same server, another mount path (for 404 tests).
    pub fn url_with_path(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, path)
    }

    /// Stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    /// SIGTERM and wait up to `grace`; the status, and whether SIGKILL was needed.
    pub fn stop(&mut self, grace: Duration) -> Result<(ExitStatus, bool)> {
        self.proc.terminate(grace)
    }
}
