//! The camera room in a real browser: sample camera → `vigil-agent run` → the hub's
//! embedded broker → `vigil-hub` → Debian's headless Chromium.
//!
//! An operator logs in, sees an event arrive live (no reload), opens it, plays its clip
//! (the video element decodes and `currentTime` advances) and acknowledges it. An
//! investigator then searches, exports an evidence bundle for the case, downloads it and
//! `vigil-verify` says OK on the download. Screenshots of every step are written to
//! `target/test-artefacts/web-e2e-*.png`.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::Value;
use vigil_tests::browser::{add_user, login, Browser};
use vigil_tests::{agent, agent_bin, ensure_built, free_port, hub_bin, sample, verify_bin};
use vigil_tests::{wait_until, workspace_root, Camsim, Proc};

const OPERATOR: (&str, &str) = ("olga", "operator-pass-1234");
const INVESTIGATOR: (&str, &str) = ("ivan", "investigator-pass-1234");

/// The MQTT login `vigil-hub agent add` printed (`username = "…"` / `password = "…"` lines).
fn credential(printed: &str, key: &str) -> Result<String> {
    printed
        .lines()
        .find_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .with_context(|| format!("no {key} in `vigil-hub agent add` output:\n{printed}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_investigator_in_a_real_browser() -> Result<()> {
    ensure_built()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("hub");
    let mqtt_port = free_port()?;
    let web_port = free_port()?;
    let hub_config = dir.path().join("hub.toml");
    std::fs::write(
        &hub_config,
        format!(
            "data_dir = {data:?}\n[broker]\nmode = \"embedded\"\n[broker.embedded]\nlisten = \"127.0.0.1:{mqtt_port}\"\n[web]\nlisten = \"127.0.0.1:{web_port}\"\n"
        ),
    )?;
    // Enrol the agent and create the two users.
    let key = dir.path().join("agent.key");
    let pem_path = dir.path().join("agent.pem");
    std::fs::write(&pem_path, agent::keygen(&key)?)?;
    let mut add = Command::new(hub_bin()?);
    add.args(["agent", "add", "a1", "--public-key"])
        .arg(&pem_path)
        .arg("--config")
        .arg(&hub_config);
    let printed = vigil_tests::run("vigil-hub agent add", add, Duration::from_secs(20))?.ok()?;
    let username = credential(&printed.stdout, "username")?;
    let password = credential(&printed.stdout, "password")?;
    add_user(&data, &hub_config, OPERATOR.0, "operator", OPERATOR.1)?;
    add_user(
        &data,
        &hub_config,
        INVESTIGATOR.0,
        "investigator",
        INVESTIGATOR.1,
    )?;

    let mut hub_cmd = Command::new(hub_bin()?);
    hub_cmd.args(["run", "--config"]).arg(&hub_config);
    let mut hub = Proc::spawn("vigil-hub run", hub_cmd)?;
    wait_until(Duration::from_secs(20), "the hub's web server", || {
        std::net::TcpStream::connect(("127.0.0.1", web_port)).is_ok()
    })
    .with_context(|| hub.stderr())?;
    let base = format!("http://127.0.0.1:{web_port}");

    // The operator watches the live feed before anything happens.
    let b = Browser::start().await?;
    login(&b, &base, OPERATOR).await?;
    b.client.goto(&format!("{base}/live")).await?;
    b.find(Duration::from_secs(10), "#event-rows").await?;
    b.eval("window.__vigilNoReload = 'still here'; return true")
        .await?;
    b.screenshot("web-e2e-1-live-empty").await?;

    // Now the camera and the agent start; people walk through the footage.
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let root = workspace_root();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n\
             [uplink]\nbroker = \"mqtt://127.0.0.1:{mqtt_port}\"\nusername = \"{username}\"\npassword = \"{password}\"\n\
             [[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\npost_roll_seconds = 1.0\nmax_clip_seconds = 12.0\n",
            chain = dir.path().join("chain"),
            outbox = dir.path().join("outbox"),
            model = root.join("models/yolox_nano.toml"),
            cam = camsim.url(),
        ),
    )?;
    let mut agent_cmd = Command::new(agent_bin()?);
    agent_cmd.args(["run", "--config"]).arg(&config).env(
        "ORT_DYLIB_PATH",
        root.join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
    );
    let mut agent_proc = Proc::spawn("vigil-agent run", agent_cmd)?;

    // An event row appears live, without a reload.
    let row = b
        .find(Duration::from_secs(60), "#event-rows tr[data-event-id]")
        .await
        .with_context(|| format!("no live event; agent log:\n{}", agent_proc.stderr()))?;
    assert_eq!(
        b.eval("return window.__vigilNoReload || null").await?,
        Value::from("still here"),
        "the page reloaded instead of receiving the event live"
    );
    let event_id = row
        .attr("data-event-id")
        .await?
        .context("row without data-event-id")?;
    b.screenshot("web-e2e-2-live-event").await?;

    // Wait until an event has a stored, verified clip, then open that event.
    let with_clip = "return fetch('/api/events?limit=50').then(r => r.json()).then(j => \
         ((j.events || []).find(e => e.clip === 'verified') || {}).id || null)";
    let mut opened = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while opened.is_none() {
        if std::time::Instant::now() > deadline {
            bail!(
                "no event got a verified clip (first event {event_id}); agent log:\n{}\nhub log:\n{}",
                agent_proc.stderr(),
                hub.stdout()
            );
        }
        if let Value::String(id) = b.eval(with_clip).await? {
            opened = Some(id);
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let event_id = opened.context("event with clip")?;
    b.client.goto(&format!("{base}/events/{event_id}")).await?;
    b.wait_js(
        Duration::from_secs(20),
        "the clip to be shown",
        "const v = document.getElementById('clip'); return !!v && !v.hidden && !!v.currentSrc",
    )
    .await?;
    b.eval("const v = document.getElementById('clip'); v.muted = true; v.play(); return true")
        .await?;
    b.wait_js(
        Duration::from_secs(20),
        "the clip to decode",
        "return document.getElementById('clip').readyState >= 2",
    )
    .await?;
    b.wait_js(
        Duration::from_secs(20),
        "playback to advance",
        "return document.getElementById('clip').currentTime > 0.5",
    )
    .await?;
    b.wait_js(
        Duration::from_secs(10),
        "the snapshot",
        "const i = document.getElementById('snapshot'); return !!i && !i.hidden && i.naturalWidth > 0",
    )
    .await?;
    b.screenshot("web-e2e-3-event-playing").await?;
    let text = b
        .eval("return document.getElementById('main').innerText")
        .await?;
    let text = text.as_str().unwrap_or_default();
    assert!(
        !text.contains("null") && !text.contains("undefined"),
        "the event page shows a missing value: {text}"
    );

    // Acknowledge; the server records it.
    b.find(Duration::from_secs(5), "#ack")
        .await?
        .click()
        .await?;
    b.wait_js(
        Duration::from_secs(10),
        "the acknowledgement to be stored",
        &format!(
            "return fetch('/api/events/{event_id}').then(r => r.json()).then(j => !!j.event.acked_by)"
        ),
    )
    .await?;
    b.screenshot("web-e2e-4-acknowledged").await?;

    // The camera wall shows the camera streaming, with its masked live snapshot.
    b.client.goto(&format!("{base}/cameras")).await?;
    b.find(
        Duration::from_secs(30),
        "section[data-camera-id=\"cam1\"][data-state=\"streaming\"]",
    )
    .await
    .with_context(|| {
        format!(
            "camera wall never showed cam1 streaming; hub log:\n{}",
            hub.stdout()
        )
    })?;
    b.wait_js(
        Duration::from_secs(30),
        "the camera's snapshot on the wall",
        "return [...document.querySelectorAll('section[data-camera-id=\"cam1\"] img')].some(i => i.complete && i.naturalWidth > 0)",
    )
    .await?;
    b.screenshot("web-e2e-4b-camera-wall").await?;
    assert_eq!(
        b.eval("return document.getElementById('wall-summary').textContent")
            .await?,
        Value::from("1 agent, 1 camera")
    );

    // The investigator searches and exports an evidence bundle for a case.
    b.find(Duration::from_secs(5), "#logout")
        .await?
        .click()
        .await?;
    b.wait_js(
        Duration::from_secs(10),
        "the login page after logging out",
        "return location.pathname === '/login'",
    )
    .await?;
    login(&b, &base, INVESTIGATOR).await?;
    b.client.goto(&format!("{base}/search")).await?;
    b.find(Duration::from_secs(5), "#f-camera")
        .await?
        .send_keys("cam1")
        .await?;
    b.find(Duration::from_secs(5), "#search-submit")
        .await?
        .click()
        .await?;
    // Tick only once this search's rows are shown: until then the table is aria-busy
    // and the rows on screen (the page's first search) are about to be replaced.
    b.wait_js(
        Duration::from_secs(20),
        "the event's checkbox in the results of this search, ticked",
        &format!(
            "if (document.getElementById('result-rows').closest('table').getAttribute('aria-busy') !== 'false') return false; \
             const c = document.querySelector('input.pick[data-event-id=\"{event_id}\"]'); \
             if (c && !c.disabled && !c.checked) c.click(); return !!c && c.checked"
        ),
    )
    .await?;
    b.find(Duration::from_secs(5), "#case-number")
        .await?
        .send_keys("CASE-2026-0042")
        .await?;
    b.find(Duration::from_secs(5), "#export-btn")
        .await?
        .click()
        .await?;
    let exported = b
        .wait_js(
            Duration::from_secs(60),
            "the export link",
            "const a = document.getElementById('export-link'); return !!a && !a.hidden && !!a.href",
        )
        .await;
    if let Err(e) = exported {
        // Say what the page showed instead (an API error lands in #export-result).
        let shown = b
            .eval("const o = document.getElementById('export-result'); return o ? o.textContent : null")
            .await;
        let picked = b
            .eval("return [...document.querySelectorAll('#result-rows input.pick:checked')].length")
            .await;
        return Err(e.context(format!(
            "export result on the page: {shown:?}; boxes ticked: {picked:?}; hub log:\n{}",
            hub.stdout()
        )));
    }
    b.screenshot("web-e2e-5-exported").await?;
    let zip_b64 = b
        .eval(
            "return fetch(document.getElementById('export-link').href).then(r => r.arrayBuffer()).then(buf => { \
             const u = new Uint8Array(buf); let s = ''; for (let i = 0; i < u.length; i += 0x8000) \
             { s += String.fromCharCode.apply(null, u.subarray(i, i + 0x8000)); } return btoa(s); })",
        )
        .await?;
    let zip = base64::engine::general_purpose::STANDARD.decode(
        zip_b64
            .as_str()
            .context("export download is not a string")?,
    )?;
    let zip_path = dir.path().join("case.zip");
    std::fs::write(&zip_path, &zip)?;
    let out = Command::new(verify_bin()?)
        .arg(&zip_path)
        .arg("--trust")
        .arg(&pem_path)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("OK"),
        "vigil-verify on the browser's download: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.close().await?;
    agent_proc.terminate(Duration::from_secs(15))?;
    hub.terminate(Duration::from_secs(15))?;
    Ok(())
}
