//! The [`Detector`] trait and its ONNX Runtime implementation.

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use serde::{Deserialize, Serialize};

use super::decode::{decode_yolov8, decode_yolox, yolox_anchor_count, Candidate};
use super::error::DetectError;
use super::frame::FrameView;
use super::geom::{nms, BBox};
use super::manifest::{check_checksum, LoadedManifest, ModelFamily};
use super::preprocess::{ChannelOrder, InputSpec, Placement, Preprocessor};

/// One detected object in source-frame pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Class index in the model's label list (not serialised; `label` is the contract).
    #[serde(skip)]
    pub class_id: usize,
    /// Class label, e.g. `person`.
    pub label: String,
    /// Confidence 0..1.
    pub score: f32,
    /// Box `[x1, y1, x2, y2]` in source pixels.
    #[serde(rename = "box")]
    pub bbox: BBox,
}

/// What a loaded model is; goes into events and evidence manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Manifest name.
    pub name: String,
    /// Decoder family.
    pub family: ModelFamily,
    /// SHA-256 of the model file as loaded.
    pub sha256: String,
    /// Model input width.
    pub input_width: u32,
    /// Model input height.
    pub input_height: u32,
    /// Class labels in index order.
    pub labels: Vec<String>,
}

/// Finds objects in a frame (RGB or I420). Implementations keep their buffers between calls.
pub trait Detector: Send {
    /// The model behind this detector.
    fn info(&self) -> &ModelInfo;
    /// Detects objects; boxes are in source pixels, clipped to the image, after per-class NMS.
    fn detect(&mut self, image: FrameView<'_>) -> Result<Vec<Detection>, DetectError>;
}

/// Session options for [`OrtDetector::load`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    /// ONNX Runtime intra-op threads (default 1: leave a core for ingest on small boxes).
    pub intra_threads: usize,
    /// Candidates below this score are dropped before NMS (default 0.25); cameras filter higher.
    pub score_floor: f32,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            intra_threads: 1,
            score_floor: 0.25,
        }
    }
}

/// A YOLOX or YOLOv8-style model running in ONNX Runtime.
pub struct OrtDetector {
    session: Session,
    info: ModelInfo,
    /// Owns the reusable input tensor buffer.
    pre: Preprocessor,
    options: DetectorOptions,
    nms_iou: f32,
}

impl std::fmt::Debug for OrtDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtDetector")
            .field("info", &self.info)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OrtDetector {
    /// Loads a model described by a manifest, checking checksum and tensor shapes.
    pub fn load(
        env: &ort::environment::Environment,
        loaded: &LoadedManifest,
        options: DetectorOptions,
    ) -> Result<OrtDetector, DetectError> {
        let path = &loaded.model_path;
        let bytes = std::fs::read(path).map_err(|e| DetectError::io(path, e))?;
        let sha256 = check_checksum(loaded, &bytes)?;
        let load_err = |e: String| DetectError::ModelLoad {
            path: path.clone(),
            reason: e,
        };
        let threads = options.intra_threads.max(1);
        let builder = Session::builder(env).map_err(|e| load_err(e.to_string()))?;
        let builder = builder
            .with_intra_threads(threads)
            .map_err(|e| load_err(e.to_string()))?;
        let builder = builder
            .with_inter_threads(1)
            .map_err(|e| load_err(e.to_string()))?;
        // Spinning workers would burn the core we leave for ingest.
        let mut builder = builder
            .with_intra_op_spinning(false)
            .map_err(|e| load_err(e.to_string()))?;
        let session = builder
            .commit_from_memory(&bytes)
            .map_err(|e| load_err(e.to_string()))?;
        let m = &loaded.manifest;
        check_shapes(
            &session,
            path,
            m.family,
            m.input_width,
            m.input_height,
            loaded.labels.len(),
        )?;
        let spec = match m.family {
            ModelFamily::Yolox => InputSpec {
                width: m.input_width,
                height: m.input_height,
                order: ChannelOrder::Bgr,
                value_scale: 1.0,
                pad_value: 114.0,
                placement: Placement::TopLeft,
            },
            ModelFamily::Yolov8 => InputSpec {
                width: m.input_width,
                height: m.input_height,
                order: ChannelOrder::Rgb,
                value_scale: 1.0 / 255.0,
                pad_value: 114.0,
                placement: Placement::Center,
            },
        };
        Ok(OrtDetector {
            session,
            info: ModelInfo {
                name: m.name.clone(),
                family: m.family,
                sha256,
                input_width: m.input_width,
                input_height: m.input_height,
                labels: loaded.labels.clone(),
            },
            pre: Preprocessor::new(spec),
            options,
            nms_iou: m.nms_iou,
        })
    }

    /// Loads ONNX Runtime and a manifest in one call (convenience for the CLI and tests).
    pub fn from_manifest_path(
        runtime_library: Option<&Path>,
        manifest: &Path,
        options: DetectorOptions,
    ) -> Result<OrtDetector, DetectError> {
        let env = super::runtime::init_runtime(runtime_library)?;
        let loaded = LoadedManifest::load(manifest)?;
        OrtDetector::load(&env, &loaded, options)
    }
}

impl Detector for OrtDetector {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn detect(&mut self, image: FrameView<'_>) -> Result<Vec<Detection>, DetectError> {
        image.check("")?;
        let letterbox = self.pre.prepare(image);
        let (w, h) = (
            self.info.input_width as usize,
            self.info.input_height as usize,
        );
        let num_classes = self.info.labels.len();
        let floor = self.options.score_floor;
        let family = self.info.family;
        let input = TensorRef::from_array_view(([1usize, 3, h, w], self.pre.input()))
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let candidates: Vec<Candidate> = match family {
            ModelFamily::Yolox => {
                let expect = [1, yolox_anchor_count(w, h) as i64, 5 + num_classes as i64];
                if **shape != expect {
                    return Err(DetectError::Inference(format!(
                        "the model returned shape {:?}, expected {expect:?}",
                        &**shape
                    )));
                }
                decode_yolox(data, w, h, num_classes, floor)
            }
            ModelFamily::Yolov8 => {
                if shape.len() != 3 || shape[0] != 1 || shape[1] != 4 + num_classes as i64 {
                    return Err(DetectError::Inference(format!(
                        "the model returned shape {:?}, expected [1, {}, N]",
                        &**shape,
                        4 + num_classes
                    )));
                }
                decode_yolov8(data, num_classes, floor)
            }
        };
        let (sw, sh) = (image.width as f32, image.height as f32);
        Ok(nms(candidates, self.nms_iou)
            .into_iter()
            .map(|c| Detection {
                class_id: c.class_id,
                label: self
                    .info
                    .labels
                    .get(c.class_id)
                    .cloned()
                    .unwrap_or_default(),
                score: c.score,
                bbox: letterbox.to_source(&c.bbox).clamp(sw, sh),
            })
            .collect())
    }
}

fn fmt_dims(dims: &[i64]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| {
            if *d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// True when `found` matches `expected`, treating negative (dynamic) dims in either as wildcards.
fn dims_match(found: &[i64], expected: &[i64]) -> bool {
    found.len() == expected.len()
        && found
            .iter()
            .zip(expected)
            .all(|(f, e)| *f < 0 || *e < 0 || f == e)
}

fn check_shapes(
    session: &Session,
    path: &Path,
    family: ModelFamily,
    in_w: u32,
    in_h: u32,
    num_classes: usize,
) -> Result<(), DetectError> {
    let err = |what: &str, expected: String, found: String| DetectError::ModelShape {
        path: path.to_path_buf(),
        family: family.to_string(),
        what: what.to_string(),
        expected,
        found,
    };
    if session.inputs().len() != 1 || session.outputs().is_empty() {
        return Err(err(
            "the number of inputs/outputs",
            "1 input and at least 1 output".into(),
            format!(
                "{} input(s) and {} output(s)",
                session.inputs().len(),
                session.outputs().len()
            ),
        ));
    }
    let tensor_dims = |ty: &ValueType, what: &str| -> Result<Vec<i64>, DetectError> {
        match ty {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } => Ok(shape.to_vec()),
            other => Err(err(what, "a float32 tensor".into(), format!("{other:?}"))),
        }
    };
    let input = tensor_dims(session.inputs()[0].dtype(), "the input")?;
    let expected_in = [1, 3, in_h as i64, in_w as i64];
    if !dims_match(&input, &expected_in) {
        return Err(err(
            "the input shape",
            fmt_dims(&expected_in),
            fmt_dims(&input),
        ));
    }
    let output = tensor_dims(session.outputs()[0].dtype(), "the first output")?;
    let c = num_classes as i64;
    let expected_out = match family {
        ModelFamily::Yolox => vec![
            1,
            yolox_anchor_count(in_w as usize, in_h as usize) as i64,
            5 + c,
        ],
        ModelFamily::Yolov8 => vec![1, 4 + c, -1],
    };
    if !dims_match(&output, &expected_out) {
        let note = format!(
            "{} ({} labels in the labels file)",
            fmt_dims(&expected_out),
            num_classes
        );
        return Err(err("the first output's shape", note, fmt_dims(&output)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_match_treats_dynamic_as_wildcard() {
        assert!(dims_match(&[1, 3, -1, -1], &[1, 3, 416, 416]));
        assert!(!dims_match(&[1, 3, 320, 320], &[1, 3, 416, 416]));
        assert!(!dims_match(&[1, 3], &[1, 3, 416, 416]));
        assert_eq!(fmt_dims(&[1, -1, 85]), "[1, ?, 85]");
    }
}
