//! Clips from ring GOPs by remuxing only: `appsrc ! parse ! mp4mux faststart=true ! appsink`.
//!
//! The access units pushed are the camera's buffers, unchanged; the parser only converts
//! byte-stream to the MP4 sample format (length prefixes, parameter sets into `avcC`).
//! Timestamps are rebased to start at zero. Decode times are rebuilt from presentation
//! times (sorted PTS assigned in decode order) because RTP carries only PTS: with
//! B-frames this keeps DTS ≤ PTS and monotonic, so players show frames at the right time.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::ring::Gop;

/// Errors cutting a clip.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("no video to cut: the ring holds no GOP in the requested span")]
    Empty,
    #[error("the stream's caps are unknown (no access unit received yet)")]
    NoCaps,
    #[error("GStreamer element {0} is missing; run `make setup`")]
    MissingElement(String),
    #[error("muxing the clip failed: {0}")]
    Mux(String),
}

/// A muxed clip held in memory (hashed and signed before it is written).
pub struct MuxedClip {
    /// The MP4 file's bytes.
    pub mp4: Vec<u8>,
    /// Access units in the clip.
    pub frames: usize,
    /// Presentation span of the clip.
    pub duration: std::time::Duration,
}

/// Mux `gops` (decode order, first unit a key frame) into a faststart MP4.
pub fn cut_clip(gops: &[Gop], caps: &gst::Caps) -> Result<MuxedClip, ClipError> {
    gst::init().map_err(|e| ClipError::Mux(e.to_string()))?;
    let units: Vec<_> = gops.iter().flat_map(|g| g.units.iter()).collect();
    if units.is_empty() {
        return Err(ClipError::Empty);
    }
    let media = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .ok_or(ClipError::NoCaps)?;
    let parser = match media.as_str() {
        "video/x-h265" => "h265parse",
        _ => "h264parse",
    };
    let make = |f: &str| {
        gst::ElementFactory::make(f)
            .build()
            .map_err(|_| ClipError::MissingElement(f.to_string()))
    };
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(caps)
        .format(gst::Format::Time)
        .is_live(false)
        .build();
    let parse = make(parser)?;
    let mux = make("mp4mux")?;
    mux.set_property("faststart", true);
    let sink = gst_app::AppSink::builder().sync(false).build();
    let mux_err = |e: gst::glib::BoolError| ClipError::Mux(e.to_string());
    pipeline
        .add_many([src.upcast_ref(), &parse, &mux, sink.upcast_ref()])
        .map_err(mux_err)?;
    gst::Element::link_many([src.upcast_ref(), &parse, &mux, sink.upcast_ref()])
        .map_err(mux_err)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| ClipError::Mux(e.to_string()))?;

    // Rebuild timestamps: PTS rebased to the smallest PTS; DTS = sorted PTS, shifted by the
    // largest reorder delay so that DTS <= PTS everywhere.
    let pts: Vec<u64> = units
        .iter()
        .map(|u| u.pts.or(u.dts).map(|t| t.nseconds()).unwrap_or(0))
        .collect();
    let mut sorted = pts.clone();
    sorted.sort_unstable();
    let base = sorted[0];
    let delay = sorted
        .iter()
        .zip(&pts)
        .map(|(s, p)| s.saturating_sub(*p))
        .max()
        .unwrap_or(0);
    let frame = if sorted.len() > 1 {
        (sorted[sorted.len() - 1] - base) / (sorted.len() as u64 - 1)
    } else {
        40_000_000
    };
    for (i, unit) in units.iter().enumerate() {
        let mut buffer = unit.buffer.copy();
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts[i] - base + delay));
            b.set_dts(gst::ClockTime::from_nseconds(sorted[i] - base));
            b.set_duration(gst::ClockTime::from_nseconds(frame));
        }
        src.push_buffer(buffer)
            .map_err(|e| ClipError::Mux(format!("push: {e:?}")))?;
    }
    src.end_of_stream()
        .map_err(|e| ClipError::Mux(format!("eos: {e:?}")))?;

    // Place every output buffer at its byte offset: muxers may rewrite headers.
    let mut mp4: Vec<u8> = Vec::new();
    let mut failure = None;
    loop {
        match sink.pull_sample() {
            Ok(sample) => {
                let Some(buf) = sample.buffer() else { continue };
                let Ok(map) = buf.map_readable() else {
                    continue;
                };
                let at = match buf.offset() {
                    o if o != u64::MAX => o as usize,
                    _ => mp4.len(),
                };
                if mp4.len() < at + map.len() {
                    mp4.resize(at + map.len(), 0);
                }
                mp4[at..at + map.len()].copy_from_slice(&map);
            }
            Err(_) => {
                if let Some(bus) = pipeline.bus() {
                    while let Some(msg) = bus.pop() {
                        if let gst::MessageView::Error(e) = msg.view() {
                            failure = Some(e.error().to_string());
                        }
                    }
                }
                break;
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(f) = failure {
        return Err(ClipError::Mux(f));
    }
    if mp4.is_empty() {
        return Err(ClipError::Mux("the muxer produced no output".into()));
    }
    Ok(MuxedClip {
        mp4,
        frames: units.len(),
        duration: std::time::Duration::from_nanos(sorted[sorted.len() - 1] - base + frame),
    })
}
