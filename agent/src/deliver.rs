//! `vigil-agent deliver`: hand what the outbox holds to the hub and exit, without
//! starting cameras or detection. For a box being decommissioned or moved (its evidence
//! must reach the hub first), after cameras were removed from the config, and for the
//! hub ingest benchmark. The same uplink as `run`: an entry leaves the outbox only on
//! the hub's `stored` ack (clips) or the broker's PubAck (events, records, drop reports).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::AgentConfig;
use crate::metrics::UplinkStats;
use crate::outbox::Outbox;

/// What `deliver` did.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverSummary {
    /// Entries in the outbox when it started.
    pub entries_at_start: u64,
    /// Their bytes.
    pub bytes_at_start: u64,
    /// Clips the hub acknowledged as stored.
    pub clips_stored: u64,
    /// Clips the hub rejected (moved to `outbox/rejected/`).
    pub clips_rejected: u64,
    /// Events, records and drop reports the broker acknowledged.
    pub messages_acked: u64,
    /// Entries still waiting (0 = everything delivered).
    pub entries_left: u64,
    /// From start to an empty outbox (or the timeout), ms.
    pub elapsed_ms: u64,
    /// From the first broker connection to an empty outbox, ms (null if never connected).
    pub connected_ms: Option<u64>,
}

/// Delivers until the outbox is empty, `timeout` passes or `shutdown` is set.
pub fn deliver(
    config: &AgentConfig,
    timeout: Duration,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<DeliverSummary> {
    let uplink = config.uplink.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "the config has no [uplink] table, so there is no hub to deliver to; add the \
                 [uplink] lines `vigil-hub agent add` printed (see config/agent.example.toml)"
        )
    })?;
    let outbox = Arc::new(Outbox::open(&config.outbox_dir, config.outbox.max_bytes)?);
    let start_stats = outbox.stats();
    let started = Instant::now();
    let stats = Arc::new(UplinkStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (agent_id, ob, st, stop) = (
            config.agent_id.clone(),
            outbox.clone(),
            stats.clone(),
            stop.clone(),
        );
        std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || crate::uplink::run(&agent_id, &uplink, ob, None, stop, st, None))?
    };
    let mut connected_at: Option<Instant> = None;
    let mut left = start_stats.entries;
    while started.elapsed() < timeout && !shutdown.load(Ordering::SeqCst) {
        if connected_at.is_none() && stats.connects.load(Ordering::Relaxed) > 0 {
            connected_at = Some(Instant::now());
        }
        left = outbox.stats().entries;
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    match thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "Uplink stopped"),
        Err(_) => tracing::error!("The uplink thread panicked"),
    }
    if left > 0 {
        left = outbox.stats().entries;
    }
    Ok(DeliverSummary {
        entries_at_start: start_stats.entries,
        bytes_at_start: start_stats.bytes,
        clips_stored: stats.clips_stored.load(Ordering::Relaxed),
        clips_rejected: stats.clips_rejected.load(Ordering::Relaxed),
        messages_acked: stats.messages_acked.load(Ordering::Relaxed),
        entries_left: left,
        elapsed_ms: elapsed.as_millis() as u64,
        connected_ms: connected_at
            .map(|t| (started + elapsed).saturating_duration_since(t).as_millis() as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_uplink_it_says_what_to_add_and_touches_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outbox = dir.path().join("outbox");
        let config: AgentConfig = toml::from_str(&format!(
            "agent_id = \"a1\"\noutbox_dir = {outbox:?}\n[[cameras]]\nid = \"cam1\"\nurl = \"rtsp://127.0.0.1:9/x\"\n"
        ))
        .expect("config parses");
        let err = deliver(
            &config,
            Duration::from_secs(1),
            Arc::new(AtomicBool::new(false)),
        )
        .expect_err("no uplink");
        assert!(err.to_string().contains("[uplink]"), "{err}");
        assert!(
            !outbox.exists(),
            "the outbox was created although nothing can be delivered"
        );
    }
}
