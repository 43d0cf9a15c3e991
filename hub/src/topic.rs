//! MQTT topic parsing: the only place topic segments become typed ids.
//!
//! Nothing from a topic is ever used as a path before it passed through here:
//! agent ids match `[A-Za-z0-9_-]{1,64}` and clip ids are re-spelled from a
//! parsed UUID (see docs/mqtt.md).

use uuid::Uuid;
use vigil_evidence::transfer::parse_chunk_number;
pub use vigil_evidence::transfer::parse_clip_id;

/// Topic root shared by every message of contract v1.
pub const ROOT: &str = "vigil/v1/";

/// Subscriptions the hub makes (all at QoS 1; QoS 0 topics arrive at QoS 0).
///
/// Clips come on the fixed topics `clips/manifest` and `clips/chunk` (ids in the
/// payload); the per-clip topics of the first agents are still accepted.
pub const SUBSCRIPTIONS: [&str; 11] = [
    "vigil/v1/+/status",
    "vigil/v1/+/events",
    "vigil/v1/+/records",
    "vigil/v1/+/clips/manifest",
    "vigil/v1/+/clips/chunk",
    "vigil/v1/+/clips/+/manifest",
    "vigil/v1/+/clips/+/chunk/+",
    "vigil/v1/+/health",
    "vigil/v1/+/cameras/+/snapshot",
    "vigil/v1/+/drops",
    "vigil/v1/+/doctor",
];

/// A parsed agent→hub topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `{agent}/status`.
    Status { agent: String },
    /// `{agent}/events`.
    Events { agent: String },
    /// `{agent}/records`.
    Records { agent: String },
    /// `{agent}/clips/manifest`: the clip id is the payload's `clip_id`.
    ClipManifest { agent: String },
    /// `{agent}/clips/chunk`: clip id and chunk number in the payload's header line
    /// ([`vigil_evidence::transfer`]).
    ClipChunk { agent: String },
    /// `{agent}/clips/{clip}/manifest` (per-clip topic of the first agents).
    Manifest { agent: String, clip: Uuid },
    /// `{agent}/clips/{clip}/chunk/{n}` (per-clip topic of the first agents).
    Chunk { agent: String, clip: Uuid, n: u64 },
    /// `{agent}/health`.
    Health { agent: String },
    /// `{agent}/cameras/{camera}/snapshot`.
    Snapshot { agent: String, camera: String },
    /// `{agent}/drops`.
    Drops { agent: String },
    /// `{agent}/doctor`: `vigil-agent doctor` asks whether the hub hears it.
    Doctor { agent: String },
}

impl Topic {
    /// Stable label of the topic kind (metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::Status { .. } => "status",
            Topic::Events { .. } => "events",
            Topic::Records { .. } => "records",
            Topic::Manifest { .. } | Topic::ClipManifest { .. } => "manifest",
            Topic::Chunk { .. } | Topic::ClipChunk { .. } => "chunk",
            Topic::Health { .. } => "health",
            Topic::Snapshot { .. } => "snapshot",
            Topic::Drops { .. } => "drops",
            Topic::Doctor { .. } => "doctor",
        }
    }
}

/// True if `id` is a valid agent or camera id: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `topic`; the error is a sentence saying what is wrong.
pub fn parse(topic: &str) -> Result<Topic, String> {
    let Some(rest) = topic.strip_prefix(ROOT) else {
        return Err(format!("topic {:?} is not under {ROOT}", shorten(topic)));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let agent = parts[0];
    if !valid_id(agent) {
        return Err(format!(
            "agent id {:?} is not 1-64 of [A-Za-z0-9_-]",
            shorten(agent)
        ));
    }
    let agent = agent.to_string();
    match parts[1..] {
        ["status"] => Ok(Topic::Status { agent }),
        ["events"] => Ok(Topic::Events { agent }),
        ["records"] => Ok(Topic::Records { agent }),
        ["health"] => Ok(Topic::Health { agent }),
        ["drops"] => Ok(Topic::Drops { agent }),
        ["doctor"] => Ok(Topic::Doctor { agent }),
        ["cameras", camera, "snapshot"] => {
            if !valid_id(camera) {
                return Err(format!(
                    "camera id {:?} is not 1-64 of [A-Za-z0-9_-]",
                    shorten(camera)
                ));
            }
            Ok(Topic::Snapshot {
                agent,
                camera: camera.to_string(),
            })
        }
        ["clips", "manifest"] => Ok(Topic::ClipManifest { agent }),
        ["clips", "chunk"] => Ok(Topic::ClipChunk { agent }),
        ["clips", clip, "manifest"] => Ok(Topic::Manifest {
            agent,
            clip: parse_clip_id(clip)?,
        }),
        ["clips", clip, "chunk", n] => {
            let clip = parse_clip_id(clip)?;
            let n = parse_chunk_number(n)?;
            Ok(Topic::Chunk { agent, clip, n })
        }
        _ => Err(format!(
            "topic {:?} is not part of contract v1",
            shorten(topic)
        )),
    }
}

/// First 80 characters of untrusted text, for log lines.
pub fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Topic the hub publishes acks to for `agent`.
pub fn acks_topic(agent: &str) -> String {
    format!("{ROOT}{agent}/acks")
}

/// Where the reply to `agent`'s doctor ping goes.
pub fn commands_topic(agent: &str) -> String {
    format!("{ROOT}{agent}/commands")
}

/// Where the hub answers an agent's doctor ping.
pub fn doctor_reply_topic(agent: &str) -> String {
    format!("{ROOT}{agent}/doctor/reply")
}
