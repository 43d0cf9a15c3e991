//! systemd integration (`Type=notify`): `READY=1` once the broker, the ingest and the
//! web page are up, `STOPPING=1` on shutdown, and watchdog pings only while the
//! ingest loop makes progress. The loop calls [`beat`] after every broker event (the
//! MQTT keep-alive guarantees one at least every 15 s while connected, reconnect
//! attempts do while not); if the ingest wedges, its queue fills, the loop stops
//! beating and systemd restarts the hub after `WatchdogSec`.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every call is a no-op.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

static START: OnceLock<Instant> = OnceLock::new();
static LAST_BEAT_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The main loop made progress.
pub fn beat() {
    LAST_BEAT_MS.store(now_ms(), Ordering::Relaxed);
}

/// Time since the last [`beat`].
pub fn since_beat() -> Duration {
    Duration::from_millis(now_ms().saturating_sub(LAST_BEAT_MS.load(Ordering::Relaxed)))
}

/// Tells systemd the service is up, with a one-line status.
pub fn ready(status: &str) {
    beat();
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "Cannot notify systemd (READY=1)");
    }
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Pings the systemd watchdog at a third of `WatchdogSec` while the main loop beat
/// within the last half of it. Returns at once when no watchdog is configured.
pub async fn watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(period / 3);
    loop {
        tick.tick().await;
        if since_beat() < period / 2 {
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "Cannot ping the systemd watchdog");
            }
        } else {
            tracing::error!(
                silent_ms = since_beat().as_millis() as u64,
                "The ingest loop made no progress; withholding the watchdog ping"
            );
        }
    }
}
