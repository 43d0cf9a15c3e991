//! `vigil-agent camsim` as seen by independent RTSP clients (GStreamer, ffprobe).

use std::process::Command;
use std::time::{Duration, Instant};

use vigil_tests::h264::{access_units_of_mp4, align_on_first_idr};
use vigil_tests::oracle::{
    gst_receive_access_units, parse_rate, probe_packets, probe_video_stream,
};
use vigil_tests::{run, sample, wait_until, Camsim, Proc};

// A client needs ~3-5 s of stream (an IDR, then the units asked for); the rest is headroom
// for a loaded machine (a full `make test` runs two heavy tests at once), where a 15 s
// bound failed a client now and then. A client that never gets data still fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// GStreamer and ffprobe both receive H.264 768x576 at 10 fps.
#[test]
fn camsim_serves() {
    let file = sample("vtest.mp4").expect("sample footage");
    let cam = Camsim::start(&file).expect("start camsim");

    let dir = tempfile::tempdir().expect("temp dir");
    let aus = gst_receive_access_units(cam.url(), 25, dir.path(), CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("GStreamer client: {e:#}\ncamsim stderr:\n{}", cam.stderr()));
    assert_eq!(
        aus.len(),
        25,
        "GStreamer client got every access unit asked for"
    );
    assert!(
        aus.iter().all(|a| !a.is_empty()),
        "every access unit holds slices"
    );

    let probe = probe_video_stream(cam.url(), CLIENT_TIMEOUT).expect("ffprobe the camera");
    let stream = &probe["stream"];
    assert_eq!(stream["codec_name"], "h264", "{probe}");
    assert_eq!(stream["width"], 768, "{probe}");
    assert_eq!(stream["height"], 576, "{probe}");
    let r_rate = stream["r_frame_rate"].as_str().and_then(parse_rate);
    assert!(
        r_rate.is_some_and(|r| (r - 10.0).abs() < 0.5),
        "ffprobe r_frame_rate {r_rate:?} (want 10): {probe}"
    );

    // Frame rate from the packets' own timestamps over ~3 s of the live stream.
    let packets = probe_packets(
        cam.url(),
        &["-rtsp_transport", "tcp", "-read_intervals", "%+3"],
        CLIENT_TIMEOUT,
    )
    .expect("ffprobe packets");
    let mut pts: Vec<f64> = packets.iter().filter_map(|p| p.pts).collect();
    pts.sort_by(f64::total_cmp);
    assert!(pts.len() >= 20, "only {} packets in ~3 s", pts.len());
    let fps = (pts.len() - 1) as f64 / (pts[pts.len() - 1] - pts[0]);
    assert!(
        (fps - 10.0).abs() < 0.5,
        "packet timestamps give {fps:.2} fps, want 10"
    );
}

/// The VCL NAL units a client receives equal the source file's, access unit by access unit.
#[test]
fn camsim_bytes_identical() {
    let file = sample("vtest.mp4").expect("sample footage");
    let (_, source) = access_units_of_mp4(&file).expect("demux source");
    let cam = Camsim::start(&file).expect("start camsim");
    let dir = tempfile::tempdir().expect("temp dir");
    // One GOP is 20 frames: 45 units hold at least one IDR and a full GOP after it.
    let received = gst_receive_access_units(cam.url(), 45, dir.path(), CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("GStreamer client: {e:#}\ncamsim stderr:\n{}", cam.stderr()));
    let a = align_on_first_idr(&source, &received).expect("received bytes equal the file's");
    assert!(
        a.matched >= 20,
        "only {} access units compared: {a:?}",
        a.matched
    );
}

/// Two clients at once both receive the same live stream, byte-identical to the file.
#[test]
fn camsim_two_clients() {
    let file = sample("vtest.mp4").expect("sample footage");
    let (_, source) = access_units_of_mp4(&file).expect("demux source");
    let cam = Camsim::start(&file).expect("start camsim");
    let url = cam.url().to_string();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().expect("temp dir");
                gst_receive_access_units(&url, 30, dir.path(), CLIENT_TIMEOUT)
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let aus = client
            .join()
            .expect("client thread")
            .unwrap_or_else(|e| panic!("client {i}: {e:#}\ncamsim stderr:\n{}", cam.stderr()));
        assert_eq!(aus.len(), 30, "client {i}");
        let a = align_on_first_idr(&source, &aus).unwrap_or_else(|e| panic!("client {i}: {e:#}"));
        assert!(a.matched >= 10, "client {i}: {a:?}");
    }
}

/// A path that is not mounted gets RTSP 404 quickly, not a hang.
#[test]
fn camsim_wrong_path_is_404() {
    let file = sample("vtest.mp4").expect("sample footage");
    let cam = Camsim::start(&file).expect("start camsim");
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-rtsp_transport", "tcp"])
        .arg(cam.url_with_path("/nope"));
    let out = run("ffprobe", cmd, Duration::from_secs(10)).expect("ffprobe finishes");
    assert!(!out.status.success(), "ffprobe succeeded on a wrong path");
    assert!(out.stderr.contains("404"), "no 404 in: {}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(5),
        "took {:?}",
        out.elapsed
    );
}

/// SIGTERM while a client is streaming: camsim exits 0 within a deadline.
#[test]
fn camsim_stops_on_sigterm() {
    let file = sample("vtest.mp4").expect("sample footage");
    let mut cam = Camsim::start(&file).expect("start camsim");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("live.h264");
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args([
        "-q",
        "rtspsrc",
        &format!("location={}", cam.url()),
        "protocols=tcp",
        "!",
        "rtph264depay",
        "!",
        "filesink",
        &format!("location={}", out.display()),
    ]);
    let _client = Proc::spawn("gst client", cmd).expect("start client");
    wait_until(
        Duration::from_secs(10),
        "the client to receive video",
        || std::fs::metadata(&out).is_ok_and(|m| m.len() > 50_000),
    )
    .unwrap_or_else(|e| panic!("{e:#}\ncamsim stderr:\n{}", cam.stderr()));
    let asked = Instant::now();
    let (status, killed) = cam.stop(Duration::from_secs(5)).expect("stop camsim");
    assert!(
        !killed,
        "camsim ignored SIGTERM for 5 s; stderr:\n{}",
        cam.stderr()
    );
    assert!(
        status.success(),
        "camsim exited with {status}; stderr:\n{}",
        cam.stderr()
    );
    assert!(asked.elapsed() < Duration::from_secs(5));
}
