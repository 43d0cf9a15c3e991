//! Object detection for the analysis branch: frames in, calm events out.
//!
//! ```text
//! ingest appsink ── AnalysisFrame ──▶ DetectService::submit   (worker.rs: newest frame per camera,
//!                                        │                      round-robin, one inference thread)
//!                                        ▼
//!                                  CameraAnalyzer::process    (analyzer.rs, one per camera)
//!   zones::SceneMasks ── privacy masks blacked out in the frame (model and snapshots never see them)
//!   motion::MotionGate ─ small grayscale running-average background; skip the model unless
//!                        motion or a periodic refresh
//!   model::Detector ──── OrtDetector: preprocess.rs letterbox straight into the input tensor,
//!                        ONNX Runtime (runtime.rs), decode.rs YOLOX / YOLOv8, per-class NMS
//!   filter + masks ───── labels, score, area, aspect; object masks; privacy masks
//!   tracker::Tracker ─── IoU / centroid association per label, short memory
//!   events::EventMachine  k-of-n confirm, post-roll, stationary limit, split; snapshot.rs JPEGs
//!                                        │
//!                                        ▼
//!                          EventMessage { Start | Update | End }  ──▶ clips / uplink
//! ```
//!
//! The `vigil-agent detect` CLI skips the camera layers: [`output::detect_frame`]
//! runs the [`model::Detector`] on one frame and returns [`output::FrameDetections`].
//!
//! All timing uses the frame's stream pts, never the wall clock, so a replayed
//! file gives the same events every time; UTC is only stamped on events.

pub mod analyzer;
pub mod config;
pub mod decode;
pub mod error;
pub mod events;
pub mod filter;
pub mod frame;
pub mod geom;
pub mod manifest;
pub mod model;
pub mod motion;
pub mod output;
pub mod preprocess;
pub mod runtime;
pub mod snapshot;
pub mod tracker;
pub mod worker;
pub mod zones;

pub use analyzer::{share, CameraAnalyzer, CameraStats, SharedDetector};
pub use config::{CameraDetectConfig, DetectConfig};
pub use error::DetectError;
pub use events::{DetectionEvent, EndReason, EventMessage, EventPhase};
pub use frame::AnalysisFrame;
pub use model::{Detection, Detector, DetectorOptions, OrtDetector};
pub use output::{detect_frame, FrameDetections};
pub use worker::{DetectService, Submitted};
