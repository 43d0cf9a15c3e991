//! vigil-agent: the edge half of Vigil.
//!
//! Data flow, one pipeline per camera:
//!
//! ```text
//! camera ─RTSP─▶ ingest::pipeline (rtspsrc ! parsebin ! tee)
//!                  ├─▶ recording appsink ─▶ ingest::ring::GopRing (encoded, never decoded)
//!                  └─▶ analysis appsink (decoded I420 at detect fps) ─▶ detect::CameraAnalyzer
//! events ─▶ ingest::clip::cut_clip (GOPs from the ring, remux only) ─▶ vigil_evidence (sign, chain)
//! ```
//!
//! - [`camsim`]: a sample camera (RTSP server looping a file without re-encoding).
//! - [`ingest`]: camera pipelines, the pre-event [`ingest::ring::GopRing`], clip cutting.
//! - [`detect`]: ONNX detection, motion gate, zones/masks, tracker, calm events.
//! - [`record`]: the one-shot `record` command (camera → signed clip directory).
//! - [`runtime`]: `vigil-agent run`: cameras, detection, clip cutting and sealing ([`seal`]);
//!   [`clips`] decides which spans become clips and when.
//! - [`deliver`]: `vigil-agent deliver`, the outbox to the hub without cameras.
//! - [`outbox`]: the byte-bounded durable spool; [`uplink`] delivers it over MQTT (TLS,
//!   credentials) and publishes [`live`] health and snapshots; [`metrics`] serves the
//!   same counters to Prometheus.

pub mod camsim;
pub mod clips;
pub mod config;
pub mod deliver;
pub mod detect;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod outbox;
pub mod record;
pub mod recording;
pub mod runtime;
pub mod seal;
pub mod uplink;
