//! Recording from an RTSP server that is not GStreamer-based: the harness's own minimal
//! server (parameter sets only in the SDP, FU-A packetization, TCP interleaved only,
//! `461` for UDP, optional `401`). Real cameras differ; the agent must not be tuned to
//! camsim.

use std::time::Duration;

use vigil_tests::agent::{record, summary};
use vigil_tests::clipcheck::{check_clip, Source};
use vigil_tests::h264::access_units_of_mp4;
use vigil_tests::h264::align_on_first_idr;
use vigil_tests::oracle::{gst_receive_access_units, probe_video_stream};
use vigil_tests::rtsp_server::{Behaviour, MiniRtspServer};
use vigil_tests::sample;

const RECORD_TIMEOUT: Duration = Duration::from_secs(20);

/// The mini server itself is sound: GStreamer and ffprobe receive the file's bytes.
#[test]
fn mini_server_serves_independent_clients() {
    let file = sample("vtest.mp4").expect("sample footage");
    let (_, source) = access_units_of_mp4(&file).expect("demux source");
    let server = MiniRtspServer::start(&file, "/stream", Behaviour::Serve).expect("mini server");
    let probe = probe_video_stream(&server.url(), Duration::from_secs(15)).expect("ffprobe");
    assert_eq!(probe["stream"]["codec_name"], "h264", "{probe}");
    assert_eq!(probe["stream"]["width"], 768, "{probe}");
    let dir = tempfile::tempdir().expect("temp dir");
    let aus = gst_receive_access_units(&server.url(), 25, dir.path(), Duration::from_secs(15))
        .expect("GStreamer client");
    let a = align_on_first_idr(&source, &aus).expect("bytes equal the file's");
    assert_eq!(a.matched, 25, "{a:?}");
}

fn record_from_mini(sample_name: &str, extra: &[&str]) -> MiniRtspServer {
    let file = sample(sample_name).expect("sample footage");
    let source = Source::read(&file).expect("demux source");
    let server = MiniRtspServer::start(&file, "/stream", Behaviour::Serve).expect("mini server");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("rec");
    let run = record(&server.url(), 3.0, &out, extra, RECORD_TIMEOUT).expect("record runs");
    assert!(
        run.status.success(),
        "record from the mini server failed ({}):\n{}\nserver saw: {:?}",
        run.status,
        run.stderr,
        server.log()
    );
    let s = summary(&run).expect("summary");
    let report = check_clip(&out.join("clip.mp4"), &source, 3.0)
        .unwrap_or_else(|e| panic!("{sample_name} via mini server: {e:#}"));
    assert_eq!(s["frames"], report.track.samples.len(), "{s}");
    assert!(
        report.decode_errors.is_empty(),
        "ffmpeg decoding the clip printed errors:\n{}",
        report.decode_errors
    );
    server
}

/// Baseline footage from a non-GStreamer server: byte-identical clip.
#[test]
fn interop_record_from_mini_server() {
    record_from_mini("vtest.mp4", &[]);
}

/// B-frames from a non-GStreamer server (RTP carries PTS only).
#[test]
fn interop_record_bframes_from_mini_server() {
    record_from_mini("vtest_bframes.mp4", &[]);
}

/// `--transport udp` against a TCP-only server: RTSP 461, then the agent falls back to TCP
/// (issue 3: "when a server refuses the transport — RTSP 461 — fall back to the other one").
#[test]
fn interop_udp_refused_falls_back_to_tcp() {
    let server = record_from_mini("vtest.mp4", &["--transport", "udp"]);
    let log = server.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("SETUP") && l.ends_with("-> 461 Unsupported Transport")),
        "the agent never asked for UDP: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("SETUP")
            && l.contains("RTP/AVP/TCP")
            && l.ends_with("-> 200 OK")),
        "no TCP SETUP after the 461: {log:?}"
    );
}

/// A camera that rejects the credentials: exit 1 naming 401, no panic.
#[test]
fn record_wrong_credentials_401() {
    let file = sample("vtest.mp4").expect("sample footage");
    let server =
        MiniRtspServer::start(&file, "/stream", Behaviour::RejectCredentials).expect("mini server");
    let url = server
        .url()
        .replace("rtsp://", "rtsp://admin:wrong-secret@");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = record(
        &url,
        2.0,
        &dir.path().join("rec"),
        &["--timeout", "5"],
        RECORD_TIMEOUT,
    )
    .expect("record finishes");
    assert_eq!(
        run.status.code(),
        Some(1),
        "status {}:\n{}",
        run.status,
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(run.stderr.contains("401"), "no 401 in:\n{}", run.stderr);
    assert!(
        !run.stderr.contains("wrong-secret"),
        "the password was logged:\n{}",
        run.stderr
    );
}
