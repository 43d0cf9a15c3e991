//! Output decoders for the supported model families.
//!
//! Both return candidates in model-input pixels; the detector runs per-class
//! NMS and maps them back to source pixels through the [`Letterbox`].
//!
//! [`Letterbox`]: super::preprocess::Letterbox

use super::geom::{BBox, Scored};

/// A decoded candidate before NMS, in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Class index into the label list.
    pub class_id: usize,
    /// Confidence (YOLOX: objectness x class score).
    pub score: f32,
    /// Box in model-input pixels.
    pub bbox: BBox,
}

impl Scored for Candidate {
    fn score(&self) -> f32 {
        self.score
    }
    fn class_id(&self) -> usize {
        self.class_id
    }
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
}

/// Strides of the YOLOX heads, in the order their anchors appear in the output.
pub const YOLOX_STRIDES: [usize; 3] = [8, 16, 32];

/// Number of YOLOX anchor points for an input size (3549 for 416x416).
pub fn yolox_anchor_count(in_w: usize, in_h: usize) -> usize {
    YOLOX_STRIDES.iter().map(|s| (in_w / s) * (in_h / s)).sum()
}

/// Decodes a YOLOX `[1, N, 5 + C]` output (raw grid offsets, sigmoid-ed scores).
///
/// Each anchor keeps its best class; candidates below `score_floor` are dropped.
pub fn decode_yolox(
    data: &[f32],
    in_w: usize,
    in_h: usize,
    num_classes: usize,
    score_floor: f32,
) -> Vec<Candidate> {
    let row_len = 5 + num_classes;
    let mut out = Vec::new();
    let mut rows = data.chunks_exact(row_len);
    for stride in YOLOX_STRIDES {
        let (gw, gh) = (in_w / stride, in_h / stride);
        let s = stride as f32;
        for gy in 0..gh {
            for gx in 0..gw {
                let Some(row) = rows.next() else {
                    return out;
                };
                let obj = row[4];
                if obj < score_floor {
                    continue;
                }
                let (class_id, cls) = best_class(row[5..].iter().copied());
                let score = obj * cls;
                if score < score_floor {
                    continue;
                }
                let cx = (row[0] + gx as f32) * s;
                let cy = (row[1] + gy as f32) * s;
                let w = row[2].exp() * s;
                let h = row[3].exp() * s;
                out.push(Candidate {
                    class_id,
                    score,
                    bbox: BBox::from_cxcywh(cx, cy, w, h),
                });
            }
        }
    }
    out
}

/// Decodes a YOLOv8/YOLO11 `[1, 4 + C, N]` output: rows are `cx, cy, w, h`
/// (input pixels) then one score per class, anchors along the last axis.
pub fn decode_yolov8(data: &[f32], num_classes: usize, score_floor: f32) -> Vec<Candidate> {
    let rows = 4 + num_classes;
    if !data.len().is_multiple_of(rows) {
        return Vec::new();
    }
    let n = data.len() / rows;
    let at = |r: usize, i: usize| data[r * n + i];
    let mut out = Vec::new();
    for i in 0..n {
        let (class_id, score) = best_class((0..num_classes).map(|c| at(4 + c, i)));
        if score < score_floor {
            continue;
        }
        out.push(Candidate {
            class_id,
            score,
            bbox: BBox::from_cxcywh(at(0, i), at(1, i), at(2, i), at(3, i)),
        });
    }
    out
}

fn best_class(scores: impl Iterator<Item = f32>) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, s) in scores.enumerate() {
        if s > best.1 {
            best = (i, s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolox_anchor_count_matches_readme() {
        assert_eq!(yolox_anchor_count(416, 416), 3549);
    }

    #[test]
    fn yolox_decodes_grid_offsets_per_stride() {
        let (w, h, c) = (32usize, 32usize, 2usize);
        let n = yolox_anchor_count(w, h); // 16 + 4 + 1
        let mut data = vec![0.0f32; n * (5 + c)];
        // Anchor (gx=1, gy=2) of stride 8 is row 2*4+1 = 9.
        let r = &mut data[9 * 7..10 * 7];
        r.copy_from_slice(&[0.5, 0.5, 0.0, (2.0f32).ln(), 0.9, 0.1, 0.8]);
        let got = decode_yolox(&data, w, h, c, 0.3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class_id, 1);
        assert!((got[0].score - 0.72).abs() < 1e-6);
        let b: [f32; 4] = got[0].bbox.into();
        assert_eq!(b, [8.0, 12.0, 16.0, 28.0]);
    }
}
