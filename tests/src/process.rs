//! Child processes with captured output, bounded waits and stop-on-drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::wait::wait_for;

/// How long a process gets between SIGTERM and SIGKILL when dropped.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// A running child; its stdout lines and stderr are collected by reader threads.
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Reader threads still running (pipes open).
    readers: Arc<AtomicUsize>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawn `cmd` with stdin closed and stdout/stderr captured.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        let readers = Arc::new(AtomicUsize::new(2));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            let (buf, done) = (stdout.clone(), readers.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(out);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&text);
                    }
                    let _ = tx.send(text.trim_end().to_string());
                    line.clear();
                }
                done.fetch_sub(1, Ordering::SeqCst);
            });
        }
        if let Some(mut err) = child.stderr.take() {
            let (buf, done) = (stderr.clone(), readers.clone());
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut b) = buf.lock() {
                        b.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    }
                }
                done.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            lines,
            stdout,
            stderr,
            readers,
            status: None,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Next stdout line, or an error (with stderr so far) after `timeout` or at EOF.
    pub fn next_line(&mut self, timeout: Duration) -> Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!(
                "{}: no stdout line within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait_timeout(Duration::from_secs(2)).ok().flatten();
                bail!(
                    "{}: stdout closed ({status:?}); stderr:\n{}",
                    self.name,
                    self.stderr()
                )
            }
        }
    }

    /// Stdout collected so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stderr collected so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Exit status if the child has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("cannot wait for {}", self.name))?;
        }
        Ok(self.status)
    }

    /// Wait up to `timeout` for the child to exit (then for its output to drain).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let what = format!("{} to exit", self.name);
        let status = match wait_for(timeout, &what, || self.try_status().ok().flatten()) {
            Ok(status) => status,
            Err(_) => return Ok(None),
        };
        // Output drains shortly after exit unless a grandchild still holds the pipes.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let readers = self.readers.clone();
        let _ = wait_for(left, "output to drain", || {
            (readers.load(Ordering::SeqCst) == 0).then_some(())
        });
        Ok(Some(status))
    }

    /// Send `signal` to the child (no-op once it has exited).
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.try_status()?.is_some() {
            return Ok(());
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).context("pid out of range")?);
        kill(pid, signal).with_context(|| format!("cannot send {signal} to {}", self.name))
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status and
    /// whether SIGKILL was needed.
    pub fn terminate(&mut self, grace: Duration) -> Result<(ExitStatus, bool)> {
        self.signal(Signal::SIGTERM)?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok((status, false));
        }
        self.signal(Signal::SIGKILL)?;
        let status = self
            .wait_timeout(Duration::from_secs(5))?
            .with_context(|| format!("{} survived SIGKILL", self.name))?;
        Ok((status, true))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.try_status() {
            let _ = self.terminate(DROP_GRACE);
        }
    }
}

/// A finished command's status and output.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// Fail with the command's output unless it exited 0.
    pub fn ok(self) -> Result<Finished> {
        if !self.status.success() {
            bail!(
                "exited with {}\nstdout:\n{}\nstderr:\n{}",
                self.status,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Run `cmd` to completion within `timeout` (killed and reported if it takes longer).
pub fn run(name: &str, cmd: Command, timeout: Duration) -> Result<Finished> {
    let started = Instant::now();
    let mut proc = Proc::spawn(name, cmd)?;
    match proc.wait_timeout(timeout)? {
        Some(status) => Ok(Finished {
            status,
            stdout: proc.stdout(),
            stderr: proc.stderr(),
            elapsed: started.elapsed(),
        }),
        None => {
            let _ = proc.terminate(Duration::from_secs(2));
            bail!(
                "{name} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                proc.stdout(),
                proc.stderr()
            )
        }
    }
}
