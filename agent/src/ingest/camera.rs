//! The long-lived loop of one camera: `run()` retries `run_once()` with backoff.
//!
//! Each failure is classified into a reason an operator understands, logged once per
//! episode (not per retry), and counted. A stall watchdog restarts the pipeline when no
//! access unit has arrived for `stall_timeout`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;

use super::pipeline::{self, FrameSink, UnitSink};

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// RTP interleaved in the RTSP TCP connection (default: works through NAT and firewalls).
    Tcp,
    /// RTP over UDP.
    Udp,
}

impl Transport {
    fn other(self) -> Transport {
        match self {
            Transport::Tcp => Transport::Udp,
            Transport::Udp => Transport::Tcp,
        }
    }
}

/// What the user configured for one camera.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// Stable id used in topics, manifests and logs.
    pub id: String,
    /// `rtsp://` or `rtsps://` URL; credentials in it are never logged.
    pub url: String,
    /// Credentials kept out of the URL (from a file or the environment).
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// Preferred transport; on RTSP 461 the other one is tried by itself.
    pub transport: Transport,
    /// rtspsrc jitter-buffer latency. 200 ms: enough for loopback/LAN jitter, far below
    /// rtspsrc's 2 s default that would delay every event by two seconds.
    pub latency_ms: u32,
    /// Analysis frames per second handed to detection.
    pub detect_fps: f64,
    /// Worker threads of a software decoder on the analysis branch (`max-threads` of
    /// gst-libav); 0 lets the decoder take one per core. Default 1: frame threading
    /// costs ~15 % more CPU per decoded frame and a frame of latency per extra thread,
    /// and a box carries many cameras, so the parallelism is across cameras.
    pub decode_threads: u32,
    /// No access unit for this long restarts the pipeline.
    pub stall_timeout: Duration,
    /// First retry delay; doubles per failure up to `backoff_max`, with ±20 % jitter.
    pub backoff_initial: Duration,
    /// Cap of the retry delay.
    pub backoff_max: Duration,
}

impl CameraSettings {
    /// Settings with the defaults for `url`.
    pub fn new(id: &str, url: &str) -> Self {
        CameraSettings {
            id: id.to_string(),
            url: url.to_string(),
            username: None,
            password: None,
            transport: Transport::Tcp,
            latency_ms: 200,
            detect_fps: 5.0,
            decode_threads: 1,
            stall_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// The URL with any `user:password@` removed, for logs and health reports.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// What a camera is doing now (shown on the hub's camera wall).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CameraState {
    /// Starting a pipeline, waiting for the first access unit.
    Connecting,
    /// Access units are arriving.
    Streaming,
    /// The last attempt failed; the next starts after a backoff.
    Retrying {
        /// Failures in a row.
        attempt: u32,
        /// Why, in words an operator understands.
        reason: String,
    },
    /// Shut down.
    Stopped,
}

/// Counters and live state of one camera, shared with health reporting.
#[derive(Debug)]
pub struct CameraStats {
    /// Current state.
    pub state: Mutex<CameraState>,
    /// Caps of the recording branch (codec, resolution), once known.
    pub caps: Mutex<Option<gst::Caps>>,
    /// Pipelines restarted after a failure.
    pub reconnects: AtomicU64,
    /// Restarts caused by the stall watchdog.
    pub stalls: AtomicU64,
    /// Access units received by the recording branch.
    pub frames_in: AtomicU64,
    /// Bytes of access units received.
    pub bytes_in: AtomicU64,
    /// Decoded frames handed to analysis.
    pub frames_analysed: AtomicU64,
    /// Encoded frames dropped by the leaky analysis queue (never from recording).
    pub frames_dropped: AtomicU64,
    /// Time of the last access unit, for the stall watchdog.
    last_unit: Mutex<Option<Instant>>,
    /// When the state last changed kind (health `since`); a retry that keeps
    /// retrying keeps its first time, so the hub shows how long it has been down.
    since: Mutex<time::OffsetDateTime>,
}

impl Default for CameraStats {
    fn default() -> Self {
        Self::new()
    }
}

impl CameraStats {
    fn new() -> Self {
        CameraStats {
            state: Mutex::new(CameraState::Connecting),
            caps: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            frames_analysed: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            last_unit: Mutex::new(None),
            since: Mutex::new(time::OffsetDateTime::now_utc()),
        }
    }

    pub(crate) fn touch(&self) {
        if let Ok(mut t) = self.last_unit.lock() {
            *t = Some(Instant::now());
        }
    }

    /// Current state (a clone).
    pub fn state(&self) -> CameraState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or(CameraState::Stopped)
    }

    fn set_state(&self, s: CameraState) {
        if let Ok(mut slot) = self.state.lock() {
            // Retrying ⇄ Connecting is one outage: `since` stays at its start.
            let same_outage = matches!(
                (&*slot, &s),
                (CameraState::Retrying { .. }, CameraState::Connecting)
                    | (CameraState::Connecting, CameraState::Retrying { .. })
                    | (CameraState::Retrying { .. }, CameraState::Retrying { .. })
            );
            if !same_outage && std::mem::discriminant(&*slot) != std::mem::discriminant(&s) {
                if let Ok(mut since) = self.since.lock() {
                    *since = time::OffsetDateTime::now_utc();
                }
            }
            *slot = s;
        }
    }

    /// When the current state began (an outage, Retrying ⇄ Connecting, counts as one).
    pub fn since(&self) -> time::OffsetDateTime {
        self.since
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
    }

    /// Seconds since the last access unit, if any arrived.
    pub fn last_unit_age(&self) -> Option<Duration> {
        self.last_unit
            .lock()
            .ok()
            .and_then(|t| t.map(|t| t.elapsed()))
    }
}

/// A running camera loop; stop it with [`Camera::stop`] (also on drop).
pub struct Camera {
    stats: Arc<CameraStats>,
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Camera {
    /// Start the camera's `run()` loop on its own thread.
    pub fn spawn(
        settings: CameraSettings,
        on_unit: UnitSink,
        on_frame: Option<FrameSink>,
    ) -> std::io::Result<Camera> {
        Self::spawn_with_stats(settings, Arc::new(CameraStats::new()), on_unit, on_frame)
    }

    /// Like [`Camera::spawn`] with counters the caller already shares (the recorder
    /// reads the stream's caps from them).
    pub fn spawn_with_stats(
        settings: CameraSettings,
        stats: Arc<CameraStats>,
        on_unit: UnitSink,
        on_frame: Option<FrameSink>,
    ) -> std::io::Result<Camera> {
        gst::init().map_err(|e| std::io::Error::other(format!("GStreamer: {e}")))?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let (s, sd) = (stats.clone(), shutdown.clone());
        let thread = std::thread::Builder::new()
            .name(format!("camera-{}", settings.id))
            .spawn(move || run(&settings, &s, &sd, on_unit, on_frame))?;
        Ok(Camera {
            stats,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Live state and counters.
    pub fn stats(&self) -> &Arc<CameraStats> {
        &self.stats
    }

    /// Stop the pipeline (to `Null`) and join the thread; bounded by the bus poll (200 ms).
    pub fn stop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Retry loop: run a pipeline until it fails, back off, run again, until shutdown.
fn run(
    settings: &CameraSettings,
    stats: &Arc<CameraStats>,
    shutdown: &AtomicBool,
    on_unit: UnitSink,
    on_frame: Option<FrameSink>,
) {
    let mut attempt: u32 = 0;
    let mut transport = settings.transport;
    let mut last_reason: Option<String> = None;
    let url = redact_url(&settings.url);
    while !shutdown.load(Ordering::SeqCst) {
        stats.set_state(CameraState::Connecting);
        let frames_before = stats.frames_in.load(Ordering::Relaxed);
        let result = run_once(
            settings,
            transport,
            stats,
            shutdown,
            on_unit.clone(),
            on_frame.clone(),
        );
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
        let reason = match result {
            Ok(()) => "camera ended the stream".to_string(),
            Err(e) => e,
        };
        if reason.contains("RTSP 461") {
            transport = transport.other();
        }
        // A session that streamed ends the previous episode: start counting afresh.
        if stats.frames_in.load(Ordering::Relaxed) > frames_before {
            attempt = 0;
            last_reason = None;
        }
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        attempt = attempt.saturating_add(1);
        // Once per episode: a new reason is logged, the same one repeating is not.
        if last_reason.as_deref() != Some(reason.as_str()) {
            tracing::warn!(camera = %settings.id, url = %url, attempt, reason = %reason, "Camera failed; retrying with backoff");
            last_reason = Some(reason.clone());
        }
        stats.set_state(CameraState::Retrying {
            attempt,
            reason: reason.clone(),
        });
        let delay = backoff(settings, attempt);
        let until = Instant::now() + delay;
        while Instant::now() < until && !shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }
    stats.set_state(CameraState::Stopped);
}

/// Exponential backoff with ±20 % jitter and a cap.
pub fn backoff(settings: &CameraSettings, attempt: u32) -> Duration {
    let base = settings
        .backoff_initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(settings.backoff_max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    base.mul_f64(jitter)
}

/// Run one pipeline until error, EOS, stall or shutdown. `Err` carries the reason.
fn run_once(
    settings: &CameraSettings,
    transport: Transport,
    stats: &Arc<CameraStats>,
    shutdown: &AtomicBool,
    on_unit: UnitSink,
    on_frame: Option<FrameSink>,
) -> Result<(), String> {
    let pipeline = pipeline::build(settings, transport, stats.clone(), on_unit, on_frame)
        .map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("pipeline has no bus")?;
    let started = Instant::now();
    let frames_at_start = stats.frames_in.load(Ordering::Relaxed);
    let result = (|| {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| "cannot start the camera pipeline".to_string())?;
        loop {
            if shutdown.load(Ordering::SeqCst) {
                return Ok(());
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
                match msg.view() {
                    gst::MessageView::Error(e) => {
                        let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                        return Err(classify(&e.error().to_string(), &debug));
                    }
                    gst::MessageView::Eos(_) => return Err("camera ended the stream".into()),
                    gst::MessageView::Application(a) => {
                        if let Some(s) = a.structure() {
                            if s.name() == "vigil-link-error" {
                                let reason = s.get::<String>("reason").unwrap_or_default();
                                return Err(reason);
                            }
                        }
                    }
                    _ => {}
                }
            }
            let got_frames = stats.frames_in.load(Ordering::Relaxed) > frames_at_start;
            if got_frames && !matches!(stats.state(), CameraState::Streaming) {
                stats.set_state(CameraState::Streaming);
                tracing::info!(camera = %settings.id, "Camera is streaming");
            }
            let age = if got_frames {
                stats.last_unit_age().unwrap_or_default()
            } else {
                started.elapsed()
            };
            if age > settings.stall_timeout {
                stats.stalls.fetch_add(1, Ordering::Relaxed);
                return Err(if got_frames {
                    format!("no video for {} s (stalled)", age.as_secs())
                } else {
                    format!(
                        "no video within {} s of connecting: the server answers but sends nothing usable",
                        age.as_secs()
                    )
                });
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Turn a GStreamer error into a reason an operator understands.
fn classify(error: &str, debug: &str) -> String {
    let all = format!("{error} {debug}");
    let has = |s: &str| all.contains(s);
    if has("401") || has("Unauthorized") || has("Not authorized") {
        "camera refused the credentials (RTSP 401 Unauthorized): check username and password".into()
    } else if has("404") || has("Not Found") {
        "camera has no stream at this path (RTSP 404 Not Found): check the URL path".into()
    } else if has("461") || has("nsupported transport") || has("No supported stream was found") {
        "camera refused the transport (RTSP 461); trying the other transport".into()
    } else if has("Connection refused") || has("Could not connect") || has("Failed to connect") {
        "camera is not reachable (connection refused): check address, port and power".into()
    } else if has("timeout") || has("timed out") {
        "camera did not answer in time (timeout)".into()
    } else if has("Could not receive") || has("parse") || has("Invalid") || has("invalid") {
        format!("camera sent data that is not valid RTSP/RTP ({error})")
    } else {
        format!("camera error: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("rtsp://admin:secret@10.0.0.5:554/stream"),
            "rtsp://***@10.0.0.5:554/stream"
        );
        assert_eq!(redact_url("rtsp://10.0.0.5/x"), "rtsp://10.0.0.5/x");
    }

    #[test]
    fn backoff_grows_with_cap_and_jitter() {
        let s = CameraSettings::new("c", "rtsp://x");
        let d1 = backoff(&s, 1);
        let d4 = backoff(&s, 4);
        let d20 = backoff(&s, 20);
        assert!(d1 >= Duration::from_millis(400) && d1 <= Duration::from_millis(600));
        assert!(d4 >= Duration::from_millis(3200) && d4 <= Duration::from_millis(4800));
        assert!(d20 <= Duration::from_secs(36) && d20 >= Duration::from_secs(24));
    }

    #[test]
    fn classifies_reasons() {
        assert!(classify("Unauthorized", "").contains("401"));
        assert!(classify("Not Found", "").contains("404"));
        assert!(classify(
            "Could not open resource for reading and writing.",
            "Could not connect to server. (Connection refused)"
        )
        .contains("not reachable"));
    }

    #[test]
    fn since_marks_state_changes_and_an_outage_keeps_its_start() {
        let s = CameraStats::new();
        let set_at = |st: CameraState| {
            std::thread::sleep(Duration::from_millis(5));
            s.set_state(st);
            s.since()
        };
        let streaming = set_at(CameraState::Streaming);
        assert_eq!(set_at(CameraState::Streaming), streaming, "same state");
        let retry = || CameraState::Retrying {
            attempt: 1,
            reason: "refused".into(),
        };
        let down = set_at(retry());
        assert!(down > streaming);
        assert_eq!(set_at(CameraState::Connecting), down, "one outage");
        assert_eq!(set_at(retry()), down, "one outage");
        assert!(set_at(CameraState::Streaming) > down);
    }
}
