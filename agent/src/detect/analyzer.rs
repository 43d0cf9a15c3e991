//! [`CameraAnalyzer`]: one camera's path from frame to events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::CameraDetectConfig;
use super::error::DetectError;
use super::events::{EventMachine, EventMessage, FrameContext};
use super::filter::DetectionFilter;
use super::frame::AnalysisFrame;
use super::geom::BBox;
use super::model::{Detection, Detector};
use super::motion::MotionGate;
use super::snapshot::{self, Snapshot};
use super::tracker::Tracker;
use super::zones::SceneMasks;

/// A detector shared by every camera; the mutex serialises inference on the one session.
pub type SharedDetector = Arc<Mutex<Box<dyn Detector>>>;

/// Wraps a detector for sharing between cameras.
pub fn share(detector: impl Detector + 'static) -> SharedDetector {
    Arc::new(Mutex::new(Box::new(detector)))
}

/// Per-camera counters for the `health` topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraStats {
    /// Frames handed to the analyser.
    pub frames_seen: u64,
    /// Frames the motion gate let through without inference.
    pub frames_motion_skipped: u64,
    /// Model runs.
    pub inferences: u64,
    /// Model runs that failed.
    pub inference_errors: u64,
    /// Frames dropped before analysis because a newer frame of the camera arrived (worker queue).
    pub frames_dropped: u64,
    /// Events started.
    pub events_started: u64,
    /// Latency of the last model run (preprocess + inference + decode), ms.
    pub last_detect_ms: f64,
    /// Sum of model-run latencies, ms (mean = total / inferences).
    pub total_detect_ms: f64,
    /// 95th percentile of the last [`LATENCY_WINDOW`] model-run latencies, ms.
    pub p95_detect_ms: Option<f64>,
    /// 95th percentile of the last [`LATENCY_WINDOW`] result ages, ms: from the decoded
    /// frame's arrival at the analysis appsink to its detections and events being ready
    /// (queueing behind other cameras, motion gate, inference, tracking, events).
    #[serde(default)]
    pub p95_result_age_ms: Option<f64>,
}

/// How many recent model-run latencies the p95 covers.
pub const LATENCY_WINDOW: usize = 200;

/// 95th percentile (nearest rank) of `samples`.
pub fn p95(samples: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = samples.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((v.len() as f64) * 0.95).ceil() as usize;
    v.get(rank.saturating_sub(1)).copied()
}

impl CameraStats {
    /// Fraction of seen frames skipped by the motion gate.
    pub fn motion_skipped_fraction(&self) -> f64 {
        if self.frames_seen == 0 {
            0.0
        } else {
            self.frames_motion_skipped as f64 / self.frames_seen as f64
        }
    }

    /// Mean model-run latency, ms.
    pub fn mean_detect_ms(&self) -> f64 {
        if self.inferences == 0 {
            0.0
        } else {
            self.total_detect_ms / self.inferences as f64
        }
    }
}

/// One camera's motion gate, filters, masks, tracker and event machine.
pub struct CameraAnalyzer {
    camera_id: String,
    config: CameraDetectConfig,
    detector: SharedDetector,
    filter: DetectionFilter,
    masks: SceneMasks,
    gate: MotionGate,
    tracker: Tracker,
    events: EventMachine,
    stats: CameraStats,
    /// Detections kept on the last analysed frame (after filters and masks).
    last_detections: Vec<Detection>,
    /// Pts and UTC of the last frame, to stamp events ended by [`CameraAnalyzer::finish`].
    last_clock: Option<(Duration, time::OffsetDateTime)>,
    /// Recent model-run latencies for the p95 in [`CameraStats`].
    recent_ms: std::collections::VecDeque<f64>,
    /// Recent result ages (frame arrival → result) for the p95 in [`CameraStats`].
    recent_age_ms: std::collections::VecDeque<f64>,
    /// The last analysed frame, privacy masks already applied (live snapshots).
    last_frame: Option<AnalysisFrame>,
}

impl std::fmt::Debug for CameraAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraAnalyzer")
            .field("camera_id", &self.camera_id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl CameraAnalyzer {
    /// Builds the analyser for one camera; fails with every config problem listed.
    pub fn new(
        camera_id: impl Into<String>,
        config: CameraDetectConfig,
        detector: SharedDetector,
    ) -> Result<Self, DetectError> {
        let camera_id = camera_id.into();
        config.validate(&format!("cameras.{camera_id}.detect"))?;
        let masks = SceneMasks::new(config.zones.clone(), config.masks.clone());
        let post_roll = Duration::from_secs_f32(config.events.post_roll_seconds);
        Ok(CameraAnalyzer {
            filter: DetectionFilter::new(config.filter.clone()),
            gate: MotionGate::new(config.motion.clone(), masks.motion_ignored()),
            masks,
            tracker: Tracker::new(post_roll),
            events: EventMachine::new(camera_id.clone(), config.events.clone()),
            camera_id,
            config,
            detector,
            stats: CameraStats::default(),
            last_detections: Vec::new(),
            last_clock: None,
            recent_ms: std::collections::VecDeque::with_capacity(LATENCY_WINDOW),
            recent_age_ms: std::collections::VecDeque::with_capacity(LATENCY_WINDOW),
            last_frame: None,
        })
    }

    /// The camera.
    pub fn camera_id(&self) -> &str {
        &self.camera_id
    }

    /// Counters so far.
    pub fn stats(&self) -> &CameraStats {
        &self.stats
    }

    /// Counts a frame dropped before it reached [`CameraAnalyzer::process`].
    pub fn record_dropped(&mut self) {
        self.stats.frames_dropped += 1;
    }

    /// Takes the last analysed frame. Privacy masks are already applied: this
    /// is the only frame the live snapshot may show.
    pub fn take_last_frame(&mut self) -> Option<AnalysisFrame> {
        self.last_frame.take()
    }

    /// Detections kept on the last analysed frame.
    pub fn last_detections(&self) -> &[Detection] {
        &self.last_detections
    }

    /// Analyses one frame and returns the event messages it caused.
    pub fn process(&mut self, mut frame: AnalysisFrame) -> Result<Vec<EventMessage>, DetectError> {
        frame.validate()?;
        self.stats.frames_seen += 1;
        let (w, h, pts) = (frame.width, frame.height, frame.pts);
        self.last_clock = Some((pts, frame.wall));
        // Privacy first: neither the model nor any snapshot sees masked pixels.
        self.masks
            .apply_privacy(frame.format, &mut frame.data, w, h);
        let decision = self.gate.observe(frame.view(), pts);
        let gone = if decision.analyse() {
            let started = Instant::now();
            let result = {
                let mut det = self.detector.lock().unwrap_or_else(|p| p.into_inner());
                det.detect(frame.view())
            };
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            let dets = match result {
                Ok(d) => d,
                Err(e) => {
                    self.stats.inference_errors += 1;
                    return Err(e);
                }
            };
            self.stats.inferences += 1;
            self.stats.last_detect_ms = elapsed_ms;
            self.stats.total_detect_ms += elapsed_ms;
            if self.recent_ms.len() == LATENCY_WINDOW {
                self.recent_ms.pop_front();
            }
            self.recent_ms.push_back(elapsed_ms);
            self.stats.p95_detect_ms = p95(self.recent_ms.iter().copied());
            self.gate.mark_analysed(pts);
            let masks = &self.masks;
            self.last_detections = self
                .filter
                .apply(dets, w, h)
                .into_iter()
                .filter(|d| !masks.masks_detection(&d.bbox, w, h))
                .collect();
            self.tracker
                .update(&self.last_detections, pts, decision.motion)
        } else {
            self.stats.frames_motion_skipped += 1;
            self.tracker.carry(pts)
        };
        let zones: HashMap<u64, Vec<String>> = self
            .tracker
            .tracks()
            .iter()
            .filter(|t| t.matched)
            .map(|t| (t.id, self.masks.zones_of(&t.bbox, w, h)))
            .collect();
        let snap_cfg = &self.config.snapshot;
        let view = frame.view();
        let pts_ms = frame.pts_ms();
        let camera_id = &self.camera_id;
        let mut render = |b: &BBox, score: f32| -> Option<Snapshot> {
            match snapshot::render(view, b, score, pts_ms, snap_cfg) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(camera = %camera_id, error = %e, "Could not render an event snapshot.");
                    None
                }
            }
        };
        let mut ctx = FrameContext {
            pts,
            wall: frame.wall,
            zones: &zones,
            snapshot: &mut render,
        };
        let out = self.events.step(self.tracker.tracks(), gone, &mut ctx);
        self.stats.events_started = self.events.started();
        let age_ms = (time::OffsetDateTime::now_utc() - frame.wall).as_seconds_f64() * 1000.0;
        if self.recent_age_ms.len() == LATENCY_WINDOW {
            self.recent_age_ms.pop_front();
        }
        self.recent_age_ms.push_back(age_ms.max(0.0));
        self.stats.p95_result_age_ms = p95(self.recent_age_ms.iter().copied());
        // Masked above (privacy first), so safe to show live.
        self.last_frame = Some(frame);
        Ok(out)
    }

    /// Ends every open event (the stream stopped); events end at the last time their object was seen.
    pub fn finish(&mut self) -> Vec<EventMessage> {
        let Some((pts, wall)) = self.last_clock else {
            return Vec::new();
        };
        let zones = HashMap::new();
        let mut no_snapshot = |_: &BBox, _: f32| -> Option<Snapshot> { None };
        let mut ctx = FrameContext {
            pts,
            wall,
            zones: &zones,
            snapshot: &mut no_snapshot,
        };
        let tracks = self.tracker.drain();
        self.events.finish(tracks, &mut ctx)
    }
}
