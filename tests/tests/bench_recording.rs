//! The recording benchmark harness (`bench/recording.sh`, part of `make bench`) in its
//! quick mode, so it cannot rot: agent CPU and writes with recording on and off, piece
//! manifests at the hub, and a window pulled through the web API, with real figures.

use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::bench::{row, run_quick};

#[test]
fn recording_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let md = run_quick("recording.sh", &[], Duration::from_secs(240))?;
    let num = |cell: &str| -> Result<f64> {
        cell.trim_matches('*')
            .split_whitespace()
            .next()
            .map(|v| v.trim_matches('*'))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("a number in {cell:?} of:\n{md}"))
    };
    let off = row(&md, "| record = false")?;
    let on = row(&md, "| **record = true**")?;
    assert!(num(&off[2])? > 0.0 && num(&on[2])? > 0.0, "{md}");
    // Recording writes: the journal and the pieces reach the file system.
    assert!(num(&on[4])? > num(&off[4])?, "{on:?} vs {off:?}");
    assert!(num(&on[6])? > 0.0, "{on:?}");
    let manifests = row(&md, "| **signed piece manifests at the hub**")?;
    assert!(num(&manifests[2])? > 100.0, "{manifests:?}");
    let video = row(&md, "| video on the box (baseline)")?;
    assert!(num(&video[2])? > num(&manifests[2])?, "{video:?}");
    let first = row(&md, "| pull → the window's first piece")?;
    let all = row(&md, "| pull → every piece fetched")?;
    assert!(num(&first[2])? > 0.0, "{first:?}");
    assert!(num(&all[2])? >= num(&first[2])?, "{all:?} {first:?}");
    assert!(num(&all[3])? > 0.0, "{all:?}");
    Ok(())
}
