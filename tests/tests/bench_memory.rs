//! The memory benchmark (`bench/memory.sh`, part of `make bench`) in its quick mode, so
//! it cannot rot: agents with 1 and 2 cameras sampled from /proc, and a hub ingesting
//! an `outbox-fill` outbox through the embedded broker (the script itself fails unless
//! every clip and event is in the hub's SQLite afterwards).

use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::bench::{row, run_quick};

#[test]
fn memory_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let md = run_quick("memory.sh", &[], Duration::from_secs(150))?;
    let num = |r: &[String], i: usize| -> Result<f64> {
        r.get(i)
            .with_context(|| format!("column {i} in {r:?}"))?
            .parse::<f64>()
            .with_context(|| format!("column {i} in {r:?}"))
    };
    for cameras in ["| 1 |", "| 2 |"] {
        let r = row(&md, cameras)?;
        let (baseline, end) = (num(&r, 3)?, num(&r, 5)?);
        assert!(
            baseline > 10.0 && end > 10.0,
            "an agent's RSS is tens of MiB: {r:?}"
        );
        assert!(num(&r, 8)? > 0.0, "{r:?}");
    }
    let first = |r: &[String], i: usize| -> Result<f64> {
        r.get(i)
            .and_then(|c| c.split_whitespace().next())
            .with_context(|| format!("column {i} in {r:?}"))?
            .parse::<f64>()
            .with_context(|| format!("column {i} in {r:?}"))
    };
    for broker in ["| embedded", "| Mosquitto"] {
        let r = row(&md, broker)?;
        let (idle, peak, after) = (first(&r, 2)?, first(&r, 3)?, first(&r, 4)?);
        assert!(idle > 1.0, "{r:?}");
        assert!(peak >= idle && after > 1.0, "{r:?}");
        assert!(first(&r, 5)? > 0.0, "deliver took some time: {r:?}");
    }
    assert!(md.contains("10 clips and 100 event messages"), "{md}");
    Ok(())
}
