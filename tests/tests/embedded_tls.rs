//! The agent over TLS to the hub's embedded broker (TLS only, no plain listener): the
//! hub generates its CA and certificate at first use, `agent add` prints the CA and
//! the `[uplink]` lines, and a real agent delivers events through camsim → agent →
//! mqtts → hub. Then what a field tech gets wrong fails clearly and never connects:
//! plain MQTT to the TLS port, a CA the broker's certificate is not from, an expired
//! certificate and a certificate for another host (the hub's own supplied files).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::stack::sql;
use vigil_tests::tls::{OddCa, TestCa};
use vigil_tests::{agent, free_port, hub_bin, sample, wait_until, workspace_root, Camsim, Proc};

/// `vigil-hub run --config` with its TLS listener up (it logs the fingerprint).
fn tls_hub(config: &Path) -> Result<Proc> {
    let mut cmd = Command::new(hub_bin()?);
    cmd.args(["run", "--web-listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env("NO_COLOR", "1");
    let hub = Proc::spawn("vigil-hub run", cmd)?;
    wait_until(Duration::from_secs(30), "the TLS listener", || {
        hub.stdout().contains("broker listening with TLS on")
    })
    .with_context(|| hub.stdout())?;
    Ok(hub)
}

fn hub_config(
    dir: &Path,
    name: &str,
    tls_port: u16,
    files: Option<(&Path, &Path)>,
) -> Result<PathBuf> {
    let data = dir.join(format!("{name}-data"));
    let mut text = format!(
        "data_dir = {:?}\n[broker.embedded]\nlisten = \"\"\ntls_listen = \"127.0.0.1:{tls_port}\"\n",
        data.to_string_lossy()
    );
    if let Some((cert, key)) = files {
        text.push_str(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

fn agent_toml(dir: &Path, name: &str, key: &Path, cam: &str, uplink: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
             [detect]\nmodel = {model:?}\n[uplink]\n{uplink}\n\
             [[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\npost_roll_seconds = 1.0\n",
            chain = dir.join(format!("{name}-chain")),
            outbox = dir.join(format!("{name}-outbox")),
            model = workspace_root().join("models/yolox_nano.toml"),
        ),
    )?;
    Ok(path)
}

/// Runs the agent until its log says `needle` (within 30 s); the log must never say
/// it connected. Returns the log.
fn fails_with(config: &Path, needle: &str) -> Result<String> {
    let mut p = vigil_tests::stack::spawn_agent(config, 60)?;
    let found = wait_until(Duration::from_secs(30), needle, || {
        p.stderr().contains(needle)
    });
    let log = p.stderr();
    p.terminate(Duration::from_secs(15))?;
    found.with_context(|| format!("agent log:\n{log}"))?;
    assert!(
        !log.contains("Uplink connected"),
        "connected anyway:\n{log}"
    );
    eprintln!(
        "{needle}: {}",
        log.lines().find(|l| l.contains(needle)).unwrap_or_default()
    );
    Ok(log)
}

#[test]
fn agent_over_tls_to_the_embedded_broker_and_bad_certificates_fail_clearly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let key = d.join("agent.key");
    let pem = d.join("agent.pem");
    std::fs::write(&pem, agent::keygen(&key)?)?;
    let tls_port = free_port()?;
    let config = hub_config(d, "hub", tls_port, None)?;
    let data = d.join("hub-data");
    let ca_path = data.join("broker-tls/ca.pem");

    // agent add makes the CA (the hub has not run yet) and prints what the box needs.
    let mut add = Command::new(hub_bin()?);
    add.args(["agent", "add", "a1", "--public-key"])
        .arg(&pem)
        .arg("--config")
        .arg(&config)
        .arg("--ca-path")
        .arg(&ca_path);
    let added = vigil_tests::run("vigil-hub agent add", add, Duration::from_secs(20))?.ok()?;
    let text = added.stdout;
    assert!(text.contains("-----BEGIN CERTIFICATE-----"), "{text}");
    let fingerprint = text
        .split("SHA-256 fingerprint ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .context("agent add printed the CA fingerprint")?
        .to_string();
    let uplink = text
        .split_once("[uplink]\n")
        .map(|(_, rest)| rest.to_string())
        .context("[uplink] lines")?;
    // tls_listen names 127.0.0.1, so that is the host agent add prints.
    assert!(
        uplink.contains(&format!("broker = \"mqtts://127.0.0.1:{tls_port}\"")),
        "{uplink}"
    );
    assert!(
        uplink.contains(&format!("ca_file = {:?}", ca_path.display().to_string())),
        "{uplink}"
    );

    let mut hub = tls_hub(&config)?;
    assert!(
        hub.stdout().contains(&fingerprint),
        "the hub logs the same CA fingerprint {fingerprint}:\n{}",
        hub.stdout()
    );
    let db = data.join("index.sqlite");
    let good = agent_toml(d, "good", &key, camsim.url(), &uplink)?;
    let mut agent = vigil_tests::stack::spawn_agent(&good, 60)?;
    let delivered = wait_until(Duration::from_secs(50), "an event over mqtts", || {
        sql(&db, "SELECT COUNT(*) FROM events").is_ok_and(|n| n.parse::<u32>().unwrap_or(0) >= 1)
    });
    let log = agent.stderr();
    agent.terminate(Duration::from_secs(15))?;
    delivered.with_context(|| format!("agent log:\n{log}\nhub log:\n{}", hub.stdout()))?;
    assert!(log.contains("Uplink connected"), "{log}");

    // Plain MQTT to the TLS port: the hub says what it saw, the agent what to check.
    let plain_uplink: String = uplink
        .replace("mqtts://", "mqtt://")
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .collect::<Vec<_>>()
        .join("\n");
    let plain = agent_toml(d, "plain", &key, camsim.url(), &plain_uplink)?;
    let log = fails_with(&plain, "use mqtts:// with uplink.ca_file")?;
    assert!(log.contains("TLS port"), "{log}");
    assert!(
        hub.stdout().contains("TLS handshake failed"),
        "hub log:\n{}",
        hub.stdout()
    );

    // A CA that did not sign the broker's certificate.
    let other = TestCa::new(d, "other-ca")?;
    let wrong_ca = agent_toml(
        d,
        "wrong-ca",
        &key,
        camsim.url(),
        &uplink.replace(
            &ca_path.display().to_string(),
            &other.cert.display().to_string(),
        ),
    )?;
    let log = fails_with(&wrong_ca, "not trusted")?;
    assert!(
        log.contains("uplink.ca_file") && log.contains("other-ca.pem"),
        "{log}"
    );
    hub.terminate(Duration::from_secs(10))?;

    // The admin's own certificate files: expired, then for another host.
    let odd = OddCa::new(d, "odd-ca")?;
    let odd_uplink = uplink.replace(
        &ca_path.display().to_string(),
        &odd.cert.display().to_string(),
    );
    for (name, names, from, to, needle) in [
        (
            "expired",
            vec!["127.0.0.1", "localhost"],
            -30,
            -1,
            "has expired or is not valid yet",
        ),
        (
            "elsewhere",
            vec!["hub.elsewhere.example"],
            -1,
            30,
            "is not for the host in uplink.broker",
        ),
    ] {
        let (cert, key_file) = odd.server(d, name, &names, from, to)?;
        let port = free_port()?;
        let config = hub_config(d, name, port, Some((&cert, &key_file)))?;
        let mut hub = tls_hub(&config)?;
        let agent = agent_toml(
            d,
            &format!("agent-{name}"),
            &key,
            camsim.url(),
            &odd_uplink.replace(&format!(":{tls_port}"), &format!(":{port}")),
        )?;
        fails_with(&agent, needle)?;
        hub.terminate(Duration::from_secs(10))?;
    }
    Ok(())
}
