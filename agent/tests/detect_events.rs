//! Camera analyser on real footage: calm events, motion gating, masks and snapshots.

use std::collections::HashSet;

use vigil_agent::detect::analyzer::{share, CameraAnalyzer, SharedDetector};
use vigil_agent::detect::config::CameraDetectConfig;
use vigil_agent::detect::events::{EventMessage, EventPhase};
use vigil_agent::detect::geom::Polygon;
use vigil_agent::detect::model::{DetectorOptions, OrtDetector};

mod detect_support;
use detect_support::{each_vtest_frame, frame, manifest, runtime_lib, vtest_frames};

fn detector() -> SharedDetector {
    match OrtDetector::from_manifest_path(
        Some(&runtime_lib()),
        &manifest(),
        DetectorOptions::default(),
    ) {
        Ok(d) => share(d),
        Err(e) => panic!("{e}"),
    }
}

fn analyzer(config: CameraDetectConfig) -> CameraAnalyzer {
    match CameraAnalyzer::new("cam1", config, detector()) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

/// Streams `count` frames from `start` and returns every message, including the final ends.
fn run(a: &mut CameraAnalyzer, start: u32, count: u32) -> Vec<EventMessage> {
    let mut out = Vec::new();
    each_vtest_frame(start, count, |n, rgb| {
        match a.process(frame("cam1", n, rgb)) {
            Ok(m) => out.extend(m),
            Err(e) => panic!("frame {n}: {e}"),
        }
    });
    out.extend(a.finish());
    out
}

fn starts(msgs: &[EventMessage]) -> Vec<&EventMessage> {
    msgs.iter()
        .filter(|m| m.phase == EventPhase::Start)
        .collect()
}

fn whole_frame() -> Polygon {
    Polygon(vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
}

#[test]
fn people_walking_give_about_one_event_per_person_not_one_per_frame() {
    let mut a = analyzer(CameraDetectConfig::default());
    let frames = 300; // 30 s
    let msgs = run(&mut a, 0, frames);
    let st = starts(&msgs);
    let ends: Vec<_> = msgs.iter().filter(|m| m.phase == EventPhase::End).collect();
    let stats = a.stats().clone();
    println!(
        "{} starts, {} updates, {} ends over {frames} frames; {} inferences, mean detect {:.1} ms, motion-skipped {:.0}%",
        st.len(),
        msgs.len() - st.len() - ends.len(),
        ends.len(),
        stats.inferences,
        stats.mean_detect_ms(),
        100.0 * stats.motion_skipped_fraction()
    );
    for m in &st {
        println!(
            "start {} {} {:.2} at {} ms",
            m.event.id, m.event.label, m.event.top_score, m.event.start_pts_ms
        );
    }
    // Every event starts once and ends once, with a snapshot on start.
    let ids: HashSet<_> = st.iter().map(|m| m.event.id).collect();
    assert_eq!(ids.len(), st.len());
    assert_eq!(ends.len(), st.len());
    assert!(ends
        .iter()
        .all(|m| ids.contains(&m.event.id) && m.event.end_pts_ms >= Some(m.event.start_pts_ms)));
    assert!(st.iter().all(|m| m
        .event
        .snapshot
        .as_ref()
        .is_some_and(|s| s.jpeg.starts_with(&[0xFF, 0xD8]))));
    // vtest shows roughly a dozen different pedestrians in 30 s, a few at a time.
    assert!(st.len() >= 4, "too few events: {}", st.len());
    assert!(
        st.len() <= 30,
        "not calm: {} events in {frames} frames",
        st.len()
    );
    // Messages serialise for MQTT.
    assert!(serde_json::to_string(&msgs[0]).is_ok_and(|j| j.contains("\"phase\":\"start\"")));
}

#[test]
fn static_scene_gives_no_events_and_almost_no_inference() {
    let mut a = analyzer(CameraDetectConfig::default());
    let rgb = vtest_frames(100, 1).remove(0);
    let mut msgs = Vec::new();
    for n in 0..150u64 {
        match a.process(frame("cam1", n, rgb.clone())) {
            Ok(m) => msgs.extend(m),
            Err(e) => panic!("{e}"),
        }
    }
    msgs.extend(a.finish());
    let s = a.stats();
    println!(
        "static: {} inferences of {} frames",
        s.inferences, s.frames_seen
    );
    assert!(msgs.is_empty(), "{msgs:?}");
    // First frame plus one refresh every 5 s over 15 s.
    assert!(s.inferences <= 4, "{} inferences", s.inferences);
    assert!(s.motion_skipped_fraction() > 0.95);
}

#[test]
fn detections_inside_object_or_privacy_masks_start_no_event() {
    for which in ["object", "privacy"] {
        let mut config = CameraDetectConfig::default();
        if which == "object" {
            config.masks.object = vec![whole_frame()];
        } else {
            config.masks.privacy = vec![whole_frame()];
            // Motion is masked too, so force inference to prove detection is excluded as well.
            config.motion.enabled = false;
        }
        let mut a = analyzer(config);
        let msgs = run(&mut a, 80, 40);
        assert!(a.stats().inferences > 0, "{which}");
        assert!(msgs.is_empty(), "{which} mask: {msgs:?}");
    }
}

#[test]
fn privacy_masked_pixels_are_black_in_snapshots() {
    let mut config = CameraDetectConfig::default();
    // Left third of the frame.
    config.masks.privacy = vec![Polygon(vec![
        [0.0, 0.0],
        [0.33, 0.0],
        [0.33, 1.0],
        [0.0, 1.0],
    ])];
    let mut a = analyzer(config);
    let msgs = run(&mut a, 80, 60);
    let snaps: Vec<_> = msgs
        .iter()
        .filter_map(|m| m.event.snapshot.as_ref())
        .collect();
    assert!(
        !snaps.is_empty(),
        "expected events with snapshots right of the mask"
    );
    for s in snaps {
        let img = match image::load_from_memory(&s.jpeg) {
            Ok(i) => i.to_rgb8(),
            Err(e) => panic!("{e}"),
        };
        let b = s.bbox;
        let mut max = 0u8;
        // Mask interior, leaving an 8 px JPEG-block margin and the drawn box's surroundings.
        for y in 8..img.height() - 8 {
            for x in 8..(0.33 * img.width() as f32) as u32 - 8 {
                let near_box = x as f32 >= b.x1 - 8.0
                    && x as f32 <= b.x2 + 8.0
                    && y as f32 >= b.y1 - 8.0
                    && y as f32 <= b.y2 + 8.0;
                if !near_box {
                    max = max.max(img.get_pixel(x, y).0.into_iter().max().unwrap_or(0));
                }
            }
        }
        assert!(max <= 8, "masked pixel brightness {max} in snapshot");
        // And the unmasked part still has picture.
        let bright = (0.5 * img.width() as f32) as u32..img.width();
        assert!(bright.into_iter().any(|x| img.get_pixel(x, 300).0[0] > 60));
    }
}

#[test]
fn detect_service_accounts_for_every_frame_and_ends_events_on_shutdown() {
    use vigil_agent::detect::worker::{DetectService, Submitted};
    let (tx, rx) = std::sync::mpsc::channel();
    let service = match DetectService::spawn(vec![analyzer(CameraDetectConfig::default())], tx) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let count = 40;
    each_vtest_frame(80, count, |n, rgb| {
        let r = service.submit(frame("cam1", n, rgb));
        assert!(
            matches!(r, Submitted::Queued | Submitted::ReplacedOlder),
            "{r:?}"
        );
    });
    assert_eq!(
        service.submit(frame("other", 0, vec![0; 3])),
        Submitted::UnknownCamera
    );
    let stats = service.stats();
    service.shutdown();
    let msgs: Vec<EventMessage> = rx.iter().collect();
    let s = &stats["cam1"];
    println!(
        "service: {} analysed, {} dropped of {count}; {} messages",
        s.frames_seen,
        s.frames_dropped,
        msgs.len()
    );
    let starts = msgs.iter().filter(|m| m.phase == EventPhase::Start).count();
    let ends = msgs.iter().filter(|m| m.phase == EventPhase::End).count();
    assert_eq!(starts, ends, "shutdown ends every open event");
}
