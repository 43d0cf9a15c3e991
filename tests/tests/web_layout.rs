//! Every form of the camera room's pages in a real browser (Debian's headless
//! Chromium) at window widths from 1024 to 1920 px: each label stays with its field —
//! directly above it, or on its left in the same row — never at the end of one row with
//! its field starting the next (the search form's "To (UTC)" did that at 1400 px).
//! Screenshots go to `target/test-artefacts/web-layout-*.png`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::browser::{add_user, login, Browser};
use vigil_tests::{ensure_built, free_port, hub_bin, wait_until, Proc};

const ADMIN: (&str, &str) = ("ada", "admin-pass-123456");

/// For every `label[for]` on the page whose field is visible: the label's box must be
/// right above the field's (overlapping columns, at most 12 px between) or left of it
/// in the same row (overlapping rows, at most 24 px between). Returns the pairs that
/// are neither, as sentences.
const CHECK: &str = r#"
const bad = [];
for (const label of document.querySelectorAll('label[for]')) {
  const field = document.getElementById(label.htmlFor);
  if (!field) { bad.push(`label "${label.textContent.trim()}" names no field #${label.htmlFor}`); continue; }
  const l = label.getBoundingClientRect(), f = field.getBoundingClientRect();
  if (f.width === 0 || l.width === 0) continue;
  const columns = l.left < f.right && f.left < l.right;
  const rows = l.top < f.bottom && f.top < l.bottom;
  const above = columns && f.top >= l.bottom - 1 && f.top - l.bottom <= 12;
  const beside = rows && f.left >= l.right - 1 && f.left - l.right <= 24;
  if (!above && !beside) {
    bad.push(`"${label.textContent.trim()}" at (${Math.round(l.left)},${Math.round(l.top)}) and its field #${field.id} at (${Math.round(f.left)},${Math.round(f.top)})`);
  }
}
return bad;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_label_stays_with_its_field_from_1024_to_1920_px() -> Result<()> {
    ensure_built()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("hub");
    let web_port = free_port()?;
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[broker.embedded]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:{web_port}\"\n"
        ),
    )?;
    add_user(
        &data,
        &config,
        ADMIN.0,
        "operator,investigator,admin",
        ADMIN.1,
    )?;
    let mut cmd = Command::new(hub_bin()?);
    cmd.args(["run", "--config"]).arg(&config);
    let hub = Proc::spawn("vigil-hub run", cmd)?;
    wait_until(Duration::from_secs(20), "the hub's web server", || {
        std::net::TcpStream::connect(("127.0.0.1", web_port)).is_ok()
    })
    .with_context(|| hub.stderr())?;
    let base = format!("http://127.0.0.1:{web_port}");
    let b = Browser::start().await?;
    let mut problems = Vec::new();
    let widths = [1024u32, 1152, 1280, 1366, 1400, 1440, 1600, 1680, 1920];
    // The login form, before logging in.
    b.client.goto(&format!("{base}/login")).await?;
    for w in widths {
        b.client.set_window_size(w, 1000).await?;
        for p in b.eval(CHECK).await?.as_array().cloned().unwrap_or_default() {
            problems.push(format!("/login at {w} px: {p}"));
        }
    }
    login(&b, &base, ADMIN).await?;
    for page in [
        "/search",
        "/admin/agents",
        "/admin/users",
        "/admin/settings",
    ] {
        b.client.goto(&format!("{base}{page}")).await?;
        b.wait_js(
            Duration::from_secs(10),
            "the page's labels",
            "return document.readyState === 'complete' && document.querySelectorAll('label[for]').length > 0",
        )
        .await?;
        for w in widths {
            b.client.set_window_size(w, 1000).await?;
            // Let the layout settle after the resize.
            tokio::time::sleep(Duration::from_millis(50)).await;
            for p in b.eval(CHECK).await?.as_array().cloned().unwrap_or_default() {
                problems.push(format!("{page} at {w} px: {p}"));
            }
            if w == 1400 {
                b.screenshot(&format!("web-layout{}", page.replace('/', "-")))
                    .await?;
            }
        }
    }
    b.close().await?;
    assert!(
        problems.is_empty(),
        "labels apart from their fields:\n{}",
        problems.join("\n")
    );
    Ok(())
}
