//! Per-camera detection filters: labels, score, box area and aspect ratio.

use super::config::FilterConfig;
use super::model::Detection;

/// Decides which detections a camera keeps.
#[derive(Debug, Clone)]
pub struct DetectionFilter {
    config: FilterConfig,
}

impl DetectionFilter {
    /// Builds from (validated) config.
    pub fn new(config: FilterConfig) -> Self {
        DetectionFilter { config }
    }

    /// True when `d` passes every filter for a `width x height` frame.
    pub fn keep(&self, d: &Detection, width: u32, height: u32) -> bool {
        let c = &self.config;
        if d.score < c.min_score || !c.labels.contains(&d.label) {
            return false;
        }
        let frame_area = (width as f32 * height as f32).max(1.0);
        let area = d.bbox.area() / frame_area;
        if area < c.min_area || area > c.max_area {
            return false;
        }
        let h = d.bbox.height();
        if h <= 0.0 {
            return false;
        }
        let ratio = d.bbox.width() / h;
        ratio >= c.min_ratio && ratio <= c.max_ratio
    }

    /// Keeps the detections that pass.
    pub fn apply(&self, dets: Vec<Detection>, width: u32, height: u32) -> Vec<Detection> {
        dets.into_iter()
            .filter(|d| self.keep(d, width, height))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::geom::BBox;

    fn det(label: &str, score: f32, b: [f32; 4]) -> Detection {
        Detection {
            class_id: 0,
            label: label.into(),
            score,
            bbox: BBox::from(b),
        }
    }

    #[test]
    fn filters_label_score_area_and_ratio() {
        let f = DetectionFilter::new(FilterConfig {
            max_ratio: 2.0,
            ..FilterConfig::default()
        });
        assert!(f.keep(&det("person", 0.8, [0.0, 0.0, 20.0, 50.0]), 100, 100));
        assert!(!f.keep(&det("dog", 0.8, [0.0, 0.0, 20.0, 50.0]), 100, 100));
        assert!(!f.keep(&det("person", 0.3, [0.0, 0.0, 20.0, 50.0]), 100, 100));
        assert!(!f.keep(&det("person", 0.8, [0.0, 0.0, 0.1, 0.1]), 100, 100));
        assert!(!f.keep(&det("car", 0.8, [0.0, 0.0, 90.0, 10.0]), 100, 100));
    }
}
