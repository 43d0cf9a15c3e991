//! `vigil-agent record` from camsim: byte-identical, key-frame-started, signed clips;
//! and clear failures (exit 1, a reason, no panic) from cameras that do not work.

use std::time::{Duration, Instant};

use vigil_tests::agent::{keygen, record, summary, verify};
use vigil_tests::clipcheck::{check_clip, Source};
use vigil_tests::{free_port, sample, Camsim, JunkServer};

/// Generous bound for a 4 s recording (key-frame wait, span, mux).
const RECORD_TIMEOUT: Duration = Duration::from_secs(20);

fn record_and_check(sample_name: &str) {
    let file = sample(sample_name).expect("sample footage");
    let source = Source::read(&file).expect("demux source");
    let cam = Camsim::start(&file).expect("start camsim");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("rec");
    let run = record(cam.url(), 4.0, &out, &[], RECORD_TIMEOUT).expect("record runs");
    assert!(
        run.status.success(),
        "record failed ({}):\n{}\ncamsim stderr:\n{}",
        run.status,
        run.stderr,
        cam.stderr()
    );
    let s = summary(&run).expect("summary");
    let clip = out.join("clip.mp4");
    let report = check_clip(&clip, &source, 4.0)
        .unwrap_or_else(|e| panic!("{sample_name}: clip check: {e:#}"));
    assert_eq!(
        s["frames"],
        report.track.samples.len(),
        "summary frames: {s}"
    );
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(768), Some(576)),
        "{s}"
    );
    assert!(
        s["codec"].as_str().is_some_and(|c| c.contains("264")),
        "{s}"
    );
    assert_eq!(s["signed"], false, "{s}");
    assert_eq!(
        s["bytes"].as_u64(),
        std::fs::metadata(&clip).ok().map(|m| m.len()),
        "summary bytes vs file: {s}"
    );
    assert!(
        report.decode_errors.is_empty(),
        "{sample_name}: ffmpeg decoding the clip printed errors:\n{}",
        report.decode_errors
    );
}

/// Baseline footage: every access unit of the clip equals the source's.
#[test]
fn record_byte_identity() {
    record_and_check("vtest.mp4");
}

/// High profile with B-frames: bytes identical and presentation order kept.
#[test]
fn record_bframes() {
    record_and_check("vtest_bframes.mp4");
}

/// keygen + record --key: the clip directory verifies against the key from keygen;
/// two records into one state dir get seq 1 and 2; a flipped byte fails verification.
#[test]
fn record_signed_verifies() {
    let file = sample("vtest.mp4").expect("sample footage");
    let cam = Camsim::start(&file).expect("start camsim");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("agent.key");
    let pem = keygen(&key).expect("keygen");
    let trust = dir.path().join("trusted.pem");
    std::fs::write(&trust, &pem).expect("write trust anchor");
    let state = dir.path().join("state");
    let key_args = [
        "--key",
        key.to_str().expect("utf-8"),
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];

    for seq in 1..=2u64 {
        let out = dir.path().join(format!("clip{seq}"));
        let run = record(cam.url(), 2.0, &out, &key_args, RECORD_TIMEOUT).expect("record runs");
        assert!(run.status.success(), "record {seq} failed:\n{}", run.stderr);
        let s = summary(&run).expect("summary");
        assert_eq!(s["signed"], true, "{s}");
        assert_eq!(s["seq"], seq, "{s}");
        for f in ["clip.mp4", "manifest.json", "manifest.sig", "pubkey.pem"] {
            assert!(out.join(f).is_file(), "record {seq}: {f} missing");
        }
        let v = verify(&out, &trust).expect("vigil-verify runs");
        assert!(
            v.status.success(),
            "verify clip {seq} failed ({}):\n{}{}",
            v.status,
            v.stdout,
            v.stderr
        );
    }

    // Tamper: flip one byte in the middle of the first clip's media data.
    let out = dir.path().join("clip1");
    let clip = out.join("clip.mp4");
    let mut bytes = std::fs::read(&clip).expect("read clip");
    let at = bytes.len() * 3 / 4;
    bytes[at] ^= 0x01;
    std::fs::write(&clip, &bytes).expect("write tampered clip");
    let v = verify(&out, &trust).expect("vigil-verify runs");
    assert!(
        !v.status.success(),
        "a tampered clip verified:\n{}",
        v.stdout
    );
}

/// Run record against a broken camera; it must exit 1 (not 101: no panic) within the
/// deadline and say why on stderr.
fn record_fails(url: &str, within: Duration) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let run = record(
        url,
        2.0,
        &dir.path().join("rec"),
        &["--timeout", "5"],
        RECORD_TIMEOUT,
    )
    .expect("record finishes");
    assert_eq!(
        run.status.code(),
        Some(1),
        "exit status {}; stderr:\n{}",
        run.status,
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked"),
        "record panicked:\n{}",
        run.stderr
    );
    assert!(
        !dir.path().join("rec/clip.mp4").exists(),
        "a clip was written"
    );
    assert!(
        started.elapsed() < within,
        "took {:?} (limit {within:?})",
        started.elapsed()
    );
    run.stderr
}

/// Wrong mount path: RTSP 404, reported as such.
#[test]
fn record_wrong_path_404() {
    let file = sample("vtest.mp4").expect("sample footage");
    let cam = Camsim::start(&file).expect("start camsim");
    let stderr = record_fails(&cam.url_with_path("/nope"), Duration::from_secs(10));
    assert!(stderr.contains("404"), "no 404 in:\n{stderr}");
}

/// Nothing listening: "not reachable".
#[test]
fn record_connection_refused() {
    let port = free_port().expect("free port");
    let stderr = record_fails(
        &format!("rtsp://127.0.0.1:{port}/cam1"),
        Duration::from_secs(10),
    );
    assert!(
        stderr.contains("not reachable"),
        "no 'not reachable' in:\n{stderr}"
    );
}

/// A server that accepts TCP and sends junk: a reason, no panic.
#[test]
fn record_junk_server() {
    let junk = JunkServer::start().expect("junk server");
    let stderr = record_fails(&junk.url(), Duration::from_secs(15));
    assert!(junk.connections() >= 1, "record never connected");
    let reason = stderr.lines().find(|l| l.contains("error")).unwrap_or("");
    assert!(
        reason.contains(&junk.url()) || reason.contains("127.0.0.1"),
        "no reason naming the camera in:\n{stderr}"
    );
}
