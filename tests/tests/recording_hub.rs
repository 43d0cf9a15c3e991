//! Recording through the hub, real processes end to end (camsim → vigil-agent →
//! vigil-hub with its embedded broker → Chromium): the hub learns every piece from its
//! signed manifest while the video stays on the box; a pull requested while the agent
//! is offline completes by itself once it is back; the pulled window plays in the
//! browser across a piece boundary; the hub's window export verifies offline.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use nix::sys::signal::Signal;
use vigil_tests::browser::{add_user, login, Browser};
use vigil_tests::stack::{enroll_embedded, sql, EmbeddedEnrolment};
use vigil_tests::{
    agent, agent_bin, ensure_built, free_port, sample, wait_until, workspace_root, Camsim, Proc,
};

const INV: (&str, &str) = ("ivy", "investigator pw 1");

fn spawn_agent(config: &std::path::Path) -> Result<Proc> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["run", "--config"]).arg(config).env(
        "ORT_DYLIB_PATH",
        workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
    );
    Proc::spawn("vigil-agent run", cmd)
}

fn count(db: &std::path::Path, q: &str) -> u64 {
    sql(db, q).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_made_while_the_agent_is_offline_completes_plays_and_verifies() -> Result<()> {
    ensure_built()?;
    let dir = tempfile::tempdir()?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let data = dir.path().join("hub");
    let port = free_port()?;
    let web_port = free_port()?;
    let url = format!("mqtt://127.0.0.1:{port}");
    let EmbeddedEnrolment {
        key, pem, uplink, ..
    } = enroll_embedded(dir.path(), &data, "a1", &url)?;
    let hub_config = vigil_tests::stack::embedded_hub_config(
        dir.path(),
        &data,
        port,
        &format!("[web]\nlisten = \"127.0.0.1:{web_port}\"\n"),
    )?;
    add_user(&data, &hub_config, INV.0, "investigator", INV.1)?;
    let mut hub_cmd = Command::new(vigil_tests::hub_bin()?);
    hub_cmd.args(["run", "--config"]).arg(&hub_config);
    let hub = Proc::spawn("vigil-hub run", hub_cmd)?;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n[recording]\npiece_seconds = 4\n[uplink]\n{uplink}\n\
             [[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\n",
            chain = dir.path().join("chain"),
            outbox = dir.path().join("outbox"),
            model = workspace_root().join("models/yolox_nano.toml"),
            cam = camsim.url(),
        ),
    )?;
    let db = data.join("index.sqlite");
    let pieces_q = "SELECT COUNT(*) FROM chain_links WHERE kind = 'piece'";
    let mut agent = spawn_agent(&config)?;
    wait_until(
        Duration::from_secs(90),
        "three piece manifests at the hub",
        || count(&db, pieces_q) >= 3,
    )
    .with_context(|| format!("agent:\n{}\nhub:\n{}", agent.stderr(), hub.stderr()))?;
    // The video stayed on the box: no piece is a stored clip yet.
    ensure!(
        count(
            &db,
            "SELECT COUNT(*) FROM clips c JOIN chain_links l ON l.id = c.clip_id"
        ) == 0,
        "pieces were uploaded without a pull"
    );
    agent.signal(Signal::SIGTERM)?;
    agent
        .wait_timeout(Duration::from_secs(20))?
        .context("agent did not stop")?;
    wait_until(Duration::from_secs(20), "the agent's last piece", || {
        std::fs::read_dir(dir.path().join("outbox/records"))
            .map(|r| r.count() == 0)
            .unwrap_or(false)
    })
    .ok();
    // Window: the second and third pieces (a piece boundary inside).
    let window = sql(
        &db,
        "SELECT start_ms || ' ' || end_ms FROM chain_links WHERE kind = 'piece' ORDER BY seq LIMIT 2 OFFSET 1",
    )?;
    let ms: Vec<i64> = window
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    ensure!(ms.len() == 4, "window rows: {window:?}");
    let iso = |m: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    let (from, to) = (iso(ms[0] + 200), iso(ms[3] - 200));

    let base = format!("http://127.0.0.1:{web_port}");
    let b = Browser::start().await?;
    login(&b, &base, INV).await?;
    b.client.goto(&format!("{base}/recordings")).await?;
    b.wait_js(
        Duration::from_secs(15),
        "the timeline with pieces on the box",
        "return document.querySelectorAll('#span-rows tr[data-state=edge]').length >= 1",
    )
    .await?;
    // The pull, through the page's own API helper, while the agent is offline.
    let made = b
        .eval(&format!(
            "return Vigil.api('POST', '/api/recordings/requests', {{kind: 'pull', agent_id: 'a1', camera_id: 'cam1', from: '{from}', to: '{to}', case_number: 'C-42', reason: 'report filed next morning'}}).then(r => r.id)"
        ))
        .await?;
    let request = made.as_str().context("request id")?.to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        sql(
            &db,
            &format!("SELECT status FROM recording_requests WHERE id = '{request}'")
        )? == "pending",
        "request not pending while the agent is offline"
    );
    ensure!(
        count(&db, &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'recording_pull' AND subject = '{request}' AND actor = 'ivy'")) == 1,
        "pull not audited with its user"
    );
    let mut agent = spawn_agent(&config)?;
    wait_until(Duration::from_secs(90), "the pull to complete", || {
        sql(
            &db,
            &format!("SELECT status FROM recording_requests WHERE id = '{request}'"),
        )
        .is_ok_and(|s| s == "complete")
    })
    .with_context(|| format!("agent:\n{}", agent.stderr()))?;
    // Plays across the boundary: the player moves from piece 1 to piece 2 by itself.
    b.client.goto(&format!("{base}/recordings")).await?;
    b.wait_js(
        Duration::from_secs(15),
        "the request row with its Play button",
        &format!(
            "return !!document.querySelector('tr[data-request-id=\"{request}\"] button.play')"
        ),
    )
    .await?;
    b.eval(&format!(
        "document.querySelector('tr[data-request-id=\"{request}\"] button.play').click(); return true"
    ))
    .await?;
    b.wait_js(
        Duration::from_secs(30),
        "playback to cross into the second piece",
        "const v = document.getElementById('player'); return v.dataset.index === '1' && v.currentTime > 0.5 && !v.error",
    )
    .await?;
    // Seeking back across the boundary loads the first piece at the right offset.
    b.wait_js(
        Duration::from_secs(15),
        "a seek to 1 s",
        "const s = document.getElementById('player-seek'); s.value = '1'; s.dispatchEvent(new Event('input')); const v = document.getElementById('player'); return v.dataset.index === '0' && v.currentTime >= 0.9 && v.currentTime < 3",
    )
    .await?;
    let export = b
        .eval(&format!(
            "return Vigil.api('POST', '/api/exports', {{case_number: 'C-42', window: {{agent_id: 'a1', camera_id: 'cam1', from: '{from}', to: '{to}'}}}}).then(r => r.id)"
        ))
        .await?;
    b.close().await?;
    let export = export.as_str().context("export id")?;
    let zip = data.join("exports").join(format!("{export}.zip"));
    let v = agent::verify(&zip, &pem)?;
    let report: serde_json::Value = serde_json::from_str(&v.stdout)?;
    let coverage: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"] == "window.coverage")
        .collect();
    ensure!(
        coverage.len() == 1 && coverage[0]["status"] == "PASS",
        "hub window export coverage: {coverage:?}\n{report:#}"
    );
    ensure!(
        report["verdict"] == "OK" || report["verdict"] == "OK_WITH_MISSING",
        "verdict {}: {report:#}",
        report["verdict"]
    );
    ensure!(
        count(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE kind IN ('missing_clip', 'tamper')"
        ) == 0,
        "alerts: {}",
        sql(&db, "SELECT group_concat(detail, ' | ') FROM alerts")?
    );
    agent.signal(Signal::SIGTERM)?;
    let _ = agent.wait_timeout(Duration::from_secs(20))?;
    Ok(())
}
