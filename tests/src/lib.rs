//! Cross-process test harness: builds and locates the Vigil binaries, starts cameras
//! (camsim, a minimal non-GStreamer RTSP server), brokers and junk servers on ports the
//! OS picks, in temp dirs, and stops them on drop. Also the oracles the tests compare
//! against: an MP4 sample reader, H.264 access-unit splitting and ffprobe/ffmpeg wrappers.
//!
//! Every wait is on a condition with a deadline (see [`wait`]); nothing sleeps blindly.

pub mod agent;
pub mod bench;
pub mod bins;
pub mod browser;
pub mod camsim;
pub mod clipcheck;
pub mod fuzz;
pub mod h264;
pub mod mosquitto;
pub mod mp4;
pub mod net;
pub mod oracle;
pub mod process;
pub mod rtsp_server;
pub mod stack;
pub mod tls;
pub mod wait;

pub use bins::{agent_bin, ensure_built, hub_bin, sample, verify_bin, workspace_root};
pub use camsim::Camsim;
pub use mosquitto::Mosquitto;
pub use net::{free_port, http_get, metric, JunkServer};
pub use process::{run, Finished, Proc};
pub use wait::{wait_for, wait_until};
