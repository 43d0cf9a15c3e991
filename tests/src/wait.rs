//! Waiting on conditions with deadlines (never a blind sleep).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Poll `cond` until it holds; fail naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    wait_for(timeout, what, || cond().then_some(())).map(|_| ())
}

/// Poll `probe` until it yields a value; fail naming `what` after `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}
