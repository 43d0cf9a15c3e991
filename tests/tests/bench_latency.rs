//! The event-latency benchmark (`bench/latency.sh`, part of `make bench`) in its quick
//! mode, so it cannot rot: camsim with a frame log → agent → hub (embedded broker) → a
//! logged-in client on the live feed; the table must carry a measured latency for at
//! least one burst, and its parts must add up to the whole.

use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::bench::{row, run_quick};

#[test]
fn latency_benchmark_quick_mode_measures_camsim_to_live_feed() -> Result<()> {
    let md = run_quick("latency.sh", &[], Duration::from_secs(150))?;
    let num = |r: &[String], i: usize| -> Result<f64> {
        r.get(i)
            .with_context(|| format!("column {i} in {r:?}"))?
            .parse::<f64>()
            .with_context(|| format!("column {i} in {r:?}"))
    };
    let total = row(&md, "| **camsim send")?;
    assert!(num(&total, 2)? >= 1.0, "no burst measured:\n{md}");
    let p50 = num(&total, 3)?;
    assert!(p50 > 0.0 && num(&total, 4)? >= p50, "{total:?}");
    let mut parts = 0.0;
    for name in [
        "| … camsim send",
        "| … first sighting",
        "| … spooled",
        "| … indexed",
    ] {
        let r = row(&md, name)?;
        assert_eq!(
            num(&r, 2)?,
            num(&total, 2)?,
            "every burst has its parts: {r:?}"
        );
        parts += num(&r, 3)?;
    }
    // Medians of parts need not sum exactly to the median of the whole, but with one or
    // two bursts they are within a few ms of it; a broken pairing is off by seconds.
    assert!(
        (parts - p50).abs() < 100.0,
        "parts {parts} ms vs whole {p50} ms:\n{md}"
    );
    Ok(())
}
