//! `doctor`: `vigil-agent doctor` asks whether the hub hears the agent and which key
//! it has enrolled for it. The reply goes to `vigil/v1/{agent}/doctor/reply`.

use serde::{Deserialize, Serialize};

use super::{internal, Ingest, Rejection};
use crate::topic::shorten;

/// Largest doctor ping.
const MAX_PING: usize = 4096;

/// The ping of contract v1.
#[derive(Deserialize)]
struct Ping {
    nonce: String,
}

/// The reply: `status` is `ok`, `unknown_agent` or `revoked_agent`.
#[derive(Serialize)]
struct Pong {
    /// The ping's nonce, so the doctor knows the reply is for it.
    nonce: String,
    /// `ok`, `unknown_agent` or `revoked_agent`.
    status: String,
    /// Id of the key enrolled for the agent (compare with `vigil-agent keygen`'s output).
    key_id: Option<String>,
    /// What to do when the status is not `ok`.
    reason: Option<String>,
    /// The hub's version.
    hub_version: String,
}

impl Ingest {
    /// Answers a doctor ping of `agent`; the payload is the reply to publish.
    pub(crate) fn doctor(&self, agent: &str, payload: &[u8]) -> Result<Vec<u8>, Rejection> {
        if payload.len() > MAX_PING {
            return Err(Rejection::new(
                "too_large",
                format!("doctor ping is {} bytes", payload.len()),
            ));
        }
        let ping: Ping = serde_json::from_slice(payload)
            .map_err(|e| Rejection::new("bad_json", format!("doctor ping: {e}")))?;
        let nonce_ok = (1..=64).contains(&ping.nonce.len())
            && ping
                .nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !nonce_ok {
            return Err(Rejection::new(
                "bad_doctor",
                format!(
                    "nonce {:?} is not 1-64 of [A-Za-z0-9-]",
                    shorten(&ping.nonce)
                ),
            ));
        }
        let row = self
            .index()
            .agent(agent)
            .map_err(|e| internal("cannot read the agents table", e))?;
        let (status, key_id, reason) = match row {
            None => (
                "unknown_agent",
                None,
                Some(format!(
                    "agent {agent:?} is not enrolled: on the hub run `vigil-hub agent add {agent} --public-key agent.pem`"
                )),
            ),
            Some(r) if r.revoked_at.is_some() => (
                "revoked_agent",
                Some(r.key_id),
                Some(format!(
                    "agent {agent:?} was revoked; enrol it again to accept its evidence"
                )),
            ),
            Some(r) => ("ok", Some(r.key_id), None),
        };
        tracing::info!(agent, status, "Answered a doctor ping");
        let pong = Pong {
            nonce: ping.nonce,
            status: status.into(),
            key_id,
            reason,
            hub_version: env!("CARGO_PKG_VERSION").into(),
        };
        serde_json::to_vec(&pong).map_err(|e| internal("cannot encode the doctor reply", e))
    }
}
