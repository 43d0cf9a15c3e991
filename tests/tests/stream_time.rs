//! Time is stream time, over RTSP (issue 19): B-frame footage served by camsim (GStreamer)
//! and by the harness's own RTSP server (not GStreamer). The agent's two branches, the
//! recorded access units and the decoded analysis frames, are stamped on one clock, frame
//! for unit, so an event's time, a clip's offset and a piece's edge name the same picture;
//! and the frames' times agree with an independent decoder (ffprobe) reading the same URL.
//! The file case (an MP4 edit list) is `agent/tests/ingest.rs`.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_agent::ingest::camera::{Camera, CameraSettings};
use vigil_tests::camsim::Camsim;
use vigil_tests::rtsp_server::{Behaviour, MiniRtspServer};
use vigil_tests::sample;

/// Frames compared per server.
const FRAMES: usize = 40;

/// (pts ms, key frame) of every recorded unit and the pts ms of every analysis frame.
fn agent_times(url: &str) -> (Vec<(u64, bool)>, Vec<u64>) {
    let units = Arc::new(Mutex::new(Vec::new()));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let mut settings = CameraSettings::new("st", url);
    settings.detect_fps = 30.0; // above the stream's 10 fps: every frame is analysed
    let (u, f) = (units.clone(), frames.clone());
    let mut camera = Camera::spawn(
        settings,
        Arc::new(move |unit| {
            if let (Some(pts), Ok(mut v)) = (unit.pts, u.lock()) {
                v.push((pts.mseconds(), unit.keyframe));
            }
        }),
        Some(Arc::new(move |frame| {
            if let Ok(mut v) = f.lock() {
                v.push(frame.pts.as_millis() as u64);
            }
        })),
    )
    .expect("camera starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames.lock().map(|v| v.len()).unwrap_or(0) < FRAMES + 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    camera.stop();
    let units = units.lock().map(|v| v.clone()).unwrap_or_default();
    let frames = frames.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(
        frames.len() >= FRAMES,
        "{} frames analysed from {url} in 30 s",
        frames.len()
    );
    (units, frames)
}

/// The first `n` frames ffprobe decodes from `url`, in presentation order: (time in ms,
/// key frame). ffmpeg's RTSP demuxer starts the stream's clock at the first RTP timestamp,
/// the first key frame's, and leaves that frame's own time unset (`N/A`) when B-frames
/// follow it: `None` there.
fn ffprobe_times(url: &str, n: usize) -> Vec<(Option<u64>, bool)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v",
        ])
        .args(["-read_intervals", &format!("%+#{}", n + 10)])
        .args([
            "-show_entries",
            "frame=pts_time,key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `key_frame,pts_time` per line (ffprobe's field order, not the request's).
    let v: Vec<(Option<u64>, bool)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut c = l.split(',');
            let key = c.next()?.trim() == "1";
            let t = c.next()?.trim();
            let ms = t.parse::<f64>().ok().map(|t| (t * 1000.0).round() as u64);
            (ms.is_some() || t == "N/A").then_some((ms, key))
        })
        .take(n)
        .collect();
    assert!(v.len() >= n, "ffprobe decoded {} frames of {url}", v.len());
    v
}

fn check(url: &str) {
    let (units, frames) = agent_times(url);
    // Frame for unit: the decoder's first picture is the first key unit's, and every
    // analysed frame carries the time of a recorded unit (both branches on one clock).
    let first_key = units
        .iter()
        .find(|(_, k)| *k)
        .expect("a key frame was recorded");
    assert_eq!(
        frames[0], first_key.0,
        "the first analysed frame is not at the first key frame's time: analysis and recording are on different clocks"
    );
    let unit_times: std::collections::HashSet<u64> = units.iter().map(|(t, _)| *t).collect();
    for t in &frames[..FRAMES] {
        assert!(
            unit_times.contains(t),
            "analysis frame at {t} ms has no recorded unit at that time"
        );
    }
    // Presentation order, relative to the first picture, equals an independent decoder's
    // reading of the same stream (B-frames reordered the same way).
    let ours: Vec<u64> = frames[..FRAMES].iter().map(|t| t - frames[0]).collect();
    let reference = ffprobe_times(url, FRAMES);
    assert!(
        reference[0].1,
        "ffprobe's first frame is a key frame: {reference:?}"
    );
    assert!(
        reference[0].0.unwrap_or(0) == 0 && reference[1..].iter().all(|(t, _)| t.is_some()),
        "ffprobe's clock starts at its first key frame: {reference:?}"
    );
    let theirs: Vec<u64> = reference.iter().map(|(t, _)| t.unwrap_or(0)).collect();
    assert_eq!(
        ours, theirs,
        "frame times over RTSP differ from ffprobe's on {url}"
    );
    // And the file's own cadence: 10 fps, one frame every 100 ms, none repeated.
    assert!(
        ours.windows(2).all(|w| w[1] - w[0] == 100),
        "not 100 ms apart in presentation order: {ours:?}"
    );
}

#[test]
fn b_frame_stream_time_over_rtsp_from_camsim() {
    let file = sample("vtest_bframes.mp4").expect("sample footage");
    let cam = Camsim::start(&file).expect("camsim");
    check(cam.url());
}

#[test]
fn b_frame_stream_time_over_rtsp_from_a_non_gstreamer_server() {
    let file = sample("vtest_bframes.mp4").expect("sample footage");
    let server = MiniRtspServer::start(&file, "/stream", Behaviour::Serve).expect("mini server");
    check(&server.url());
}
