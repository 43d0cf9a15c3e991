//! Decoded frames from a video file at a given rate, for `vigil-agent detect --input FILE`.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use time::OffsetDateTime;

use crate::detect::AnalysisFrame;

/// Decode `path`, call `each` for frames at `fps` (every frame when 0), in order, until
/// EOS or `each` returns false.
pub fn decode_file(
    path: &Path,
    fps: f64,
    mut each: impl FnMut(AnalysisFrame) -> bool,
) -> Result<(), String> {
    gst::init().map_err(|e| e.to_string())?;
    std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let rate = if fps > 0.0 {
        format!("videorate drop-only=true max-rate={} ! ", fps.ceil() as i32)
    } else {
        String::new()
    };
    let desc = format!(
        "filesrc name=src ! decodebin ! {rate}videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=2"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("GStreamer: {e}; run `make setup`"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let src = pipeline.by_name("src").ok_or("no filesrc")?;
    src.set_property("location", path.to_string_lossy().to_string());
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| format!("cannot decode {}", path.display()))?;
    let mut result = Ok(());
    while let Ok(sample) = sink.pull_sample() {
        let Some(frame) = frame_from_sample("file", &sample) else {
            continue;
        };
        if !each(frame) {
            break;
        }
    }
    if let Some(bus) = pipeline.bus() {
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                result = Err(format!("cannot decode {}: {}", path.display(), e.error()));
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Copy a decoded RGB sample into an [`AnalysisFrame`] (tightly packed rows).
pub fn frame_from_sample(camera_id: &str, sample: &gst::Sample) -> Option<AnalysisFrame> {
    let caps = sample.caps()?;
    let s = caps.structure(0)?;
    let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
    let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let row = width as usize * 3;
    // GStreamer pads RGB rows to 4 bytes.
    let stride = (row + 3) & !3;
    let mut rgb = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        rgb.extend_from_slice(map.get(y * stride..y * stride + row)?);
    }
    Some(AnalysisFrame {
        camera_id: camera_id.to_string(),
        pts: Duration::from_nanos(buffer.pts().map(|p| p.nseconds()).unwrap_or(0)),
        wall: OffsetDateTime::now_utc(),
        width,
        height,
        rgb,
    })
}
