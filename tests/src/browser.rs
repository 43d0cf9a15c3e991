//! A real browser for end-to-end tests: Debian's Chromium, headless, driven over
//! WebDriver by Debian's `chromedriver` (started on a free port, stopped on drop)
//! through `fantoccini`. Screenshots go to `target/test-artefacts/` so a human can
//! look at what the test saw.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::net::free_port;
use crate::process::Proc;
use crate::wait::wait_until;

/// Chromium as Debian installs it.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its WebDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session; `chromedriver` lives as long as this.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

/// Where screenshots and other artefacts of the browser tests go.
pub fn artefact_dir() -> PathBuf {
    crate::bins::target_dir().join("test-artefacts")
}

impl Browser {
    /// Starts chromedriver and a 1920x1080 headless Chromium window.
    pub async fn start() -> Result<Browser> {
        let port = free_port()?;
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let driver = Proc::spawn("chromedriver", cmd)?;
        wait_until(Duration::from_secs(20), "chromedriver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        let profile = tempfile::tempdir()?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1920,1080",
                    "--autoplay-policy=no-user-gesture-required",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("cannot start a Chromium session through chromedriver")?;
        Ok(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// Saves a PNG screenshot as `target/test-artefacts/{name}.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await.context("screenshot")?;
        let dir = artefact_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Runs `script` (a function body; `arguments` available) and returns its value.
    pub async fn eval(&self, script: &str) -> Result<Value> {
        self.client
            .execute(script, vec![])
            .await
            .with_context(|| format!("script failed: {script}"))
    }

    /// Polls `script` until it returns `true`; fails naming `what` after `timeout`.
    pub async fn wait_js(&self, timeout: Duration, what: &str, script: &str) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(script).await? == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what} ({script})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element matching the CSS selector and returns it.
    pub async fn find(
        &self,
        timeout: Duration,
        css: &str,
    ) -> Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element {css:?} within {timeout:?}"))
    }

    /// Ends the session (chromedriver stops on drop).
    pub async fn close(self) -> Result<()> {
        self.client.close().await.context("close the browser")
    }
}

/// `vigil-hub user add NAME --role ROLE` with the password on stdin.
pub fn add_user(data: &Path, config: &Path, name: &str, role: &str, password: &str) -> Result<()> {
    let mut child = Command::new(crate::hub_bin()?)
        .args(["user", "add", name, "--role", role, "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "vigil-hub user add {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Logs in on `base`'s login page as `user` and waits until the page moves on.
pub async fn login(b: &Browser, base: &str, (user, password): (&str, &str)) -> Result<()> {
    b.client.goto(&format!("{base}/login")).await?;
    b.find(Duration::from_secs(10), "#username")
        .await?
        .send_keys(user)
        .await?;
    b.find(Duration::from_secs(10), "#password")
        .await?
        .send_keys(password)
        .await?;
    b.find(Duration::from_secs(10), "#login-submit")
        .await?
        .click()
        .await?;
    b.wait_js(
        Duration::from_secs(10),
        "to leave the login page",
        "return location.pathname !== '/login'",
    )
    .await
}
