//! The agent stopping, gracefully and not: real camsim, Mosquitto, hub and agent
//! processes.
//!
//! - SIGTERM: the clip of the open event is cut and sealed, the outbox is
//!   consistent, exit 0 within 10 s.
//! - SIGKILL at random (seeded, logged) moments, restarted each time: no temp
//!   files left, the outbox drains, every clip the agent logged as sealed is stored
//!   at the hub exactly once, and each camera's chain there has no silent gap.
//!   Set `VIGIL_CRASH_SEED` to replay a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use vigil_tests::fuzz::Rng;
use vigil_tests::stack::sql;
use vigil_tests::{
    agent, agent_bin, hub_bin, sample, wait_until, workspace_root, Camsim, Mosquitto, Proc,
};

fn write_config(dir: &Path, camera: &str, broker: Option<&str>) -> Result<PathBuf> {
    let config = dir.join("agent.toml");
    let uplink = broker
        .map(|b| format!("[uplink]\nbroker = \"{b}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n{uplink}\
             [[cameras]]\nid = \"cam1\"\nurl = \"{camera}\"\npre_roll_seconds = 2.0\n\
             post_roll_seconds = 1.0\n\
             [cameras.detect.events]\npost_roll_seconds = 1.5\nmax_clip_seconds = 4.0\n",
            key = dir.join("agent.key"),
            chain = dir.join("chain"),
            outbox = dir.join("outbox"),
            model = workspace_root().join("models/yolox_nano.toml"),
        ),
    )?;
    Ok(config)
}

fn spawn_agent(config: &Path) -> Result<Proc> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["run", "--config"]).arg(config).env(
        "ORT_DYLIB_PATH",
        workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
    );
    Proc::spawn("vigil-agent run", cmd)
}

/// Every file or directory under `dir` whose name ends in `.tmp`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.to_string_lossy().ends_with(".tmp") {
                out.push(p.clone());
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

/// Clip ids from the agent's "Clip signed and spooled" log lines.
fn sealed_clips(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("Clip signed and spooled"))
        .filter_map(|l| {
            let at = l.find("clip=")? + 5;
            l.get(at..at + 36).map(String::from)
        })
        .collect()
}

#[test]
fn sigterm_seals_the_open_event_clip_and_exits_zero_within_10_s() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let pem = agent::keygen(&dir.path().join("agent.key"))?;
    let pem_path = dir.path().join("agent.pem");
    std::fs::write(&pem_path, pem)?;
    let config = write_config(dir.path(), camsim.url(), None)?;
    let mut proc = spawn_agent(&config)?;
    // An event is open, and a few seconds of it are in the ring.
    wait_until(Duration::from_secs(40), "an event to start", || {
        proc.stderr().contains("phase=Start")
    })
    .with_context(|| proc.stderr())?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if proc.try_status()?.is_some() {
            bail!("agent exited early:\n{}", proc.stderr());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = sealed_clips(&proc.stderr()).len();
    let signalled = Instant::now();
    proc.signal(Signal::SIGTERM)?;
    let status = proc
        .wait_timeout(Duration::from_secs(10))?
        .with_context(|| format!("agent did not exit within 10 s:\n{}", proc.stderr()))?;
    let took = signalled.elapsed();
    let log = proc.stderr();
    eprintln!("SIGTERM to exit: {} ms", took.as_millis());
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("Agent stopped cleanly"), "{log}");
    let sealed = sealed_clips(&log);
    assert!(
        sealed.len() > before,
        "no clip sealed at shutdown (before {before}):\n{log}"
    );
    let outbox = dir.path().join("outbox");
    assert_eq!(temp_files(&outbox), Vec::<PathBuf>::new());
    assert_eq!(entries(&outbox.join("clips")), sealed.len());
    // Every started event was ended (its end message is spooled).
    let names: Vec<String> = std::fs::read_dir(outbox.join("events"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let ids = |phase: &str| -> BTreeSet<String> {
        names
            .iter()
            .filter(|n| n.ends_with(&format!("-{phase}.json")))
            .filter_map(|n| {
                n.len()
                    .checked_sub(phase.len() + 6 + 36)
                    .and_then(|i| n.get(i..i + 36))
            })
            .map(String::from)
            .collect()
    };
    assert!(!ids("start").is_empty(), "{names:?}");
    assert_eq!(ids("start"), ids("end"), "{names:?}");
    // The clip sealed at shutdown verifies.
    let last = outbox.join("clips").join(sealed.last().context("a clip")?);
    let verdict = agent::verify(&last, &pem_path)?;
    assert!(
        verdict.status.success(),
        "{}\n{}",
        verdict.stdout,
        verdict.stderr
    );
    Ok(())
}

#[test]
fn kill_9_while_writing_clips_loses_no_sealed_clip_and_leaves_no_silent_gap() -> Result<()> {
    let mut rng = Rng::seeded("VIGIL_CRASH_SEED");
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start()?;
    let mut camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let pem = agent::keygen(&dir.path().join("agent.key"))?;
    let pem_path = dir.path().join("agent.pem");
    std::fs::write(&pem_path, pem)?;
    let data = dir.path().join("hub");
    let mut add = Command::new(hub_bin()?);
    add.args(["agent", "add", "a1", "--public-key"])
        .arg(&pem_path)
        .arg("--data-dir")
        .arg(&data);
    vigil_tests::run("vigil-hub agent add", add, Duration::from_secs(20))?.ok()?;
    let mut hub_cmd = Command::new(hub_bin()?);
    hub_cmd
        .args([
            "run",
            "--web-listen",
            "127.0.0.1:0",
            "--broker",
            &broker.url(),
            "--data-dir",
        ])
        .arg(&data);
    let hub = Proc::spawn("vigil-hub", hub_cmd)?;
    let config = write_config(dir.path(), camsim.url(), Some(&broker.url()))?;
    let outbox = dir.path().join("outbox");
    let db = data.join("index.sqlite");

    let mut logs = String::new();
    let kills = 3 + (rng.below(2)) as usize;
    for round in 0..kills {
        let mut proc = spawn_agent(&config)?;
        let after = rng.between(2_500, 9_000);
        // Odd rounds aim at the write window: a random instant just after a seal starts.
        let aim = (round % 2 == 1).then(|| rng.between(0, 600));
        match aim {
            Some(ms) => {
                eprintln!("round {round}: SIGKILL {ms} ms into the first seal after {after} ms")
            }
            None => eprintln!("round {round}: SIGKILL after {after} ms"),
        }
        let t0 = Instant::now();
        let mut seals_seen = None;
        loop {
            if let Some(s) = proc.try_status()? {
                bail!("agent exited by itself ({s:?}):\n{}", proc.stderr());
            }
            let elapsed = t0.elapsed() >= Duration::from_millis(after);
            match aim {
                None if elapsed => break,
                Some(ms) if elapsed => {
                    let seals = proc.stderr().matches("Sealing a clip").count();
                    match seals_seen {
                        None => seals_seen = Some(seals),
                        Some(before) if seals > before => {
                            std::thread::sleep(Duration::from_millis(ms));
                            break;
                        }
                        // No seal within 10 s more: kill anyway.
                        Some(_) if t0.elapsed() > Duration::from_millis(after + 10_000) => break,
                        Some(_) => {}
                    }
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        proc.signal(Signal::SIGKILL)?;
        proc.wait_timeout(Duration::from_secs(10))?
            .context("agent did not die on SIGKILL")?;
        let log = proc.stderr();
        eprintln!(
            "round {round}: {} clip(s) sealed, outbox now {} clip dir(s), temp entries {:?}",
            sealed_clips(&log).len(),
            entries(&outbox.join("clips")),
            temp_files(&outbox)
        );
        logs.push_str(&log);
    }

    // Last run: the camera keeps going a while, then stops; the outbox drains.
    let mut proc = spawn_agent(&config)?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        if let Some(s) = proc.try_status()? {
            bail!("agent exited by itself ({s:?}):\n{}", proc.stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    camsim.stop(Duration::from_secs(5))?;
    let drained = |outbox: &Path| {
        ["clips", "events", "records", "drops"]
            .iter()
            .all(|k| entries(&outbox.join(k)) == 0)
    };
    wait_until(Duration::from_secs(40), "the outbox to drain", || {
        drained(&outbox)
    })
    .with_context(|| format!("agent log:\n{}\nhub log:\n{}", proc.stderr(), hub.stderr()))?;
    // SIGTERM seals any still-open event, which the shutdown drain delivers.
    proc.signal(Signal::SIGTERM)?;
    let status = proc
        .wait_timeout(Duration::from_secs(10))?
        .context("agent did not exit on SIGTERM")?;
    logs.push_str(&proc.stderr());
    assert!(status.success(), "{status:?}\n{}", proc.stderr());

    assert_eq!(temp_files(&outbox), Vec::<PathBuf>::new());
    assert!(
        entries(&outbox.join("clips")) == 0,
        "clips left after the final drain: {:?}\n{}",
        std::fs::read_dir(outbox.join("clips"))?
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>(),
        proc.stderr()
    );
    let sealed = sealed_clips(&logs);
    let completed = logs
        .matches("Completed a clip whose seal was interrupted")
        .count();
    eprintln!(
        "{} clips sealed over {} runs ({completed} completed at restart)",
        sealed.len(),
        kills + 1
    );
    assert!(sealed.len() >= 2, "too few clips to mean anything:\n{logs}");
    // Every sealed clip is at the hub exactly once.
    wait_until(
        Duration::from_secs(20),
        "every sealed clip at the hub",
        || {
            sql(&db, "SELECT COUNT(*) FROM clips")
                .is_ok_and(|n| n.parse::<usize>().unwrap_or(0) >= sealed.len())
        },
    )
    .with_context(|| format!("hub log:\n{}", hub.stderr()))?;
    let stored: BTreeMap<String, usize> = sql(
        &db,
        "SELECT clip_id || ' ' || COUNT(*) FROM clips GROUP BY clip_id",
    )?
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(id, n)| (id.to_string(), n.parse().unwrap_or(0)))
    .collect();
    for id in &sealed {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "clip {id} stored {:?} times",
            stored.get(id)
        );
    }
    // A clip completed at restart was sealed by a killed run that never logged it.
    assert!(
        stored.len() >= sealed.len() && stored.len() <= sealed.len() + completed,
        "hub has {} clips, agent sealed {} (+{completed} completed)",
        stored.len(),
        sealed.len()
    );
    // Per camera and segment: seqs 1..=n with no hole, and each segment opened by a
    // signed chain_reset the hub holds.
    let segments = sql(
        &db,
        "SELECT camera_id || ' ' || segment_id || ' ' || group_concat(seq, ',') FROM \
         (SELECT camera_id, segment_id, seq FROM clips UNION \
          SELECT camera_id, segment_id, seq FROM chain_links ORDER BY seq) GROUP BY camera_id, segment_id",
    )?;
    for line in segments.lines() {
        let mut parts = line.split(' ');
        let (camera, segment, seqs) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let seqs: Vec<u64> = seqs.split(',').filter_map(|s| s.parse().ok()).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, want,
            "camera {camera} segment {segment}: gap in the chain"
        );
        let resets = sql(
            &db,
            &format!(
                "SELECT COUNT(*) FROM chain_records WHERE kind = 'chain_reset' AND segment_id = '{segment}'"
            ),
        )?;
        assert_eq!(
            resets, "1",
            "segment {segment} has no signed chain_reset at the hub"
        );
    }
    assert_eq!(
        sql(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind IN ('missing_clip','tamper')"
        )?,
        "0",
        "alerts: {}",
        sql(&db, "SELECT kind || ': ' || detail FROM alerts")?
    );
    let drops = sql(
        &db,
        "SELECT COUNT(*) FROM alerts WHERE kind = 'outbox_drop'",
    )?;
    eprintln!("drop reports at the hub (incomplete writes discarded at restart): {drops}");
    Ok(())
}
