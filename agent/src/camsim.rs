//! `vigil-agent camsim`: a sample camera.
//!
//! A real RTSP server (gstreamer-rtsp-server) that serves an H.264/H.265 file as a live
//! camera: the file's access units are demuxed once into memory and then pushed, paced in
//! real time and looping, into one shared media pipeline (`appsrc ! parse ! payloader`),
//! so every client sees the same live stream and the bytes on the wire are the file's
//! own (never re-encoded). Field techs use it to test an agent before the camera is
//! mounted; the demo, the tests and the benchmarks use it as their camera.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// What the user asked `camsim` to serve.
#[derive(Debug, Clone)]
pub struct CamsimSettings {
    /// H.264 or H.265 file in any container GStreamer can demux (MP4, MKV, ...).
    pub file: PathBuf,
    /// Address to bind; loopback by default.
    pub address: String,
    /// TCP port for RTSP; 0 picks a free port (printed on stdout).
    pub port: u16,
    /// Mount path, e.g. `/cam1`.
    pub path: String,
    /// When set, one line per access unit sent: `<unix_ms> <frame index in file> <pts_ms>`.
    pub frame_log: Option<PathBuf>,
}

/// Errors that stop the sample camera from starting.
#[derive(Debug, thiserror::Error)]
pub enum CamsimError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no H.264 or H.265 video GStreamer can parse: {reason}")]
    NoVideo { path: PathBuf, reason: String },
    #[error("mount path {0:?} must start with '/'")]
    BadPath(String),
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("cannot bind the RTSP server to {address}:{port} (is the port in use?)")]
    Bind { address: String, port: u16 },
}

/// One access unit of the source file, in decode order.
struct SourceUnit {
    buffer: gst::Buffer,
    /// Offset of this unit's PTS from the first unit's DTS: keeps B-frame reordering.
    pts: Duration,
    /// Offset of this unit's DTS (decode time) from the first unit's DTS: paces sending.
    dts: Duration,
}

/// The whole file, demuxed and parsed once, shared by every media the server creates.
struct SourceStream {
    caps: gst::Caps,
    units: Vec<SourceUnit>,
    /// Length of one loop: last DTS plus one frame duration.
    loop_len: Duration,
    /// `rtph264pay` or `rtph265pay`, picked from the caps.
    payloader: &'static str,
    parser: &'static str,
}

impl SourceStream {
    /// Demux and parse `file` into byte-stream access units, each IDR carrying SPS/PPS
    /// in band so a client can join (or the loop restart) at any key frame.
    fn load(file: &Path) -> Result<Self, CamsimError> {
        std::fs::metadata(file).map_err(|source| CamsimError::Open {
            path: file.to_path_buf(),
            source,
        })?;
        let no_video = |reason: String| CamsimError::NoVideo {
            path: file.to_path_buf(),
            reason,
        };
        let pipeline = gst::Pipeline::new();
        let src = make("filesrc")?;
        src.set_property("location", file.to_string_lossy().to_string());
        let parsebin = make("parsebin")?;
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline
            .add_many([&src, &parsebin, sink.upcast_ref()])
            .map_err(|e| CamsimError::Gst(e.to_string()))?;
        src.link(&parsebin)
            .map_err(|e| CamsimError::Gst(e.to_string()))?;
        let sink_weak = sink.downgrade();
        let pipeline_weak = pipeline.downgrade();
        parsebin.connect_pad_added(move |_, pad| {
            let (Some(sink), Some(pipeline)) = (sink_weak.upgrade(), pipeline_weak.upgrade())
            else {
                return;
            };
            let Some(caps) = pad.current_caps().or_else(|| Some(pad.query_caps(None))) else {
                return;
            };
            let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
                return;
            };
            let parser = match name.as_str() {
                "video/x-h264" => "h264parse",
                "video/x-h265" => "h265parse",
                _ => return,
            };
            let Ok(parse) = gst::ElementFactory::make(parser)
                .property("config-interval", -1i32)
                .build()
            else {
                return;
            };
            let filter = gst::Caps::builder(name.as_str())
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build();
            let Ok(capsfilter) = gst::ElementFactory::make("capsfilter")
                .property("caps", filter)
                .build()
            else {
                return;
            };
            if pipeline.add_many([&parse, &capsfilter]).is_err() {
                return;
            }
            let _ = parse.sync_state_with_parent();
            let _ = capsfilter.sync_state_with_parent();
            if let Some(sinkpad) = parse.static_pad("sink") {
                let _ = pad.link(&sinkpad);
            }
            let _ = gst::Element::link_many([&parse, &capsfilter, sink.upcast_ref()]);
        });

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| no_video(e.to_string()))?;
        let mut raw: Vec<gst::Buffer> = Vec::new();
        let mut caps = None;
        let result = loop {
            match sink.pull_sample() {
                Ok(sample) => {
                    if caps.is_none() {
                        caps = sample.caps().map(|c| c.to_owned());
                    }
                    if let Some(buffer) = sample.buffer_owned() {
                        raw.push(buffer);
                    }
                }
                Err(_) => {
                    // EOS or error: find out which from the bus.
                    let bus = pipeline.bus();
                    let mut err = None;
                    if let Some(bus) = bus {
                        while let Some(msg) = bus.pop() {
                            if let gst::MessageView::Error(e) = msg.view() {
                                err = Some(e.error().to_string());
                            }
                        }
                    }
                    break err;
                }
            }
        };
        let _ = pipeline.set_state(gst::State::Null);
        if let Some(reason) = result {
            if raw.is_empty() {
                return Err(no_video(reason));
            }
        }
        let caps = caps.ok_or_else(|| no_video("no video stream found".into()))?;
        let name = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let (payloader, parser) = match name.as_str() {
            "video/x-h264" => ("rtph264pay", "h264parse"),
            "video/x-h265" => ("rtph265pay", "h265parse"),
            other => return Err(no_video(format!("unsupported caps {other}"))),
        };
        // Start the loop at the first key frame.
        let first_key = raw
            .iter()
            .position(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT))
            .ok_or_else(|| no_video("no key frame in the file".into()))?;
        let raw = &raw[first_key..];
        let base = raw
            .iter()
            .filter_map(|b| b.dts().or(b.pts()))
            .min()
            .unwrap_or(gst::ClockTime::ZERO);
        let mut units = Vec::with_capacity(raw.len());
        let mut last_dts = Duration::ZERO;
        let mut frame = Duration::from_millis(40);
        for (i, b) in raw.iter().enumerate() {
            let dts_ct = b.dts().or(b.pts()).unwrap_or(base);
            let pts_ct = b.pts().unwrap_or(dts_ct);
            let dts = Duration::from_nanos(dts_ct.saturating_sub(base).nseconds());
            let pts = Duration::from_nanos(pts_ct.saturating_sub(base).nseconds());
            if let Some(d) = b.duration() {
                frame = Duration::from_nanos(d.nseconds());
            } else if i > 0 {
                frame = dts.saturating_sub(last_dts).max(Duration::from_millis(1));
            }
            last_dts = dts;
            units.push(SourceUnit {
                buffer: b.clone(),
                pts,
                dts,
            });
        }
        Ok(SourceStream {
            caps,
            loop_len: last_dts + frame,
            units,
            payloader,
            parser,
        })
    }
}

fn make(factory: &str) -> Result<gst::Element, CamsimError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| CamsimError::Gst(format!("element {factory} is missing; run `make setup`")))
}

/// A running sample camera; dropping it does not stop the server, call [`Camsim::run`].
pub struct Camsim {
    server: rtsp::RTSPServer,
    url: String,
    main_loop: gst::glib::MainLoop,
    _source: gst::glib::SourceId,
}

impl Camsim {
    /// Load the file and start serving it (the server runs when [`Camsim::run`] is called).
    pub fn start(settings: &CamsimSettings) -> Result<Self, CamsimError> {
        gst::init().map_err(|e| CamsimError::Gst(e.to_string()))?;
        if !settings.path.starts_with('/') {
            return Err(CamsimError::BadPath(settings.path.clone()));
        }
        let stream = Arc::new(SourceStream::load(&settings.file)?);
        let frame_log = match &settings.frame_log {
            Some(p) => Some(Arc::new(std::sync::Mutex::new(
                std::fs::File::create(p).map_err(|source| CamsimError::Open {
                    path: p.clone(),
                    source,
                })?,
            ))),
            None => None,
        };

        let server = rtsp::RTSPServer::new();
        server.set_address(&settings.address);
        server.set_service(&settings.port.to_string());
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( appsrc name=camsrc is-live=true format=time do-timestamp=false ! {} ! {} name=pay0 pt=96 config-interval=-1 )",
            stream.parser, stream.payloader
        ));
        factory.set_shared(true);
        factory.connect_media_configure(move |_, media| {
            let Some(bin) = media.element().downcast::<gst::Bin>().ok() else {
                return;
            };
            let Some(appsrc) = bin
                .by_name_recurse_up("camsrc")
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            else {
                return;
            };
            appsrc.set_caps(Some(&stream.caps));
            let stream = stream.clone();
            let frame_log = frame_log.clone();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            media.connect_unprepared(move |_| stop2.store(true, Ordering::SeqCst));
            let _ = std::thread::Builder::new()
                .name("camsim-feed".into())
                .spawn(move || feed(&appsrc, &stream, frame_log.as_deref(), &stop));
        });
        server
            .mount_points()
            .ok_or_else(|| CamsimError::Gst("RTSP server has no mount points".into()))?
            .add_factory(&settings.path, factory);
        let source = server.attach(None).map_err(|_| CamsimError::Bind {
            address: settings.address.clone(),
            port: settings.port,
        })?;
        let port = server.bound_port();
        let url = format!("rtsp://{}:{}{}", settings.address, port, settings.path);
        Ok(Camsim {
            server,
            url,
            main_loop: gst::glib::MainLoop::new(None, false),
            _source: source,
        })
    }

    /// The URL clients use, with the real port when port 0 was asked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serve until SIGTERM or SIGINT, then close every client session and return.
    pub fn run(self) -> Result<(), CamsimError> {
        let main_loop = self.main_loop.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .map_err(|e| CamsimError::Gst(format!("cannot install signal handlers: {e}")))?;
        std::thread::Builder::new()
            .name("camsim-signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    main_loop.quit();
                }
            })
            .map_err(|e| CamsimError::Gst(e.to_string()))?;
        self.main_loop.run();
        // Tear every session down so the media pipelines go to Null before we exit.
        self.server
            .client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        Ok(())
    }
}

/// Push the file's access units into `appsrc`, looping, paced by their decode times.
fn feed(
    appsrc: &gst_app::AppSrc,
    stream: &SourceStream,
    frame_log: Option<&std::sync::Mutex<std::fs::File>>,
    stop: &AtomicBool,
) {
    // `media-configure` runs before the media's pipeline leaves Null, and a push into an
    // appsrc below Paused fails (flushing), which ended this thread. Waiting for Paused is
    // not enough either: in Paused the element already has the pipeline's clock but its
    // base time is still 0, so the running time read below was the clock's absolute time
    // (minutes to days) and every buffer was stamped that far in the future: the RTSP
    // sinks waited for it and the client got nothing (the "first client gets no video for
    // 15 s" flake, reproduced under CPU load). A live media goes to Playing to preroll, so
    // wait for Playing, where the base time is set (a media that is never prepared releases
    // this thread after 30 s).
    let configured = Instant::now();
    while appsrc.current_state() != gst::State::Playing {
        if stop.load(Ordering::SeqCst) || configured.elapsed() > Duration::from_secs(30) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let base = appsrc
        .current_running_time()
        .unwrap_or(gst::ClockTime::ZERO);
    let base = Duration::from_nanos(base.nseconds());
    for lap in 0u32.. {
        let lap_offset = stream.loop_len * lap;
        for (index, unit) in stream.units.iter().enumerate() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let due = lap_offset + unit.dts;
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let mut buffer = unit.buffer.copy();
            {
                let Some(b) = buffer.get_mut() else { return };
                // Live timestamps: running time at the first push plus the file's timing.
                // A small constant lead keeps PTS >= DTS for reordered (B-frame) streams.
                b.set_dts(gst::ClockTime::from_nseconds((base + due).as_nanos() as u64));
                b.set_pts(gst::ClockTime::from_nseconds(
                    (base + lap_offset + unit.pts).as_nanos() as u64,
                ));
                b.set_offset(u64::MAX);
            }
            if appsrc.push_buffer(buffer).is_err() {
                return;
            }
            if let Some(log) = frame_log {
                if let Ok(mut f) = log.lock() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    let _ = writeln!(f, "{} {} {}", now.as_millis(), index, unit.pts.as_millis());
                }
            }
        }
    }
}
