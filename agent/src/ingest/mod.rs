//! Camera ingest: one GStreamer pipeline per camera, the pre-event ring of the camera's
//! own encoded access units, and clips cut from it without re-encoding.
//!
//! - [`pipeline`]: `rtspsrc ! parsebin ! tee` with a recording branch (encoded access
//!   units, never decoded) and an analysis branch (decoded I420 frames at the detect rate).
//! - [`camera`]: the long-lived `run()` retry loop around `run_once()`, state and counters.
//! - [`ring`]: [`ring::GopRing`], bounded by seconds and bytes, indexed by GOP.
//! - [`clip`]: MP4 (faststart) from ring GOPs by remuxing only.

pub mod camera;
pub mod clip;
pub mod filesource;
pub mod pipeline;
pub mod ring;

pub use camera::{Camera, CameraSettings, CameraState, CameraStats, Transport};
pub use ring::{AccessUnit, GopRing};
