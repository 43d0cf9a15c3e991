//! Event snapshots: the best frame (privacy masks already applied by the
//! analyser) with the object's box drawn, as a JPEG plus a small thumbnail.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::config::SnapshotConfig;
use super::error::DetectError;
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

/// Draws `bbox` on a copy of the frame.
pub fn draw_box(rgb: &[u8], width: u32, height: u32, bbox: &BBox) -> Result<RgbImage, DetectError> {
    let mut img = RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(|| {
        DetectError::Snapshot(format!(
            "the frame buffer does not hold {width}x{height} RGB pixels"
        ))
    })?;
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
    Ok(img)
}

/// Encodes the full JPEG and the thumbnail.
pub fn encode(img: &RgbImage, cfg: &SnapshotConfig) -> Result<(Vec<u8>, Vec<u8>), DetectError> {
    let jpeg = encode_jpeg(img, cfg.quality)?;
    let tw = cfg.thumbnail_width.min(img.width()).max(1);
    let th = ((img.height() as u64 * tw as u64) / img.width().max(1) as u64).max(1) as u32;
    let thumb = image::imageops::thumbnail(img, tw, th);
    Ok((jpeg, encode_jpeg(&thumb, cfg.quality)?))
}

/// Builds a [`Snapshot`] of a (privacy-masked) frame.
pub fn render(
    rgb: &[u8],
    width: u32,
    height: u32,
    bbox: &BBox,
    score: f32,
    pts_ms: u64,
    cfg: &SnapshotConfig,
) -> Result<Snapshot, DetectError> {
    let img = draw_box(rgb, width, height, bbox)?;
    let (jpeg, thumbnail) = encode(&img, cfg)?;
    Ok(Snapshot {
        pts_ms,
        score,
        bbox: *bbox,
        width,
        height,
        jpeg,
        thumbnail,
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
    let img =
        RgbImage::from_raw(frame.width, frame.height, frame.rgb.clone()).ok_or_else(|| {
            DetectError::Snapshot(format!(
                "the frame buffer does not hold {}x{} RGB pixels",
                frame.width, frame.height
            ))
        })?;
    let img = if img.width() > max_width {
        let h = ((img.height() as u64 * max_width as u64) / img.width() as u64).max(1) as u32;
        image::imageops::resize(&img, max_width, h, image::imageops::FilterType::Triangle)
    } else {
        img
    };
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

/// Baseline JPEG of `img` (`jpeg-encoder`, SIMD when the CPU has it: several times
/// faster than the `image` crate's encoder, which cost ~10 % of an agent's CPU).
fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, DetectError> {
    let (Ok(w), Ok(h)) = (u16::try_from(img.width()), u16::try_from(img.height())) else {
        return Err(DetectError::Snapshot(format!(
            "{}x{} is larger than JPEG allows (65535)",
            img.width(),
            img.height()
        )));
    };
    let mut out = Vec::with_capacity(img.as_raw().len() / 8);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    // No chroma subsampling: with 4:2:0 the colours next to a privacy mask bleed into
    // it (masked pixels must stay black in every snapshot).
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
    encoder
        .encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| DetectError::Snapshot(e.to_string()))?;
    Ok(out)
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
        use crate::detect::zones::SceneMasks;
        let (w, h) = (1280u32, 720u32);
        let mut frame = crate::detect::AnalysisFrame {
            camera_id: "c".into(),
            pts: std::time::Duration::ZERO,
            wall: time::OffsetDateTime::UNIX_EPOCH,
            width: w,
            height: h,
            rgb: vec![230u8; (w * h * 3) as usize],
        };
        let masks: MaskConfig =
            match toml::from_str("privacy = [[[0.0,0.0],[0.5,0.0],[0.5,1.0],[0.0,1.0]]]") {
                Ok(m) => m,
                Err(e) => panic!("{e}"),
            };
        let zones: Vec<ZoneConfig> = Vec::new();
        SceneMasks::new(zones, masks).apply_privacy(&mut frame.rgb, w, h);
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
        assert!(img.get_pixel(100, 180)[0] < 30, "masked half is black");
        assert!(img.get_pixel(500, 180)[0] > 200, "unmasked half is bright");
    }

    #[test]
    fn snapshot_has_box_and_thumbnail_and_round_trips_through_json() {
        let (w, h) = (64u32, 48u32);
        let rgb = vec![40u8; (w * h * 3) as usize];
        let bbox = BBox::from([10.0, 10.0, 30.0, 40.0]);
        let snap = match render(&rgb, w, h, &bbox, 0.9, 1234, &SnapshotConfig::default()) {
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
