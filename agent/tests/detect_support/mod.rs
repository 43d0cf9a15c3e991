//! Fixtures shared by the detection integration tests: real frames from the
//! sample footage (decoded by ffmpeg, a test oracle only), the shipped model,
//! and tiny ONNX models built with Python's `onnx` package.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vigil_agent::detect::frame::{AnalysisFrame, PixelFormat, YuvColour};

pub const W: u32 = 768;
pub const H: u32 = 576;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn manifest() -> PathBuf {
    repo().join("models/yolox_nano.toml")
}

pub fn runtime_lib() -> PathBuf {
    repo().join(".deps/onnxruntime/libonnxruntime.so.1.31.1")
}

/// Decodes `count` frames of vtest.avi starting at frame `start`, as packed RGB24.
pub fn vtest_frames(start: u32, count: u32) -> Vec<Vec<u8>> {
    vtest_frames_as(start, count, "rgb24", (W * H * 3) as usize)
}

/// The same frames as the decoder hands them over (planar 4:2:0, what the agent analyses).
pub fn vtest_frames_i420(start: u32, count: u32) -> Vec<Vec<u8>> {
    vtest_frames_as(start, count, "yuv420p", (W * H * 3 / 2) as usize)
}

fn vtest_frames_as(start: u32, count: u32, pix_fmt: &str, size: usize) -> Vec<Vec<u8>> {
    let src = repo().join("target/samples/vtest.avi");
    assert!(
        src.is_file(),
        "sample footage {} is missing; run `make setup` (it copies OpenCV's vtest.avi there)",
        src.display()
    );
    let filter = format!("select=between(n\\,{start}\\,{})", start + count - 1);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&src)
        .args([
            "-vf", &filter, "-vsync", "0", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-",
        ])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => panic!("ffmpeg failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("could not run ffmpeg (needed by this test as an oracle): {e}"),
    };
    assert_eq!(
        out.len(),
        size * count as usize,
        "ffmpeg returned a partial decode"
    );
    out.chunks_exact(size).map(<[u8]>::to_vec).collect()
}

/// An RGB frame at 10 fps: frame `n` has pts n*100 ms.
pub fn frame(camera: &str, n: u64, rgb: Vec<u8>) -> AnalysisFrame {
    frame_as(camera, n, PixelFormat::Rgb24, rgb)
}

/// vtest's own frame as a camera's I420 (BT.601 limited range, as ffmpeg decodes it).
pub fn frame_i420(camera: &str, n: u64, yuv: Vec<u8>) -> AnalysisFrame {
    frame_as(camera, n, PixelFormat::I420(YuvColour::BT601), yuv)
}

fn frame_as(camera: &str, n: u64, format: PixelFormat, data: Vec<u8>) -> AnalysisFrame {
    let pts = Duration::from_millis(100 * n);
    AnalysisFrame {
        camera_id: camera.to_string(),
        pts,
        wall: time::macros::datetime!(2025-01-01 12:00 UTC) + pts,
        width: W,
        height: H,
        format,
        data,
    }
}

/// Runs a Python snippet with the project's `onnx`/`numpy` (in `.deps/python`).
pub fn python(script: &str, dir: &Path) {
    let file = dir.join("build_model.py");
    if let Err(e) = std::fs::write(&file, script) {
        panic!("write {}: {e}", file.display());
    }
    let out = Command::new("python3")
        .arg(&file)
        .current_dir(dir)
        .env("PYTHONPATH", repo().join(".deps/python"))
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("python failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("could not run python3: {e}"),
    }
}

/// Writes a manifest + labels next to `model_file` inside `dir`.
pub fn write_manifest(
    dir: &Path,
    family: &str,
    model_file: &str,
    w: u32,
    h: u32,
    labels: &[&str],
) -> PathBuf {
    let labels_path = dir.join("labels.txt");
    let manifest = dir.join("model.toml");
    let text = format!(
        "name = \"test\"\nfamily = \"{family}\"\nfile = \"{model_file}\"\ninput_width = {w}\ninput_height = {h}\nlabels = \"labels.txt\"\n"
    );
    if let Err(e) = std::fs::write(&labels_path, labels.join("\n"))
        .and_then(|_| std::fs::write(&manifest, text))
    {
        panic!("write fixture: {e}");
    }
    manifest
}

pub fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    }
}

/// Streams frames `start..start+count` of vtest.avi to `f(n, rgb)` without holding them all.
pub fn each_vtest_frame(start: u32, count: u32, mut f: impl FnMut(u64, Vec<u8>)) {
    use std::io::Read;
    use std::process::Stdio;
    let src = repo().join("target/samples/vtest.avi");
    assert!(
        src.is_file(),
        "sample footage {} is missing; run `make setup`",
        src.display()
    );
    let filter = format!("select=between(n\\,{start}\\,{})", start + count - 1);
    let mut child = match Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&src)
        .args([
            "-vf", &filter, "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
        ])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("could not run ffmpeg (needed by this test as an oracle): {e}"),
    };
    let Some(mut out) = child.stdout.take() else {
        panic!("ffmpeg has no stdout");
    };
    let size = (W * H * 3) as usize;
    for i in 0..count as u64 {
        let mut buf = vec![0u8; size];
        if let Err(e) = out.read_exact(&mut buf) {
            panic!("ffmpeg stopped after {i} frames: {e}");
        }
        f(start as u64 + i, buf);
    }
    let _ = child.wait();
}
