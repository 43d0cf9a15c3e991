//! The real model on real footage, a synthetic YOLOv8-style model, and model load errors.

use std::time::Instant;

use ort::session::Session;
use ort::value::TensorRef;
use vigil_agent::detect::error::DetectError;
use vigil_agent::detect::model::{Detector, DetectorOptions, OrtDetector};
use vigil_agent::detect::output::detect_frame;
use vigil_agent::detect::runtime::init_runtime;

mod detect_support;
use detect_support::{
    frame, frame_i420, manifest, runtime_lib, vtest_frames, vtest_frames_i420, H, W,
};

fn yolox() -> OrtDetector {
    match OrtDetector::from_manifest_path(
        Some(&runtime_lib()),
        &manifest(),
        DetectorOptions::default(),
    ) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn yolox_finds_persons_on_vtest_frame_100() {
    let mut det = yolox();
    let rgb = vtest_frames(100, 1).remove(0);
    let out = match detect_frame(&mut det, &frame("cam", 100, rgb), 0.25) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let json = serde_json::to_string(&out).unwrap_or_default();
    println!("{json}");
    assert!(
        json.starts_with("{\"pts_ms\":10000,\"detections\":[{\"label\":\"person\",\"score\":0."),
        "{json}"
    );
    // The model README: several persons at about 0.8 on this frame.
    let persons: Vec<_> = out
        .detections
        .iter()
        .filter(|d| d.label == "person" && d.score >= 0.7)
        .collect();
    assert!(
        persons.len() >= 4,
        "expected several persons at ~0.8: {json}"
    );
    assert!(persons.iter().any(|d| d.score >= 0.78), "{json}");
    assert!(persons
        .iter()
        .all(|d| d.score < 0.95 && d.bbox.x2 <= W as f32 && d.bbox.y2 <= H as f32));
}

// ---- Independent reference: plain per-pixel letterbox, raw session, plain decode. ----

struct RefDet {
    class: usize,
    score: f32,
    b: [f32; 4],
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let i = iw * ih;
    i / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i)
}

fn reference_input(rgb: &[u8]) -> (Vec<f32>, f32) {
    let r = (416.0 / W as f32).min(416.0 / H as f32);
    let (nw, nh) = ((W as f32 * r) as usize, (H as f32 * r) as usize);
    let mut t = vec![114.0f32; 3 * 416 * 416];
    let px = |x: usize, y: usize, c: usize| rgb[(y * W as usize + x) * 3 + c] as f32;
    for y in 0..nh {
        let sy = ((y as f32 + 0.5) / r - 0.5).clamp(0.0, (H - 1) as f32);
        let (y0, fy) = (sy.floor() as usize, sy - sy.floor());
        let y1 = (y0 + 1).min(H as usize - 1);
        for x in 0..nw {
            let sx = ((x as f32 + 0.5) / r - 0.5).clamp(0.0, (W - 1) as f32);
            let (x0, fx) = (sx.floor() as usize, sx - sx.floor());
            let x1 = (x0 + 1).min(W as usize - 1);
            for c in 0..3 {
                let v = px(x0, y0, c) * (1.0 - fx) * (1.0 - fy)
                    + px(x1, y0, c) * fx * (1.0 - fy)
                    + px(x0, y1, c) * (1.0 - fx) * fy
                    + px(x1, y1, c) * fx * fy;
                // BGR planes.
                t[(2 - c) * 416 * 416 + y * 416 + x] = v;
            }
        }
    }
    (t, r)
}

fn reference_decode(out: &[f32], r: f32) -> Vec<RefDet> {
    let mut all = Vec::new();
    let mut i = 0;
    for s in [8usize, 16, 32] {
        let g = 416 / s;
        for gy in 0..g {
            for gx in 0..g {
                let row = &out[i * 85..(i + 1) * 85];
                i += 1;
                let (mut class, mut best) = (0, 0.0);
                for c in 0..80 {
                    if row[5 + c] > best {
                        best = row[5 + c];
                        class = c;
                    }
                }
                let score = row[4] * best;
                if score < 0.25 {
                    continue;
                }
                let (cx, cy) = (
                    (row[0] + gx as f32) * s as f32,
                    (row[1] + gy as f32) * s as f32,
                );
                let (w, h) = (row[2].exp() * s as f32, row[3].exp() * s as f32);
                let b = [
                    (cx - w / 2.0) / r,
                    (cy - h / 2.0) / r,
                    (cx + w / 2.0) / r,
                    (cy + h / 2.0) / r,
                ];
                all.push(RefDet { class, score, b });
            }
        }
    }
    all.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<RefDet> = Vec::new();
    for d in all {
        if !keep
            .iter()
            .any(|k| k.class == d.class && iou(&k.b, &d.b) > 0.45)
        {
            keep.push(d);
        }
    }
    keep
}

#[test]
fn boxes_agree_with_an_independent_reference_decode() {
    let env = match init_runtime(Some(&runtime_lib())) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let mut session = match Session::builder(&env)
        .and_then(|b| Ok(b.with_intra_threads(1)?))
        .and_then(|mut b| b.commit_from_file(detect_support::repo().join("models/yolox_nano.onnx")))
    {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let mut det = yolox();
    // RGB frames (ffmpeg's conversion, the reference's input) and the decoder's own
    // I420 planes (what the agent analyses: converted per model-input pixel).
    for i420 in [false, true] {
        let (agree, total) = agreement(&mut session, &mut det, i420);
        println!(
            "{} frames: {agree}/{total} detections (score >= 0.5) agree with the reference at IoU >= 0.9",
            if i420 { "I420" } else { "RGB" }
        );
        assert!(total >= 20, "too few detections to judge: {total}");
        assert!(agree as f32 >= 0.95 * total as f32, "{agree}/{total}");
    }
}

fn agreement(session: &mut Session, det: &mut OrtDetector, i420: bool) -> (usize, usize) {
    let (mut agree, mut total) = (0usize, 0usize);
    for n in [20u32, 100, 180, 260, 340, 420, 500, 580, 660, 740] {
        let rgb = vtest_frames(n, 1).remove(0);
        let ours_frame = if i420 {
            frame_i420("cam", n as u64, vtest_frames_i420(n, 1).remove(0))
        } else {
            frame("cam", n as u64, rgb.clone())
        };
        let (input, r) = reference_input(&rgb);
        let tensor = match TensorRef::from_array_view(([1usize, 3, 416, 416], &*input)) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let outputs = match session.run(ort::inputs![tensor]) {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        let reference = match outputs[0].try_extract_tensor::<f32>() {
            Ok((_, data)) => reference_decode(data, r),
            Err(e) => panic!("{e}"),
        };
        let ours = match det.detect(ours_frame.view()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        for d in ours.iter().filter(|d| d.score >= 0.5) {
            total += 1;
            let b: [f32; 4] = d.bbox.into();
            let best = reference
                .iter()
                .filter(|r| r.class == d.class_id)
                .map(|r| iou(&r.b, &b))
                .fold(0.0f32, f32::max);
            if best >= 0.9 {
                agree += 1;
            } else {
                println!(
                    "frame {n}: {} {:.2} {b:?} best IoU {best:.3}",
                    d.label, d.score
                );
            }
        }
    }
    (agree, total)
}

#[test]
fn measure_inference_time_per_frame() {
    let env = match init_runtime(Some(&runtime_lib())) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let mut session = match Session::builder(&env)
        .and_then(|b| Ok(b.with_intra_threads(1)?))
        .and_then(|mut b| b.commit_from_file(detect_support::repo().join("models/yolox_nano.onnx")))
    {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let input = vec![114.0f32; 3 * 416 * 416];
    let runs = 20;
    let bare = Instant::now();
    for _ in 0..runs {
        let tensor = match TensorRef::from_array_view(([1usize, 3, 416, 416], &*input)) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        if let Err(e) = session.run(ort::inputs![tensor]) {
            panic!("{e}");
        }
    }
    let bare_ms = bare.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    let mut det = yolox();
    let f = frame("cam", 100, vtest_frames(100, 1).remove(0));
    let full = Instant::now();
    for _ in 0..runs {
        if let Err(e) = det.detect(f.view()) {
            panic!("{e}");
        }
    }
    let full_ms = full.elapsed().as_secs_f64() * 1000.0 / runs as f64;
    println!("bare model run: {bare_ms:.1} ms/frame; Detector::detect (letterbox+run+decode+NMS): {full_ms:.1} ms/frame (1 intra-op thread)");
    assert!(full_ms > 0.0);
}

const YOLOV8_MODEL: &str = r#"
import numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
# [1, 4+2, 5]: rows cx, cy, w, h, score(a), score(b); anchors along the last axis.
out = np.array([
    [20, 21, 21, 50, 10],
    [30, 31, 31, 36, 40],
    [10, 10, 10,  8,  4],
    [10, 10, 10, 16,  4],
    [0.9, 0.8, 0.0, 0.0, 0.1],
    [0.1, 0.0, 0.7, 0.6, 0.0],
], dtype=np.float32)[None]
nodes = [
    helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
    helper.make_node("Mul", ["m", "zero"], ["z"]),
    helper.make_node("Add", ["const", "z"], ["output0"]),
]
g = helper.make_graph(nodes, "yolov8_const",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
    [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 5])],
    [numpy_helper.from_array(out, "const"), numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, "yolov8_const.onnx")
g2 = helper.make_graph([helper.make_node("Add", ["const", "z0"], ["output"]),
                        helper.make_node("ReduceMean", ["images"], ["m0"], keepdims=0),
                        helper.make_node("Mul", ["m0", "zero"], ["z0"])], "wrong",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 416, 416])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10, 7])],
    [numpy_helper.from_array(np.zeros((1, 10, 7), dtype=np.float32), "const"),
     numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")])
m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13)])
m2.ir_version = 8
onnx.save(m2, "wrong_shape.onnx")
"#;

fn load(manifest: &std::path::Path) -> Result<OrtDetector, DetectError> {
    OrtDetector::from_manifest_path(Some(&runtime_lib()), manifest, DetectorOptions::default())
}

#[test]
fn yolov8_style_model_decodes_exactly_the_expected_boxes_after_nms() {
    let dir = detect_support::tempdir();
    detect_support::python(YOLOV8_MODEL, dir.path());
    let m = detect_support::write_manifest(
        dir.path(),
        "yolov8",
        "yolov8_const.onnx",
        64,
        64,
        &["a", "b"],
    );
    let mut det = match load(&m) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    // 128x64 source → scale 0.5, image 64x32 centred with 16 px bands above and below.
    let rgb = vec![0u8; 128 * 64 * 3];
    let got = match det.detect(vigil_agent::detect::frame::FrameView::rgb(128, 64, &rgb)) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let got: Vec<(String, f32, [f32; 4])> = got
        .into_iter()
        .map(|d| (d.label, d.score, d.bbox.into()))
        .collect();
    let expected = vec![
        ("a".to_string(), 0.9f32, [30.0f32, 18.0, 50.0, 38.0]),
        ("b".to_string(), 0.7, [32.0, 20.0, 52.0, 40.0]),
        ("b".to_string(), 0.6, [92.0, 24.0, 108.0, 56.0]),
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.0, e.0);
        assert!((g.1 - e.1).abs() < 1e-6, "{got:?}");
        assert!(
            g.2.iter().zip(&e.2).all(|(a, b)| (a - b).abs() < 1e-4),
            "{got:?}"
        );
    }
}

#[test]
fn wrong_shape_and_corrupt_models_give_clear_errors() {
    let dir = detect_support::tempdir();
    detect_support::python(YOLOV8_MODEL, dir.path());
    let labels: Vec<String> = (0..80).map(|i| format!("c{i}")).collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let m = detect_support::write_manifest(
        dir.path(),
        "yolox",
        "wrong_shape.onnx",
        416,
        416,
        &label_refs,
    );
    let msg = match load(&m) {
        Err(e @ DetectError::ModelShape { .. }) => e.to_string(),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a wrong-shape model must be refused"),
    };
    assert!(
        msg.contains("[1, 3549, 85]")
            && msg.contains("[1, 10, 7]")
            && msg.contains("wrong_shape.onnx"),
        "{msg}"
    );

    if let Err(e) = std::fs::write(
        dir.path().join("corrupt.onnx"),
        b"\x08\x07garbage, not protobuf",
    ) {
        panic!("{e}");
    }
    let m =
        detect_support::write_manifest(dir.path(), "yolox", "corrupt.onnx", 416, 416, &label_refs);
    let msg = match load(&m) {
        Err(e @ DetectError::ModelLoad { .. }) => e.to_string(),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a corrupt model must be refused"),
    };
    assert!(
        msg.contains("corrupt.onnx") && msg.contains("corrupt or not an ONNX model"),
        "{msg}"
    );

    // A truncated copy of the real model is caught by the manifest checksum.
    let real = match std::fs::read(detect_support::repo().join("models/yolox_nano.onnx")) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let sub = dir.path().join("trunc");
    let written = std::fs::create_dir(&sub)
        .and_then(|_| std::fs::write(sub.join("yolox_nano.onnx"), &real[..real.len() / 2]))
        .and_then(|_| std::fs::copy(manifest(), sub.join("yolox_nano.toml")))
        .and_then(|_| {
            std::fs::copy(
                detect_support::repo().join("models/coco80.txt"),
                sub.join("coco80.txt"),
            )
        });
    if let Err(e) = written {
        panic!("{e}");
    }
    let msg = match load(&sub.join("yolox_nano.toml")) {
        Err(e @ DetectError::ModelChecksum { .. }) => e.to_string(),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a truncated model must be refused"),
    };
    assert!(
        msg.contains("SHA-256") && msg.contains("make setup"),
        "{msg}"
    );
}
