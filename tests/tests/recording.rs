//! Continuous recording on the box, with real camsim and agent processes:
//!
//! - the exported window verifies OK, every piece is byte-identical to consecutive
//!   source access units, consecutive pieces continue each other, the window is covered;
//! - `kill -9` at seeded moments: after restarts the unsealed pieces are recovered and
//!   signed, the chain has no gap, the only missing seconds are the ones the agent was
//!   down, named as such;
//! - retention by `max_bytes`: deletions are signed records, a held window survives, an
//!   export names deleted seconds with their record;
//! - tamper on the box: an altered piece is NOT_OK, a deleted one is missing seconds,
//!   and the agent reports a piece gone without a deletion record.
//!
//! Set `VIGIL_RECORDING_SEED` to replay the kill moments.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use serde_json::Value;
use vigil_tests::clipcheck::{check_clip, Source};
use vigil_tests::fuzz::Rng;
use vigil_tests::process::run;
use vigil_tests::{agent, agent_bin, sample, wait_until, workspace_root, Camsim, Proc};

struct Box {
    dir: tempfile::TempDir,
    config: PathBuf,
    pubkey: PathBuf,
}

impl Box {
    fn new(camera: &str, extra: &str) -> Result<Box> {
        Self::with_pieces(camera, extra, 4)
    }

    /// A box whose recording cuts pieces of `piece_seconds`.
    fn with_pieces(camera: &str, extra: &str, piece_seconds: u32) -> Result<Box> {
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("agent.key");
        let pem = agent::keygen(&key)?;
        let pubkey = dir.path().join("agent.pem");
        std::fs::write(&pubkey, pem)?;
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
                 [detect]\nmodel = {model:?}\n[recording]\npiece_seconds = {piece_seconds}\n{extra}\n\
                 [[cameras]]\nid = \"cam1\"\nurl = \"{camera}\"\n",
                chain = dir.path().join("chain"),
                outbox = dir.path().join("outbox"),
                model = workspace_root().join("models/yolox_nano.toml"),
            ),
        )?;
        Ok(Box {
            dir,
            config,
            pubkey,
        })
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("recordings/cam1")
    }

    fn spawn(&self) -> Result<Proc> {
        let mut cmd = Command::new(agent_bin()?);
        cmd.args(["run", "--config"]).arg(&self.config).env(
            "ORT_DYLIB_PATH",
            workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
        Proc::spawn("vigil-agent run", cmd)
    }

    /// Sealed pieces' manifests, by seq.
    fn pieces(&self) -> Vec<(PathBuf, Value)> {
        let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(self.store().join("pieces"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
            .filter_map(|p| {
                let m: Value =
                    serde_json::from_slice(&std::fs::read(p.join("manifest.json")).ok()?).ok()?;
                Some((p, m))
            })
            .collect();
        out.sort_by_key(|(_, m)| m["seq"].as_u64());
        out
    }

    fn wait_pieces(&self, n: usize, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("{n} sealed pieces"), || {
            self.pieces().len() >= n
        })
    }

    /// `vigil-agent export` of `[from, to]`; the JSON verdict of `vigil-verify`.
    fn export_verify(&self, from: &str, to: &str, name: &str) -> Result<Value> {
        let out = self.dir.path().join(name);
        let mut cmd = Command::new(agent_bin()?);
        cmd.args(["export", "--config"])
            .arg(&self.config)
            .args(["--camera", "cam1", "--from", from, "--to", to, "--out"])
            .arg(&out);
        run("vigil-agent export", cmd, Duration::from_secs(60))?.ok()?;
        let v = agent::verify(&out, &self.pubkey)?;
        serde_json::from_str(&v.stdout).with_context(|| format!("verify output: {}", v.stdout))
    }
}

fn stop(mut p: Proc) -> Result<String> {
    p.signal(Signal::SIGTERM)?;
    p.wait_timeout(Duration::from_secs(20))?
        .context("agent did not stop on SIGTERM")?;
    Ok(p.stderr())
}

fn checks<'a>(report: &'a Value, id: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["id"] == id).collect())
        .unwrap_or_default()
}

fn span(pieces: &[(PathBuf, Value)]) -> Result<(String, String)> {
    let first = pieces.first().context("no piece")?;
    let last = pieces.last().context("no piece")?;
    Ok((
        first.1["start"].as_str().context("start")?.to_string(),
        last.1["end"].as_str().context("end")?.to_string(),
    ))
}

/// Every piece is the camera's bytes (aligned on the looping source, PTS offsets kept),
/// at least `piece_seconds` long but the last, not recovered, the first after the agent's
/// start and every other continuing it, with no unit lost or repeated between pieces.
fn check_pieces(pieces: &[(PathBuf, Value)], source: &Source, piece_seconds: f64) -> Result<()> {
    let mut next_source: Option<usize> = None;
    for (i, (dir, m)) in pieces.iter().enumerate() {
        ensure!(m["piece"]["recovered"] == false, "piece {i} recovered: {m}");
        let want = if i == 0 { "agent_start" } else { "continues" };
        ensure!(
            m["piece"]["start_reason"] == want,
            "piece {i}: {}",
            m["piece"]
        );
        let last = i + 1 == pieces.len();
        let min = if last { 0.0 } else { piece_seconds - 0.1 };
        let report = check_clip(&dir.join("clip.mp4"), source, min)
            .with_context(|| format!("piece {i} ({})", dir.display()))?;
        if let Some(n) = next_source {
            ensure!(
                report.alignment.source_start == n % source.aus.len(),
                "piece {i} starts at source unit {}, the previous ended before {n}",
                report.alignment.source_start
            );
        }
        next_source = Some(report.alignment.source_start + report.alignment.matched);
    }
    Ok(())
}

/// A box's sealed pieces: directory and manifest.
type Pieces = Vec<(PathBuf, Value)>;

/// Records from the looping sample camera until `n` pieces of `piece_seconds` are sealed,
/// checks every piece against the camera's bytes ([`check_pieces`]) and exports the whole
/// span: it verifies OK, coverage PASS, one bundle clip per piece. Returns the box, its
/// pieces and the span (RFC 3339).
fn record_export_verify(
    piece_seconds: u32,
    n: usize,
    timeout: Duration,
) -> Result<(Box, Pieces, String, String)> {
    let file = sample("vtest.mp4")?;
    let cam = Camsim::start(&file)?;
    let b = Box::with_pieces(cam.url(), "", piece_seconds)?;
    let agent = b.spawn()?;
    b.wait_pieces(n, timeout)?;
    let log = stop(agent)?;
    let pieces = b.pieces();
    ensure!(pieces.len() >= n, "pieces: {}\n{log}", pieces.len());
    // Capture-time signatures: each piece is its own signed clip in one chain.
    let source = Source::read(&file)?;
    check_pieces(&pieces, &source, f64::from(piece_seconds))?;
    let (from, to) = span(&pieces)?;
    let report = b.export_verify(&from, &to, "bundle")?;
    ensure!(report["verdict"] == "OK", "verdict: {report:#}");
    let cov = checks(&report, "window.coverage");
    ensure!(
        cov.len() == 1 && cov[0]["status"] == "PASS",
        "coverage: {cov:?}"
    );
    ensure!(
        report["clips"].as_array().map(Vec::len) == Some(pieces.len()),
        "bundle clips: {}",
        report["clips"]
    );
    Ok((b, pieces, from, to))
}

/// More than three minutes of continuous recording (30 s pieces, the looping sample
/// camera wraps twice): every piece is the camera's bytes, the export of the whole span
/// verifies OK with coverage PASS, and its pieces cover at least 180 s.
#[test]
fn three_minutes_of_recording_export_verify_and_are_the_cameras_bytes() -> Result<()> {
    // 7 sealed pieces of >= 30 s: > 180 s of video.
    let (_box, _, from, to) = record_export_verify(30, 7, Duration::from_secs(300))?;
    let rfc =
        |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339);
    let secs = (rfc(&to)? - rfc(&from)?).as_seconds_f64();
    ensure!(secs >= 180.0, "the pieces span {secs:.1} s");
    Ok(())
}

#[test]
fn a_recorded_window_exports_verifies_and_is_the_cameras_bytes() -> Result<()> {
    let (b, pieces, from, to) = record_export_verify(4, 4, Duration::from_secs(60))?;

    // Tamper on the box: one byte of a piece altered → NOT_OK naming that piece.
    let victim = pieces[1].0.join("clip.mp4");
    let mut bytes = std::fs::read(&victim)?;
    let at = bytes.len() - 100;
    bytes[at] ^= 0x55;
    std::fs::write(&victim, &bytes)?;
    let report = b.export_verify(&from, &to, "bundle-altered")?;
    ensure!(
        report["verdict"] == "NOT_OK",
        "altered piece verdict: {}",
        report["verdict"]
    );
    // Deleted on the box → the seconds are missing and the piece is named.
    std::fs::remove_dir_all(&pieces[2].0)?;
    let report = b.export_verify(&from, &to, "bundle-deleted")?;
    let cov = checks(&report, "window.coverage");
    let seq2 = pieces[2].1["seq"].as_u64().context("seq")?;
    ensure!(
        cov.iter().any(|c| c["status"] == "MISSING"
            && c["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("seq {seq2}")))),
        "deleted piece not named: {cov:?}"
    );
    // The agent notices a piece gone without a deletion record at its next start.
    let agent = b.spawn()?;
    let drops = b.dir.path().join("outbox/drops");
    wait_until(
        Duration::from_secs(30),
        "a drop report for the vanished piece",
        || {
            std::fs::read_dir(&drops)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.contains("without a deletion record"))
                })
        },
    )?;
    stop(agent)?;
    Ok(())
}

#[test]
fn kill_9_while_recording_leaves_recovered_pieces_and_no_silent_gap() -> Result<()> {
    let file = sample("vtest.mp4")?;
    let cam = Camsim::start(&file)?;
    let b = Box::new(cam.url(), "")?;
    let mut rng = Rng::seeded("VIGIL_RECORDING_SEED");
    let mut recovered_expected = 0;
    for round in 0..3 {
        let mut agent = b.spawn()?;
        let before = b.pieces().len();
        b.wait_pieces(before + 1, Duration::from_secs(60))?;
        // 300..3800 ms into the next piece.
        let ms = rng.between(300, 3800);
        std::thread::sleep(Duration::from_millis(ms));
        eprintln!("round {round}: SIGKILL {ms} ms after a seal");
        agent.signal(Signal::SIGKILL)?;
        agent
            .wait_timeout(Duration::from_secs(10))?
            .context("agent did not die")?;
        let journals = std::fs::read_dir(b.store().join("journal"))
            .map(|r| r.count())
            .unwrap_or(0);
        ensure!(
            journals >= 1,
            "round {round}: no capture journal left by the kill"
        );
        recovered_expected += 1;
    }
    let agent = b.spawn()?;
    let recovered = || {
        b.pieces()
            .iter()
            .filter(|(_, m)| m["piece"]["recovered"] == true)
            .count()
    };
    wait_until(Duration::from_secs(60), "recovered pieces sealed", || {
        recovered() >= recovered_expected
    })?;
    b.wait_pieces(b.pieces().len() + 1, Duration::from_secs(60))?;
    let log = stop(agent)?;
    ensure!(
        log.contains("Recovering a piece"),
        "no recovery logged:\n{log}"
    );
    let pieces = b.pieces();
    // Every kill cost at most the journal's tail: recovered pieces hold video.
    for (dir, m) in pieces
        .iter()
        .filter(|(_, m)| m["piece"]["recovered"] == true)
    {
        ensure!(
            m["video"]["frames"].as_u64().unwrap_or(0) >= 1,
            "empty recovered piece {}",
            dir.display()
        );
    }
    let (from, to) = span(&pieces)?;
    let report = b.export_verify(&from, &to, "bundle")?;
    ensure!(
        report["verdict"] == "OK" || report["verdict"] == "OK_WITH_MISSING",
        "verdict {}: {report:#}",
        report["verdict"]
    );
    ensure!(
        checks(&report, "chain.gap").is_empty(),
        "chain gap: {report:#}"
    );
    for c in checks(&report, "window.coverage") {
        if c["status"] != "PASS" {
            let m = c["message"].as_str().unwrap_or_default();
            ensure!(
                m.contains("not recorded: the agent was not running"),
                "unexplained missing seconds: {m}"
            );
        }
    }
    Ok(())
}

#[test]
fn retention_deletes_by_signed_record_and_keeps_a_held_window() -> Result<()> {
    let file = sample("vtest.mp4")?;
    let cam = Camsim::start(&file)?;
    // ~480 KB per 4 s piece: 1.5 MB keeps about three.
    let b = Box::new(cam.url(), "max_bytes = 1500000")?;
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    std::fs::create_dir_all(b.dir.path().join("recordings"))?;
    std::fs::write(
        b.dir.path().join("recordings/holds.json"),
        serde_json::to_vec(&serde_json::json!([{
            "hold_id": "h1", "camera_id": "cam1", "from": fmt(now - time::Duration::seconds(60)),
            "to": fmt(now + time::Duration::seconds(3)), "reason": "test", "case": "C-1"
        }]))?,
    )?;
    let started = Instant::now();
    let agent = b.spawn()?;
    let deletions = || -> Vec<Value> {
        let mut out = Vec::new();
        for seg in std::fs::read_dir(b.store().join("ledger"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(seg.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(v) =
                    serde_json::from_slice::<Value>(&std::fs::read(f.path()).unwrap_or_default())
                {
                    if v["type"] == "deletion" {
                        out.push(v);
                    }
                }
            }
        }
        out
    };
    wait_until(Duration::from_secs(90), "two deletion records", || {
        deletions().len() >= 2
    })?;
    let log = stop(agent)?;
    let pieces = b.pieces();
    let ds = deletions();
    let deleted: Vec<&Value> = ds
        .iter()
        .flat_map(|d| d["pieces"].as_array().into_iter().flatten())
        .collect();
    ensure!(
        ds.iter().all(|d| d["reason"] == "max_bytes"),
        "reasons: {ds:?}"
    );
    // The held piece (the first) is still there; no deleted piece is.
    let first = pieces.first().context("no piece left")?;
    ensure!(
        first.1["piece"]["start_reason"] == "agent_start",
        "the held first piece was deleted; pieces left: {}\n{log}",
        pieces.len()
    );
    for d in &deleted {
        ensure!(
            !pieces.iter().any(|(_, m)| m["clip_id"] == d["clip_id"]),
            "deleted piece {} still on disk",
            d["clip_id"]
        );
    }
    let total: u64 = pieces
        .iter()
        .map(|(d, _)| {
            std::fs::metadata(d.join("clip.mp4"))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();
    ensure!(total <= 1_500_000 + 600_000, "store holds {total} bytes");
    // Each deletion is in the chain and in the outbox for the hub.
    let spooled = std::fs::read_dir(b.dir.path().join("outbox/records"))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-deletion.json"))
        .count();
    ensure!(
        spooled >= ds.len(),
        "{spooled} deletion records spooled of {}",
        ds.len()
    );
    // An export of everything names the deleted seconds with their record.
    let (from, _) = span(&pieces)?;
    let to = pieces
        .last()
        .map(|(_, m)| m["end"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    let report = b.export_verify(&from, &to, "bundle")?;
    ensure!(
        report["verdict"] == "OK_WITH_MISSING",
        "verdict {}: {report:#}",
        report["verdict"]
    );
    let cov = checks(&report, "window.coverage");
    ensure!(
        cov.iter().any(|c| c["message"]
            .as_str()
            .is_some_and(|m| m.contains("deleted on the box by policy max_bytes"))),
        "coverage does not name the deletion: {cov:?}"
    );
    ensure!(
        checks(&report, "chain.clip")
            .iter()
            .all(|c| c["status"] == "WARN"),
        "deleted pieces should be explained: {:?}",
        checks(&report, "chain.clip")
    );
    if started.elapsed() > Duration::from_secs(120) {
        bail!("retention took {:?}", started.elapsed());
    }
    Ok(())
}
