//! The delivery benchmark harness (`bench/delivery.sh`, part of `make bench`) in its
//! quick mode, so it cannot rot: it must run end to end on the built binaries and
//! print both tables with real figures (every clip stored at the hub, events indexed).

use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::bench::{row, run_quick};

#[test]
fn delivery_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let md = run_quick("delivery.sh", &[], Duration::from_secs(150))?;
    let raw = row(&md, "| raw broker")?;
    let hub = row(&md, "| `vigil-agent deliver`")?;
    let mbs = |r: &[String]| {
        r[3].parse::<f64>()
            .with_context(|| format!("MB/s in {r:?}"))
    };
    assert!(mbs(&raw)? > 0.0 && mbs(&hub)? > 0.0, "{md}");
    let ratio: f64 = hub[5]
        .parse()
        .with_context(|| format!("ratio in {hub:?}"))?;
    assert!(ratio > 0.0, "{md}");
    let latency = row(&md, "| event message")?;
    let n: u32 = latency[2].parse()?;
    let (p50, p95): (f64, f64) = (latency[3].parse()?, latency[4].parse()?);
    assert!(n >= 1 && p50 > 0.0 && p95 >= p50, "{latency:?}");
    let start = row(&md, "| event start")?;
    let n: u32 = start[2].parse()?;
    assert!(n >= 1 && start[3].parse::<f64>()? > 0.0, "{start:?}");
    Ok(())
}
