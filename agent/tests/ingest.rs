//! Ingest against a real RTSP server (the camsim binary as a separate process).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_agent::ingest::clip::cut_clip;
use vigil_agent::ingest::{Camera, CameraSettings, CameraState, GopRing};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(name: &str) -> PathBuf {
    let p = root().join("target/samples").join(name);
    assert!(p.exists(), "{} is missing: run `make setup`", p.display());
    p
}

/// A camsim process, killed on drop.
struct Sim {
    child: Child,
    url: String,
    port: u16,
}

impl Sim {
    fn start(file: &str, port: u16) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
            .args([
                "camsim",
                "--port",
                &port.to_string(),
                "--path",
                "/cam1",
                "--file",
            ])
            .arg(sample(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn camsim");
        let stdout = child.stdout.take().expect("camsim stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read camsim banner");
        let url = line
            .split_whitespace()
            .last()
            .expect("camsim printed its URL")
            .to_string();
        let port = url
            .rsplit(':')
            .next()
            .and_then(|s| s.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("port in URL");
        Sim { child, url, port }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

/// Largest step between consecutive PTS (ms): one frame when nothing was dropped.
fn largest_step(pts: &[u64]) -> u64 {
    pts.windows(2)
        .map(|w| w[1].abs_diff(w[0]))
        .max()
        .unwrap_or(0)
}

fn settings(url: &str) -> CameraSettings {
    let mut s = CameraSettings::new("cam1", url);
    s.stall_timeout = Duration::from_secs(3);
    s.backoff_initial = Duration::from_millis(200);
    s.backoff_max = Duration::from_secs(2);
    s
}

#[test]
fn reconnects_after_camera_restart_and_cuts_valid_clip() {
    let mut sim = Sim::start("vtest.mp4", 0);
    let port = sim.port;
    let ring = Arc::new(Mutex::new(GopRing::new(Duration::from_secs(30), 64 << 20)));
    let r2 = ring.clone();
    let mut cam = Camera::spawn(
        settings(&sim.url),
        Arc::new(move |u| r2.lock().expect("ring").push(u)),
        None,
    )
    .expect("spawn camera");
    let stats = cam.stats().clone();
    wait_until("streaming", Duration::from_secs(15), || {
        stats.state() == CameraState::Streaming
    });
    // Camera goes away: the agent notices and retries.
    let _ = sim.child.kill();
    let _ = sim.child.wait();
    wait_until("retrying", Duration::from_secs(15), || {
        matches!(stats.state(), CameraState::Retrying { .. })
    });
    let before = stats.frames_in.load(Ordering::Relaxed);
    // Camera comes back on the same port.
    let _sim2 = Sim::start("vtest.mp4", port);
    wait_until("streaming again", Duration::from_secs(20), || {
        stats.state() == CameraState::Streaming
            && stats.frames_in.load(Ordering::Relaxed) > before + 30
    });
    assert!(stats.reconnects.load(Ordering::Relaxed) >= 1);
    // A clip cut from GOPs received after recovery is a valid MP4 with all its frames.
    let (gops, caps) = {
        let r = ring.lock().expect("ring");
        (r.all(), stats.caps.lock().expect("caps").clone())
    };
    let newest = gops.last().expect("a GOP after recovery").clone();
    wait_until("a full GOP after recovery", Duration::from_secs(10), || {
        ring.lock().expect("ring").len() > gops.len()
    });
    let clip = cut_clip(std::slice::from_ref(&newest), &caps.expect("caps known")).expect("cut");
    let desc = vigil_evidence::clip::ClipDescription::from_mp4(&clip.mp4).expect("valid mp4");
    assert_eq!(desc.frame_count as usize, newest.units.len());
    assert_eq!(desc.gops.len(), 1);
    cam.stop();
    assert_eq!(stats.state(), CameraState::Stopped);
}

#[test]
fn unreachable_camera_is_retried_with_growing_delays() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let url = format!("rtsp://user:secret@127.0.0.1:{port}/cam1");
    let mut cam = Camera::spawn(settings(&url), Arc::new(|_| {}), None).expect("spawn");
    let stats = cam.stats().clone();
    let mut seen: Vec<(u32, Instant)> = Vec::new();
    wait_until("four attempts", Duration::from_secs(20), || {
        if let CameraState::Retrying { attempt, reason } = stats.state() {
            assert!(reason.contains("not reachable"), "reason: {reason}");
            assert!(!reason.contains("secret"), "credentials leaked: {reason}");
            if seen.last().map(|s| s.0) != Some(attempt) {
                seen.push((attempt, Instant::now()));
            }
        }
        seen.len() >= 4
    });
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    // 200 ms, 400 ms, 800 ms (±20 %) plus connect time: each gap longer than the one before.
    assert!(gaps[2] > gaps[0], "gaps {gaps:?}");
    assert!(seen.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{seen:?}");
    cam.stop();
}

#[test]
fn analysis_rate_and_lossless_recording_with_slow_consumer() {
    let sim = Sim::start("vtest.mp4", 0);
    let ring = Arc::new(Mutex::new(GopRing::new(Duration::from_secs(2), 400_000)));
    let units: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let max_bytes = Arc::new(AtomicU64::new(0));
    let (r2, u2, m2) = (ring.clone(), units.clone(), max_bytes.clone());
    let fast = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let f2 = fast.clone();
    let mut s = settings(&sim.url);
    s.detect_fps = 5.0;
    let mut cam = Camera::spawn(
        s,
        Arc::new(move |u| {
            if let Some(t) = u.pts {
                u2.lock().expect("units").push(t.mseconds());
            }
            let mut r = r2.lock().expect("ring");
            r.push(u);
            m2.fetch_max(r.bytes() as u64, Ordering::Relaxed);
        }),
        Some(Arc::new(move |_f| {
            f2.lock().expect("frames").push(Instant::now());
        })),
    )
    .expect("spawn");
    let stats = cam.stats().clone();
    wait_until("8 s of analysis frames", Duration::from_secs(30), || {
        fast.lock().expect("frames").len() >= 45
    });
    let times = fast.lock().expect("frames").clone();
    // Rate over the steady part (skip the first frames while the pipeline starts).
    let steady = &times[5..];
    let secs = (steady[steady.len() - 1] - steady[0]).as_secs_f64();
    let rate = (steady.len() - 1) as f64 / secs;
    assert!(
        (4.5..=5.5).contains(&rate),
        "analysis rate {rate:.2} fps, want 5 ±10 %"
    );
    cam.stop();
    // Ring stayed within its byte bound the whole time.
    assert!(max_bytes.load(Ordering::Relaxed) <= 400_000);
    assert!(ring.lock().expect("ring").evicted_gops > 0);
    // No access unit missing: PTS steps are one frame (100 ms at 10 fps), never a gap.
    let pts = units.lock().expect("units").clone();
    assert!(pts.len() > 80);
    let worst = largest_step(&pts);
    assert!(
        worst <= 150,
        "largest PTS step {worst} ms means dropped access units"
    );
    assert_eq!(stats.frames_in.load(Ordering::Relaxed) as usize, pts.len());

    // Same again with a deliberately slow frame consumer: recording must still get every unit.
    let sim = Sim::start("vtest.mp4", 0);
    let units: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let u3 = units.clone();
    let slow_frames = Arc::new(AtomicU64::new(0));
    let sf = slow_frames.clone();
    let mut cam = Camera::spawn(
        settings(&sim.url),
        Arc::new(move |u| {
            if let Some(t) = u.pts {
                u3.lock().expect("units").push(t.mseconds());
            }
        }),
        Some(Arc::new(move |_f| {
            sf.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(700));
        })),
    )
    .expect("spawn");
    wait_until("6 s of recording", Duration::from_secs(30), || {
        units.lock().expect("units").len() >= 60
    });
    cam.stop();
    let pts = units.lock().expect("units").clone();
    let worst = largest_step(&pts);
    assert!(
        worst <= 150,
        "slow consumer made recording drop: step {worst} ms"
    );
    assert!(slow_frames.load(Ordering::Relaxed) >= 2);
}

#[test]
fn h265_camera_records_and_analyses_through_the_same_path() {
    let sim = Sim::start("vtest_h265.mp4", 0);
    let ring = Arc::new(Mutex::new(GopRing::new(Duration::from_secs(30), 64 << 20)));
    let r2 = ring.clone();
    let frames = Arc::new(AtomicU64::new(0));
    let f2 = frames.clone();
    let mut cam = Camera::spawn(
        settings(&sim.url),
        Arc::new(move |u| r2.lock().expect("ring").push(u)),
        Some(Arc::new(move |f| {
            assert_eq!((f.width, f.height), (768, 576));
            f2.fetch_add(1, Ordering::Relaxed);
        })),
    )
    .expect("spawn");
    wait_until(
        "two H.265 GOPs and analysis frames",
        Duration::from_secs(20),
        || ring.lock().expect("ring").len() >= 3 && frames.load(Ordering::Relaxed) >= 3,
    );
    let caps = cam
        .stats()
        .caps
        .lock()
        .expect("caps")
        .clone()
        .expect("caps");
    cam.stop();
    assert_eq!(
        caps.structure(0).map(|s| s.name().to_string()).as_deref(),
        Some("video/x-h265")
    );
    let gops = ring.lock().expect("ring").all();
    let complete = &gops[..gops.len() - 1];
    let clip = cut_clip(complete, &caps).expect("cut H.265 clip");
    let desc = vigil_evidence::clip::ClipDescription::from_mp4(&clip.mp4).expect("valid mp4");
    assert_eq!(desc.codec, vigil_evidence::clip::Codec::H265);
    assert_eq!(desc.gops.len(), complete.len());
    let units: usize = complete.iter().map(|g| g.units.len()).sum();
    assert_eq!(desc.frame_count as usize, units);
}

/// Names of this process's threads whose name starts with `prefix`, with how many
/// threads carry each (threads a library spawns inherit their creator's name).
fn thread_names(prefix: &str) -> std::collections::HashMap<String, usize> {
    let mut names = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return names;
    };
    for task in tasks.flatten() {
        if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
            let name = name.trim().to_string();
            if name.starts_with(prefix) {
                *names.entry(name).or_insert(0) += 1;
            }
        }
    }
    names
}

/// Runs a camera with `decode_threads` until it has analysed frames; returns the
/// queue thread names that appeared meanwhile and how many threads carry each.
fn queue_threads_while_decoding(decode_threads: u32) -> Vec<(String, usize)> {
    let before = thread_names("queue");
    let sim = Sim::start("vtest.mp4", 0);
    let frames = Arc::new(AtomicU64::new(0));
    let f2 = frames.clone();
    let mut s = settings(&sim.url);
    s.decode_threads = decode_threads;
    let mut cam = Camera::spawn(
        s,
        Arc::new(|_| {}),
        Some(Arc::new(move |_f| {
            f2.fetch_add(1, Ordering::Relaxed);
        })),
    )
    .expect("spawn");
    wait_until("analysis frames", Duration::from_secs(30), || {
        frames.load(Ordering::Relaxed) >= 10
    });
    let during = thread_names("queue");
    cam.stop();
    during
        .into_iter()
        .filter(|(name, _)| !before.contains_key(name))
        .collect()
}

#[test]
fn decode_threads_bounds_the_analysis_decoder() {
    // gst-libav's decoder threads are named after the queue thread that opened the
    // decoder: a name carried by more than one thread means worker threads.
    let single = queue_threads_while_decoding(1);
    assert!(!single.is_empty(), "no queue threads seen");
    assert!(
        single.iter().all(|(_, n)| *n == 1),
        "decode_threads = 1 still spawned decoder workers: {single:?}"
    );
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        // The decoder's own choice on a multi-core machine: one worker per core.
        let auto = queue_threads_while_decoding(0);
        assert!(
            auto.iter().any(|(_, n)| *n >= 2),
            "decode_threads = 0 should let the decoder thread (else this test sees nothing): {auto:?}"
        );
    }
}

/// Time is stream time: on an MP4 with B-frames and an edit list (what ffmpeg writes),
/// every decoded frame's `pts` is the time an independent decoder (ffprobe) gives the
/// same frame, so the first frame is at 0, not at the 200 ms reorder delay.
#[test]
fn frame_times_of_b_frame_footage_match_an_independent_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bframes.mp4");
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-t", "3", "-i"])
        .arg(&sample)
        .args(["-c:v", "libx264", "-bf", "2", "-g", "20", "-an"])
        .arg(&file)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success());
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe runs");
    let mut reference: Vec<u64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse::<f64>().ok())
        .map(|s| (s * 1000.0).round() as u64)
        .collect();
    reference.sort_unstable();
    assert!(
        reference.len() >= 20,
        "ffprobe found {} frames",
        reference.len()
    );
    assert_eq!(reference[0], 0, "the reference decoder starts at 0");
    let mut ours = Vec::new();
    vigil_agent::ingest::filesource::decode_file(&file, 0.0, |f| {
        ours.push(f.pts.as_millis() as u64);
        true
    })
    .unwrap();
    assert_eq!(ours.len(), reference.len(), "every frame decoded");
    assert_eq!(
        ours, reference,
        "frame times differ from the independent decoder's"
    );
}
