//! The capacity benchmark harness (`bench/capacity.sh`, part of `make bench`) in its
//! quick mode, so it cannot rot: cost per camera against the physical limit for both
//! sample cameras, and the cameras-per-box search, with real figures.

use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::bench::{row, run_quick};

#[test]
fn capacity_benchmark_quick_mode_prints_real_figures() -> Result<()> {
    let md = run_quick("capacity.sh", &[], Duration::from_secs(170))?;
    for camera in ["| 1080p15 |", "| 768x576@10 |"] {
        let cells = row(&md, camera)?;
        // The bare model, timed next to the agent runs: "median (min–max)" ms per inference.
        let bare: f64 = cells[4]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("bare model ms in {cells:?}"))?;
        assert!(bare > 0.5 && bare < 1000.0, "bare model {bare} ms: {md}");
        // Ratios: whole run, steady state (to the 1-thread limit, per run), steady state to
        // default ffmpeg, steady state to the back-to-back model.
        for col in [8, 10, 11, 12] {
            let ratio: f64 = cells[col]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("ratio in column {col} of {cells:?}"))?;
            assert!(ratio > 0.0, "{md}");
        }
    }
    // The search measured at least the first N: all cameras streamed, figures present.
    let first = row(&md, "| 2 |")?;
    let fps_ratio: f64 = first[2].parse().with_context(|| format!("{first:?}"))?;
    assert!(fps_ratio > 0.5, "{md}");
    let age: f64 = first[3].parse().with_context(|| format!("{first:?}"))?;
    assert!(age.is_finite() && age > 0.0, "no result age: {md}");
    assert!(md.contains("Largest N that passed"), "{md}");
    Ok(())
}
