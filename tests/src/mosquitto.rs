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
    tls: bool,
    _dir: TempDir,
}

/// Server certificate files for a TLS listener (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA that signed `cert` (also used to verify client certificates when given).
    pub ca: PathBuf,
    /// Server certificate.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
}

/// How to run the broker beyond the defaults (anonymous, plain TCP).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// TLS listener with these files instead of plain TCP.
    pub tls: Option<TlsFiles>,
    /// Users for a `password_file` (made with `mosquitto_passwd`); when any is
    /// given, anonymous access is refused.
    pub users: Vec<(String, String)>,
}

impl Mosquitto {
    /// Start a broker with anonymous access and no persistence on a free port.
    pub fn start() -> Result<Mosquitto> {
        Mosquitto::start_on(free_port()?)
    }

    /// Start on a given port (to bring a broker back where clients expect it).
    pub fn start_on(port: u16) -> Result<Mosquitto> {
        Mosquitto::start_with(port, &Options::default())
    }

    /// Start on `port` with TLS and/or a password file.
    pub fn start_with(port: u16, options: &Options) -> Result<Mosquitto> {
        let dir = tempfile::tempdir().context("cannot create a temp dir for mosquitto")?;
        let conf = dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\npersistence false\n\
             log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
        );
        // Started as root, mosquitto drops to user `mosquitto`, which cannot read our
        // 0700 temp dir (keys, password file): stay as the user we are.
        // SAFETY: geteuid has no preconditions and touches no memory.
        if unsafe { libc::geteuid() } == 0 {
            text.push_str("user root\n");
        }
        if let Some(t) = &options.tls {
            text.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
        }
        if options.users.is_empty() {
            text.push_str("allow_anonymous true\n");
        } else {
            let passwords = dir.path().join("passwords");
            for (i, (user, password)) in options.users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                if i == 0 {
                    cmd.arg("-c");
                }
                cmd.arg("-b").arg(&passwords).arg(user).arg(password);
                crate::process::run("mosquitto_passwd", cmd, Duration::from_secs(10))?.ok()?;
            }
            text.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                passwords.display()
            ));
        }
        std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
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
            tls: options.tls.is_some(),
            _dir: dir,
        })
    }

    /// The broker's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT` (`mqtts://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }
}
