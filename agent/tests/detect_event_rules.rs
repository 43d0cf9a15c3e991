//! Event rules (zones, required zones, stationary limit, split) driven through
//! [`CameraAnalyzer`] with a scripted detector: synthetic detections, no model,
//! motion gate off so every frame is analysed. Frames are 10 fps (frame `n` at
//! pts `n * 100 ms`), black, 320x240.

use std::time::Duration;

use vigil_agent::detect::analyzer::{share, CameraAnalyzer};
use vigil_agent::detect::config::{CameraDetectConfig, ZoneConfig};
use vigil_agent::detect::error::DetectError;
use vigil_agent::detect::events::{EndReason, EventMessage, EventPhase};
use vigil_agent::detect::frame::{AnalysisFrame, FrameView, PixelFormat};
use vigil_agent::detect::geom::{BBox, Polygon};
use vigil_agent::detect::manifest::ModelFamily;
use vigil_agent::detect::model::{Detection, Detector, ModelInfo};

const W: u32 = 320;
const H: u32 = 240;

type Script = Box<dyn FnMut(u64) -> Vec<Detection> + Send>;

/// A detector that returns `script(n)` on its n-th call (0-based).
struct Scripted {
    info: ModelInfo,
    calls: u64,
    script: Script,
}

impl Detector for Scripted {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn detect(&mut self, _image: FrameView<'_>) -> Result<Vec<Detection>, DetectError> {
        let d = (self.script)(self.calls);
        self.calls += 1;
        Ok(d)
    }
}

/// A person box 40x100 px with its left edge at `x`.
fn person(x: f32) -> Vec<Detection> {
    vec![Detection {
        class_id: 0,
        label: "person".into(),
        score: 0.8,
        bbox: BBox::from([x, 100.0, x + 40.0, 200.0]),
    }]
}

/// "door": the right 40 % of the frame (x >= 192 px).
fn door() -> ZoneConfig {
    ZoneConfig {
        name: "door".into(),
        polygon: Polygon(vec![[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]]),
    }
}

fn config() -> CameraDetectConfig {
    let mut c = CameraDetectConfig::default();
    c.motion.enabled = false;
    c
}

/// Runs `frames` frames through an analyser scripted by `script`, then `finish`;
/// returns `(frame index, message)` pairs (finish messages get index `frames`).
fn run(
    config: CameraDetectConfig,
    frames: u64,
    script: impl FnMut(u64) -> Vec<Detection> + Send + 'static,
) -> Vec<(u64, EventMessage)> {
    let detector = Scripted {
        info: ModelInfo {
            name: "scripted".into(),
            family: ModelFamily::Yolox,
            sha256: String::new(),
            input_width: 416,
            input_height: 416,
            labels: vec!["person".into()],
        },
        calls: 0,
        script: Box::new(script),
    };
    let mut a = match CameraAnalyzer::new("cam1", config, share(detector)) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    let mut out = Vec::new();
    for n in 0..frames {
        let pts = Duration::from_millis(100 * n);
        let frame = AnalysisFrame {
            camera_id: "cam1".into(),
            pts,
            wall: time::macros::datetime!(2025-01-01 12:00 UTC) + pts,
            width: W,
            height: H,
            format: PixelFormat::Rgb24,
            data: vec![0; (W * H * 3) as usize],
        };
        match a.process(frame) {
            Ok(m) => out.extend(m.into_iter().map(|m| (n, m))),
            Err(e) => panic!("frame {n}: {e}"),
        }
    }
    out.extend(a.finish().into_iter().map(|m| (frames, m)));
    out
}

fn phase(msgs: &[(u64, EventMessage)], p: EventPhase) -> Vec<(u64, &EventMessage)> {
    msgs.iter()
        .filter(|(_, m)| m.phase == p)
        .map(|(n, m)| (*n, m))
        .collect()
}

/// Walks right 10 px per frame from x = 0 for frames 0..=27 (bottom-centre
/// enters "door" at frame 18), then is gone.
fn walk_into_door(n: u64) -> Vec<Detection> {
    if n <= 27 {
        person(10.0 * n as f32)
    } else {
        Vec::new()
    }
}

#[test]
fn event_lists_the_zone_its_object_walked_into() {
    let mut c = config();
    c.zones = vec![door()];
    let msgs = run(c, 100, walk_into_door);
    let starts = phase(&msgs, EventPhase::Start);
    let updates = phase(&msgs, EventPhase::Update);
    let ends = phase(&msgs, EventPhase::End);
    assert_eq!(starts.len(), 1, "{msgs:#?}");
    assert_eq!(ends.len(), 1, "{msgs:#?}");
    // Confirmed (3 of 5) on frame 2, outside the zone.
    assert_eq!(starts[0].0, 2);
    assert!(starts[0].1.event.zones.is_empty());
    // Entering the zone is reported by an update (rate-limited: due 2 s after the start).
    let zone_updates: Vec<_> = updates
        .iter()
        .filter(|(_, m)| m.event.zones == ["door"])
        .collect();
    assert!(
        zone_updates
            .first()
            .is_some_and(|(n, _)| (18..=27).contains(n)),
        "no update naming the entered zone while the object was there: {updates:#?}"
    );
    let end = &ends[0].1.event;
    assert_eq!(end.id, starts[0].1.event.id);
    assert_eq!(end.zones, ["door"]);
    assert_eq!(end.end_reason, Some(EndReason::Left));
    assert_eq!(end.end_pts_ms, Some(2700));
}

#[test]
fn required_zone_blocks_the_start_until_the_object_enters_it() {
    let mut c = config();
    c.zones = vec![door()];
    c.events.required_zones = vec!["door".into()];

    // Walks frames 0..=15 on the left (bottom-centre at most 170 px < 192 px), then leaves.
    let outside = run(c.clone(), 80, |n| {
        if n <= 15 {
            person(10.0 * n as f32)
        } else {
            Vec::new()
        }
    });
    assert!(outside.is_empty(), "{outside:#?}");

    let msgs = run(c, 100, walk_into_door);
    let starts = phase(&msgs, EventPhase::Start);
    assert_eq!(starts.len(), 1, "{msgs:#?}");
    // Confirmed long before (frame 2), but starts only on the first frame inside the zone.
    assert_eq!(starts[0].0, 18);
    assert_eq!(starts[0].1.event.zones, ["door"]);
    let ends = phase(&msgs, EventPhase::End);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].1.event.id, starts[0].1.event.id);
    assert_eq!(ends[0].1.event.zones, ["door"]);
}

#[test]
fn still_object_ends_its_event_and_restarts_only_after_it_moves() {
    let mut c = config();
    c.events.max_stationary_seconds = 3.0;
    // Walks frames 0..=10 (x = 20..100), still at x = 100 for frames 11..=109
    // (still since frame 10, 1.0 s), walks again frames 110..=125, then is gone.
    let msgs = run(c, 200, |n| match n {
        0..=10 => person(20.0 + 8.0 * n as f32),
        11..=109 => person(100.0),
        110..=125 => person(100.0 + 8.0 * (n - 109) as f32),
        _ => Vec::new(),
    });
    let starts = phase(&msgs, EventPhase::Start);
    let ends = phase(&msgs, EventPhase::End);
    assert_eq!(starts.len(), 2, "{msgs:#?}");
    assert_eq!(ends.len(), 2, "{msgs:#?}");

    // First event: ends when still for 3 s (1.0 s + 3 s = frame 40).
    let (first_start, first_end) = (&starts[0], &ends[0]);
    assert_eq!(first_start.0, 2);
    assert_eq!(first_end.0, 40);
    assert_eq!(first_end.1.event.id, first_start.1.event.id);
    assert_eq!(first_end.1.event.end_reason, Some(EndReason::Stationary));
    assert_eq!(first_end.1.event.end_pts_ms, Some(4000));

    // Nothing at all while it stays still after that.
    assert!(
        msgs.iter().all(|(n, _)| !(41..110).contains(n)),
        "{msgs:#?}"
    );

    // It moves on frame 110: a new, unlinked event starts then, not back at the
    // track's first sighting (which would overlap the stationary event).
    let (second_start, second_end) = (&starts[1], &ends[1]);
    assert_eq!(second_start.0, 110);
    assert_ne!(second_start.1.event.id, first_start.1.event.id);
    assert_eq!(second_start.1.event.previous_event_id, None);
    assert!(
        second_start.1.event.start_pts_ms >= 4000,
        "restarted event claims to start at {} ms, before the previous one ended at 4000 ms",
        second_start.1.event.start_pts_ms
    );
    assert_eq!(second_end.1.event.id, second_start.1.event.id);
    assert_eq!(second_end.1.event.end_reason, Some(EndReason::Left));
    assert_eq!(second_end.1.event.end_pts_ms, Some(12_500));
}

#[test]
fn long_event_is_split_into_linked_pieces() {
    let mut c = config();
    c.events.max_clip_seconds = 5.0;
    // Walks back and forth for 13 s (frames 0..130), then is gone.
    let msgs = run(c, 200, |n| {
        if n < 130 {
            let phase = n % 40;
            let step = if phase < 20 { phase } else { 40 - phase };
            person(20.0 + 10.0 * step as f32)
        } else {
            Vec::new()
        }
    });
    let starts = phase(&msgs, EventPhase::Start);
    let ends = phase(&msgs, EventPhase::End);
    assert!(starts.len() >= 3, "{msgs:#?}");
    assert_eq!(starts.len(), ends.len(), "{msgs:#?}");
    assert_eq!(starts[0].1.event.previous_event_id, None);
    for i in 0..starts.len() {
        let (s, e) = (&starts[i].1.event, &ends[i].1.event);
        assert_eq!(e.id, s.id, "piece {i}");
        let (Some(end_ms), start_ms) = (e.end_pts_ms, s.start_pts_ms) else {
            panic!("piece {i} has no end pts");
        };
        if i + 1 < starts.len() {
            let next = &starts[i + 1].1.event;
            assert_eq!(e.end_reason, Some(EndReason::Split), "piece {i}");
            assert_eq!(next.previous_event_id, Some(e.id), "piece {}", i + 1);
            // The next piece starts where this one was cut, on the same frame.
            assert_eq!(next.start_pts_ms, end_ms, "piece {}", i + 1);
            assert_eq!(starts[i + 1].0, ends[i].0);
            // Cut at max_clip_seconds (within the confirm delay of the first piece).
            assert!(
                (5000..=5300).contains(&(end_ms - start_ms)),
                "piece {i} lasts {} ms",
                end_ms - start_ms
            );
        } else {
            assert_eq!(e.end_reason, Some(EndReason::Left), "last piece");
            assert_eq!(end_ms, 12_900);
        }
    }
}
