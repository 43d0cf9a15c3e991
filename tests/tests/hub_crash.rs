//! The hub killed with SIGKILL in the middle of a clip transfer, kept down while people
//! keep walking through, and restarted on the same data dir (external Mosquitto, so the
//! agent stays connected and keeps publishing): the transfer resumes, every clip the
//! agent signed is stored exactly once in chain order, no partial clip is ever indexed,
//! and every event the agent published while the hub was dead reaches the index (the
//! hub's persistent broker session queues them).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use vigil_tests::stack::{self, sql};
use vigil_tests::{sample, wait_until, Camsim, Mosquitto};

/// True when some clip of `agent` has chunk files in the hub's incoming dir.
fn transfer_in_progress(data: &Path, agent: &str) -> bool {
    let Ok(clips) = std::fs::read_dir(data.join("incoming").join(agent)) else {
        return false;
    };
    clips.flatten().any(|c| {
        std::fs::read_dir(c.path()).is_ok_and(|mut files| {
            files.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".part")))
        })
    })
}

#[test]
fn hub_sigkill_mid_transfer_loses_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start()?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let data = dir.path().join("hub");
    let (key, _pem) = stack::enroll(dir.path(), &data, "a1")?;
    let mut hub = stack::spawn_hub(&broker.url(), &data)?;
    wait_until(Duration::from_secs(20), "the hub to connect", || {
        hub.stdout().contains("Connected to the broker")
    })?;
    let outbox = dir.path().join("outbox");
    let config = stack::agent_config(
        dir.path(),
        &key,
        camsim.url(),
        &format!("broker = \"{}\"", broker.url()),
    )?;
    let mut agent_proc = stack::spawn_agent(&config, 60)?;
    let db = data.join("index.sqlite");

    // SIGKILL the hub the moment a clip's chunks are landing.
    let deadline = Instant::now() + Duration::from_secs(45);
    while !transfer_in_progress(&data, "a1") {
        if Instant::now() > deadline {
            bail!(
                "never saw a clip transfer in progress; agent log:\n{}",
                agent_proc.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    hub.signal(Signal::SIGKILL)?;
    hub.wait_timeout(Duration::from_secs(10))?
        .context("hub did not die")?;
    let killed_at = sql(&db, "SELECT COUNT(*) FROM clips")?;
    // Down for 10 s while the camera keeps producing events and clips.
    std::thread::sleep(Duration::from_secs(10));
    let mut hub = stack::spawn_hub(&broker.url(), &data)?;

    let status = agent_proc
        .wait_timeout(Duration::from_secs(120))?
        .context("agent did not exit")?;
    let log = agent_proc.stderr();
    assert!(status.success(), "agent failed:\n{log}");
    let signed = log.matches("Clip signed and spooled").count();
    let started: BTreeSet<String> = log
        .lines()
        .filter(|l| l.contains(" Event ") && l.contains("phase=Start"))
        .filter_map(|l| l.split("event=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        signed >= 2 && !started.is_empty(),
        "too little happened:\n{log}"
    );
    wait_until(Duration::from_secs(40), "every signed clip stored", || {
        sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n == signed.to_string())
    })
    .with_context(|| {
        format!(
            "hub has {:?} of {signed} clips ({killed_at} when killed); hub log:\n{}",
            sql(&db, "SELECT COUNT(*) FROM clips"),
            hub.stdout()
        )
    })?;
    // The hub's whole chain (clips and the recorded pieces it knows by their records).
    let (seqs, want) = vigil_tests::stack::chain_seqs(&db, "camera_id='cam1'", signed)?;
    assert_eq!(seqs, want, "clips not exactly once in chain order");
    // No partial clip: every indexed file exists with the size and SHA-256 signed for it.
    for row in sql(
        &db,
        "SELECT path || '|' || size || '|' || sha256 FROM clips",
    )?
    .lines()
    {
        let mut f = row.split('|');
        let (path, size, sha) = (
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default(),
        );
        let full = if Path::new(path).is_absolute() {
            Path::new(path).to_path_buf()
        } else {
            data.join(path)
        };
        let bytes = std::fs::read(&full).with_context(|| format!("indexed clip {path}"))?;
        assert_eq!(bytes.len().to_string(), size, "{path} is partial");
        let out = Command::new("sha256sum").arg(&full).output()?;
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(sha),
            "{path} differs"
        );
    }
    // Every event the agent started, including those published while the hub was dead.
    wait_until(
        Duration::from_secs(20),
        "every started event indexed",
        || {
            sql(
                &db,
                "SELECT group_concat(event_id, ' ') FROM events WHERE phase='start'",
            )
            .is_ok_and(|s| {
                let have: BTreeSet<&str> = s.split(' ').collect();
                started.iter().all(|e| have.contains(e.as_str()))
            })
        },
    )
    .with_context(|| {
        format!(
            "agent started {started:?}; hub has {:?}",
            sql(
                &db,
                "SELECT group_concat(event_id, ' ') FROM events WHERE phase='start'"
            )
        )
    })?;
    assert_eq!(
        sql(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind IN ('missing_clip','tamper')"
        )?,
        "0"
    );
    assert_eq!(std::fs::read_dir(outbox.join("clips"))?.count(), 0);
    hub.terminate(Duration::from_secs(10))?;
    Ok(())
}
