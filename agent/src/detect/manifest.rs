//! Model manifests (`models/*.toml`): which file, which decoder family, which labels.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::DetectError;

/// Decoder family of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFamily {
    /// YOLOX: `[1, N, 5+C]` output, BGR 0..255 input, top-left letterbox.
    Yolox,
    /// YOLOv8 / YOLO11 exports: `[1, 4+C, N]` output, RGB 0..1 input, centred letterbox.
    Yolov8,
}

impl std::fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelFamily::Yolox => "yolox",
            ModelFamily::Yolov8 => "yolov8",
        })
    }
}

/// The manifest file as written in `models/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Model name, recorded in evidence manifests.
    pub name: String,
    /// Decoder family.
    pub family: ModelFamily,
    /// Model file, relative to the manifest's directory.
    pub file: PathBuf,
    /// Model input width in pixels.
    pub input_width: u32,
    /// Model input height in pixels.
    pub input_height: u32,
    /// Labels file (one label per line, class order), relative to the manifest.
    pub labels: PathBuf,
    /// Expected SHA-256 of the model file (hex); checked at load when present.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Licence of the weights (informational).
    #[serde(default)]
    pub licence: Option<String>,
    /// Where the weights come from (informational).
    #[serde(default)]
    pub upstream: Option<String>,
    /// IoU above which NMS suppresses a same-class box (default 0.45).
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
}

fn default_nms_iou() -> f32 {
    0.45
}

/// A manifest read from disk with its paths resolved and labels loaded.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    /// The parsed manifest.
    pub manifest: ModelManifest,
    /// Where the manifest was read from.
    pub manifest_path: PathBuf,
    /// Absolute-or-relative path of the model file, resolved against the manifest directory.
    pub model_path: PathBuf,
    /// Class labels, in class-index order.
    pub labels: Vec<String>,
}

impl LoadedManifest {
    /// Reads and checks a manifest and its labels file.
    pub fn load(path: &Path) -> Result<LoadedManifest, DetectError> {
        let text = std::fs::read_to_string(path).map_err(|e| DetectError::io(path, e))?;
        let manifest: ModelManifest = toml::from_str(&text).map_err(|e| DetectError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        if manifest.input_width < 32 || manifest.input_height < 32 {
            problems.push(format!(
                "input_width/input_height are {}x{}; they must be at least 32 and match the model input.",
                manifest.input_width, manifest.input_height
            ));
        }
        if !(0.0..=1.0).contains(&manifest.nms_iou) {
            problems.push(format!(
                "nms_iou is {}; use a value in 0..1 (0.45 is usual).",
                manifest.nms_iou
            ));
        }
        if !problems.is_empty() {
            return Err(DetectError::Manifest {
                path: path.to_path_buf(),
                reason: problems.join(" "),
            });
        }
        let labels_path = dir.join(&manifest.labels);
        let labels_text =
            std::fs::read_to_string(&labels_path).map_err(|e| DetectError::io(&labels_path, e))?;
        let labels: Vec<String> = labels_text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if labels.is_empty() {
            return Err(DetectError::Manifest {
                path: path.to_path_buf(),
                reason: format!(
                    "the labels file `{}` is empty; list one class name per line.",
                    labels_path.display()
                ),
            });
        }
        Ok(LoadedManifest {
            model_path: dir.join(&manifest.file),
            manifest,
            manifest_path: path.to_path_buf(),
            labels,
        })
    }

    /// A manifest for a bare model file (no manifest on disk), e.g. from the `detect --model x.onnx` CLI.
    pub fn for_model_file(
        model_path: &Path,
        family: ModelFamily,
        input: (u32, u32),
        labels: Vec<String>,
    ) -> LoadedManifest {
        LoadedManifest {
            manifest: ModelManifest {
                name: model_path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into()),
                family,
                file: model_path.to_path_buf(),
                input_width: input.0,
                input_height: input.1,
                labels: PathBuf::new(),
                sha256: None,
                licence: None,
                upstream: None,
                nms_iou: default_nms_iou(),
            },
            manifest_path: PathBuf::new(),
            model_path: model_path.to_path_buf(),
            labels,
        }
    }
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Compares the model bytes with the manifest's checksum.
pub fn check_checksum(loaded: &LoadedManifest, bytes: &[u8]) -> Result<String, DetectError> {
    let found = sha256_hex(bytes);
    if let Some(expected) = &loaded.manifest.sha256 {
        if !expected.eq_ignore_ascii_case(&found) {
            return Err(DetectError::ModelChecksum {
                path: loaded.model_path.clone(),
                expected: expected.clone(),
                found,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_manifest_loads_with_80_labels() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/yolox_nano.toml");
        let m = match LoadedManifest::load(&path) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(m.manifest.family, ModelFamily::Yolox);
        assert_eq!(m.labels.len(), 80);
        assert_eq!(m.labels[0], "person");
        assert_eq!(
            (m.manifest.input_width, m.manifest.input_height),
            (416, 416)
        );
    }
}
