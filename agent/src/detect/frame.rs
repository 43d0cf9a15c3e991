//! The frame type ingest hands to detection.
//!
//! Cameras deliver 4:2:0 YUV; the analysis branch hands those planes over as they
//! leave the decoder ([`PixelFormat::I420`]) instead of converting every analysed
//! frame to RGB. The letterbox converts only the pixels the model sees, the motion
//! gate reads the luma plane, and RGB is made only for a snapshot ([`FrameView::to_rgb`]).
//! Packed RGB stays supported for synthetic frames (tests, the doctor's check).

use std::borrow::Cow;

use super::error::DetectError;

/// The YUV → RGB matrix of a stream (its colorimetry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvMatrix {
    /// ITU-R BT.601 (SD cameras).
    Bt601,
    /// ITU-R BT.709 (HD cameras).
    Bt709,
    /// ITU-R BT.2020.
    Bt2020,
}

impl YuvMatrix {
    /// `(Kr, Kb)` luma coefficients.
    pub fn coefficients(self) -> (f32, f32) {
        match self {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        }
    }
}

/// How a stream's YUV samples map to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvColour {
    /// Conversion matrix.
    pub matrix: YuvMatrix,
    /// Full range (0..255) rather than limited (16..235 luma, 16..240 chroma).
    pub full_range: bool,
}

impl YuvColour {
    /// BT.601 limited range: what an SD stream without colorimetry means.
    pub const BT601: YuvColour = YuvColour {
        matrix: YuvMatrix::Bt601,
        full_range: false,
    };

    /// Luma value of black.
    pub fn black(self) -> u8 {
        if self.full_range {
            0
        } else {
            16
        }
    }

    /// The same as the `yuv` crate's range and matrix.
    fn yuv_params(self) -> (yuv::YuvRange, yuv::YuvStandardMatrix) {
        let range = if self.full_range {
            yuv::YuvRange::Full
        } else {
            yuv::YuvRange::Limited
        };
        let matrix = match self.matrix {
            YuvMatrix::Bt601 => yuv::YuvStandardMatrix::Bt601,
            YuvMatrix::Bt709 => yuv::YuvStandardMatrix::Bt709,
            YuvMatrix::Bt2020 => yuv::YuvStandardMatrix::Bt2020,
        };
        (range, matrix)
    }

    /// Coefficients of `r = y' + cr*v'`, `g = y' - cg_u*u' - cg_v*v'`, `b = y' + cb*u'`
    /// where `y' = (y - y0) * ys` and `u' = u - 128`, `v' = v - 128`, all in 0..255 RGB units:
    /// `[y0, ys, cr, cg_u, cg_v, cb]`.
    pub fn to_rgb_coefficients(self) -> [f32; 6] {
        let (kr, kb) = self.matrix.coefficients();
        let kg = 1.0 - kr - kb;
        let (y0, ys, cs) = if self.full_range {
            (0.0, 1.0, 1.0)
        } else {
            (16.0, 255.0 / 219.0, 255.0 / 224.0)
        };
        let cr = 2.0 * (1.0 - kr) * cs;
        let cb = 2.0 * (1.0 - kb) * cs;
        let cg_u = cb * kb / kg;
        let cg_v = cr * kr / kg;
        [y0, ys, cr, cg_u, cg_v, cb]
    }
}

/// Pixel layout of a frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed RGB24, stride = width*3.
    Rgb24,
    /// Planar 4:2:0: the Y plane (`width` × `height`), then U and V
    /// (`ceil(width/2)` × `ceil(height/2)` each), rows packed without padding.
    I420(YuvColour),
}

impl PixelFormat {
    /// Bytes a `width` × `height` frame of this format holds.
    pub fn frame_len(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgb24 => w * h * 3,
            PixelFormat::I420(_) => w * h + 2 * chroma_len(width, height),
        }
    }

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb24 => "RGB24",
            PixelFormat::I420(_) => "I420",
        }
    }
}

/// Chroma plane size of a 4:2:0 frame.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

fn chroma_len(width: u32, height: u32) -> usize {
    let (cw, ch) = chroma_size(width, height);
    cw as usize * ch as usize
}

/// A decoded frame from a camera's analysis branch.
#[derive(Debug, Clone)]
pub struct AnalysisFrame {
    /// Camera this frame came from; keys per-camera state.
    pub camera_id: String,
    /// Stream presentation time; all detection timing (hysteresis, post-roll) uses it.
    pub pts: std::time::Duration,
    /// UTC at arrival; only used to stamp events.
    pub wall: time::OffsetDateTime,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of `data`.
    pub format: PixelFormat,
    /// The pixels, laid out as `format` says.
    pub data: Vec<u8>,
}

impl AnalysisFrame {
    /// Checks that the buffer holds exactly one frame of its format and size.
    pub fn validate(&self) -> Result<(), DetectError> {
        self.view().check(&self.camera_id)
    }

    /// Borrows the pixels as a [`FrameView`].
    pub fn view(&self) -> FrameView<'_> {
        FrameView {
            width: self.width,
            height: self.height,
            format: self.format,
            data: &self.data,
        }
    }

    /// Presentation time in whole milliseconds.
    pub fn pts_ms(&self) -> u64 {
        u64::try_from(self.pts.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A borrowed frame; the detector's input.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of `data`.
    pub format: PixelFormat,
    /// [`PixelFormat::frame_len`] bytes.
    pub data: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// A packed RGB24 view.
    pub fn rgb(width: u32, height: u32, data: &'a [u8]) -> Self {
        FrameView {
            width,
            height,
            format: PixelFormat::Rgb24,
            data,
        }
    }

    /// True when the buffer length matches the dimensions.
    pub fn is_consistent(&self) -> bool {
        self.width > 0
            && self.height > 0
            && self.data.len() == self.format.frame_len(self.width, self.height)
    }

    /// [`FrameView::is_consistent`] as an error naming the camera.
    pub fn check(&self, camera_id: &str) -> Result<(), DetectError> {
        if self.is_consistent() {
            return Ok(());
        }
        Err(DetectError::BadFrame {
            camera_id: camera_id.to_string(),
            width: self.width,
            height: self.height,
            format: self.format.name(),
            expected: self.format.frame_len(self.width, self.height),
            found: self.data.len(),
        })
    }

    /// The Y, U and V planes of an I420 view (`None` for RGB or a short buffer).
    pub fn planes(&self) -> Option<(&'a [u8], &'a [u8], &'a [u8])> {
        if !matches!(self.format, PixelFormat::I420(_)) || !self.is_consistent() {
            return None;
        }
        let luma = self.width as usize * self.height as usize;
        let c = chroma_len(self.width, self.height);
        let (y, rest) = self.data.split_at(luma);
        let (u, v) = rest.split_at(c);
        Some((y, u, v))
    }

    /// Packed RGB24 of the frame: borrowed when it already is RGB, converted
    /// (`yuv` crate, SIMD) from I420. Only snapshots need this.
    pub fn to_rgb(&self) -> Result<Cow<'a, [u8]>, DetectError> {
        self.check("")?;
        let colour = match self.format {
            PixelFormat::Rgb24 => return Ok(Cow::Borrowed(self.data)),
            PixelFormat::I420(c) => c,
        };
        let Some((y, u, v)) = self.planes() else {
            return Err(DetectError::Snapshot("the frame is not I420".into()));
        };
        let (cw, _) = chroma_size(self.width, self.height);
        let image = yuv::YuvPlanarImage {
            y_plane: y,
            y_stride: self.width,
            u_plane: u,
            u_stride: cw,
            v_plane: v,
            v_stride: cw,
            width: self.width,
            height: self.height,
        };
        let mut rgb = vec![0u8; self.width as usize * self.height as usize * 3];
        let (range, matrix) = colour.yuv_params();
        yuv::yuv420_to_rgb(&image, &mut rgb, self.width * 3, range, matrix)
            .map_err(|e| DetectError::Snapshot(format!("cannot convert the frame to RGB: {e}")))?;
        Ok(Cow::Owned(rgb))
    }
}

/// Converts packed RGB24 to I420 in BT.601 limited range (`yuv` crate), the
/// layout [`PixelFormat::I420`] describes. Tests build camera-like frames with it.
#[cfg(test)]
pub(crate) fn rgb_to_i420(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let luma = width as usize * height as usize;
    let c = chroma_len(width, height);
    let mut out = vec![0u8; luma + 2 * c];
    let (y, chroma) = out.split_at_mut(luma);
    let (u, v) = chroma.split_at_mut(c);
    let cw = chroma_size(width, height).0;
    let mut image = yuv::YuvPlanarImageMut {
        y_plane: yuv::BufferStoreMut::Borrowed(y),
        y_stride: width,
        u_plane: yuv::BufferStoreMut::Borrowed(u),
        u_stride: cw,
        v_plane: yuv::BufferStoreMut::Borrowed(v),
        v_stride: cw,
        width,
        height,
    };
    let (range, matrix) = YuvColour::BT601.yuv_params();
    let converted = yuv::rgb_to_yuv420(
        &mut image,
        rgb,
        width * 3,
        range,
        matrix,
        yuv::YuvConversionMode::Balanced,
    );
    assert!(converted.is_ok(), "rgb_to_i420: {converted:?}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_lengths_round_chroma_up_for_odd_sizes() {
        let f = PixelFormat::I420(YuvColour::BT601);
        assert_eq!(f.frame_len(4, 2), 8 + 2 * 2);
        assert_eq!(f.frame_len(5, 3), 15 + 2 * 6);
        assert_eq!(PixelFormat::Rgb24.frame_len(5, 3), 45);
    }

    #[test]
    fn rgb_survives_a_round_trip_through_i420() {
        let (w, h) = (16u32, 8u32);
        let mut rgb = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                // Flat 2x2 blocks so 4:2:0 loses nothing.
                let c = if x / 2 % 2 == 0 {
                    [200, 40, 30]
                } else {
                    [20, 90, 220]
                };
                rgb.extend_from_slice(&c);
            }
        }
        let yuv = rgb_to_i420(&rgb, w, h);
        let view = FrameView {
            width: w,
            height: h,
            format: PixelFormat::I420(YuvColour::BT601),
            data: &yuv,
        };
        let back = match view.to_rgb() {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        let worst = rgb
            .iter()
            .zip(back.iter())
            .map(|(a, b)| (i16::from(*a) - i16::from(*b)).abs())
            .max();
        assert!(worst.is_some_and(|d| d <= 4), "max error {worst:?}");
        let short = FrameView {
            data: &yuv[1..],
            ..view
        };
        assert!(short.to_rgb().is_err(), "a short buffer is refused");
    }
}
