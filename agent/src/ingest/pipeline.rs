//! One camera's GStreamer pipeline.
//!
//! ```text
//! rtspsrc ─(pad-added, application/x-rtp)─▶ parsebin ─(video/x-h264|h265)─▶ capsfilter(byte-stream, au) ─▶ tee
//!   tee ─▶ queue ─▶ appsink "record"    encoded access units, never decoded, never dropped
//!   tee ─▶ queue(leaky) ─▶ decodebin ─▶ videorate(max-rate) ─▶ videoconvert (I420) ─▶ appsink "analysis" (drop)
//! ```
//!
//! Elements are chosen by caps (parsebin/decodebin), not by name, so H.264 and H.265
//! go through the same code.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use time::OffsetDateTime;

use super::camera::{CameraSettings, CameraStats, Transport};
use super::filesource::stream_time;
use super::ring::AccessUnit;
use crate::detect::AnalysisFrame;

/// Receives the recording branch's access units (called on a streaming thread: be quick).
pub type UnitSink = Arc<dyn Fn(AccessUnit) + Send + Sync>;
/// Receives decoded analysis frames (called on a streaming thread: be quick or hand off).
pub type FrameSink = Arc<dyn Fn(AnalysisFrame) + Send + Sync>;

/// Errors building a pipeline (not runtime camera errors, which arrive on the bus).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "GStreamer element {0} is missing; run `make setup` (GStreamer plugins good/bad/libav)"
    )]
    MissingElement(String),
    #[error("cannot assemble the pipeline: {0}")]
    Assemble(String),
}

/// Report a failure from a streaming thread to `run_once` through the bus.
fn post_link_error(pipeline: &gst::Pipeline, reason: String) {
    let structure = gst::Structure::builder("vigil-link-error")
        .field("reason", reason)
        .build();
    let _ = pipeline.post_message(gst::message::Application::builder(structure).build());
}

fn make(factory: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::MissingElement(factory.to_string()))
}

/// Build (but do not start) the pipeline for one camera.
pub fn build(
    settings: &CameraSettings,
    transport: Transport,
    stats: Arc<CameraStats>,
    on_unit: UnitSink,
    on_frame: Option<FrameSink>,
) -> Result<gst::Pipeline, PipelineError> {
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", settings.id));
    let src = make("rtspsrc")?;
    src.set_property("location", settings.url.as_str());
    src.set_property("latency", settings.latency_ms);
    src.set_property_from_str(
        "protocols",
        match transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        },
    );
    // Timestamps straight from RTP: the default (slave to arrival times) adds tens of ms of
    // jitter to PTS, which breaks B-frame ordering in clips. Arrival time is kept apart
    // (AccessUnit::wall), so latency is still measured from arrival.
    src.set_property_from_str("buffer-mode", "none");
    src.set_property("tcp-timeout", 5_000_000u64);
    src.set_property("timeout", 5_000_000u64);
    if let Some(user) = &settings.username {
        src.set_property("user-id", user.as_str());
    }
    if let Some(pass) = &settings.password {
        src.set_property("user-pw", pass.as_str());
    }
    pipeline
        .add(&src)
        .map_err(|e| PipelineError::Assemble(e.to_string()))?;

    let pipeline_weak = pipeline.downgrade();
    let analysis = Analysis {
        fps: settings.detect_fps,
        decode_threads: settings.decode_threads,
    };
    let camera_id = settings.id.clone();
    let linked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    src.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .and_then(|s| s.get::<&str>("media").ok())
            .map(|m| m == "video")
            .unwrap_or(false);
        // One video stream per camera; audio and extra streams are ignored.
        if !is_video || linked.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = link_video(
            &pipeline,
            pad,
            &camera_id,
            analysis,
            stats.clone(),
            on_unit.clone(),
            on_frame.clone(),
        ) {
            post_link_error(&pipeline, e.to_string());
        }
    });
    Ok(pipeline)
}

/// What the analysis branch is asked for.
#[derive(Debug, Clone, Copy)]
struct Analysis {
    /// Frames per second handed to detection.
    fps: f64,
    /// Software decoder threads (0 = the decoder's choice).
    decode_threads: u32,
}

fn link_video(
    pipeline: &gst::Pipeline,
    rtp_pad: &gst::Pad,
    camera_id: &str,
    analysis: Analysis,
    stats: Arc<CameraStats>,
    on_unit: UnitSink,
    on_frame: Option<FrameSink>,
) -> Result<(), PipelineError> {
    let parsebin = make("parsebin")?;
    pipeline
        .add(&parsebin)
        .map_err(|e| PipelineError::Assemble(e.to_string()))?;
    parsebin
        .sync_state_with_parent()
        .map_err(|e| PipelineError::Assemble(e.to_string()))?;
    let sinkpad = parsebin
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Assemble("parsebin has no sink pad".into()))?;
    rtp_pad
        .link(&sinkpad)
        .map_err(|e| PipelineError::Assemble(format!("cannot link RTP to parser: {e:?}")))?;

    let pipeline_weak = pipeline.downgrade();
    let camera_id = camera_id.to_string();
    parsebin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
            return;
        };
        if name != "video/x-h264" && name != "video/x-h265" {
            post_link_error(
                &pipeline,
                format!("camera sends {name}; Vigil records H.264 or H.265"),
            );
            return;
        }
        if let Err(e) = link_branches(
            &pipeline,
            pad,
            &name,
            &camera_id,
            analysis,
            stats.clone(),
            on_unit.clone(),
            on_frame.clone(),
        ) {
            post_link_error(&pipeline, e.to_string());
        }
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn link_branches(
    pipeline: &gst::Pipeline,
    parsed_pad: &gst::Pad,
    media: &str,
    camera_id: &str,
    analysis: Analysis,
    stats: Arc<CameraStats>,
    on_unit: UnitSink,
    on_frame: Option<FrameSink>,
) -> Result<(), PipelineError> {
    let assemble = |e: gst::glib::BoolError| PipelineError::Assemble(e.to_string());
    let capsfilter = make("capsfilter")?;
    capsfilter.set_property(
        "caps",
        gst::Caps::builder(media)
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build(),
    );
    // parsebin's own parser keeps the depayloader's format; a second parser, picked by
    // the caps' media type, converts to byte-stream access units for the ring.
    let reparse = make(if media == "video/x-h265" {
        "h265parse"
    } else {
        "h264parse"
    })?;
    reparse.set_property("config-interval", -1i32);
    let tee = make("tee")?;
    let rec_queue = make("queue")?;
    // The recording branch never drops: up to 10 s or 64 MiB of backlog before it blocks.
    rec_queue.set_property("max-size-buffers", 0u32);
    rec_queue.set_property("max-size-time", 10_000_000_000u64);
    rec_queue.set_property("max-size-bytes", 64u32 << 20);
    let rec_sink = gst_app::AppSink::builder()
        .name("record")
        .sync(false)
        .build();
    let unit_stats = stats.clone();
    rec_sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if unit_stats.caps.lock().map(|c| c.is_none()).unwrap_or(false) {
                    if let (Some(caps), Ok(mut slot)) = (sample.caps(), unit_stats.caps.lock()) {
                        *slot = Some(caps.to_owned());
                    }
                }
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                unit_stats.frames_in.fetch_add(1, Ordering::Relaxed);
                unit_stats
                    .bytes_in
                    .fetch_add(buffer.size() as u64, Ordering::Relaxed);
                unit_stats.touch();
                // Stream time, like the analysis frames (`filesource::stream_time`), so
                // event times and ring positions are on one clock.
                let unit = AccessUnit {
                    pts: buffer.pts().map(|p| stream_time(&sample, p)),
                    dts: buffer.dts().map(|d| stream_time(&sample, d)),
                    keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    buffer,
                    wall: OffsetDateTime::now_utc(),
                };
                on_unit(unit);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline
        .add_many([
            &reparse,
            &capsfilter,
            &tee,
            &rec_queue,
            rec_sink.upcast_ref(),
        ])
        .map_err(assemble)?;
    gst::Element::link_many([&reparse, &capsfilter, &tee]).map_err(assemble)?;
    gst::Element::link_many([&tee, &rec_queue, rec_sink.upcast_ref()]).map_err(assemble)?;

    if let Some(on_frame) = on_frame {
        let an_queue = make("queue")?;
        an_queue.set_property_from_str("leaky", "downstream");
        an_queue.set_property("max-size-buffers", 0u32);
        an_queue.set_property("max-size-bytes", 0u32);
        an_queue.set_property("max-size-time", 2_000_000_000u64);
        let drops = stats.clone();
        an_queue.connect("overrun", false, move |_| {
            drops.frames_dropped.fetch_add(1, Ordering::Relaxed);
            None
        });
        let decode = make("decodebin")?;
        if let Some(bin) = decode.downcast_ref::<gst::Bin>() {
            let threads = i32::try_from(analysis.decode_threads).unwrap_or(i32::MAX);
            bin.connect_deep_element_added(move |_, _, element| {
                // gst-libav's software decoders (a gint); hardware decoders have no such
                // property, and one of another type is left alone rather than set wrongly.
                let is_int = element
                    .find_property("max-threads")
                    .is_some_and(|p| p.value_type() == gst::glib::Type::I32);
                if is_int {
                    element.set_property("max-threads", threads);
                }
            });
        }
        let rate = make("videorate")?;
        rate.set_property("drop-only", true);
        rate.set_property("max-rate", analysis.fps.ceil().max(1.0) as i32);
        let convert = make("videoconvert")?;
        let rawfilter = make("capsfilter")?;
        rawfilter.set_property(
            "caps",
            // What H.264/H.265 decoders put out already (videoconvert passes it
            // through); the detector converts only the pixels the model sees.
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        );
        let an_sink = gst_app::AppSink::builder()
            .name("analysis")
            .sync(false)
            .max_buffers(1)
            .drop(true)
            .build();
        let camera_id = camera_id.to_string();
        let frame_stats = stats.clone();
        an_sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(frame) = super::filesource::frame_from_sample(&camera_id, &sample) {
                        frame_stats.frames_analysed.fetch_add(1, Ordering::Relaxed);
                        on_frame(frame);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let branch = [
            &an_queue,
            &decode,
            &rate,
            &convert,
            &rawfilter,
            an_sink.upcast_ref(),
        ];
        pipeline.add_many(branch).map_err(assemble)?;
        gst::Element::link_many([&tee, &an_queue, &decode]).map_err(assemble)?;
        gst::Element::link_many([&rate, &convert, &rawfilter, an_sink.upcast_ref()])
            .map_err(assemble)?;
        let rate_weak = rate.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(rate) = rate_weak.upgrade() else {
                return;
            };
            if let Some(sinkpad) = rate.static_pad("sink") {
                if !sinkpad.is_linked() {
                    let _ = pad.link(&sinkpad);
                }
            }
        });
        for e in branch {
            e.sync_state_with_parent().map_err(assemble)?;
        }
    }
    for e in [
        &reparse,
        &capsfilter,
        &tee,
        &rec_queue,
        rec_sink.upcast_ref(),
    ] {
        e.sync_state_with_parent().map_err(assemble)?;
    }
    let sinkpad = reparse
        .static_pad("sink")
        .ok_or_else(|| PipelineError::Assemble("parser has no sink pad".into()))?;
    parsed_pad
        .link(&sinkpad)
        .map_err(|e| PipelineError::Assemble(format!("cannot link parser to tee: {e:?}")))?;
    Ok(())
}
