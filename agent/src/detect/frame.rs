//! The frame type ingest hands to detection.

use super::error::DetectError;

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
    /// Packed RGB24, stride = width*3.
    pub rgb: Vec<u8>,
}

impl AnalysisFrame {
    /// Checks that the buffer holds exactly `width * height * 3` bytes.
    pub fn validate(&self) -> Result<(), DetectError> {
        let expected = self.width as usize * self.height as usize * 3;
        if self.rgb.len() != expected || self.width == 0 || self.height == 0 {
            return Err(DetectError::BadFrame {
                camera_id: self.camera_id.clone(),
                width: self.width,
                height: self.height,
                expected,
                found: self.rgb.len(),
            });
        }
        Ok(())
    }

    /// Borrows the pixels as an [`RgbView`].
    pub fn view(&self) -> RgbView<'_> {
        RgbView {
            width: self.width,
            height: self.height,
            data: &self.rgb,
        }
    }

    /// Presentation time in whole milliseconds.
    pub fn pts_ms(&self) -> u64 {
        u64::try_from(self.pts.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A borrowed packed RGB24 image (stride = width*3); the detector's input.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub data: &'a [u8],
}

impl RgbView<'_> {
    /// True when the buffer length matches the dimensions.
    pub fn is_consistent(&self) -> bool {
        self.width > 0
            && self.height > 0
            && self.data.len() == self.width as usize * self.height as usize * 3
    }
}
