//! Boxes, polygons and non-maximum suppression.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixels, `x1 <= x2`, `y1 <= y2`; serialised as `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f32; 4]", into = "[f32; 4]")]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl From<[f32; 4]> for BBox {
    fn from(a: [f32; 4]) -> Self {
        BBox {
            x1: a[0],
            y1: a[1],
            x2: a[2],
            y2: a[3],
        }
    }
}

impl From<BBox> for [f32; 4] {
    fn from(b: BBox) -> Self {
        [b.x1, b.y1, b.x2, b.y2]
    }
}

impl BBox {
    /// Box from centre and size.
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        BBox {
            x1: cx - w / 2.0,
            y1: cy - h / 2.0,
            x2: cx + w / 2.0,
            y2: cy + h / 2.0,
        }
    }

    /// Width (never negative).
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    /// Height (never negative).
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Centre point.
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Bottom-centre point: where a person or vehicle touches the ground.
    pub fn bottom_center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, self.y2)
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let iw = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The box clipped to `[0, width] x [0, height]`.
    pub fn clamp(&self, width: f32, height: f32) -> BBox {
        BBox {
            x1: self.x1.clamp(0.0, width),
            y1: self.y1.clamp(0.0, height),
            x2: self.x2.clamp(0.0, width),
            y2: self.y2.clamp(0.0, height),
        }
    }
}

/// A polygon in normalised coordinates (0..1 of frame width/height).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Polygon(pub Vec<[f32; 2]>);

impl Polygon {
    /// True when the normalised point is inside (even-odd rule).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let pts = &self.0;
        if pts.len() < 3 {
            return false;
        }
        let mut inside = false;
        let mut j = pts.len() - 1;
        for i in 0..pts.len() {
            let [xi, yi] = pts[i];
            let [xj, yj] = pts[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// Problems with this polygon, as sentences prefixed by `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.0.len() < 3 {
            out.push(format!(
                "{key}: a polygon needs at least 3 points, found {}; list points as [x, y] pairs in 0..1.",
                self.0.len()
            ));
        }
        for (i, [x, y]) in self.0.iter().enumerate() {
            if !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y) {
                out.push(format!(
                    "{key}[{i}]: point [{x}, {y}] is outside 0..1; coordinates are fractions of the frame width and height."
                ));
            }
        }
        out
    }
}

/// Anything NMS can sort and compare.
pub trait Scored {
    /// Confidence.
    fn score(&self) -> f32;
    /// Class index (NMS runs per class).
    fn class_id(&self) -> usize;
    /// Box.
    fn bbox(&self) -> &BBox;
}

/// Per-class greedy non-maximum suppression; returns survivors by descending score.
pub fn nms<T: Scored>(mut items: Vec<T>, iou_threshold: f32) -> Vec<T> {
    items.sort_by(|a, b| b.score().total_cmp(&a.score()));
    let mut keep: Vec<T> = Vec::with_capacity(items.len().min(64));
    for item in items {
        let suppressed = keep
            .iter()
            .any(|k| k.class_id() == item.class_id() && k.bbox().iou(item.bbox()) > iou_threshold);
        if !suppressed {
            keep.push(item);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_and_disjoint_boxes() {
        let a = BBox::from([0.0, 0.0, 10.0, 10.0]);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::from([20.0, 20.0, 30.0, 30.0])), 0.0);
        let half = BBox::from([5.0, 0.0, 15.0, 10.0]);
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn polygon_contains_square_interior_only() {
        let p = Polygon(vec![[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]);
        assert!(p.contains(0.5, 0.5));
        assert!(!p.contains(0.1, 0.5));
        assert!(!p.contains(0.5, 0.9));
        assert!(p.problems("m").is_empty());
        assert_eq!(Polygon(vec![[0.0, 0.0], [2.0, 0.0]]).problems("m").len(), 2);
    }

    #[test]
    fn bbox_serialises_as_array() {
        let b = BBox::from([1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            serde_json::to_string(&b).ok().as_deref(),
            Some("[1.0,2.0,3.0,4.0]")
        );
    }
}
