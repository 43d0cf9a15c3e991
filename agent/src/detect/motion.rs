//! Motion gate: a running-average background on a small grayscale copy.
//!
//! The model runs only on frames where enough unmasked pixels differ from the
//! background, plus one refresh frame every `refresh_seconds` so tracks of
//! still objects stay current. The gate allocates only when the frame size changes.

use std::time::Duration;

use super::config::MotionConfig;
use super::frame::{FrameView, PixelFormat};
use super::geom::Polygon;
use super::zones::rasterize;

/// What the gate decided about one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionDecision {
    /// Fraction of unmasked small-image pixels that changed.
    pub changed_fraction: f32,
    /// Changed fraction reached `min_area`.
    pub motion: bool,
    /// No inference for `refresh_seconds` (or never): run one anyway.
    pub refresh: bool,
}

impl MotionDecision {
    /// True when the model should run on this frame.
    pub fn analyse(&self) -> bool {
        self.motion || self.refresh
    }
}

/// Background state for one camera.
#[derive(Debug)]
pub struct MotionGate {
    config: MotionConfig,
    /// Polygons ignored by the gate (motion + privacy masks).
    ignored: Vec<Polygon>,
    /// Source size the buffers below were built for.
    src: (u32, u32),
    /// Small image size.
    small: (u32, u32),
    /// Running-average background, small image, 0..255.
    background: Vec<f32>,
    /// Scratch grayscale of the current frame.
    gray: Vec<u8>,
    /// True where the pixel is ignored.
    masked: Vec<bool>,
    /// Number of unmasked pixels (denominator of the changed fraction).
    active_pixels: usize,
    /// Pts of the last frame the caller analysed.
    last_analysed: Option<Duration>,
}

impl MotionGate {
    /// A gate ignoring `ignored` polygons (normalised coordinates).
    pub fn new(config: MotionConfig, ignored: Vec<Polygon>) -> Self {
        MotionGate {
            config,
            ignored,
            src: (0, 0),
            small: (0, 0),
            background: Vec::new(),
            gray: Vec::new(),
            masked: Vec::new(),
            active_pixels: 0,
            last_analysed: None,
        }
    }

    /// Records that the model ran on the frame at `pts` (resets the refresh timer).
    pub fn mark_analysed(&mut self, pts: Duration) {
        self.last_analysed = Some(pts);
    }

    /// Looks at a frame, updates the background and decides whether to analyse it.
    pub fn observe(&mut self, img: FrameView<'_>, pts: Duration) -> MotionDecision {
        let refresh = match self.last_analysed {
            None => true,
            Some(last) => pts.saturating_sub(last).as_secs_f32() >= self.config.refresh_seconds,
        };
        if !self.config.enabled {
            return MotionDecision {
                changed_fraction: 1.0,
                motion: true,
                refresh,
            };
        }
        let first = (img.width, img.height) != self.src;
        if first {
            self.resize(img.width, img.height);
        }
        self.downscale(img);
        if first {
            for (b, g) in self.background.iter_mut().zip(&self.gray) {
                *b = *g as f32;
            }
            // Nothing to compare with yet; the refresh rule decides.
            return MotionDecision {
                changed_fraction: 0.0,
                motion: false,
                refresh: true,
            };
        }
        let threshold = self.config.pixel_threshold as f32;
        let alpha = self.config.alpha;
        let mut changed = 0usize;
        for ((b, &g), &m) in self.background.iter_mut().zip(&self.gray).zip(&self.masked) {
            let g = g as f32;
            if !m && (g - *b).abs() > threshold {
                changed += 1;
            }
            *b += (g - *b) * alpha;
        }
        let changed_fraction = if self.active_pixels == 0 {
            0.0
        } else {
            changed as f32 / self.active_pixels as f32
        };
        MotionDecision {
            changed_fraction,
            motion: changed_fraction >= self.config.min_area && changed > 0,
            refresh,
        }
    }

    fn resize(&mut self, w: u32, h: u32) {
        let sw = self.config.width.min(w).max(1);
        let sh = ((h as u64 * sw as u64 + w as u64 / 2) / w as u64).max(1) as u32;
        let n = sw as usize * sh as usize;
        self.src = (w, h);
        self.small = (sw, sh);
        self.background = vec![0.0; n];
        self.gray = vec![0; n];
        self.masked = vec![false; n];
        for s in rasterize(&self.ignored, sw, sh) {
            let row = s.y as usize * sw as usize;
            self.masked[row + s.x0 as usize..row + s.x1 as usize].fill(true);
        }
        self.active_pixels = self.masked.iter().filter(|m| !**m).count();
    }

    /// Block-averages the frame's luma into `gray`, sampling every other pixel of
    /// each block: an I420 frame's Y plane as it is (scaled to full range), an RGB
    /// frame's luma computed per sample.
    fn downscale(&mut self, img: FrameView<'_>) {
        let (w, h) = (img.width as usize, img.height as usize);
        let (sw, sh) = (self.small.0 as usize, self.small.1 as usize);
        let (stride, step, offset, scale) = match img.format {
            PixelFormat::Rgb24 => (w * 3, 3, 0.0, 1.0),
            PixelFormat::I420(c) if c.full_range => (w, 1, 0.0, 1.0),
            PixelFormat::I420(_) => (w, 1, 16.0, 255.0 / 219.0),
        };
        let rgb = img.format == PixelFormat::Rgb24;
        for sy in 0..sh {
            let (y0, y1) = (sy * h / sh, ((sy + 1) * h / sh).max(sy * h / sh + 1));
            for sx in 0..sw {
                let (x0, x1) = (sx * w / sw, ((sx + 1) * w / sw).max(sx * w / sw + 1));
                let (x1, mut sum, mut n) = (x1.min(w), 0u32, 0u32);
                for y in (y0..y1.min(h)).step_by(2) {
                    // Every other pixel of the block's run in this row.
                    let run = &img.data[y * stride + x0 * step..y * stride + x1 * step];
                    n += x1.saturating_sub(x0).div_ceil(2) as u32;
                    sum += if rgb {
                        run.chunks_exact(3)
                            .step_by(2)
                            .map(|p| (p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8)
                            .sum::<u32>()
                    } else {
                        run.iter().step_by(2).map(|&p| u32::from(p)).sum::<u32>()
                    };
                }
                let mean = sum as f32 / n.max(1) as f32;
                self.gray[sy * sw + sx] = ((mean - offset) * scale).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(w: u32, h: u32, data: &[u8]) -> FrameView<'_> {
        FrameView::rgb(w, h, data)
    }

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Vec<u8> {
        let mut v = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&[f(x, y); 3]);
            }
        }
        v
    }

    #[test]
    fn static_scene_has_no_motion_and_a_moving_square_does() {
        let (w, h) = (320u32, 240u32);
        let mut gate = MotionGate::new(MotionConfig::default(), Vec::new());
        let still = frame(w, h, |x, _| (x % 200) as u8);
        let first = gate.observe(view(w, h, &still), Duration::ZERO);
        assert!(first.refresh && first.analyse());
        gate.mark_analysed(Duration::ZERO);
        for i in 1..10 {
            let d = gate.observe(view(w, h, &still), Duration::from_millis(100 * i));
            assert!(!d.analyse(), "frame {i}: {d:?}");
        }
        let moved = frame(w, h, |x, y| {
            if (100..140).contains(&x) && (100..140).contains(&y) {
                255
            } else {
                (x % 200) as u8
            }
        });
        let d = gate.observe(view(w, h, &moved), Duration::from_millis(1000));
        assert!(d.motion, "{d:?}");
        let d = gate.observe(view(w, h, &still), Duration::from_secs(6));
        assert!(d.refresh);
    }

    #[test]
    fn masked_area_is_ignored() {
        let (w, h) = (320u32, 240u32);
        let mask = Polygon(vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]);
        let mut gate = MotionGate::new(MotionConfig::default(), vec![mask]);
        let still = frame(w, h, |_, _| 10);
        gate.observe(view(w, h, &still), Duration::ZERO);
        gate.mark_analysed(Duration::ZERO);
        let left = frame(w, h, |x, _| if x < 100 { 250 } else { 10 });
        assert!(
            !gate
                .observe(view(w, h, &left), Duration::from_millis(100))
                .motion
        );
    }

    #[test]
    fn the_gate_reads_the_luma_plane_of_i420_frames() {
        use crate::detect::frame::{rgb_to_i420, PixelFormat, YuvColour};
        let (w, h) = (320u32, 240u32);
        let yuv = |rgb: &[u8]| rgb_to_i420(rgb, w, h);
        fn view(data: &[u8]) -> FrameView<'_> {
            FrameView {
                width: 320,
                height: 240,
                format: PixelFormat::I420(YuvColour::BT601),
                data,
            }
        }
        let mut gate = MotionGate::new(MotionConfig::default(), Vec::new());
        let still = yuv(&frame(w, h, |x, _| (x % 200) as u8));
        gate.observe(view(&still), Duration::ZERO);
        gate.mark_analysed(Duration::ZERO);
        assert!(!gate
            .observe(view(&still), Duration::from_millis(100))
            .analyse());
        let moved = yuv(&frame(w, h, |x, y| {
            if (100..140).contains(&x) && (100..140).contains(&y) {
                255
            } else {
                (x % 200) as u8
            }
        }));
        let d = gate.observe(view(&moved), Duration::from_millis(200));
        assert!(d.motion, "{d:?}");
    }
}
