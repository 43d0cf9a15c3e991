//! `vigil-agent` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use vigil_agent::camsim::{Camsim, CamsimSettings};
use vigil_agent::ingest::{CameraSettings, Transport};
use vigil_agent::record::{record, RecordRequest};

mod doctor;

#[derive(Parser)]
#[command(name = "vigil-agent", version, about = "Vigil edge agent")]
struct Cli {
    /// Log format on stderr: `text` (journald-friendly lines) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a video file as a live RTSP camera (no re-encoding), looping.
    Camsim {
        /// H.264/H.265 file (MP4, MKV, ...).
        #[arg(long)]
        file: PathBuf,
        /// TCP port (0 = pick a free one; the URL is printed on stdout).
        #[arg(long, default_value_t = 8554)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
        /// Mount path.
        #[arg(long, default_value = "/cam1")]
        path: String,
        /// Log one line per access unit sent (`unix_ms index pts_ms`), for latency benchmarks.
        #[arg(long)]
        frame_log: Option<PathBuf>,
    },
    /// Record one clip from a camera (remux only), optionally signed.
    Record {
        /// rtsp:// or rtsps:// URL.
        #[arg(long)]
        url: String,
        /// Seconds of video from the first key frame.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Output directory; gets clip.mp4 (and manifest.json, manifest.sig, pubkey.pem with --key).
        #[arg(long)]
        out: PathBuf,
        /// Signing key (see `keygen`).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Chain state directory.
        #[arg(long, default_value = "vigil-state/chain")]
        state_dir: PathBuf,
        /// Camera id for the manifest and chain.
        #[arg(long, default_value = "cam1")]
        camera_id: String,
        /// Agent id for the manifest.
        #[arg(long, default_value = "agent1")]
        agent_id: String,
        /// RTSP transport: tcp or udp (the other is tried on RTSP 461).
        #[arg(long, default_value = "tcp")]
        transport: String,
        /// Give up when the camera sends no key frame within this many seconds.
        #[arg(long, default_value_t = 15)]
        timeout: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a camera's ingest (recording branch, and analysis branch when --detect-fps > 0)
    /// for a while and print its counters as JSON: checks a camera's stream without a model.
    Ingest {
        /// rtsp:// or rtsps:// URL.
        #[arg(long)]
        url: String,
        /// How long to run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Decoded frames per second for the analysis branch (0 = recording branch only).
        #[arg(long, default_value_t = 5.0)]
        detect_fps: f64,
    },
    /// Run the agent: every configured camera, detection, signed clips into the outbox.
    Run {
        /// Agent config (see config/agent.example.toml).
        #[arg(long)]
        config: PathBuf,
        /// Stop by itself after this many seconds (demo, tests); default: until SIGTERM.
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// Check a config file and report every problem at once (exit 2 when invalid).
    CheckConfig {
        /// Agent config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Check config, key, model, cameras, broker, clock and outbox; one line each with a fix
    /// (exit 0 all pass, 1 any failed, 2 config unreadable).
    Doctor {
        /// Agent config file.
        #[arg(long)]
        config: PathBuf,
        /// Print the checks as a JSON array of {name, status, detail, fix}.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for each camera's first key frame.
        #[arg(long, default_value_t = 10)]
        camera_timeout_seconds: u64,
    },
    /// Deliver what the outbox holds to the hub and exit (no cameras, no detection):
    /// before a box is moved or decommissioned. Prints a JSON summary; exit 0 when the
    /// outbox is empty, 1 when entries are left at the timeout.
    Deliver {
        /// Agent config file (its [uplink] and outbox are used; cameras are not started).
        #[arg(long)]
        config: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600.0)]
        timeout_seconds: f64,
    },
    /// Write an evidence bundle of a camera's recorded window from this box's recording
    /// store (no hub needed). Check it with `vigil-verify OUT --trust agent.pem`.
    /// Prints a JSON summary.
    Export {
        /// Agent config file (key, chain state and recording store are used).
        #[arg(long)]
        config: PathBuf,
        /// Camera id.
        #[arg(long)]
        camera: String,
        /// Window start, RFC 3339 (e.g. 2026-12-04T10:00:00Z).
        #[arg(long)]
        from: String,
        /// Window end, RFC 3339.
        #[arg(long)]
        to: String,
        /// Bundle directory (or a path ending in .zip); must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate this box's signing key (ECDSA P-256, file mode 0600).
    Keygen {
        /// Where to write the private key (refuses to overwrite).
        #[arg(long)]
        key: PathBuf,
    },
    /// Run detection on a file or camera and print one JSON line per analysed frame.
    Detect {
        /// Model manifest (.toml) or .onnx with a manifest beside it.
        #[arg(long, default_value = "models/yolox_nano.toml")]
        model: PathBuf,
        /// Video file or rtsp:// URL.
        #[arg(long)]
        input: String,
        /// Analysed frames per second (0 = every frame of a file).
        #[arg(long, default_value_t = 5.0)]
        fps: f64,
        /// Minimum score to print.
        #[arg(long, default_value_t = 0.5)]
        min_score: f32,
        /// ONNX Runtime library (else ORT_DYLIB_PATH, else .deps/onnxruntime).
        #[arg(long)]
        ort_library: Option<PathBuf>,
        /// Stop after this many frames (0 = until the input ends).
        #[arg(long, default_value_t = 0)]
        frames: u64,
        /// JSON lines output (the default and only format today).
        #[arg(long)]
        json: bool,
        /// Print detect-path timing (wall and thread CPU ms per frame, decode excluded) to stderr.
        #[arg(long)]
        stats: bool,
    },
}

fn main() -> ExitCode {
    vigil_evidence::process::limit_malloc_arenas();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Plain text when captured (journald, files, tests): greppable `key=value`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-agent: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Camsim {
            file,
            port,
            address,
            path,
            frame_log,
        } => {
            let sim = Camsim::start(&CamsimSettings {
                file,
                address,
                port,
                path,
                frame_log,
            })?;
            println!("camsim: serving {}", sim.url());
            sim.run()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Record {
            url,
            seconds,
            out,
            key,
            state_dir,
            camera_id,
            agent_id,
            transport,
            timeout,
            json,
        } => {
            let mut camera = CameraSettings::new(&camera_id, &url);
            camera.transport = match transport.as_str() {
                "tcp" => Transport::Tcp,
                "udp" => Transport::Udp,
                other => anyhow::bail!("--transport {other:?} is not tcp or udp"),
            };
            camera.stall_timeout = Duration::from_secs(timeout);
            let summary = record(&RecordRequest {
                camera,
                seconds,
                out,
                key,
                state_dir,
                agent_id,
                timeout: Duration::from_secs(timeout),
            })?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!(
                    "recorded {}: {} {}x{}, {} frames, {:.1} s, {} bytes{}",
                    summary.path.display(),
                    summary.codec,
                    summary.width,
                    summary.height,
                    summary.frames,
                    summary.duration_ms as f64 / 1000.0,
                    summary.bytes,
                    match summary.seq {
                        Some(seq) => format!(", signed, seq {seq}"),
                        None => String::new(),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            url,
            seconds,
            detect_fps,
        } => ingest_probe(&url, seconds, detect_fps),
        Command::Run { config, seconds } => {
            let config = vigil_agent::config::AgentConfig::load(&config)?;
            let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                // A second signal while draining exits at once.
                signal_hook::flag::register_conditional_shutdown(sig, 1, shutdown.clone())?;
                signal_hook::flag::register(sig, shutdown.clone())?;
            }
            vigil_agent::runtime::run(&config, shutdown, seconds.map(Duration::from_secs_f64))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deliver {
            config,
            timeout_seconds,
        } => {
            let config = vigil_agent::config::AgentConfig::load(&config)?;
            let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, shutdown.clone())?;
            }
            let summary = vigil_agent::deliver::deliver(
                &config,
                Duration::from_secs_f64(timeout_seconds),
                shutdown,
            )?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(if summary.entries_left == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::CheckConfig { config } => match vigil_agent::config::AgentConfig::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} camera(s))",
                    config.display(),
                    c.cameras.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Doctor {
            config,
            json,
            camera_timeout_seconds,
        } => doctor::doctor(&config, json, Duration::from_secs(camera_timeout_seconds)),
        Command::Export {
            config,
            camera,
            from,
            to,
            out,
        } => {
            let config = vigil_agent::config::AgentConfig::load(&config)?;
            let parse = |name: &str, v: &str| {
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        anyhow::anyhow!("--{name} {v:?} is not an RFC 3339 time ({e}); write e.g. 2026-12-04T10:00:00Z")
                    })
            };
            let summary = vigil_agent::recording::export::export(
                &config,
                &camera,
                parse("from", &from)?,
                parse("to", &to)?,
                &out,
            )?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { key } => {
            let k = vigil_evidence::keys::SigningKey::generate(&key)?;
            println!("key_id: {}", k.key_id());
            print!("{}", k.public_key().to_pem());
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect {
            model,
            input,
            fps,
            min_score,
            ort_library,
            frames,
            json: _,
            stats,
        } => detect(
            &model,
            &input,
            fps,
            min_score,
            ort_library.as_deref(),
            frames,
            stats,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn detect(
    model: &std::path::Path,
    input: &str,
    fps: f64,
    min_score: f32,
    ort_library: Option<&std::path::Path>,
    limit: u64,
    stats: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use vigil_agent::detect::{detect_frame, DetectorOptions, OrtDetector};
    let manifest = if model.extension().is_some_and(|e| e == "onnx") {
        model.with_extension("toml")
    } else {
        model.to_path_buf()
    };
    let mut detector =
        OrtDetector::from_manifest_path(ort_library, &manifest, DetectorOptions::default())?;
    let stdout = std::io::stdout();
    let mut count = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    let (mut wall_ms, mut cpu_ms) = (0.0f64, 0.0f64);
    let mut each = |frame: vigil_agent::detect::AnalysisFrame| -> bool {
        let (w0, c0) = (std::time::Instant::now(), thread_cpu_ms());
        let result = detect_frame(&mut detector, &frame, min_score);
        wall_ms += w0.elapsed().as_secs_f64() * 1000.0;
        cpu_ms += thread_cpu_ms() - c0;
        match result {
            Ok(result) => {
                let line = serde_json::to_string(&result).unwrap_or_default();
                if writeln!(stdout.lock(), "{line}").is_err() {
                    return false;
                }
            }
            Err(e) => {
                failure = Some(e.into());
                return false;
            }
        }
        count += 1;
        limit == 0 || count < limit
    };
    if input.starts_with("rtsp://") || input.starts_with("rtsps://") {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let mut settings = CameraSettings::new("detect", input);
        settings.detect_fps = fps.max(0.1);
        let mut camera = vigil_agent::ingest::camera::Camera::spawn(
            settings,
            std::sync::Arc::new(|_| {}),
            Some(std::sync::Arc::new(move |f| {
                let _ = tx.try_send(f);
            })),
        )?;
        while let Ok(frame) = rx.recv_timeout(Duration::from_secs(20)) {
            if !each(frame) {
                break;
            }
        }
        camera.stop();
    } else {
        vigil_agent::ingest::filesource::decode_file(std::path::Path::new(input), fps, each)
            .map_err(anyhow::Error::msg)?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if stats && count > 0 {
        eprintln!(
            "detect-stats frames={count} wall_ms_per_frame={:.2} cpu_ms_per_frame={:.2}",
            wall_ms / count as f64,
            cpu_ms / count as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// CPU time of the calling thread, ms (ONNX Runtime runs single-threaded on it with
/// intra_threads = 1, so this is the detect path's whole cost).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; no other memory is touched.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn ingest_probe(url: &str, seconds: f64, detect_fps: f64) -> anyhow::Result<ExitCode> {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    use vigil_agent::ingest::{Camera, GopRing};
    let mut settings = CameraSettings::new("probe", url);
    settings.detect_fps = detect_fps.max(0.1);
    let ring = Arc::new(Mutex::new(GopRing::new(Duration::from_secs(10), 256 << 20)));
    let r2 = ring.clone();
    let on_frame: Option<vigil_agent::ingest::pipeline::FrameSink> = if detect_fps > 0.0 {
        Some(Arc::new(|_| {}))
    } else {
        None
    };
    let mut camera = Camera::spawn(
        settings,
        Arc::new(move |u| {
            if let Ok(mut r) = r2.lock() {
                r.push(u);
            }
        }),
        on_frame,
    )?;
    let end = std::time::Instant::now() + Duration::from_secs_f64(seconds);
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = camera.stats().clone();
    let state = s.state();
    camera.stop();
    let (ring_bytes, ring_gops) = ring
        .lock()
        .map(|r| (r.bytes(), r.len()))
        .unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({
            "state": state,
            "frames_in": s.frames_in.load(Ordering::Relaxed),
            "bytes_in": s.bytes_in.load(Ordering::Relaxed),
            "frames_analysed": s.frames_analysed.load(Ordering::Relaxed),
            "frames_dropped": s.frames_dropped.load(Ordering::Relaxed),
            "reconnects": s.reconnects.load(Ordering::Relaxed),
            "ring_bytes": ring_bytes,
            "ring_gops": ring_gops,
        })
    );
    Ok(ExitCode::SUCCESS)
}
