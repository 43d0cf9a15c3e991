//! Zones and masks in pixel terms: point tests for detections and scanline
//! rasters for privacy black-out and the motion gate.

use super::config::{MaskConfig, ZoneConfig};
use super::geom::{BBox, Polygon};

/// A horizontal run of pixels `[x0, x1)` on row `y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Row.
    pub y: u32,
    /// First column inside.
    pub x0: u32,
    /// One past the last column inside.
    pub x1: u32,
}

/// Pixel spans covered by polygons (normalised coords) on a `width x height` grid,
/// sampling pixel centres.
pub fn rasterize(polys: &[Polygon], width: u32, height: u32) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut xs: Vec<f32> = Vec::new();
    for poly in polys {
        let pts: Vec<(f32, f32)> = poly
            .0
            .iter()
            .map(|[x, y]| (x * width as f32, y * height as f32))
            .collect();
        if pts.len() < 3 {
            continue;
        }
        for y in 0..height {
            let yc = y as f32 + 0.5;
            xs.clear();
            let mut j = pts.len() - 1;
            for i in 0..pts.len() {
                let ((xi, yi), (xj, yj)) = (pts[i], pts[j]);
                if (yi > yc) != (yj > yc) {
                    xs.push(xi + (yc - yi) * (xj - xi) / (yj - yi));
                }
                j = i;
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                // Pixel x is inside when its centre x + 0.5 lies in [a, b).
                let x0 = (pair[0] - 0.5).ceil().clamp(0.0, width as f32) as u32;
                let x1 = (pair[1] - 0.5).ceil().clamp(0.0, width as f32) as u32;
                if x1 > x0 {
                    spans.push(Span { y, x0, x1 });
                }
            }
        }
    }
    spans
}

/// A camera's zones and masks, with the privacy raster cached per frame size.
#[derive(Debug, Clone)]
pub struct SceneMasks {
    zones: Vec<ZoneConfig>,
    masks: MaskConfig,
    /// Privacy spans for the last frame size seen: `(width, height, spans)`.
    privacy_cache: Option<(u32, u32, Vec<Span>)>,
}

impl SceneMasks {
    /// Builds from config (validated by the caller).
    pub fn new(zones: Vec<ZoneConfig>, masks: MaskConfig) -> Self {
        SceneMasks {
            zones,
            masks,
            privacy_cache: None,
        }
    }

    /// True when the camera has any privacy mask.
    pub fn has_privacy(&self) -> bool {
        !self.masks.privacy.is_empty()
    }

    /// Polygons the motion gate ignores: motion masks plus privacy masks.
    pub fn motion_ignored(&self) -> Vec<Polygon> {
        self.masks
            .motion
            .iter()
            .chain(&self.masks.privacy)
            .cloned()
            .collect()
    }

    /// Blacks out privacy-masked pixels of a packed RGB24 buffer in place.
    pub fn apply_privacy(&mut self, rgb: &mut [u8], width: u32, height: u32) {
        if self.masks.privacy.is_empty() {
            return;
        }
        let fresh = !matches!(&self.privacy_cache, Some((w, h, _)) if *w == width && *h == height);
        if fresh {
            self.privacy_cache =
                Some((width, height, rasterize(&self.masks.privacy, width, height)));
        }
        if let Some((_, _, spans)) = &self.privacy_cache {
            blackout(rgb, width, spans);
        }
    }

    /// True when a detection must be ignored: its bottom-centre is in an object
    /// mask, or its centre is in a privacy mask.
    pub fn masks_detection(&self, b: &BBox, width: u32, height: u32) -> bool {
        let (w, h) = (width as f32, height as f32);
        let (bx, by) = b.bottom_center();
        let (cx, cy) = b.center();
        // Nudge the bottom edge up a hair so a box touching the frame bottom still tests inside.
        let by = (by - 0.5).max(0.0);
        self.masks.object.iter().any(|p| p.contains(bx / w, by / h))
            || self
                .masks
                .privacy
                .iter()
                .any(|p| p.contains(cx / w, cy / h))
    }

    /// Names of the zones containing the box's bottom-centre.
    pub fn zones_of(&self, b: &BBox, width: u32, height: u32) -> Vec<String> {
        let (bx, by) = b.bottom_center();
        let (x, y) = (bx / width as f32, (by - 0.5).max(0.0) / height as f32);
        self.zones
            .iter()
            .filter(|z| z.polygon.contains(x, y))
            .map(|z| z.name.clone())
            .collect()
    }
}

/// Sets the pixels of `spans` to black in a packed RGB24 buffer of the given width.
pub fn blackout(rgb: &mut [u8], width: u32, spans: &[Span]) {
    let stride = width as usize * 3;
    for s in spans {
        let start = s.y as usize * stride + s.x0 as usize * 3;
        let end = s.y as usize * stride + s.x1 as usize * 3;
        if let Some(px) = rgb.get_mut(start..end) {
            px.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(a: f32, b: f32) -> Polygon {
        Polygon(vec![[a, a], [b, a], [b, b], [a, b]])
    }

    #[test]
    fn raster_of_centre_square_covers_exact_pixels() {
        let spans = rasterize(&[square(0.25, 0.75)], 8, 8);
        assert_eq!(spans.len(), 4);
        assert!(spans
            .iter()
            .all(|s| s.x0 == 2 && s.x1 == 6 && (2..6).contains(&s.y)));
    }

    #[test]
    fn privacy_blacks_out_and_masks_detections() {
        let mut m = SceneMasks::new(
            Vec::new(),
            MaskConfig {
                privacy: vec![square(0.0, 0.5)],
                ..MaskConfig::default()
            },
        );
        let mut rgb = vec![200u8; 4 * 4 * 3];
        m.apply_privacy(&mut rgb, 4, 4);
        assert_eq!(&rgb[0..6], &[0; 6]);
        assert_eq!(rgb[2 * 3], 200);
        assert!(m.masks_detection(&BBox::from([0.0, 0.0, 1.5, 1.5]), 4, 4));
        assert!(!m.masks_detection(&BBox::from([2.0, 2.0, 4.0, 4.0]), 4, 4));
    }
}
