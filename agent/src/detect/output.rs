//! What the `vigil-agent detect` CLI prints: one JSON line per analysed frame.

use serde::{Deserialize, Serialize};

use super::error::DetectError;
use super::frame::AnalysisFrame;
use super::model::{Detection, Detector};

/// `{"pts_ms":…, "detections":[{"label":"person","score":0.83,"box":[x1,y1,x2,y2]}]}`, boxes in source pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameDetections {
    /// Stream pts of the frame, ms.
    pub pts_ms: u64,
    /// Detections after NMS, best first.
    pub detections: Vec<Detection>,
}

/// Runs the detector on one frame and keeps detections scoring at least `min_score`.
///
/// No motion gate, masks or camera filters: field techs see what the model sees.
pub fn detect_frame(
    detector: &mut dyn Detector,
    frame: &AnalysisFrame,
    min_score: f32,
) -> Result<FrameDetections, DetectError> {
    frame.validate()?;
    let mut detections = detector.detect(frame.view())?;
    detections.retain(|d| d.score >= min_score);
    Ok(FrameDetections {
        pts_ms: frame.pts_ms(),
        detections,
    })
}
