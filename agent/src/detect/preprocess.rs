//! Letterboxing straight into the model's input tensor.
//!
//! The source frame is scaled (bilinear, pixel-centre aligned like OpenCV's
//! `INTER_LINEAR`) into a planar `[3, H, W]` f32 buffer that is reused between
//! frames. Sampling tables are rebuilt only when the source size changes, and
//! the padding is only refilled then, so a steady camera costs one pass over
//! the scaled image per frame and no allocation.
//!
//! I420 frames (what cameras send) are sampled plane by plane — luma at full
//! resolution, chroma at half — and converted to RGB per *input* pixel, so a
//! 1080p frame costs the ~130 000 conversions of the model's input instead of the
//! 2 million of a full-frame RGB conversion.

use super::frame::{chroma_size, FrameView, PixelFormat, YuvColour};
use super::geom::BBox;

/// Colour channel order the model wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    /// Red, green, blue planes.
    Rgb,
    /// Blue, green, red planes (YOLOX, OpenCV heritage).
    Bgr,
}

/// Where the scaled image sits inside the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Image at the top-left, padding right and bottom (YOLOX).
    TopLeft,
    /// Image centred, padding split on both sides (Ultralytics).
    Center,
}

/// How a model wants its input prepared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    /// Model input width.
    pub width: u32,
    /// Model input height.
    pub height: u32,
    /// Channel order.
    pub order: ChannelOrder,
    /// Multiplier applied to 0..255 pixel values (1.0 or 1/255).
    pub value_scale: f32,
    /// Padding value in 0..255 units (before `value_scale`).
    pub pad_value: f32,
    /// Image placement.
    pub placement: Placement,
}

/// The mapping from source pixels to model input pixels: `input = source * scale + pad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Scale factor source → input.
    pub scale: f32,
    /// Horizontal offset of the image in the input.
    pub pad_x: f32,
    /// Vertical offset of the image in the input.
    pub pad_y: f32,
}

impl Letterbox {
    /// Computes the letterbox for a source size.
    pub fn new(spec: &InputSpec, src_w: u32, src_h: u32) -> (Letterbox, u32, u32) {
        let scale = (spec.width as f32 / src_w as f32).min(spec.height as f32 / src_h as f32);
        // Truncate like YOLOX's `int(w * r)`; never zero, never larger than the input.
        let new_w = ((src_w as f32 * scale) as u32).clamp(1, spec.width);
        let new_h = ((src_h as f32 * scale) as u32).clamp(1, spec.height);
        let (pad_x, pad_y) = match spec.placement {
            Placement::TopLeft => (0, 0),
            Placement::Center => ((spec.width - new_w) / 2, (spec.height - new_h) / 2),
        };
        (
            Letterbox {
                scale,
                pad_x: pad_x as f32,
                pad_y: pad_y as f32,
            },
            new_w,
            new_h,
        )
    }

    /// Maps a box from model input pixels back to source pixels.
    pub fn to_source(&self, b: &BBox) -> BBox {
        BBox {
            x1: (b.x1 - self.pad_x) / self.scale,
            y1: (b.y1 - self.pad_y) / self.scale,
            x2: (b.x2 - self.pad_x) / self.scale,
            y2: (b.y2 - self.pad_y) / self.scale,
        }
    }
}

/// One axis' bilinear sampling table.
#[derive(Debug, Default)]
struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    w: Vec<f32>,
}

impl Axis {
    fn build(src_len: u32, dst_len: u32) -> Axis {
        let ratio = src_len as f32 / dst_len as f32;
        let max = src_len.saturating_sub(1) as usize;
        let mut a = Axis::default();
        for d in 0..dst_len {
            let s = ((d as f32 + 0.5) * ratio - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(max);
            a.i0.push(i0);
            a.i1.push((i0 + 1).min(max));
            a.w.push(s - i0 as f32);
        }
        a
    }
}

/// Cached geometry for one source size.
#[derive(Debug)]
struct Tables {
    src_w: u32,
    src_h: u32,
    letterbox: Letterbox,
    xs: Axis,
    ys: Axis,
    /// Chroma-plane tables (I420 sources).
    cxs: Axis,
    cys: Axis,
}

/// Reusable letterbox preprocessor owning the input tensor buffer.
#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    /// Planar `[3, H, W]` input, reused every frame.
    buf: Vec<f32>,
    tables: Option<Tables>,
}

impl Preprocessor {
    /// Allocates the input buffer once.
    pub fn new(spec: InputSpec) -> Self {
        let len = 3 * spec.width as usize * spec.height as usize;
        Preprocessor {
            spec,
            buf: vec![spec.pad_value * spec.value_scale; len],
            tables: None,
        }
    }

    /// The input spec.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// The prepared tensor data, `[1, 3, H, W]` row-major.
    pub fn input(&self) -> &[f32] {
        &self.buf
    }

    /// Letterboxes `img` into the input buffer and returns the mapping.
    ///
    /// The caller checks `img.is_consistent()` first.
    pub fn prepare(&mut self, img: FrameView<'_>) -> Letterbox {
        let spec = self.spec;
        let rebuild =
            !matches!(&self.tables, Some(t) if t.src_w == img.width && t.src_h == img.height);
        if rebuild {
            let (letterbox, new_w, new_h) = Letterbox::new(&spec, img.width, img.height);
            let (cw, ch) = chroma_size(img.width, img.height);
            self.tables = Some(Tables {
                src_w: img.width,
                src_h: img.height,
                letterbox,
                xs: Axis::build(img.width, new_w),
                ys: Axis::build(img.height, new_h),
                cxs: Axis::build(cw, new_w),
                cys: Axis::build(ch, new_h),
            });
            self.buf.fill(spec.pad_value * spec.value_scale);
        }
        let Some(t) = self.tables.as_ref() else {
            return Letterbox {
                scale: 1.0,
                pad_x: 0.0,
                pad_y: 0.0,
            };
        };
        let in_w = spec.width as usize;
        let plane = in_w * spec.height as usize;
        let offset = (t.letterbox.pad_x as usize, t.letterbox.pad_y as usize);
        // Source channel feeding each plane.
        let chan: [usize; 3] = match spec.order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        let (p0, rest) = self.buf.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        let mut out = Planes {
            planes: [p0, p1, p2],
            chan,
            in_w,
            offset,
            k: spec.value_scale,
        };
        match img.format {
            PixelFormat::Rgb24 => fill_from_rgb(t, img, &mut out),
            PixelFormat::I420(colour) => fill_from_i420(t, img, colour, &mut out),
        }
        t.letterbox
    }
}

/// The three input planes being written.
struct Planes<'a> {
    planes: [&'a mut [f32]; 3],
    /// Source channel (R, G, B = 0, 1, 2) feeding each plane.
    chan: [usize; 3],
    in_w: usize,
    /// Top-left of the image inside the input.
    offset: (usize, usize),
    /// `value_scale`.
    k: f32,
}

impl Planes<'_> {
    /// Writes one scaled row of RGB pixels (0..255 units).
    fn put_row(&mut self, dy: usize, row: impl Iterator<Item = [f32; 3]>) {
        let base = (self.offset.1 + dy) * self.in_w + self.offset.0;
        let [a, b, c] = &mut self.planes;
        let (a, b, c) = (&mut a[base..], &mut b[base..], &mut c[base..]);
        let (k, chan) = (self.k, self.chan);
        for (((px, d0), d1), d2) in row.zip(a.iter_mut()).zip(b.iter_mut()).zip(c.iter_mut()) {
            *d0 = px[chan[0]] * k;
            *d1 = px[chan[1]] * k;
            *d2 = px[chan[2]] * k;
        }
    }
}

/// Bilinear sample of one 8-bit channel: rows `r0`/`r1`, column taps `a`/`b`.
#[inline(always)]
fn bilinear(r0: &[u8], r1: &[u8], a: usize, b: usize, fx: f32, fy: f32) -> f32 {
    let (tl, tr) = (r0[a] as f32, r0[b] as f32);
    let (bl, br) = (r1[a] as f32, r1[b] as f32);
    let top = tl + (tr - tl) * fx;
    let bot = bl + (br - bl) * fx;
    top + (bot - top) * fy
}

fn fill_from_rgb(t: &Tables, img: FrameView<'_>, out: &mut Planes<'_>) {
    let stride = img.width as usize * 3;
    for (dy, ((&y0, &y1), &fy)) in t.ys.i0.iter().zip(&t.ys.i1).zip(&t.ys.w).enumerate() {
        let r0 = &img.data[y0 * stride..y0 * stride + stride];
        let r1 = &img.data[y1 * stride..y1 * stride + stride];
        let row =
            t.xs.i0
                .iter()
                .zip(&t.xs.i1)
                .zip(&t.xs.w)
                .map(|((&a, &b), &fx)| {
                    let (a, b) = (a * 3, b * 3);
                    [0, 1, 2].map(|c| bilinear(r0, r1, a + c, b + c, fx, fy))
                });
        out.put_row(dy, row);
    }
}

fn fill_from_i420(t: &Tables, img: FrameView<'_>, colour: YuvColour, out: &mut Planes<'_>) {
    let Some((yp, up, vp)) = img.planes() else {
        return;
    };
    let w = img.width as usize;
    let cw = chroma_size(img.width, img.height).0 as usize;
    let [y0, ys, cr, cg_u, cg_v, cb] = colour.to_rgb_coefficients();
    let rows = t.ys.i0.iter().zip(&t.ys.i1).zip(&t.ys.w);
    let crows = t.cys.i0.iter().zip(&t.cys.i1).zip(&t.cys.w);
    for (dy, (((&ya, &yb), &fy), ((&ca, &cb_row), &cfy))) in rows.zip(crows).enumerate() {
        let (l0, l1) = (&yp[ya * w..ya * w + w], &yp[yb * w..yb * w + w]);
        let (u0, u1) = (
            &up[ca * cw..ca * cw + cw],
            &up[cb_row * cw..cb_row * cw + cw],
        );
        let (v0, v1) = (
            &vp[ca * cw..ca * cw + cw],
            &vp[cb_row * cw..cb_row * cw + cw],
        );
        let luma = t.xs.i0.iter().zip(&t.xs.i1).zip(&t.xs.w);
        let chroma = t.cxs.i0.iter().zip(&t.cxs.i1).zip(&t.cxs.w);
        let row = luma
            .zip(chroma)
            .map(|(((&a, &b), &fx), ((&ca, &cb_col), &cfx))| {
                let l = (bilinear(l0, l1, a, b, fx, fy) - y0) * ys;
                let u = bilinear(u0, u1, ca, cb_col, cfx, cfy) - 128.0;
                let v = bilinear(v0, v1, ca, cb_col, cfx, cfy) - 128.0;
                [
                    (l + cr * v).clamp(0.0, 255.0),
                    (l - cg_u * u - cg_v * v).clamp(0.0, 255.0),
                    (l + cb * u).clamp(0.0, 255.0),
                ]
            });
        out.put_row(dy, row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(placement: Placement, order: ChannelOrder) -> InputSpec {
        InputSpec {
            width: 8,
            height: 8,
            order,
            value_scale: 1.0,
            pad_value: 114.0,
            placement,
        }
    }

    #[test]
    fn top_left_letterbox_pads_bottom_with_114_and_swaps_to_bgr() {
        // 4x2 solid image, R=10 G=20 B=30 → scaled to 8x4 at top-left.
        let data: Vec<u8> = [10u8, 20, 30].repeat(8);
        let mut p = Preprocessor::new(spec(Placement::TopLeft, ChannelOrder::Bgr));
        let lb = p.prepare(FrameView::rgb(4, 2, &data));
        assert_eq!(lb.scale, 2.0);
        let input = p.input();
        assert_eq!(input[0], 30.0); // B plane first
        assert_eq!(input[64], 20.0);
        assert_eq!(input[128], 10.0);
        assert_eq!(input[4 * 8], 114.0); // row 4 is padding
        let b = lb.to_source(&BBox::from([2.0, 2.0, 4.0, 4.0]));
        assert_eq!(<[f32; 4]>::from(b), [1.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn centred_letterbox_offsets_the_image() {
        let data: Vec<u8> = [50u8, 60, 70].repeat(8);
        let mut p = Preprocessor::new(spec(Placement::Center, ChannelOrder::Rgb));
        let lb = p.prepare(FrameView::rgb(4, 2, &data));
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 2.0));
        assert_eq!(p.input()[0], 114.0);
        assert_eq!(p.input()[2 * 8], 50.0);
        assert_eq!(p.input()[6 * 8], 114.0);
    }

    #[test]
    fn i420_frames_give_the_same_input_as_their_rgb() {
        use crate::detect::frame::rgb_to_i420;
        // 32x16 of 4x4 colour blocks (flat within each 2x2 chroma sample), letterboxed to 8x8.
        let (w, h) = (32u32, 16u32);
        let colours = [
            [200u8, 40, 30],
            [20, 90, 220],
            [240, 240, 240],
            [10, 10, 10],
        ];
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&colours[((x / 4 + y / 4) % 4) as usize]);
            }
        }
        let yuv = rgb_to_i420(&rgb, w, h);
        let spec = spec(Placement::Center, ChannelOrder::Bgr);
        let mut from_rgb = Preprocessor::new(spec);
        let lb_rgb = from_rgb.prepare(FrameView::rgb(w, h, &rgb));
        let mut from_yuv = Preprocessor::new(spec);
        let lb_yuv = from_yuv.prepare(FrameView {
            width: w,
            height: h,
            format: PixelFormat::I420(YuvColour::BT601),
            data: &yuv,
        });
        assert_eq!(lb_rgb, lb_yuv);
        let worst = from_rgb
            .input()
            .iter()
            .zip(from_yuv.input())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 4.0, "largest difference {worst} (0..255 units)");
        assert_eq!(from_yuv.input()[0], 114.0, "padding");
    }
}
