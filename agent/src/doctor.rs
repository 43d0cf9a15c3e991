//! `vigil-agent doctor`: one screen telling a field tech what works, what does not,
//! and how to fix each failure. Every check reuses the code the agent runs with
//! (config validation, key loading, detector, camera ingest, uplink options).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use vigil_agent::config::{AgentConfig, CameraConfig};
use vigil_agent::detect::frame::{PixelFormat, YuvColour};
use vigil_agent::ingest::camera::{redact_url, Camera, CameraState};
use vigil_agent::ingest::CameraSettings;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &str, detail: String) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail,
            fix: None,
        }
    }
    fn fail(name: &str, detail: String, fix: String) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail,
            fix: Some(fix),
        }
    }
    fn warn(name: &str, detail: String, fix: String) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail,
            fix: Some(fix),
        }
    }
}

/// Run every check on `path`; exit 0 all pass, 1 any failed, 2 config unreadable.
pub fn doctor(path: &Path, json: bool, camera_timeout: Duration) -> anyhow::Result<ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let config: AgentConfig = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let mut checks = vec![check_config(path, &config)];
    checks.push(check_key(&config.key));
    checks.push(check_model(&config));
    for c in &config.cameras {
        checks.push(check_camera(c, camera_timeout));
    }
    if let Some(u) = &config.uplink {
        checks.extend(check_broker_and_hub(u, &config.agent_id, &config.key));
    }
    checks.push(check_clock());
    checks.push(check_outbox(&config.outbox_dir, config.outbox.max_bytes));
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let status = match c.status {
                Status::Ok => "OK  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("{status}  {}  {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("      fix: {fix}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check_config(path: &Path, config: &AgentConfig) -> Check {
    let problems = config.problems();
    if problems.is_empty() {
        Check::ok(
            "config",
            format!(
                "{} valid ({} camera(s))",
                path.display(),
                config.cameras.len()
            ),
        )
    } else {
        Check::fail(
            "config",
            format!(
                "{} has {} problem(s): {}",
                path.display(),
                problems.len(),
                problems.join("; ")
            ),
            format!(
                "edit {} and re-run `vigil-agent check-config --config {}`",
                path.display(),
                path.display()
            ),
        )
    }
}

fn check_key(key: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let name = "signing key";
    let meta = match std::fs::metadata(key) {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                name,
                format!("cannot read {}: {e}", key.display()),
                format!(
                    "create it once with `vigil-agent keygen --key {}` and enrol its public key at the hub",
                    key.display()
                ),
            )
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Check::fail(
            name,
            format!(
                "{} has mode {mode:04o}: readable by group or others",
                key.display()
            ),
            format!(
                "chmod 600 {} (and chown it to the agent's user)",
                key.display()
            ),
        );
    }
    match vigil_evidence::keys::SigningKey::load(key) {
        Ok(k) => Check::ok(
            name,
            format!("{} key_id {} mode {mode:04o}", key.display(), k.key_id()),
        ),
        Err(e) => Check::fail(
            name,
            format!("{}: {e}", key.display()),
            format!(
                "the file is not a P-256 PKCS#8 key; move it aside and run `vigil-agent keygen --key {}`, then re-enrol the new public key",
                key.display()
            ),
        ),
    }
}

fn check_model(config: &AgentConfig) -> Check {
    use vigil_agent::detect::{AnalysisFrame, Detector, DetectorOptions, OrtDetector};
    let name = "model";
    let d = &config.detect;
    let (lib, _) = vigil_agent::detect::runtime::resolve_library_path(d.runtime_library.as_deref());
    let fix = format!(
        "check that {} is an ONNX Runtime 1.x library (detect.runtime_library or ORT_DYLIB_PATH) and that detect.model ({}) and its .onnx exist",
        lib.display(),
        d.model.display()
    );
    let mut detector = match OrtDetector::from_manifest_path(
        d.runtime_library.as_deref(),
        &d.model,
        DetectorOptions {
            intra_threads: d.intra_threads,
            score_floor: d.score_floor,
        },
    ) {
        Ok(det) => det,
        Err(e) => return Check::fail(name, e.to_string(), fix),
    };
    // A black frame laid out as cameras deliver them.
    const CAMERA_FORMAT: PixelFormat = PixelFormat::I420(YuvColour::BT601);
    let frame = AnalysisFrame {
        camera_id: "doctor".into(),
        pts: Duration::ZERO,
        wall: time::OffsetDateTime::now_utc(),
        width: 640,
        height: 480,
        format: CAMERA_FORMAT,
        data: vec![16; CAMERA_FORMAT.frame_len(640, 480)],
    };
    let t0 = Instant::now();
    match detector.detect(frame.view()) {
        Ok(_) => Check::ok(
            name,
            format!(
                "{} on {}: one inference in {} ms",
                detector.info().name,
                lib.display(),
                t0.elapsed().as_millis()
            ),
        ),
        Err(e) => Check::fail(name, format!("inference failed: {e}"), fix),
    }
}

fn check_camera(c: &CameraConfig, timeout: Duration) -> Check {
    let name = format!("camera {}", c.id);
    let url = redact_url(&c.url);
    let mut settings = CameraSettings::new(&c.id, &c.url);
    settings.transport = c.transport;
    settings.stall_timeout = timeout;
    let keyframe = Arc::new(AtomicBool::new(false));
    let after_key = Arc::new(AtomicU64::new(0));
    let (k2, a2) = (keyframe.clone(), after_key.clone());
    let camera = Camera::spawn(
        settings,
        Arc::new(move |u| {
            if u.keyframe {
                k2.store(true, Ordering::SeqCst);
            }
            if k2.load(Ordering::SeqCst) {
                a2.fetch_add(1, Ordering::Relaxed);
            }
        }),
        None,
    );
    let mut camera = match camera {
        Ok(c) => c,
        Err(e) => {
            return Check::fail(
                &name,
                format!("{url}: {e}"),
                "install GStreamer (gstreamer1.0-plugins-base/good/bad, gstreamer1.0-libav)".into(),
            )
        }
    };
    let stats = camera.stats().clone();
    let deadline = Instant::now() + timeout;
    let mut key_at: Option<Instant> = None;
    // Wait for the first key frame, then measure the frame rate for one second.
    let mut last_reason: Option<String> = None;
    while Instant::now() < deadline {
        if key_at.is_none() && keyframe.load(Ordering::SeqCst) {
            key_at = Some(Instant::now());
            after_key.store(0, Ordering::SeqCst);
        }
        if key_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(1)) {
            break;
        }
        if let CameraState::Retrying { reason, .. } = stats.state() {
            last_reason = Some(reason);
            // A refused or unauthorised connection will not fix itself within the timeout.
            if key_at.is_none()
                && (stats.reconnects.load(Ordering::Relaxed) >= 2
                    || last_reason
                        .as_deref()
                        .is_some_and(|r| r.contains("401") || r.contains("404")))
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let measured = key_at
        .map(|t| after_key.load(Ordering::SeqCst) as f64 / t.elapsed().as_secs_f64().max(0.001));
    let caps = stats.caps.lock().ok().and_then(|c| c.clone());
    camera.stop();
    let (codec, width, height, caps_fps) = caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .map(|s| {
            let codec = match s.name().as_str() {
                "video/x-h264" => "h264".to_string(),
                "video/x-h265" => "h265".to_string(),
                other => other.to_string(),
            };
            let fps = s
                .get::<gstreamer::Fraction>("framerate")
                .ok()
                .filter(|f| f.numer() > 0 && f.denom() > 0)
                .map(|f| f.numer() as f64 / f.denom() as f64);
            (
                codec,
                s.get::<i32>("width").unwrap_or(0),
                s.get::<i32>("height").unwrap_or(0),
                fps,
            )
        })
        .unwrap_or_else(|| ("unknown".into(), 0, 0, None));
    match key_at {
        Some(_) => Check::ok(
            &name,
            format!(
                "{url}: {codec} {width}x{height} {:.1} fps, key frame received",
                caps_fps.or(measured).unwrap_or(0.0)
            ),
        ),
        None => {
            let reason = last_reason.unwrap_or_else(|| {
                format!(
                    "no key frame within {} s (camera timed out)",
                    timeout.as_secs()
                )
            });
            let fix = if reason.contains("401") {
                "put the camera's username and password in the URL (rtsp://user:pass@host/...)"
            } else if reason.contains("404") || reason.to_ascii_lowercase().contains("not found") {
                "the stream path is wrong: check the URL's path in the camera's web page"
            } else if reason.contains("refused") || reason.contains("not reachable") {
                "check the camera's address and port, that it is powered, and that RTSP is enabled"
            } else {
                "check the network path to the camera (ping, firewall) or raise --camera-timeout-seconds"
            };
            Check::fail(&name, format!("{url}: {reason}"), fix.into())
        }
    }
}

/// Broker login (ConnAck) and, once connected, the hub round trip: a `doctor` ping the
/// hub answers on `doctor/reply` with the key it has enrolled for this agent. Uses the
/// client id `{agent}.doctor`, so a running agent's session is not taken over.
fn check_broker_and_hub(
    u: &vigil_agent::uplink::UplinkConfig,
    agent_id: &str,
    key: &Path,
) -> Vec<Check> {
    let fix_generic = format!(
        "check uplink.broker ({}), the credentials and the TLS files",
        u.broker
    );
    let opts = match u.mqtt_options(&format!("{agent_id}.doctor")) {
        Ok(o) => o,
        Err(e) => return vec![Check::fail("broker", e.to_string(), fix_generic)],
    };
    let root = format!("vigil/v1/{agent_id}");
    let reply_topic = format!("{root}/doctor/reply");
    let nonce = uuid::Uuid::now_v7().to_string();
    let (client, mut connection) = rumqttc::Client::new(opts, 10);
    connection
        .eventloop
        .set_network_options(vigil_agent::uplink::nodelay());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let mut checks = Vec::new();
    let mut sent_at: Option<Instant> = None;
    while Instant::now() < deadline {
        let event = match connection.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => {
                let text = e.to_string();
                if checks.is_empty() && text.contains("closed by peer") {
                    // The embedded broker answers a refused login with a CONNACK code;
                    // it closes without one for plain MQTT on its TLS port and for an
                    // address refused after too many failed logins.
                    return vec![Check::fail(
                        "broker",
                        format!("{}: the broker closed the connection without answering the login ({text})", u.broker),
                        "if this is the hub's TLS port use mqtts:// with uplink.ca_file; the hub also refuses an \
                         address for a minute after too many failed logins: use the username and password \
                         `vigil-hub agent add` printed for this agent, and check it is not revoked (`vigil-hub agent list`)"
                            .into(),
                    )];
                }
                let detail = vigil_agent::uplink::explain(&text, u);
                if checks.is_empty() {
                    return vec![Check::fail("broker", detail, fix_generic)];
                }
                break;
            }
            Err(_) => continue,
        };
        use rumqttc::{Event, Packet};
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                checks.push(Check::ok(
                    "broker",
                    format!(
                        "{}: connected as {agent_id}.doctor in {} ms",
                        u.broker,
                        started.elapsed().as_millis()
                    ),
                ));
                if let Err(e) = client.try_subscribe(&reply_topic, rumqttc::QoS::AtLeastOnce) {
                    checks.push(Check::fail(
                        "hub",
                        format!("cannot subscribe: {e}"),
                        fix_generic.clone(),
                    ));
                    return checks;
                }
            }
            Event::Incoming(Packet::SubAck(_)) if sent_at.is_none() => {
                let ping = serde_json::json!({ "nonce": nonce }).to_string();
                if let Err(e) = client.try_publish(
                    format!("{root}/doctor"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    ping,
                ) {
                    checks.push(Check::fail(
                        "hub",
                        format!("cannot publish the ping: {e}"),
                        fix_generic.clone(),
                    ));
                    return checks;
                }
                sent_at = Some(Instant::now());
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == reply_topic => {
                let Ok(pong) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
                    continue;
                };
                if pong.get("nonce").and_then(|n| n.as_str()) != Some(nonce.as_str()) {
                    continue; // another doctor's reply
                }
                let ms = sent_at.map(|t| t.elapsed().as_millis()).unwrap_or(0);
                let _ = client.try_disconnect();
                checks.push(hub_verdict(&pong, ms, key, agent_id));
                return checks;
            }
            _ => {}
        }
    }
    let _ = client.try_disconnect();
    if checks.is_empty() {
        checks.push(Check::fail(
            "broker",
            format!("{}: no ConnAck within 10 s", u.broker),
            fix_generic,
        ));
    } else {
        checks.push(Check::fail(
            "hub",
            "connected to the broker, but no hub answered the doctor ping within 10 s".into(),
            "check that vigil-hub runs and is connected to this broker (its log says \"Connected to the broker\"), \
             and that the broker lets this agent publish on vigil/v1/<agent id>/doctor"
                .into(),
        ));
    }
    checks
}

/// The `hub` check from the hub's reply.
fn hub_verdict(pong: &serde_json::Value, ms: u128, key: &Path, agent_id: &str) -> Check {
    let field = |k: &str| pong.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let version = field("hub_version");
    match field("status") {
        "ok" => {
            let local = vigil_evidence::keys::SigningKey::load(key)
                .ok()
                .map(|k| k.key_id().to_string());
            match local {
                Some(id) if id != field("key_id") => Check::fail(
                    "hub",
                    format!(
                        "hub {version} answered in {ms} ms, but it has key {} enrolled for {agent_id}, not this box's key {id}",
                        field("key_id")
                    ),
                    format!(
                        "re-enrol this box's key on the hub: vigil-hub agent add {agent_id} --public-key agent.pem --replace-key"
                    ),
                ),
                _ => Check::ok(
                    "hub",
                    format!("hub {version} answered in {ms} ms; enrolled key {}", field("key_id")),
                ),
            }
        }
        other => Check::fail(
            "hub",
            format!("hub {version} answered {other:?}"),
            field("reason").to_string(),
        ),
    }
}

fn check_clock() -> Check {
    let name = "clock";
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let out = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if v == "yes" {
                Check::ok(name, format!("{now}, NTP synchronised"))
            } else {
                Check::warn(
                    name,
                    format!("{now}, NTP not synchronised ({v})"),
                    "enable time sync: `timedatectl set-ntp true` and check the NTP server is reachable".into(),
                )
            }
        }
        _ => Check::warn(
            name,
            format!("{now}, NTP sync unknown (timedatectl unavailable)"),
            "check the clock against a reference; clip timestamps depend on it".into(),
        ),
    }
}

fn check_outbox(dir: &Path, max_bytes: u64) -> Check {
    use std::io::Write;
    let name = "outbox";
    let fix = format!(
        "create {} owned by the agent's user (outbox_dir in the config) on a writable disk",
        dir.display()
    );
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Check::fail(name, format!("cannot create {}: {e}", dir.display()), fix);
    }
    let probe = dir.join(".doctor-probe");
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(b"vigil doctor probe")?;
        f.sync_all()
    });
    let removed = std::fs::remove_file(&probe);
    if let Err(e) = written.and(removed) {
        return Check::fail(name, format!("{} not writable: {e}", dir.display()), fix);
    }
    let free = match free_bytes(dir) {
        Ok(b) => b,
        Err(e) => return Check::fail(name, format!("statvfs {}: {e}", dir.display()), fix),
    };
    let need = max_bytes.min(1 << 30);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    if free < need {
        Check::fail(
            name,
            format!(
                "{}: {free} bytes ({:.2} GiB) free, below {need} bytes needed",
                dir.display(),
                gib(free)
            ),
            format!(
                "free disk space or lower [outbox] max_bytes ({max_bytes}); need at least {need} bytes free"
            ),
        )
    } else {
        Check::ok(
            name,
            format!(
                "{} writable, {free} bytes ({:.2} GiB) free",
                dir.display(),
                gib(free)
            ),
        )
    }
}

fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    // SAFETY: statvfs only writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}
