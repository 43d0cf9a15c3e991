//! `agent.toml`: what the user asked the agent to do. Validation collects every problem
//! and reports each as a sentence naming the key and what to do.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::{CameraDetectConfig, DetectConfig};
use crate::ingest::Transport;

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Agent id: topic root and manifest field. Letters, digits, `-`, `_`.
    pub agent_id: String,
    /// Signing key (create with `vigil-agent keygen --key PATH`). Default `vigil-state/agent.key`.
    #[serde(default = "default_key")]
    pub key: PathBuf,
    /// Chain state (per-camera seq and head hash). Default `vigil-state/chain`.
    #[serde(default = "default_chain")]
    pub chain_dir: PathBuf,
    /// Durable spool of signed clips and event messages. Default `vigil-state/outbox`.
    #[serde(default = "default_outbox")]
    pub outbox_dir: PathBuf,
    /// Detection runtime and model.
    #[serde(default)]
    pub detect: DetectConfig,
    /// Outbox bound.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// MQTT uplink to the hub; without it clips and events stay in the outbox.
    #[serde(default)]
    pub uplink: Option<crate::uplink::UplinkConfig>,
    /// Prometheus endpoint; off unless `[metrics] listen` is set.
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
    /// Continuous recording store (`[recording]`).
    #[serde(default)]
    pub recording: crate::recording::RecordingConfig,
    /// Cameras; at least one.
    pub cameras: Vec<CameraConfig>,
}

/// `[outbox]`: how much undelivered evidence the agent keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Byte bound of the outbox. Before an entry would exceed it, the oldest
    /// clips are dropped (each reported on `drops`). Default 2 GiB.
    #[serde(default = "default_outbox_bytes")]
    pub max_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: default_outbox_bytes(),
        }
    }
}

fn default_outbox_bytes() -> u64 {
    crate::outbox::DEFAULT_MAX_BYTES
}

/// Smallest accepted `[outbox] max_bytes` (1 MiB).
pub const MIN_OUTBOX_BYTES: u64 = 1 << 20;

fn default_key() -> PathBuf {
    PathBuf::from("vigil-state/agent.key")
}
fn default_chain() -> PathBuf {
    PathBuf::from("vigil-state/chain")
}
fn default_outbox() -> PathBuf {
    PathBuf::from("vigil-state/outbox")
}

/// One camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Camera id, unique on this agent. Letters, digits, `-`, `_`.
    pub id: String,
    /// `rtsp://` or `rtsps://` URL.
    pub url: String,
    /// `tcp` (default) or `udp`; the other is tried on RTSP 461.
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// Analysed frames per second. Default 5.
    #[serde(default = "default_fps")]
    pub detect_fps: f64,
    /// Software decoder threads for the analysis branch; 0 = one per core. Default 1
    /// (cheapest per frame; raise it only for a stream one core cannot decode, e.g. 4K).
    #[serde(default = "default_decode_threads")]
    pub decode_threads: u32,
    /// Seconds of video before an event kept in its clip. Default 5.
    #[serde(default = "default_pre_roll")]
    pub pre_roll_seconds: f64,
    /// Seconds of video after an event's end kept in its clip. Default 3.
    #[serde(default = "default_post_roll")]
    pub post_roll_seconds: f64,
    /// Longest clip; longer recordings are split into linked parts. Default 60.
    #[serde(default = "default_max_clip")]
    pub max_clip_seconds: f64,
    /// Byte bound of the pre-event ring, MiB. Default 64.
    #[serde(default = "default_ring_mib")]
    pub ring_max_mib: u64,
    /// Detection, zones, masks and event settings for this camera.
    #[serde(default)]
    pub detect: CameraDetectConfig,
    /// Record this camera continuously into the recording store. Default true.
    #[serde(default = "default_true")]
    pub record: bool,
    /// Recorded pieces younger than this are never deleted by `max_bytes` (only when
    /// the disk is truly full). Default 0.
    #[serde(default)]
    pub min_days: f64,
    /// Recorded pieces older than this are deleted. Default 30.
    #[serde(default = "default_max_days")]
    pub max_days: f64,
}

fn default_true() -> bool {
    true
}
fn default_max_days() -> f64 {
    30.0
}

fn default_transport() -> Transport {
    Transport::Tcp
}
fn default_fps() -> f64 {
    5.0
}
fn default_decode_threads() -> u32 {
    1
}
fn default_pre_roll() -> f64 {
    5.0
}
fn default_post_roll() -> f64 {
    3.0
}
fn default_max_clip() -> f64 {
    60.0
}
fn default_ring_mib() -> u64 {
    64
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} has {} problem(s):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl AgentConfig {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: AgentConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    /// Every problem, each a sentence naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !valid_id(&self.agent_id) {
            p.push(format!(
                "agent_id: {:?} must be 1-64 letters, digits, '-' or '_'",
                self.agent_id
            ));
        }
        p.extend(self.detect.problems("detect"));
        if self.outbox.max_bytes < MIN_OUTBOX_BYTES {
            p.push(format!(
                "outbox.max_bytes: {} is below {MIN_OUTBOX_BYTES} (1 MiB); a clip would not fit. \
                 Use at least a few hundred MiB (default 2147483648 = 2 GiB)",
                self.outbox.max_bytes
            ));
        }
        if let Some(u) = &self.uplink {
            p.extend(u.problems("uplink"));
        }
        p.extend(self.metrics.problems("metrics"));
        p.extend(self.recording.problems("recording"));
        if self.cameras.is_empty() {
            p.push("cameras: no camera configured; add a [[cameras]] table with id and url".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let key = format!("cameras[{i}]");
            if !valid_id(&c.id) {
                p.push(format!(
                    "{key}.id: {:?} must be 1-64 letters, digits, '-' or '_'",
                    c.id
                ));
            } else if !seen.insert(c.id.clone()) {
                p.push(format!("{key}.id: {:?} is used by another camera", c.id));
            }
            match c.url.split_once("://") {
                Some(("rtsp" | "rtsps", rest)) if !rest.is_empty() => {}
                Some((scheme, _)) => p.push(format!(
                    "{key}.url: scheme {scheme:?} is not rtsp:// or rtsps://"
                )),
                None => p.push(format!(
                    "{key}.url: {:?} is not a URL; use rtsp://host:port/path",
                    crate::ingest::camera::redact_url(&c.url)
                )),
            }
            if !(0.1..=30.0).contains(&c.detect_fps) {
                p.push(format!(
                    "{key}.detect_fps: {} is outside 0.1..30",
                    c.detect_fps
                ));
            }
            if c.decode_threads > 16 {
                p.push(format!(
                    "{key}.decode_threads: {} is outside 0..16 (0 = one per core)",
                    c.decode_threads
                ));
            }
            for (name, v, max) in [
                ("pre_roll_seconds", c.pre_roll_seconds, 60.0),
                ("post_roll_seconds", c.post_roll_seconds, 60.0),
                ("max_clip_seconds", c.max_clip_seconds, 3600.0),
            ] {
                if !(0.0..=max).contains(&v) {
                    p.push(format!("{key}.{name}: {v} is outside 0..{max} seconds"));
                }
            }
            if c.max_clip_seconds < 2.0 {
                p.push(format!(
                    "{key}.max_clip_seconds: {} is below 2 s; a clip needs at least one GOP",
                    c.max_clip_seconds
                ));
            }
            if c.ring_max_mib == 0 || c.ring_max_mib > 4096 {
                p.push(format!(
                    "{key}.ring_max_mib: {} is outside 1..4096",
                    c.ring_max_mib
                ));
            }
            p.extend(c.detect.problems(&format!("{key}.detect")));
            if !(0.0..=3650.0).contains(&c.min_days) || !(0.0..=3650.0).contains(&c.max_days) {
                p.push(format!(
                    "{key}.min_days/max_days: {} / {} must be within 0..3650 days",
                    c.min_days, c.max_days
                ));
            } else if c.max_days < c.min_days {
                p.push(format!(
                    "{key}.max_days: {} is below min_days {}; raise max_days or lower min_days",
                    c.max_days, c.min_days
                ));
            } else if c.record && c.max_days * 86400.0 < self.recording.piece_seconds * 2.0 {
                p.push(format!(
                    "{key}.max_days: {} keeps less than two pieces ({} s each); raise it",
                    c.max_days, self.recording.piece_seconds
                ));
            }
        }
        p
    }

    /// Where the recording store is: `[recording] dir`, else `recordings` beside the
    /// chain state directory (`vigil-state/recordings` by default).
    pub fn recording_dir(&self) -> PathBuf {
        self.recording.dir.clone().unwrap_or_else(|| {
            self.chain_dir
                .parent()
                .unwrap_or(Path::new("."))
                .join("recordings")
        })
    }

    /// True when at least one camera records.
    pub fn records(&self) -> bool {
        self.cameras.iter().any(|c| c.record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_with_its_key() {
        let text = r#"
agent_id = "bad id"
[outbox]
max_bytes = 1000
[[cameras]]
id = "cam1"
url = "htp://x/y"
detect_fps = 0
[[cameras]]
id = "cam1"
url = "rtsp://10.0.0.2/s"
max_clip_seconds = 1
decode_threads = 64
"#;
        let c: AgentConfig = toml::from_str(text).expect("parses");
        let p = c.problems();
        let all = p.join("\n");
        assert!(all.contains("agent_id:"), "{all}");
        assert!(all.contains("cameras[0].url: scheme \"htp\""), "{all}");
        assert!(all.contains("cameras[0].detect_fps"), "{all}");
        assert!(all.contains("cameras[1].id: \"cam1\" is used"), "{all}");
        assert!(all.contains("cameras[1].max_clip_seconds"), "{all}");
        assert!(all.contains("cameras[1].decode_threads: 64"), "{all}");
        assert!(all.contains("outbox.max_bytes: 1000"), "{all}");
        assert_eq!(p.len(), 7, "{all}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<AgentConfig>("agent_id = \"a\"\ncamras = []\ncameras = []\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("camras"), "{err}");
    }
}
