//! The field tech's and the monitoring's view of a running box: `vigil-agent doctor`
//! against a real hub (embedded broker) — broker login, the hub's answer to the doctor
//! ping, a wrong password, a key the hub does not have — and the Prometheus endpoints of
//! a running agent and hub while clips flow from camsim through the embedded broker.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use vigil_tests::stack::{enroll_embedded, sql, EmbeddedEnrolment};
use vigil_tests::{
    agent, agent_bin, free_port, http_get, metric, sample, wait_until, workspace_root, Camsim,
    Finished, Proc,
};

fn doctor(config: &Path) -> Result<Finished> {
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["doctor", "--camera-timeout-seconds", "15", "--config"])
        .arg(config)
        .env(
            "ORT_DYLIB_PATH",
            workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    vigil_tests::run("vigil-agent doctor", cmd, Duration::from_secs(90))
}

fn line<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn doctor_round_trips_to_the_hub_and_metrics_follow_the_flow() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let camsim = Camsim::start(&sample("vtest.mp4")?)?;
    let data = dir.path().join("hub");
    let (broker_port, hub_metrics, agent_metrics) = (free_port()?, free_port()?, free_port()?);
    let broker_url = format!("mqtt://127.0.0.1:{broker_port}");
    let EmbeddedEnrolment {
        key,
        key_id,
        uplink,
        ..
    } = enroll_embedded(dir.path(), &data, "a1", &broker_url)?;
    let hub_config = dir.path().join("hub.toml");
    std::fs::write(
        &hub_config,
        format!(
            "data_dir = {data:?}\n[broker.embedded]\nlisten = \"127.0.0.1:{broker_port}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{hub_metrics}\"\n"
        ),
    )?;
    let mut hub = vigil_tests::stack::spawn_embedded_hub(&hub_config)?;
    vigil_tests::net::wait_for_tcp(hub_metrics, Duration::from_secs(10))?;

    let write_config = |name: &str, key: &Path, uplink: &str, extra: &str| -> Result<_> {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "agent_id = \"a1\"\nkey = {key:?}\nchain_dir = {chain:?}\noutbox_dir = {outbox:?}\n\
                 [detect]\nmodel = {model:?}\n[uplink]\n{uplink}\n{extra}\n\
                 [[cameras]]\nid = \"cam1\"\nurl = \"{cam}\"\npost_roll_seconds = 1.0\nmax_clip_seconds = 8.0\n",
                chain = dir.path().join("chain"),
                outbox = dir.path().join("outbox"),
                model = workspace_root().join("models/yolox_nano.toml"),
                cam = camsim.url(),
            ),
        )?;
        Ok(path)
    };
    let config = write_config(
        "agent.toml",
        &key,
        &uplink,
        &format!("[metrics]\nlisten = \"127.0.0.1:{agent_metrics}\""),
    )?;

    // Healthy box: every check passes, the hub answers with this box's key.
    let good = doctor(&config)?;
    assert!(
        good.status.success(),
        "doctor failed:\n{}{}",
        good.stdout,
        good.stderr
    );
    let hub_line = line(&good.stdout, "OK    hub").context(good.stdout.clone())?;
    assert!(
        hub_line.contains("answered in") && hub_line.contains(&key_id),
        "{hub_line}"
    );
    assert!(
        line(&good.stdout, "OK    broker").is_some(),
        "{}",
        good.stdout
    );

    // Wrong password: the broker refuses, named with what to check; no hub line.
    let bad_pass = write_config(
        "bad-pass.toml",
        &key,
        &uplink
            .lines()
            .map(|l| {
                if l.starts_with("password") {
                    "password = \"wrong\""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        "",
    )?;
    let refused = doctor(&bad_pass)?;
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stdout);
    let broker_line = line(&refused.stdout, "FAIL  broker").context(refused.stdout.clone())?;
    assert!(
        !broker_line.contains("wrong"),
        "the password is printed: {broker_line}"
    );
    assert!(refused.stdout.contains("fix:"), "{}", refused.stdout);

    // Another key on the box than the one enrolled: the hub's answer reveals it.
    let other_key = dir.path().join("other.key");
    agent::keygen(&other_key)?;
    let mismatch = doctor(&write_config("other-key.toml", &other_key, &uplink, "")?)?;
    assert_eq!(mismatch.status.code(), Some(1), "{}", mismatch.stdout);
    let hub_line = line(&mismatch.stdout, "FAIL  hub").context(mismatch.stdout.clone())?;
    assert!(hub_line.contains(&key_id), "{hub_line}");
    assert!(
        mismatch.stdout.contains("--replace-key"),
        "{}",
        mismatch.stdout
    );

    // The agent runs; its metrics and the hub's follow the clips.
    let mut cmd = Command::new(agent_bin()?);
    cmd.args(["run", "--seconds", "90", "--config"])
        .arg(&config)
        .env(
            "ORT_DYLIB_PATH",
            workspace_root().join(".deps/onnxruntime/libonnxruntime.so.1.31.1"),
        );
    let mut agent_proc = Proc::spawn("vigil-agent run", cmd)?;
    let db = data.join("index.sqlite");
    wait_until(
        Duration::from_secs(60),
        "a first clip stored at the hub",
        || sql(&db, "SELECT COUNT(*) FROM clips").is_ok_and(|n| n.parse::<u32>().unwrap_or(0) >= 1),
    )
    .with_context(|| format!("agent log:\n{}", agent_proc.stderr()))?;
    wait_until(
        Duration::from_secs(10),
        "the agent counts the stored clip",
        || {
            http_get(agent_metrics, "/metrics").is_ok_and(|(_, _, body)| {
                metric(&body, "vigil_agent_uplink_clips_stored_total").is_some_and(|v| v >= 1.0)
            })
        },
    )?;
    let (code, head, body) = http_get(agent_metrics, "/metrics")?;
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("application/openmetrics-text"),
        "{head}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let cam = |name: &str| metric(&body, &format!("{name}{{camera=\"cam1\"}}"));
    assert_eq!(
        metric(
            &body,
            "vigil_agent_camera_state{camera=\"cam1\",state=\"streaming\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        metric(
            &body,
            "vigil_agent_camera_state{camera=\"cam1\",state=\"retrying\"}"
        ),
        Some(0.0)
    );
    let frames = cam("vigil_agent_camera_frames_total").context("frames")?;
    assert!(frames >= 10.0, "{body}");
    assert!(
        cam("vigil_agent_detect_inferences_total").is_some_and(|v| v >= 1.0),
        "{body}"
    );
    assert!(
        cam("vigil_agent_clips_sealed_total").is_some_and(|v| v >= 1.0),
        "{body}"
    );
    assert!(
        cam("vigil_agent_events_started_total").is_some_and(|v| v >= 1.0),
        "{body}"
    );
    assert_eq!(
        metric(&body, "vigil_agent_outbox_limit_bytes"),
        Some(2147483648.0)
    );
    assert_eq!(metric(&body, "vigil_agent_uplink_connected"), Some(1.0));
    // Counters only grow.
    wait_until(Duration::from_secs(10), "more frames counted", || {
        http_get(agent_metrics, "/metrics").is_ok_and(|(_, _, b)| {
            metric(&b, "vigil_agent_camera_frames_total{camera=\"cam1\"}")
                .is_some_and(|v| v > frames)
        })
    })?;
    assert_eq!(http_get(agent_metrics, "/nothing")?.0, 404);

    let (code, _, hub_body) = http_get(hub_metrics, "/metrics")?;
    assert_eq!(code, 200);
    let indexed = sql(&db, "SELECT COUNT(*) FROM clips")?.parse::<f64>()?;
    let hub_indexed = metric(&hub_body, "vigil_hub_clips_indexed").context(hub_body.clone())?;
    assert!(hub_indexed >= indexed, "{hub_body}");
    assert!(
        metric(&hub_body, "vigil_hub_clips_stored_total").is_some_and(|v| v >= 1.0),
        "{hub_body}"
    );
    assert!(
        metric(&hub_body, "vigil_hub_messages_total{kind=\"chunk\"}").is_some_and(|v| v >= 1.0),
        "{hub_body}"
    );
    // Three doctor pings were answered.
    assert_eq!(
        metric(&hub_body, "vigil_hub_messages_total{kind=\"doctor\"}"),
        Some(2.0),
        "the good and the mismatched key's pings (the refused login sent none): {hub_body}"
    );
    assert_eq!(metric(&hub_body, "vigil_hub_broker_connected"), Some(1.0));
    assert_eq!(metric(&hub_body, "vigil_hub_index_up"), Some(1.0));
    assert!(metric(&hub_body, "vigil_hub_event_messages_total").is_some_and(|v| v >= 1.0));

    let (status, killed) = agent_proc.terminate(Duration::from_secs(20))?;
    assert!(
        status.success() && !killed,
        "agent: {}",
        agent_proc.stderr()
    );
    let (status, killed) = hub.terminate(Duration::from_secs(15))?;
    assert!(status.success() && !killed, "hub: {}", hub.stdout());
    Ok(())
}
