//! A private Mosquitto broker with its own temp config (never the system one).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::net::{free_port, wait_for_tcp};
use crate::process::Proc;

/// Where Debian installs the broker.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A running broker on 127.0.0.1; stopped on drop.
pub struct Mosquitto {
    proc: Proc,
    port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    /// Start a broker with anonymous access and no persistence on a free port.
    pub fn start() -> Result<Mosquitto> {
        Mosquitto::start_on(free_port()?)
    }

    /// Start on a given port (to bring a broker back where clients expect it).
    pub fn start_on(port: u16) -> Result<Mosquitto> {
        let dir = tempfile::tempdir().context("cannot create a temp dir for mosquitto")?;
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )
        .with_context(|| format!("cannot write {}", conf.display()))?;
        let bin = std::env::var_os("VIGIL_MOSQUITTO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(MOSQUITTO));
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(&conf);
        let mut proc = Proc::spawn("mosquitto", cmd)?;
        if let Err(e) = wait_for_tcp(port, Duration::from_secs(10)) {
            let status = proc.try_status().ok().flatten();
            return Err(e.context(format!(
                "mosquitto ({status:?}) not accepting on {port}; stderr:\n{}",
                proc.stderr()
            )));
        }
        Ok(Mosquitto {
            proc,
            port,
            _dir: dir,
        })
    }

    /// The broker's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }
}
