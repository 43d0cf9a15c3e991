//! The usual cast of a delivery test: an enrolled agent key, a hub on an external
//! broker, an agent config for one camera, `vigil-agent run`, and SQL on the hub's index.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{agent, agent_bin, hub_bin, workspace_root, Proc};

/// Runs `query` on the hub's SQLite index with the sqlite3 CLI; trimmed stdout.
pub fn sql(db: &Path, query: &str) -> Result<String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(query)
        .output()
        .context("sqlite3")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Generates `dir/agent.key` (+ `agent.pem`) and enrols it as `agent_id` at the hub
/// data dir `data`; returns the key and public key paths.
pub fn enroll(dir: &Path, data: &Path, agent_id: &str) -> Result<(PathBuf, PathBuf)> {
    let key = dir.join("agent.key");
    let pem_path = dir.join("agent.pem");
    std::fs::write(&pem_path, agent::keygen(&key)?)?;
    let mut add = Command::new(hub_bin()?);
    add.args(["agent", "add", agent_id, "--public-key"])
        .arg(&pem_path)
        .arg("--data-dir")
        .arg(data);
    crate::run("vigil-hub agent add", add, Duration::from_secs(20))?.ok()?;
    Ok((key, pem_path))
}

/// `vigil-hub run` on an external broker with its web page on a free port.
pub fn spawn_hub(broker_url: &str, data: &Path) -> Result<Proc> {
    let mut cmd = Command::new(hub_bin()?);
    cmd.args(["run", "--web-listen", "127.0.0.1:0", "--broker", broker_url])
        .arg("--data-dir")
        .arg(data);
    Proc::spawn("vigil-hub", cmd)
}

/// Writes `dir/agent.toml` for agent `a1` with one camera `cam1` (post-roll 1 s),
/// state under `dir`, and the given `[uplink]` body; returns its path.
pub fn agent_config(dir: &Path, key: &Path, camera_url: &str, uplink: &str) -> Result<PathBuf> {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n[uplink]\n{uplink}\n\
             [[cameras]]\nid = \"cam1\"\nurl = \"{camera_url}\"\npost_roll_seconds = 1.0\n",
            chain = dir.join("chain"),
            outbox = dir.join("outbox"),
            model = workspace_root().join("models/yolox_nano.toml"),
        ),
    )?;
    Ok(config)
}

/// `vigil-agent run --seconds N --config F` with the ONNX Runtime of `make setup`.
pub fn spawn_agent(config: &Path, seconds: u32) -> Result<Proc> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["run", "--seconds", &seconds.to_string(), "--config"])
        .arg(config)
        .env(
            "ORT_DYLIB_PATH",
            workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    Proc::spawn("vigil-agent run", cmd)
}

/// An agent enrolled for the hub's embedded broker, as `vigil-hub agent add` printed it.
pub struct EmbeddedEnrolment {
    /// The agent's private key (`dir/agent.key`).
    pub key: PathBuf,
    /// Its public key (`dir/agent.pem`).
    pub pem: PathBuf,
    /// The key id the hub recorded.
    pub key_id: String,
    /// The `[uplink]` lines (broker URL, username, password) to paste into agent.toml.
    pub uplink: String,
}

/// Generates `dir/agent.key`, enrols it as `agent_id` at the hub data dir `data` for an
/// embedded broker on `broker_url`, and returns what `agent add` printed.
pub fn enroll_embedded(
    dir: &Path,
    data: &Path,
    agent_id: &str,
    broker_url: &str,
) -> Result<EmbeddedEnrolment> {
    let key = dir.join("agent.key");
    let pem = dir.join("agent.pem");
    std::fs::write(&pem, agent::keygen(&key)?)?;
    let mut add = Command::new(hub_bin()?);
    add.args([
        "agent",
        "add",
        agent_id,
        "--broker-url",
        broker_url,
        "--public-key",
    ])
    .arg(&pem)
    .arg("--data-dir")
    .arg(data);
    let added = crate::run("vigil-hub agent add", add, Duration::from_secs(20))?.ok()?;
    let uplink = added
        .stdout
        .split_once("[uplink]\n")
        .map(|(_, rest)| rest.to_string())
        .context("agent add printed no [uplink] lines")?;
    let key_id = added
        .stdout
        .lines()
        .find_map(|l| {
            l.split_once(", key id ")
                .map(|(_, id)| id.trim().to_string())
        })
        .context("agent add printed no key id")?;
    Ok(EmbeddedEnrolment {
        key,
        pem,
        key_id,
        uplink,
    })
}

/// Writes `dir/hub.toml` for `vigil-hub run` with data in `data`, its embedded broker's
/// plain listener on 127.0.0.1:`port`, and `extra` TOML after that; returns its path.
pub fn embedded_hub_config(dir: &Path, data: &Path, port: u16, extra: &str) -> Result<PathBuf> {
    let path = dir.join("hub.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n[broker.embedded]\nlisten = \"127.0.0.1:{port}\"\n{extra}",
            data.to_string_lossy()
        ),
    )?;
    Ok(path)
}

/// `vigil-hub run --config CONFIG` (its embedded broker; the web on a free port), returned
/// once the broker listens.
pub fn spawn_embedded_hub(config: &Path) -> Result<Proc> {
    let mut cmd = Command::new(hub_bin()?);
    cmd.args(["run", "--web-listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("NO_COLOR", "1");
    let mut hub = Proc::spawn("vigil-hub run", cmd)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !hub
        .next_line(deadline.saturating_duration_since(std::time::Instant::now()))?
        .contains("broker listening on")
    {}
    Ok(hub)
}

/// The hub's whole chain of the cameras `filter` selects (an SQL condition on `agent_id`
/// and `camera_id`): every seq it holds as a clip or knows from a record (recorded
/// pieces), as `"1,2,…"`, and the gap-free `"1,…,n"` it must equal. Fails when the chain
/// is shorter than the `clips` the agent signed.
pub fn chain_seqs(db: &Path, filter: &str, clips: usize) -> Result<(String, String)> {
    let seqs = sql(
        db,
        &format!(
            "SELECT group_concat(seq, ',') FROM (SELECT seq FROM clips WHERE {filter} \
             UNION SELECT seq FROM chain_links WHERE {filter} ORDER BY seq)"
        ),
    )?;
    let len = seqs.split(',').count();
    anyhow::ensure!(len >= clips, "chain {seqs} shorter than {clips} clips");
    let want: Vec<String> = (1..=len).map(|n| n.to_string()).collect();
    Ok((seqs, want.join(",")))
}
