//! 60 s of a seeded MQTT fuzzer (`vigil_tests::fuzz`) against the hub's embedded
//! broker — garbage, malformed remaining lengths, oversized packets, CONNECT floods,
//! mutated frames after a valid login, slow-loris and up to 1000 idle connections, from 240
//! loopback addresses — while a real agent (camsim → vigil-agent) delivers through the
//! same broker: the hub stays up, the agent keeps delivering during the fuzz and
//! afterwards, and the front counted what it refused.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vigil_tests::fuzz::{self, FuzzOptions};
use vigil_tests::stack::{enroll_embedded, spawn_embedded_hub, sql, EmbeddedEnrolment};
use vigil_tests::{free_port, http_get, metric, sample, wait_until, Camsim};

#[test]
fn a_minute_of_mqtt_fuzzing_neither_stops_the_hub_nor_starves_an_agent() -> Result<()> {
    let seed: u64 = std::env::var("VIGIL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261204);
    eprintln!("fuzz seed {seed} (VIGIL_TEST_SEED={seed} replays it)");
    let dir = tempfile::tempdir()?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let data = dir.path().join("hub");
    let (port, metrics) = (free_port()?, free_port()?);
    let url = format!("mqtt://127.0.0.1:{port}");
    let EmbeddedEnrolment { key, uplink, .. } = enroll_embedded(dir.path(), &data, "a1", &url)?;
    // The fuzzer's own enrolled login, for cases after a valid CONNECT.
    let fz_dir = dir.path().join("fz");
    std::fs::create_dir_all(&fz_dir)?;
    let fz = enroll_embedded(&fz_dir, &data, "fz", &url)?;
    let fz_password = fz
        .uplink
        .lines()
        .find_map(|l| l.strip_prefix("password = \""))
        .and_then(|l| l.strip_suffix('"'))
        .context("agent add printed a password")?
        .to_string();
    let hub_config = vigil_tests::stack::embedded_hub_config(
        dir.path(),
        &data,
        port,
        &format!("[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n"),
    )?;
    let mut hub = spawn_embedded_hub(&hub_config)?;
    let config = vigil_tests::stack::agent_config(dir.path(), &key, camsim.url(), &uplink)?;
    let mut agent = vigil_tests::stack::spawn_agent(&config, 100)?;
    let db = data.join("index.sqlite");
    let events = || -> u64 {
        sql(&db, "SELECT COUNT(*) FROM events")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    wait_until(Duration::from_secs(40), "a first event indexed", || {
        events() >= 1
    })
    .with_context(|| format!("agent log:\n{}", agent.stderr()))?;

    let before = events();
    let fuzz_started = Instant::now();
    let opts = FuzzOptions {
        target: format!("127.0.0.1:{port}").parse()?,
        seed,
        duration: Duration::from_secs(60),
        max_connections: 20_000,
        login: Some(("fz".into(), fz_password)),
        max_held: 1000,
    };
    let stats = fuzz::run(&opts);
    let during = events();
    eprintln!(
        "fuzzed {} connections ({} refused at connect), {} bytes in {:.1} s: {:?}; events {before} -> {during}",
        stats.connections,
        stats.refused,
        stats.bytes,
        fuzz_started.elapsed().as_secs_f64(),
        stats.cases
    );
    assert!(stats.connections >= 200, "the fuzzer barely ran: {stats:?}");
    assert!(
        hub.wait_timeout(Duration::from_millis(10))?.is_none(),
        "the hub died under the fuzzer:\n{}",
        hub.stdout()
    );
    assert!(
        during > before,
        "no event reached the index during the fuzz ({before} before, {during} after); agent log:\n{}",
        agent.stderr()
    );
    // The front saw the hostile traffic for what it was.
    let (_, _, body) = http_get(metrics, "/metrics")?;
    let count = |event: &str| {
        metric(
            &body,
            &format!("vigil_hub_broker_connections_total{{event=\"{event}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(
        count("protocol_error") >= 1.0,
        "no protocol error counted:\n{body}"
    );
    assert!(
        count("login_refused") + count("throttled") >= 1.0,
        "no refused login:\n{body}"
    );

    // And afterwards the agent finishes normally with everything delivered.
    let status = agent
        .wait_timeout(Duration::from_secs(150))?
        .context("agent did not exit")?;
    let log = agent.stderr();
    assert!(status.success(), "agent failed:\n{log}");
    let signed = log.matches("Clip signed and spooled").count();
    wait_until(Duration::from_secs(60), "every signed clip stored", || {
        sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n == signed.to_string())
    })
    .with_context(|| format!("{signed} signed; agent log:\n{log}"))?;
    assert!(
        events() > during,
        "no event indexed after the fuzz ({during})"
    );
    assert!(
        hub.wait_timeout(Duration::from_millis(10))?.is_none(),
        "the hub died"
    );
    hub.terminate(Duration::from_secs(10))?;
    Ok(())
}
