//! Event snapshots: the best frame (privacy masks already applied by the
//! analyser) with the object's box drawn, as a JPEG plus a small thumbnail.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::config::SnapshotConfig;
use super::error::DetectError;
use super::frame::{chroma_size, FrameView, PixelFormat};
use super::geom::BBox;

/// Box outline colour (amber, visible on most scenes).
const BOX_COLOUR: [u8; 3] = [255, 176, 0];
/// Box outline thickness in pixels.
const BOX_THICKNESS: u32 = 2;

/// A snapshot JPEG and its thumbnail; bytes serialise as base64 strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Stream pts of the frame, milliseconds.
    pub pts_ms: u64,
    /// Score of the object in this frame.
    pub score: f32,
    /// Object box in source pixels.
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Full-size JPEG with the box drawn and privacy masks blacked out.
    #[serde(with = "base64_bytes")]
    pub jpeg: Vec<u8>,
    /// Thumbnail JPEG (`thumbnail_width` wide).
    #[serde(with = "base64_bytes")]
    pub thumbnail: Vec<u8>,
}

/// Draws `bbox` (in this image's pixels) on the image.
fn draw_box(img: &mut RgbImage, bbox: &BBox) {
    let (width, height) = img.dimensions();
    let b = bbox.clamp((width - 1) as f32, (height - 1) as f32);
    let (x1, y1, x2, y2) = (b.x1 as u32, b.y1 as u32, b.x2 as u32, b.y2 as u32);
    let px = image::Rgb(BOX_COLOUR);
    for t in 0..BOX_THICKNESS {
        for x in x1..=x2 {
            for y in [y1.saturating_add(t).min(height - 1), y2.saturating_sub(t)] {
                img.put_pixel(x, y, px);
            }
        }
        for y in y1..=y2 {
            for x in [x1.saturating_add(t).min(width - 1), x2.saturating_sub(t)] {
                img.put_pixel(x, y, px);
            }
        }
    }
}

/// `(width, height)` scaled to at most `max_width` wide, keeping the aspect (0 = no limit).
fn fit(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if max_width == 0 || width <= max_width {
        return (width, height);
    }
    let h = (u64::from(height) * u64::from(max_width) / u64::from(width)).max(1);
    (max_width, u32::try_from(h).unwrap_or(u32::MAX))
}

/// A copy of a packed RGB24 frame, scaled to `to` with an antialiasing filter
/// (`fast_image_resize`, SIMD; the `image` crate's resize cost ~3 % of an agent at 1080p).
fn scaled(rgb: &[u8], width: u32, height: u32, to: (u32, u32)) -> Result<RgbImage, DetectError> {
    let bad = || {
        DetectError::Snapshot(format!(
            "the frame buffer does not hold {width}x{height} RGB pixels"
        ))
    };
    if rgb.len() != width as usize * height as usize * 3 {
        return Err(bad());
    }
    if to == (width, height) {
        return RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(bad);
    }
    let src = fast_image_resize::images::ImageRef::new(
        width,
        height,
        rgb,
        fast_image_resize::PixelType::U8x3,
    )
    .map_err(|_| bad())?;
    let mut dst =
        fast_image_resize::images::Image::new(to.0, to.1, fast_image_resize::PixelType::U8x3);
    let options = fast_image_resize::ResizeOptions::new().resize_alg(
        fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Bilinear),
    );
    fast_image_resize::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| DetectError::Snapshot(format!("cannot scale the snapshot: {e}")))?;
    RgbImage::from_raw(to.0, to.1, dst.into_vec()).ok_or_else(bad)
}

/// One 8-bit plane scaled to `to` (`fast_image_resize`, bilinear convolution).
fn scaled_plane(
    plane: &[u8],
    width: u32,
    height: u32,
    to: (u32, u32),
) -> Result<Vec<u8>, DetectError> {
    let src = fast_image_resize::images::ImageRef::new(
        width,
        height,
        plane,
        fast_image_resize::PixelType::U8,
    )
    .map_err(|e| DetectError::Snapshot(format!("bad {width}x{height} plane: {e}")))?;
    let mut dst =
        fast_image_resize::images::Image::new(to.0, to.1, fast_image_resize::PixelType::U8);
    let options = fast_image_resize::ResizeOptions::new().resize_alg(
        fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Bilinear),
    );
    fast_image_resize::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| DetectError::Snapshot(format!("cannot scale the snapshot: {e}")))?;
    Ok(dst.into_vec())
}

/// The frame as RGB, scaled to `to`. A camera's I420 frame is scaled plane by plane
/// first and converted at the output size: at 1080p -> 1280x720 that converts 2.25x
/// fewer pixels and scales 1.5 bytes per pixel instead of 3.
fn frame_rgb(frame: FrameView<'_>, to: (u32, u32)) -> Result<RgbImage, DetectError> {
    let (width, height) = (frame.width, frame.height);
    let PixelFormat::I420(colour) = frame.format else {
        return scaled(&frame.to_rgb()?, width, height, to);
    };
    if to == (width, height) {
        return scaled(&frame.to_rgb()?, width, height, to);
    }
    frame.check("")?;
    let Some((y, u, v)) = frame.planes() else {
        return Err(DetectError::Snapshot("the frame is not I420".into()));
    };
    let (cw, ch) = chroma_size(width, height);
    let chroma_to = chroma_size(to.0, to.1);
    let mut data = scaled_plane(y, width, height, to)?;
    data.extend(scaled_plane(u, cw, ch, chroma_to)?);
    data.extend(scaled_plane(v, cw, ch, chroma_to)?);
    let small = FrameView {
        width: to.0,
        height: to.1,
        format: PixelFormat::I420(colour),
        data: &data,
    };
    let rgb = small.to_rgb()?.into_owned();
    RgbImage::from_raw(to.0, to.1, rgb)
        .ok_or_else(|| DetectError::Snapshot("scaled frame has the wrong size".into()))
}

/// Builds a [`Snapshot`] of a (privacy-masked) frame: scaled to at most
/// `cfg.max_width`, the box drawn, JPEG plus a `cfg.thumbnail_width` thumbnail.
pub fn render(
    frame: FrameView<'_>,
    bbox: &BBox,
    score: f32,
    pts_ms: u64,
    cfg: &SnapshotConfig,
) -> Result<Snapshot, DetectError> {
    let (width, height) = (frame.width, frame.height);
    let size = fit(width, height, cfg.max_width);
    let mut img = frame_rgb(frame, size)?;
    let f = size.0 as f32 / width as f32;
    draw_box(
        &mut img,
        &BBox::from([bbox.x1 * f, bbox.y1 * f, bbox.x2 * f, bbox.y2 * f]),
    );
    let jpeg = encode_jpeg(&img, cfg.quality)?;
    let thumb_size = fit(size.0, size.1, cfg.thumbnail_width.max(1));
    let thumb = scaled(img.as_raw(), size.0, size.1, thumb_size)?;
    Ok(Snapshot {
        pts_ms,
        score,
        bbox: *bbox,
        width,
        height,
        jpeg,
        thumbnail: encode_jpeg(&thumb, cfg.quality)?,
    })
}

/// A live camera snapshot: JPEG of an analysed frame (privacy masks already
/// applied by the analyser), scaled to at most `max_width` wide and re-encoded
/// at lower quality until it fits `max_bytes`. Returns (jpeg, width, height).
pub fn live_jpeg(
    frame: &super::frame::AnalysisFrame,
    max_width: u32,
    max_bytes: usize,
) -> Result<(Vec<u8>, u32, u32), DetectError> {
    frame.validate()?;
    let size = fit(frame.width, frame.height, max_width);
    let img = frame_rgb(frame.view(), size)?;
    for quality in [80u8, 60, 40, 25, 10] {
        let jpeg = encode_jpeg(&img, quality)?;
        if jpeg.len() <= max_bytes {
            return Ok((jpeg, img.width(), img.height()));
        }
    }
    Err(DetectError::Snapshot(format!(
        "a {}x{} JPEG does not fit {max_bytes} bytes even at quality 10",
        img.width(),
        img.height()
    )))
}

/// Baseline JPEG of `img` (libjpeg-turbo through `turbojpeg`: SIMD colour conversion,
/// DCT and entropy coding, ~4x faster than the pure-Rust `jpeg-encoder` it replaced,
/// whose snapshots cost ~7 % of an agent's CPU in a busy scene).
fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, DetectError> {
    let fail = |e: turbojpeg::Error| DetectError::Snapshot(e.to_string());
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width > 65_535 || height > 65_535 {
        return Err(DetectError::Snapshot(format!(
            "{width}x{height} is larger than JPEG allows (65535)"
        )));
    }
    let mut compressor = turbojpeg::Compressor::new().map_err(fail)?;
    compressor
        .set_quality(i32::from(quality.clamp(1, 100)))
        .map_err(fail)?;
    // No chroma subsampling: with 4:2:0 the colours next to a privacy mask bleed into
    // it (masked pixels must stay black in every snapshot).
    compressor
        .set_subsamp(turbojpeg::Subsamp::None)
        .map_err(fail)?;
    let image = turbojpeg::Image {
        pixels: img.as_raw().as_slice(),
        width,
        pitch: width * 3,
        height,
        format: turbojpeg::PixelFormat::RGB,
    };
    compressor.compress_to_vec(image).map_err(fail)
}

/// Serde adapter: `Vec<u8>` as a standard base64 string.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_jpeg_scales_to_640_and_keeps_masked_pixels_black() {
        use crate::detect::config::{MaskConfig, ZoneConfig};
        use crate::detect::frame::{rgb_to_i420, PixelFormat, YuvColour};
        use crate::detect::zones::SceneMasks;
        let (w, h) = (1280u32, 720u32);
        let rgb = vec![230u8; (w * h * 3) as usize];
        // As a synthetic RGB frame and as a camera's I420 frame.
        for (format, data) in [
            (PixelFormat::Rgb24, rgb.clone()),
            (PixelFormat::I420(YuvColour::BT601), rgb_to_i420(&rgb, w, h)),
        ] {
            let mut frame = crate::detect::AnalysisFrame {
                camera_id: "c".into(),
                pts: std::time::Duration::ZERO,
                wall: time::OffsetDateTime::UNIX_EPOCH,
                width: w,
                height: h,
                format,
                data,
            };
            let masks: MaskConfig =
                match toml::from_str("privacy = [[[0.0,0.0],[0.5,0.0],[0.5,1.0],[0.0,1.0]]]") {
                    Ok(m) => m,
                    Err(e) => panic!("{e}"),
                };
            let zones: Vec<ZoneConfig> = Vec::new();
            SceneMasks::new(zones, masks).apply_privacy(frame.format, &mut frame.data, w, h);
            let (jpeg, jw, jh) = match live_jpeg(&frame, 640, 512 * 1024) {
                Ok(x) => x,
                Err(e) => panic!("{e}"),
            };
            assert_eq!((jw, jh), (640, 360));
            let img = match image::load_from_memory(&jpeg) {
                Ok(i) => i.to_rgb8(),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(img.dimensions(), (640, 360));
            assert!(
                img.get_pixel(100, 180)[0] < 30,
                "{format:?}: masked half is black"
            );
            assert!(
                img.get_pixel(500, 180)[0] > 200,
                "{format:?}: unmasked half is bright"
            );
        }
    }

    #[test]
    fn wide_frames_are_scaled_to_max_width_with_the_box_where_the_object_is() {
        let (w, h) = (1920u32, 1080u32);
        let mut rgb = vec![40u8; (w * h * 3) as usize];
        // A bright square in the frame's right half; the box around it.
        for y in 400..600 {
            for x in 1400..1600 {
                let i = ((y * w + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&[250, 250, 250]);
            }
        }
        let bbox = BBox::from([1390.0, 390.0, 1610.0, 610.0]);
        // A camera's I420 frame takes the plane-by-plane scaling path; RGB the packed one.
        let i420 = crate::detect::frame::rgb_to_i420(&rgb, w, h);
        let colour = crate::detect::frame::YuvColour::BT601;
        let mut snap = None;
        for view in [
            FrameView::rgb(w, h, &rgb),
            FrameView {
                width: w,
                height: h,
                format: PixelFormat::I420(colour),
                data: &i420,
            },
        ] {
            let s = match render(view, &bbox, 0.8, 5, &SnapshotConfig::default()) {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            let format = view.format;
            assert_eq!(
                (s.width, s.height),
                (w, h),
                "{format:?}: sizes stay in camera pixels"
            );
            assert_eq!(s.bbox, bbox);
            let full = match image::load_from_memory(&s.jpeg) {
                Ok(i) => i.to_rgb8(),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(full.dimensions(), (1280, 720));
            // 2/3 scale: the square is at (933..1067, 267..400), its box edge at y = 260.
            assert!(
                full.get_pixel(1000, 333)[2] > 200,
                "{format:?}: object scaled into place"
            );
            assert!(
                full.get_pixel(940, 333)[2] > 200 && full.get_pixel(925, 333)[2] < 100,
                "{format:?}: the object's left edge stays at x = 933"
            );
            let edge = full.get_pixel(1000, 260);
            assert!(
                edge[0] > 200 && edge[2] < 100,
                "{format:?}: amber box edge drawn at the scaled position: {edge:?}"
            );
            assert!(
                full.get_pixel(300, 333)[0] < 60,
                "{format:?}: background stays dark"
            );
            snap = Some(s);
        }
        let Some(snap) = snap else {
            panic!("no snapshot rendered")
        };
        let thumb = match image::load_from_memory(&snap.thumbnail) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((thumb.width(), thumb.height()), (240, 135));
        let unlimited = SnapshotConfig {
            max_width: 0,
            ..SnapshotConfig::default()
        };
        let snap = match render(FrameView::rgb(w, h, &rgb), &bbox, 0.8, 5, &unlimited) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        match image::load_from_memory(&snap.jpeg) {
            Ok(i) => assert_eq!(
                (i.width(), i.height()),
                (w, h),
                "max_width = 0 keeps the frame size"
            ),
            Err(e) => panic!("{e}"),
        }
        assert!(
            render(FrameView::rgb(w, h, &rgb[1..]), &bbox, 0.8, 5, &unlimited).is_err(),
            "short buffer refused"
        );
    }

    #[test]
    fn snapshot_has_box_and_thumbnail_and_round_trips_through_json() {
        let (w, h) = (64u32, 48u32);
        let rgb = vec![40u8; (w * h * 3) as usize];
        let bbox = BBox::from([10.0, 10.0, 30.0, 40.0]);
        let snap = match render(
            FrameView::rgb(w, h, &rgb),
            &bbox,
            0.9,
            1234,
            &SnapshotConfig::default(),
        ) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let full = match image::load_from_memory(&snap.jpeg) {
            Ok(i) => i.to_rgb8(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(full.dimensions(), (w, h));
        assert!(full.get_pixel(20, 10)[0] > 200, "box top edge drawn");
        let thumb = match image::load_from_memory(&snap.thumbnail) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(thumb.width(), w.min(240));
        let json = serde_json::to_string(&snap).unwrap_or_default();
        let back: Snapshot = match serde_json::from_str(&json) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(back, snap);
    }
}
