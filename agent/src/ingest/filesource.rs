//! Decoded frames from a video file at a given rate, for `vigil-agent detect --input FILE`,
//! and the copy of a decoded sample into an [`AnalysisFrame`] that camera pipelines share.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use time::OffsetDateTime;

use crate::detect::frame::{chroma_size, PixelFormat, YuvColour, YuvMatrix};
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
        "filesrc name=src ! decodebin ! {rate}videoconvert ! video/x-raw,format=I420 ! appsink name=sink sync=false max-buffers=2"
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

/// Copies a decoded sample (I420 or RGB, whatever the caps say) into an
/// [`AnalysisFrame`] with tightly packed rows and planes. `None` when the sample
/// has no caps or buffer, or a format the detector does not read.
pub fn frame_from_sample(camera_id: &str, sample: &gst::Sample) -> Option<AnalysisFrame> {
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let buffer = sample.buffer()?;
    let (width, height) = (info.width(), info.height());
    let format = match info.format() {
        gst_video::VideoFormat::I420 => PixelFormat::I420(colour_of(&info)),
        gst_video::VideoFormat::Rgb => PixelFormat::Rgb24,
        _ => return None,
    };
    let video = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
    let mut data = Vec::with_capacity(format.frame_len(width, height));
    let planes: &[(u32, usize, usize)] = match format {
        PixelFormat::Rgb24 => &[(0, width as usize * 3, height as usize)],
        PixelFormat::I420(_) => {
            let (cw, ch) = chroma_size(width, height);
            let (cw, ch) = (cw as usize, ch as usize);
            &[
                (0, width as usize, height as usize),
                (1, cw, ch),
                (2, cw, ch),
            ]
        }
    };
    for &(plane, row, rows) in planes {
        let stride = usize::try_from(*video.plane_stride().get(plane as usize)?).ok()?;
        let src = video.plane_data(plane).ok()?;
        if stride == row {
            data.extend_from_slice(src.get(..row * rows)?);
        } else {
            for y in 0..rows {
                data.extend_from_slice(src.get(y * stride..y * stride + row)?);
            }
        }
    }
    Some(AnalysisFrame {
        camera_id: camera_id.to_string(),
        pts: Duration::from_nanos(
            buffer
                .pts()
                .map(|p| stream_time(sample, p).nseconds())
                .unwrap_or(0),
        ),
        wall: OffsetDateTime::now_utc(),
        width,
        height,
        format,
        data,
    })
}

/// A buffer timestamp mapped through the sample's segment to stream time: the time of
/// the frame as the file (or stream) presents it. An MP4 with B-frames has an edit list
/// that starts the segment at the decoder's reorder delay (ffmpeg: 2 frames), so raw
/// PTS run that much late — frame 0 of a 10 fps file came out at 200 ms. The PTS is kept
/// when the sample has no time segment or the position lies outside it.
pub fn stream_time(sample: &gst::Sample, pts: gst::ClockTime) -> gst::ClockTime {
    sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|s| s.to_stream_time(pts))
        .unwrap_or(pts)
}

/// The stream's YUV matrix and range (BT.601 limited when the caps do not say).
fn colour_of(info: &gst_video::VideoInfo) -> YuvColour {
    let c = info.colorimetry();
    YuvColour {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
            gst_video::VideoColorMatrix::Bt2020 => YuvMatrix::Bt2020,
            _ => YuvMatrix::Bt601,
        },
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
    }
}
