//! Independent clients and readers: ffprobe, ffmpeg and a GStreamer RTSP client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::h264::{access_unit_of_annexb, AccessUnit};
use crate::process::{run, Finished};

/// Run ffprobe with `args` (JSON output) within `timeout`.
pub fn ffprobe_json(args: &[&str], timeout: Duration) -> Result<Value> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-of", "json"]).args(args);
    let out = run("ffprobe", cmd, timeout)?
        .ok()
        .with_context(|| format!("ffprobe {args:?} failed"))?;
    serde_json::from_str(&out.stdout)
        .with_context(|| format!("ffprobe printed no JSON: {}", out.stdout))
}

/// The first video stream as ffprobe sees it (`-show_streams`).
pub fn probe_video_stream(input: &str, timeout: Duration) -> Result<Value> {
    let mut args = Vec::new();
    if input.starts_with("rtsp://") {
        args.extend(["-rtsp_transport", "tcp"]);
    }
    args.extend([
        "-select_streams",
        "v:0",
        "-show_streams",
        "-show_format",
        input,
    ]);
    let v = ffprobe_json(&args, timeout)?;
    let stream = v["streams"]
        .get(0)
        .cloned()
        .with_context(|| format!("ffprobe found no video stream in {input}: {v}"))?;
    Ok(serde_json::json!({ "stream": stream, "format": v["format"] }))
}

/// One packet as ffprobe reports it.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Presentation time in seconds (None when unset).
    pub pts: Option<f64>,
    /// Decode time in seconds (None when unset).
    pub dts: Option<f64>,
    pub key: bool,
    pub size: u64,
}

/// Video packets of `input` in file (decode) order; `extra` goes before the input.
pub fn probe_packets(input: &str, extra: &[&str], timeout: Duration) -> Result<Vec<Packet>> {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend([
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,dts_time,flags,size",
        "-show_packets",
        input,
    ]);
    let v = ffprobe_json(&args, timeout)?;
    let packets = v["packets"].as_array().cloned().unwrap_or_default();
    let time = |p: &Value, k: &str| p[k].as_str().and_then(|s| s.parse::<f64>().ok());
    Ok(packets
        .iter()
        .map(|p| Packet {
            pts: time(p, "pts_time"),
            dts: time(p, "dts_time"),
            key: p["flags"].as_str().is_some_and(|f| f.starts_with('K')),
            size: p["size"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
        })
        .collect())
}

/// Parse ffprobe's `num/den` rates.
pub fn parse_rate(rate: &str) -> Option<f64> {
    let (n, d) = rate.split_once('/')?;
    let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
    (d != 0.0).then(|| n / d)
}

/// Decode `file` fully with ffmpeg; returns whatever ffmpeg printed at level `error`
/// (empty when the decode was clean).
pub fn ffmpeg_decode_errors(file: &Path, timeout: Duration) -> Result<String> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"]);
    let out: Finished = run("ffmpeg decode", cmd, timeout)?;
    let mut text = out.stderr;
    if !out.status.success() {
        text.push_str(&format!("\n(ffmpeg exited with {})", out.status));
    }
    Ok(text.trim().to_string())
}

/// Receive `count` access units from `url` with a GStreamer client
/// (`rtspsrc protocols=tcp ! rtph264depay ! h264parse ! byte-stream/au`), one file per
/// access unit in `dir`; returns them in arrival order.
pub fn gst_receive_access_units(
    url: &str,
    count: u32,
    dir: &Path,
    timeout: Duration,
) -> Result<Vec<AccessUnit>> {
    let pattern: PathBuf = dir.join("au%06d.h264");
    let mut cmd = Command::new("gst-launch-1.0");
    // GStreamer's own warnings go to stderr, which a failure prints.
    cmd.env("GST_DEBUG", "2");
    cmd.arg("-q").args([
        "rtspsrc",
        &format!("location={url}"),
        "protocols=tcp",
        "latency=200",
        "!",
        "rtph264depay",
        "!",
        "h264parse",
        "!",
        "video/x-h264,stream-format=byte-stream,alignment=au",
        "!",
        "identity",
        // identity forwards N - 1 buffers, then EOS.
        &format!("eos-after={}", count + 1),
        "!",
        "multifilesink",
        &format!("location={}", pattern.display()),
    ]);
    let out = run("gst-launch-1.0 rtsp client", cmd, timeout)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "h264"))
        .collect();
    files.sort();
    // After the EOS, gst-launch takes the pipeline down and rtspsrc sends PAUSE and
    // TEARDOWN. rtspsrc cancels its own socket I/O on that state change, and a cancelled
    // half-written interleaved write now and then leaves the connection unusable: the
    // PAUSE then fails with "Could not send message (Received end-of-file)" and gst-launch
    // exits 1 — after every unit asked for was written (seen in CI with two clients).
    // What this oracle vouches for is the units received, so a failed exit counts only
    // when units are missing.
    if !out.status.success() && files.len() < count as usize {
        bail!(
            "GStreamer client for {url} exited with {} after {} of {count} access units:\n{}{}",
            out.status,
            files.len(),
            out.stdout,
            out.stderr
        );
    }
    files
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(|b| access_unit_of_annexb(&b))
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect()
}
