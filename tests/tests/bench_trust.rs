//! The trust-boundary benchmark harness (`bench/trust.sh`, part of `make bench`) in its
//! quick mode, so it cannot rot: clips delivered over plain MQTT and TLS, event round
//! trips on both, and idle sessions on both, with real figures in every cell.

use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::bench::{row, run_quick};

#[test]
fn trust_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let md = run_quick("trust.sh", &[], Duration::from_secs(240))?;
    let num = |cell: &str| -> Result<f64> {
        cell.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("a number in {cell:?} of:\n{md}"))
    };
    let clips = row(&md, "| clip delivery")?;
    assert!(num(&clips[2])? > 0.0 && num(&clips[3])? > 0.0, "{md}");
    for prefix in [
        "| event publish → hub's `stored` entry ack, p50",
        "| event publish → hub's `stored` entry ack, p95",
    ] {
        let r = row(&md, prefix)?;
        assert!(
            num(&r[2])? > 0.0 && num(&r[3])? > 0.0 && num(&r[4])? > 0.0,
            "{r:?}"
        );
    }
    let with = row(&md, "| hub RSS with")?;
    assert!(num(&with[2])? > 0.0 && num(&with[3])? > 0.0, "{with:?}");
    Ok(())
}
