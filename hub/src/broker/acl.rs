//! What an agent's login may do on the embedded broker: the rules the front
//! ([`super::front`]) applies to every CONNECT, PUBLISH and SUBSCRIBE before the
//! packet reaches rumqttd.
//!
//! An agent logs in with its agent id as username (client id the same, or
//! `{agent}.doctor` for `vigil-agent doctor`). Then:
//!
//! 1. it may publish only agent→hub topics of contract v1 under its own root
//!    `vigil/v1/{agent}/` ([`crate::topic::parse`] names them all); never a hub→agent
//!    topic (`acks`, `doctor/reply`), not even its own, and nothing of another agent;
//! 2. it may subscribe only to filters under its own root, whose agent level is
//!    literal (`vigil/v1/+/acks` and `#` are refused: they would read other agents'
//!    acks and messages);
//! 3. its Last Will may only be its own `status` (retained `offline`): a will on another
//!    agent's topic would be published by the broker under the hub's trust when the
//!    connection drops, so it is refused at CONNECT.
//!
//! A refusal is a [`Denied`] that names the login and what it tried; the front closes
//! the connection, counts it and raises a `forgery` alert.

use crate::topic::{self, Topic, ROOT};

/// Why a login's packet was refused: an operator sentence naming login and topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Rule 1: `login` may publish on `topic`.
pub fn publish(login: &str, topic_str: &str) -> Result<(), Denied> {
    match topic::parse(topic_str) {
        Ok(t) if topic_agent(&t) == login => Ok(()),
        Ok(t) => Err(Denied(format!(
            "login {login:?} published on agent {:?}'s topic {:?}",
            topic_agent(&t),
            topic::shorten(topic_str)
        ))),
        Err(_) => Err(Denied(format!(
            "login {login:?} published on {:?}, which is not one of its agent→hub topics",
            topic::shorten(topic_str)
        ))),
    }
}

/// Rule 2: `login` may subscribe to `filter`.
pub fn subscribe(login: &str, filter: &str) -> Result<(), Denied> {
    let own = format!("{ROOT}{login}/");
    if filter.starts_with(&own) && filter.len() > own.len() {
        Ok(())
    } else {
        Err(Denied(format!(
            "login {login:?} subscribed to {:?}, outside its own topics {own}…",
            topic::shorten(filter)
        )))
    }
}

/// Rule 3: `login`'s Last Will may go to `topic`.
pub fn will(login: &str, topic_str: &str) -> Result<(), Denied> {
    if topic_str == format!("{ROOT}{login}/status") {
        Ok(())
    } else {
        Err(Denied(format!(
            "login {login:?} set its Last Will on {:?}; only {ROOT}{login}/status is allowed",
            topic::shorten(topic_str)
        )))
    }
}

fn topic_agent(t: &Topic) -> &str {
    match t {
        Topic::Status { agent }
        | Topic::Events { agent }
        | Topic::Records { agent }
        | Topic::ClipManifest { agent }
        | Topic::ClipChunk { agent }
        | Topic::Manifest { agent, .. }
        | Topic::Chunk { agent, .. }
        | Topic::Health { agent }
        | Topic::Snapshot { agent, .. }
        | Topic::Drops { agent }
        | Topic::Doctor { agent } => agent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_publishes_only_its_own_agent_to_hub_topics() {
        for sub in [
            "status",
            "events",
            "records",
            "clips/manifest",
            "clips/chunk",
            "clips/0190b7a4-5c8e-7d2a-9f3b-1a2b3c4d5e6f/manifest",
            "clips/0190b7a4-5c8e-7d2a-9f3b-1a2b3c4d5e6f/chunk/3",
            "health",
            "cameras/cam1/snapshot",
            "drops",
            "doctor",
        ] {
            assert_eq!(
                publish("a1", &format!("vigil/v1/a1/{sub}")),
                Ok(()),
                "{sub}"
            );
            let other = publish("b2", &format!("vigil/v1/a1/{sub}"));
            assert!(
                other
                    .as_ref()
                    .is_err_and(|d| d.0.contains("\"b2\"") && d.0.contains("\"a1\"")),
                "{sub}: {other:?}"
            );
        }
        for topic in [
            "vigil/v1/a1/acks",
            "vigil/v1/a1/doctor/reply",
            "vigil/v1/a1/anything",
            "vigil/v1/a1",
            "vigil/v2/a1/events",
            "other/a1/events",
            "",
        ] {
            assert!(publish("a1", topic).is_err(), "{topic:?}");
        }
    }

    #[test]
    fn subscriptions_stay_under_the_own_root() {
        for f in [
            "vigil/v1/a1/acks",
            "vigil/v1/a1/doctor/reply",
            "vigil/v1/a1/#",
        ] {
            assert_eq!(subscribe("a1", f), Ok(()), "{f}");
        }
        for f in [
            "#",
            "vigil/#",
            "vigil/v1/+/acks",
            "vigil/v1/b2/acks",
            "vigil/v1/a1",
            "vigil/v1/a1/",
            "vigil/v1/a10/acks",
            "vigil/v1/a",
        ] {
            assert!(subscribe("a1", f).is_err(), "{f}");
        }
    }

    #[test]
    fn the_last_will_is_the_own_status_only() {
        assert_eq!(will("a1", "vigil/v1/a1/status"), Ok(()));
        for t in [
            "vigil/v1/b2/status",
            "vigil/v1/a1/events",
            "vigil/v1/+/status",
        ] {
            assert!(will("a1", t).is_err(), "{t}");
        }
    }
}
