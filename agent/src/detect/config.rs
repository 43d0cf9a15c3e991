//! Detection settings: agent-wide ([`DetectConfig`]) and per camera ([`CameraDetectConfig`]).
//!
//! Every struct denies unknown keys and every field has a default, so an empty
//! `[detect]` table is valid. [`CameraDetectConfig::validate`] collects every
//! problem as a sentence naming the key before failing.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::DetectError;
use super::geom::Polygon;

/// Agent-wide detection settings: the runtime, the model and the shared session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// ONNX Runtime library file. Default: `ORT_DYLIB_PATH`, else `<repo>/.deps/onnxruntime/libonnxruntime.so.1.31.1`.
    pub runtime_library: Option<PathBuf>,
    /// Model manifest. Default `models/yolox_nano.toml`.
    pub model: PathBuf,
    /// Intra-op threads of the shared session. Default 1 (leaves a core for ingest on 2-core boxes).
    pub intra_threads: usize,
    /// Decoder score floor before NMS; cameras filter above it. Default 0.25.
    pub score_floor: f32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            runtime_library: None,
            model: PathBuf::from("models/yolox_nano.toml"),
            intra_threads: 1,
            score_floor: 0.25,
        }
    }
}

impl DetectConfig {
    /// Every problem, each a sentence naming the key; empty when valid.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.intra_threads == 0 || self.intra_threads > 64 {
            p.push(format!(
                "{key}.intra_threads is {}; use 1..64 (1 leaves a core for ingest).",
                self.intra_threads
            ));
        }
        if !(0.0..1.0).contains(&self.score_floor) {
            p.push(format!(
                "{key}.score_floor is {}; use a value in 0..1 such as 0.25.",
                self.score_floor
            ));
        }
        p
    }
}

/// Which detections a camera keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Labels to track. Default person, car, truck, bus, motorcycle, bicycle.
    pub labels: Vec<String>,
    /// Minimum score. Default 0.5.
    pub min_score: f32,
    /// Minimum box area as a fraction of the frame area. Default 0.0005.
    pub min_area: f32,
    /// Maximum box area as a fraction of the frame area. Default 1.0.
    pub max_area: f32,
    /// Minimum width/height ratio. Default 0.0.
    pub min_ratio: f32,
    /// Maximum width/height ratio. Default 100.0.
    pub max_ratio: f32,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            labels: ["person", "car", "truck", "bus", "motorcycle", "bicycle"]
                .map(String::from)
                .to_vec(),
            min_score: 0.5,
            min_area: 0.0005,
            max_area: 1.0,
            min_ratio: 0.0,
            max_ratio: 100.0,
        }
    }
}

/// Motion gate settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// When false every frame is analysed. Default true.
    pub enabled: bool,
    /// Width of the grayscale copy the gate works on. Default 160.
    pub width: u32,
    /// Per-pixel difference (0..255) from the background that counts as changed. Default 25.
    pub pixel_threshold: u8,
    /// Fraction of (unmasked) pixels that must change to count as motion. Default 0.002.
    pub min_area: f32,
    /// Background learning rate per frame, 0..1. Default 0.05.
    pub alpha: f32,
    /// Run the model at least this often even without motion, to refresh tracks of still objects. Default 5 s.
    pub refresh_seconds: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: true,
            width: 160,
            pixel_threshold: 25,
            min_area: 0.002,
            alpha: 0.05,
            refresh_seconds: 5.0,
        }
    }
}

/// A named zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone name, listed in events.
    pub name: String,
    /// Polygon in normalised coordinates.
    pub polygon: Polygon,
}

/// Masks, all polygons in normalised coordinates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Areas ignored by the motion gate (trees, a busy road). Default none.
    pub motion: Vec<Polygon>,
    /// Detections whose box bottom-centre is inside are ignored. Default none.
    pub object: Vec<Polygon>,
    /// Blacked out before detection and in every snapshot; clips stay original bytes. Default none.
    pub privacy: Vec<Polygon>,
}

/// Event machine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventConfig {
    /// Analysed frames in which a track must be seen to start an event. Default 3.
    pub confirm_hits: u32,
    /// Window of analysed frames for `confirm_hits`. Default 5.
    pub confirm_window: u32,
    /// The event ends after its object is unseen this long. Default 5 s.
    pub post_roll_seconds: f32,
    /// An object that has not moved for this long ends its event and cannot restart one until it moves. Default 60 s.
    pub max_stationary_seconds: f32,
    /// Events longer than this are split into linked pieces. Default 300 s.
    pub max_clip_seconds: f32,
    /// A better snapshot must beat the best score by this much to send an update. Default 0.05.
    pub update_min_gain: f32,
    /// Minimum time between updates of one event. Default 2 s.
    pub update_min_interval_seconds: f32,
    /// When non-empty, an event starts only once its object is inside one of these zones. Default none.
    pub required_zones: Vec<String>,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            confirm_hits: 3,
            confirm_window: 5,
            post_roll_seconds: 5.0,
            max_stationary_seconds: 60.0,
            max_clip_seconds: 300.0,
            update_min_gain: 0.05,
            update_min_interval_seconds: 2.0,
            required_zones: Vec::new(),
        }
    }
}

/// Snapshot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    /// JPEG quality 1..100. Default 80.
    pub quality: u8,
    /// Thumbnail width in pixels (height keeps the aspect). Default 240.
    pub thumbnail_width: u32,
    /// Snapshot JPEG width limit in pixels; wider frames are scaled down (box and
    /// `width`/`height` stay in camera pixels). 0 = the frame's own width. Default 1280:
    /// enough for the operators' page, and a 1080p frame costs half the encoding and
    /// half the bytes per event message.
    pub max_width: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            quality: 80,
            thumbnail_width: 240,
            max_width: 1280,
        }
    }
}

/// Everything detection needs to know about one camera.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraDetectConfig {
    /// Which detections to keep.
    pub filter: FilterConfig,
    /// Motion gate.
    pub motion: MotionConfig,
    /// Named zones. Default none.
    pub zones: Vec<ZoneConfig>,
    /// Motion, object and privacy masks.
    pub masks: MaskConfig,
    /// Event machine.
    pub events: EventConfig,
    /// Snapshot encoding.
    pub snapshot: SnapshotConfig,
}

impl CameraDetectConfig {
    /// Every problem, each a sentence starting with its key (`key` is e.g. `cameras[2].detect`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        let f = &self.filter;
        if f.labels.is_empty() {
            p.push(format!(
                "{key}.filter.labels is empty; list at least one label such as \"person\"."
            ));
        }
        if !(0.0..=1.0).contains(&f.min_score) {
            p.push(format!(
                "{key}.filter.min_score is {}; use a value in 0..1.",
                f.min_score
            ));
        }
        if !(0.0..=1.0).contains(&f.min_area)
            || !(0.0..=1.0).contains(&f.max_area)
            || f.min_area > f.max_area
        {
            p.push(format!(
                "{key}.filter.min_area/max_area are {}/{}; they are fractions of the frame area with min <= max.",
                f.min_area, f.max_area
            ));
        }
        if f.min_ratio < 0.0 || f.min_ratio > f.max_ratio {
            p.push(format!(
                "{key}.filter.min_ratio/max_ratio are {}/{}; use 0 <= min_ratio <= max_ratio.",
                f.min_ratio, f.max_ratio
            ));
        }
        let m = &self.motion;
        if !(16..=640).contains(&m.width) {
            p.push(format!(
                "{key}.motion.width is {}; use 16..640 (160 is usual).",
                m.width
            ));
        }
        if !(0.0..=1.0).contains(&m.min_area) {
            p.push(format!(
                "{key}.motion.min_area is {}; use a fraction in 0..1 such as 0.002.",
                m.min_area
            ));
        }
        if m.alpha.is_nan() || m.alpha <= 0.0 || m.alpha > 1.0 {
            p.push(format!(
                "{key}.motion.alpha is {}; use a value in (0, 1] such as 0.05.",
                m.alpha
            ));
        }
        if m.refresh_seconds.is_nan() || m.refresh_seconds <= 0.0 {
            p.push(format!(
                "{key}.motion.refresh_seconds is {}; use a positive number of seconds.",
                m.refresh_seconds
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            if z.name.trim().is_empty() {
                p.push(format!(
                    "{key}.zones[{i}].name is empty; give every zone a name."
                ));
            } else if !names.insert(z.name.as_str()) {
                p.push(format!(
                    "{key}.zones[{i}].name `{}` is used twice; zone names must be unique.",
                    z.name
                ));
            }
            p.extend(z.polygon.problems(&format!("{key}.zones[{i}].polygon")));
        }
        for (kind, list) in [
            ("motion", &self.masks.motion),
            ("object", &self.masks.object),
            ("privacy", &self.masks.privacy),
        ] {
            for (i, poly) in list.iter().enumerate() {
                p.extend(poly.problems(&format!("{key}.masks.{kind}[{i}]")));
            }
        }
        let e = &self.events;
        if e.confirm_hits == 0 || e.confirm_hits > e.confirm_window {
            p.push(format!(
                "{key}.events.confirm_hits is {} with confirm_window {}; use 1 <= confirm_hits <= confirm_window.",
                e.confirm_hits, e.confirm_window
            ));
        }
        if e.confirm_window > 64 {
            p.push(format!(
                "{key}.events.confirm_window is {}; use at most 64 frames.",
                e.confirm_window
            ));
        }
        for (name, v) in [
            ("post_roll_seconds", e.post_roll_seconds),
            ("max_stationary_seconds", e.max_stationary_seconds),
            ("max_clip_seconds", e.max_clip_seconds),
        ] {
            if v.is_nan() || v <= 0.0 {
                p.push(format!(
                    "{key}.events.{name} is {v}; use a positive number of seconds."
                ));
            }
        }
        for z in &e.required_zones {
            if !self.zones.iter().any(|c| &c.name == z) {
                p.push(format!("{key}.events.required_zones names `{z}`, which is not in {key}.zones; add the zone or remove the name."));
            }
        }
        if !(1..=100).contains(&self.snapshot.quality) {
            p.push(format!(
                "{key}.snapshot.quality is {}; use 1..100.",
                self.snapshot.quality
            ));
        }
        if !(16..=1920).contains(&self.snapshot.thumbnail_width) {
            p.push(format!(
                "{key}.snapshot.thumbnail_width is {}; use 16..1920.",
                self.snapshot.thumbnail_width
            ));
        }
        let mw = self.snapshot.max_width;
        if mw != 0 && !(self.snapshot.thumbnail_width..=16384).contains(&mw) {
            p.push(format!(
                "{key}.snapshot.max_width is {mw}; use 0 (the frame's width) or {}..16384 (at least thumbnail_width).",
                self.snapshot.thumbnail_width
            ));
        }
        p
    }

    /// Fails with every problem listed when the config is not usable.
    pub fn validate(&self, key: &str) -> Result<(), DetectError> {
        let p = self.problems(key);
        if p.is_empty() {
            Ok(())
        } else {
            Err(DetectError::Config(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_is_valid_defaults() {
        let c: CameraDetectConfig = match toml::from_str("") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c, CameraDetectConfig::default());
        assert!(c.problems("cam").is_empty());
        assert!(DetectConfig::default().problems("detect").is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected_and_problems_collected() {
        assert!(toml::from_str::<CameraDetectConfig>("[filter]\nlabel = []").is_err());
        let c: CameraDetectConfig = match toml::from_str(
            "[filter]\nmin_score = 2.0\n[events]\nrequired_zones = [\"door\"]\n[[zones]]\nname = \"x\"\npolygon = [[0,0],[1,0]]",
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let p = c.problems("cameras[0].detect");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().all(|s| s.starts_with("cameras[0].detect.")));
    }
}
