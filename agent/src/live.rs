//! Live telemetry for the hub (docs/mqtt.md `health` and `snapshot`): built from
//! the real counters on demand, published at QoS 0 and never spooled.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;

use crate::detect::DetectService;
use crate::ingest::{CameraState, CameraStats};
use crate::outbox::{Outbox, OutboxStats};

/// Widest live snapshot, pixels.
pub const SNAPSHOT_MAX_WIDTH: u32 = 640;
/// Largest live snapshot JPEG, bytes: 384 KiB, so the base64 payload stays under 512 KiB.
pub const SNAPSHOT_MAX_BYTES: usize = 384 * 1024;

/// What the uplink asks for on its timers; a trait so tests can feed it.
pub trait Live: Send + Sync {
    /// The `health` payload now.
    fn health(&self) -> Vec<u8>;
    /// `(camera_id, snapshot payload)` for every camera with a new analysed frame.
    fn snapshots(&self) -> Vec<(String, Vec<u8>)>;
}

/// `health` payload.
#[derive(Debug, Serialize)]
pub struct Health {
    /// When measured, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// One entry per configured camera.
    pub cameras: Vec<CameraHealth>,
    /// Spool totals.
    pub outbox: OutboxStats,
}

/// One camera in `health`.
#[derive(Debug, Serialize)]
pub struct CameraHealth {
    /// Camera id.
    pub camera_id: String,
    /// `starting`, `streaming`, `retrying` or `stopped`.
    pub state: &'static str,
    /// Why it is retrying (operator sentence), else null.
    pub reason: Option<String>,
    /// When this state began.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Access units per second received since the last report.
    pub fps_in: f64,
    /// Frames per second analysed by the detector since the last report.
    pub fps_analysed: f64,
    /// Camera bitrate since the last report, kbit/s.
    pub bitrate_kbps: f64,
    /// Age of the newest access unit, ms; null before the first.
    pub last_frame_age_ms: Option<u64>,
    /// Pipelines restarted after a failure.
    pub reconnects: u64,
    /// Frames that never reached the detector (leaky analysis queue + newer frame replaced it).
    pub dropped_analysis_frames: u64,
    /// p95 of recent model runs, ms; null before the first.
    pub detect_p95_ms: Option<f64>,
}

/// Counters at the previous report, for rates.
#[derive(Clone, Copy)]
struct Previous {
    at: Instant,
    frames_in: u64,
    bytes_in: u64,
    frames_seen: u64,
}

/// The agent's real sources: camera stats, the detect service and the outbox.
pub struct AgentLive {
    cameras: Vec<(String, Arc<CameraStats>)>,
    detect: Arc<DetectService>,
    outbox: Arc<Outbox>,
    previous: Mutex<HashMap<String, Previous>>,
    /// Wall time of the last frame sent per camera: an unchanged frame is not re-sent.
    last_snapshot: Mutex<HashMap<String, OffsetDateTime>>,
}

impl AgentLive {
    /// Sources for `cameras` (id, stats).
    pub fn new(
        cameras: Vec<(String, Arc<CameraStats>)>,
        detect: Arc<DetectService>,
        outbox: Arc<Outbox>,
    ) -> AgentLive {
        let now = Instant::now();
        let previous = cameras
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    Previous {
                        at: now,
                        frames_in: s.frames_in.load(Ordering::Relaxed),
                        bytes_in: s.bytes_in.load(Ordering::Relaxed),
                        frames_seen: 0,
                    },
                )
            })
            .collect();
        AgentLive {
            cameras,
            detect,
            outbox,
            previous: Mutex::new(previous),
            last_snapshot: Mutex::new(HashMap::new()),
        }
    }

    /// The health report now (rates over the time since the previous call).
    pub fn report(&self) -> Health {
        let detect = self.detect.stats();
        let now = Instant::now();
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let cameras = self
            .cameras
            .iter()
            .map(|(id, s)| {
                let d = detect.get(id).cloned().unwrap_or_default();
                let cur = Previous {
                    at: now,
                    frames_in: s.frames_in.load(Ordering::Relaxed),
                    bytes_in: s.bytes_in.load(Ordering::Relaxed),
                    frames_seen: d.frames_seen,
                };
                let prev = previous.insert(id.clone(), cur).unwrap_or(cur);
                let secs = now.duration_since(prev.at).as_secs_f64();
                let rate = |a: u64, b: u64| {
                    if secs > 0.0 {
                        a.saturating_sub(b) as f64 / secs
                    } else {
                        0.0
                    }
                };
                let (state, reason) = match s.state() {
                    CameraState::Connecting => ("starting", None),
                    CameraState::Streaming => ("streaming", None),
                    CameraState::Retrying { reason, .. } => ("retrying", Some(reason)),
                    CameraState::Stopped => ("stopped", None),
                };
                CameraHealth {
                    camera_id: id.clone(),
                    state,
                    reason,
                    since: s.since(),
                    fps_in: round2(rate(cur.frames_in, prev.frames_in)),
                    fps_analysed: round2(rate(cur.frames_seen, prev.frames_seen)),
                    bitrate_kbps: round2(rate(cur.bytes_in, prev.bytes_in) * 8.0 / 1000.0),
                    last_frame_age_ms: s.last_unit_age().map(|a| a.as_millis() as u64),
                    reconnects: s.reconnects.load(Ordering::Relaxed),
                    dropped_analysis_frames: s.frames_dropped.load(Ordering::Relaxed)
                        + d.frames_dropped,
                    detect_p95_ms: d.p95_detect_ms.map(round2),
                }
            })
            .collect();
        Health {
            at: OffsetDateTime::now_utc(),
            cameras,
            outbox: self.outbox.stats(),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Live for AgentLive {
    fn health(&self) -> Vec<u8> {
        serde_json::to_vec(&self.report()).unwrap_or_default()
    }

    fn snapshots(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut sent = self.last_snapshot.lock().unwrap_or_else(|p| p.into_inner());
        for (id, _) in &self.cameras {
            // Only analysed frames: the analyser blacks out privacy masks first.
            let Some(frame) = self.detect.latest_frame(id) else {
                continue;
            };
            if sent.get(id) == Some(&frame.wall) {
                continue;
            }
            match snapshot_payload(&frame) {
                Ok(p) => {
                    sent.insert(id.clone(), frame.wall);
                    out.push((id.clone(), p));
                }
                Err(e) => {
                    tracing::warn!(camera = %id, error = %e, "Could not encode a live snapshot")
                }
            }
        }
        out
    }
}

/// The `snapshot` payload for an analysed (privacy-masked) frame.
pub fn snapshot_payload(
    frame: &crate::detect::AnalysisFrame,
) -> Result<Vec<u8>, crate::detect::DetectError> {
    let (jpeg, width, height) =
        crate::detect::snapshot::live_jpeg(frame, SNAPSHOT_MAX_WIDTH, SNAPSHOT_MAX_BYTES)?;
    let taken = frame
        .wall
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(serde_json::json!({
        "camera_id": frame.camera_id,
        "taken_utc": taken,
        "width": width,
        "height": height,
        "jpeg_b64": base64::engine::general_purpose::STANDARD.encode(&jpeg),
    })
    .to_string()
    .into_bytes())
}
