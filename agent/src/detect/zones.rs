//! Zones and masks in pixel terms: point tests for detections and scanline
//! rasters for privacy black-out and the motion gate.

use super::config::{MaskConfig, ZoneConfig};
use super::frame::{chroma_size, PixelFormat, YuvColour};
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

    /// Blacks out privacy-masked pixels of a frame buffer in place.
    pub fn apply_privacy(&mut self, format: PixelFormat, data: &mut [u8], width: u32, height: u32) {
        if self.masks.privacy.is_empty() {
            return;
        }
        let fresh = !matches!(&self.privacy_cache, Some((w, h, _)) if *w == width && *h == height);
        if fresh {
            self.privacy_cache =
                Some((width, height, rasterize(&self.masks.privacy, width, height)));
        }
        if let Some((_, _, spans)) = &self.privacy_cache {
            match format {
                PixelFormat::Rgb24 => blackout(data, width, spans),
                PixelFormat::I420(colour) => blackout_i420(data, width, height, colour, spans),
            }
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

/// Sets the pixels of `spans` to black in an I420 buffer: luma to black and every
/// chroma sample a masked pixel uses to neutral, so each masked pixel converts to
/// exactly RGB (0, 0, 0). Unmasked pixels sharing a chroma sample with a masked one
/// (the mask's edge, at most one pixel wide) lose their colour, never the reverse.
pub fn blackout_i420(data: &mut [u8], width: u32, height: u32, colour: YuvColour, spans: &[Span]) {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = chroma_size(width, height);
    let (cw, chroma_plane) = (cw as usize, cw as usize * ch as usize);
    let (luma, chroma) = data.split_at_mut((w * h).min(data.len()));
    let (u, v) = chroma.split_at_mut(chroma_plane.min(chroma.len()));
    for s in spans {
        let (y, x0, x1) = (s.y as usize, s.x0 as usize, s.x1 as usize);
        if let Some(px) = luma.get_mut(y * w + x0..y * w + x1) {
            px.fill(colour.black());
        }
        let (c0, c1) = (x0 / 2, x1.div_ceil(2));
        let row = (y / 2) * cw;
        for plane in [&mut *u, &mut *v] {
            if let Some(px) = plane.get_mut(row + c0..row + c1) {
                px.fill(128);
            }
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
        m.apply_privacy(PixelFormat::Rgb24, &mut rgb, 4, 4);
        assert_eq!(&rgb[0..6], &[0; 6]);
        assert_eq!(rgb[2 * 3], 200);
        assert!(m.masks_detection(&BBox::from([0.0, 0.0, 1.5, 1.5]), 4, 4));
        assert!(!m.masks_detection(&BBox::from([2.0, 2.0, 4.0, 4.0]), 4, 4));
    }

    #[test]
    fn privacy_on_i420_turns_every_masked_pixel_black_in_rgb() {
        use crate::detect::frame::{rgb_to_i420, FrameView};
        // A 7x5 frame (odd: chroma rounds up) of saturated colour; mask the left ~third.
        let (w, h) = (7u32, 5u32);
        let rgb: Vec<u8> = [250u8, 30, 200].repeat((w * h) as usize);
        let mut m = SceneMasks::new(
            Vec::new(),
            MaskConfig {
                privacy: vec![Polygon(vec![
                    [0.0, 0.0],
                    [0.43, 0.0],
                    [0.43, 1.0],
                    [0.0, 1.0],
                ])],
                ..MaskConfig::default()
            },
        );
        let mut yuv = rgb_to_i420(&rgb, w, h);
        let format = PixelFormat::I420(YuvColour::BT601);
        m.apply_privacy(format, &mut yuv, w, h);
        let view = FrameView {
            width: w,
            height: h,
            format,
            data: &yuv,
        };
        let back = match view.to_rgb() {
            Ok(b) => b.into_owned(),
            Err(e) => panic!("{e}"),
        };
        let spans = rasterize(&m.masks.privacy, w, h);
        assert!(!spans.is_empty());
        for s in &spans {
            for x in s.x0..s.x1 {
                let i = ((s.y * w + x) * 3) as usize;
                assert_eq!(
                    &back[i..i + 3],
                    &[0, 0, 0],
                    "masked pixel ({x}, {}) is black",
                    s.y
                );
            }
        }
        // The far right column keeps its colour.
        let i = ((2 * w + 6) * 3) as usize;
        assert!(back[i] > 200 && back[i + 1] < 80, "{:?}", &back[i..i + 3]);
    }
}
