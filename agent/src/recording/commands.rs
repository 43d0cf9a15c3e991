//! What the hub asks of the recording (docs/mqtt.md `commands`): pull a window, put a
//! legal hold on one, release a hold. Every command is idempotent: the hub resends a
//! pending one until it sees the result (the pieces stored, the hold acknowledged by
//! the pieces arriving), so a command lost with a connection costs a resend.

use serde::Deserialize;
use time::OffsetDateTime;

/// Largest command accepted.
const MAX_COMMAND: usize = 16 * 1024;

/// A command on `vigil/v1/{agent}/commands`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubCommand {
    /// Upload the pieces of `camera_id` covering `[from, to)`.
    Pull {
        /// The hub's request id.
        request_id: String,
        /// Camera.
        camera_id: String,
        /// Window start.
        #[serde(with = "time::serde::rfc3339")]
        from: OffsetDateTime,
        /// Window end.
        #[serde(with = "time::serde::rfc3339")]
        to: OffsetDateTime,
    },
    /// Keep (never delete) and upload the pieces of `camera_id` in `[from, to]`.
    Hold {
        /// The hub's hold id.
        hold_id: String,
        /// Camera.
        camera_id: String,
        /// Held window start.
        #[serde(with = "time::serde::rfc3339")]
        from: OffsetDateTime,
        /// Held window end.
        #[serde(with = "time::serde::rfc3339")]
        to: OffsetDateTime,
        /// Why.
        reason: String,
        /// Case number.
        case: String,
    },
    /// Release a hold: its pieces fall back under retention.
    Release {
        /// The hub's hold id.
        hold_id: String,
    },
}

impl HubCommand {
    /// Parses a command payload, refusing oversized or unknown ones with a sentence.
    pub fn parse(payload: &[u8]) -> Result<HubCommand, String> {
        if payload.len() > MAX_COMMAND {
            return Err(format!(
                "command of {} bytes is over {MAX_COMMAND}",
                payload.len()
            ));
        }
        serde_json::from_slice(payload).map_err(|e| format!("not a command: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_unknown_ones_are_refused() {
        let c = HubCommand::parse(br#"{"kind":"pull","request_id":"r1","camera_id":"cam1","from":"2026-12-04T10:00:00Z","to":"2026-12-04T10:05:00Z"}"#);
        assert!(
            matches!(c, Ok(HubCommand::Pull { ref camera_id, .. }) if camera_id == "cam1"),
            "{c:?}"
        );
        assert!(HubCommand::parse(br#"{"kind":"erase","camera_id":"cam1"}"#).is_err());
        assert!(HubCommand::parse(br#"{"kind":"release","hold_id":"h","extra":1}"#).is_err());
        assert!(HubCommand::parse(&vec![b' '; MAX_COMMAND + 1]).is_err());
    }
}
