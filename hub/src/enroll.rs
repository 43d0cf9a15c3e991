//! Agent enrolment: the agent's signing key and its MQTT credentials.
//!
//! `enroll` records the public key (the only key the agent's manifests may be signed
//! with) and issues a fresh random MQTT password. Only a hash of the password is
//! stored (`agents.mqtt_password_hash`): SHA-256 (`sha256:<hex>`), because the
//! password is 192 random bits from the system RNG, where a slow hash adds nothing
//! against guessing and argon2's ~19 MiB and ~20 ms per check throttled 1000 agents
//! logging in again after a hub restart to about 80 a second; agents enrolled before
//! keep their argon2id hash, which still verifies. The embedded broker checks logins
//! against it ([`check_login`]). The MQTT username is the agent id, so the broker can tie a
//! login to the agent's own topics.
//!
//! Rules:
//! 1. Re-enrolling with the same key is idempotent for the key and issues a new
//!    password (the old one stops working).
//! 2. A different key for an enrolled agent is refused unless `replace_key`; the old
//!    key stays in `agent_keys` (marked replaced), stored evidence is untouched.
//! 3. A revoked agent can be enrolled again only with `replace_key` (a revocation
//!    usually means the key is compromised); that clears the revocation.
//! 4. Revoking keeps every stored clip, event and alert; it refuses the agent's
//!    logins and makes ingest reject (and count) its messages.

use std::path::Path;

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use vigil_evidence::keys::PublicKey;

use crate::files::Layout;
use crate::index::{AgentRow, Index};
use crate::topic::valid_id;

/// What `vigil-hub agent add` prints: the agent's identity and its MQTT login.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The agent id (topic segment and MQTT username).
    pub agent_id: String,
    /// Lowercase hex SHA-256 id of the enrolled public key.
    pub key_id: String,
    /// MQTT username for the embedded broker (equal to `agent_id`).
    pub mqtt_username: String,
    /// The new MQTT password, in clear: shown once, only its hash is stored.
    pub mqtt_password: String,
}

/// Result of checking an MQTT login against the enrolled agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Enrolled, not revoked, password matches.
    Accepted,
    /// No agent with that username.
    UnknownUser,
    /// The password does not match (or the agent has none yet).
    BadPassword,
    /// The agent was revoked.
    Revoked,
}

/// Enrolls `agent_id` with `public_key_pem` in the index under `data_dir` (rules 1-3;
/// a different key is refused: see [`enroll_with`] for `--replace-key`).
pub fn enroll(data_dir: &Path, agent_id: &str, public_key_pem: &str) -> anyhow::Result<Enrollment> {
    enroll_with(data_dir, agent_id, public_key_pem, false)
}

/// [`enroll`], with `replace_key` allowing a new key for an enrolled or revoked agent.
pub fn enroll_with(
    data_dir: &Path,
    agent_id: &str,
    public_key_pem: &str,
    replace_key: bool,
) -> anyhow::Result<Enrollment> {
    let index = open_index(data_dir)?;
    enroll_in(&index, agent_id, public_key_pem, replace_key)
}

/// Enrolls into an open index (rules 1-3).
pub fn enroll_in(
    index: &Index,
    agent_id: &str,
    public_key_pem: &str,
    replace_key: bool,
) -> anyhow::Result<Enrollment> {
    if !valid_id(agent_id) {
        anyhow::bail!("agent id {agent_id:?} must be 1-64 characters of A-Z, a-z, 0-9, _ and -");
    }
    let key = PublicKey::from_pem(public_key_pem).context(
        "the public key is not a PEM public key; pass the agent's public key file (vigil-agent keygen prints it)",
    )?;
    let key_id = key.key_id().to_hex();
    if let Some(existing) = index.agent(agent_id)? {
        if existing.revoked_at.is_some() && !replace_key {
            anyhow::bail!(
                "agent {agent_id} is revoked; enroll it again only with a new key and --replace-key"
            );
        }
        if existing.key_id != key_id && !replace_key {
            anyhow::bail!(
                "agent {agent_id} is enrolled with key {}, not {key_id}; if the agent really has a new key, add --replace-key (clips already stored stay as they are)",
                existing.key_id
            );
        }
    }
    let password = random_password()?;
    let hash = hash_token(&password);
    index.enroll_agent(agent_id, &key.to_pem(), &key_id, &hash)?;
    tracing::info!(agent = agent_id, key_id = %key_id, "Enrolled an agent");
    Ok(Enrollment {
        agent_id: agent_id.to_string(),
        key_id,
        mqtt_username: agent_id.to_string(),
        mqtt_password: password,
    })
}

/// Revokes `agent_id` (rule 4); an error if it is not enrolled.
pub fn revoke(data_dir: &Path, agent_id: &str) -> anyhow::Result<()> {
    let index = open_index(data_dir)?;
    if !index.revoke_agent(agent_id)? {
        anyhow::bail!("agent {agent_id:?} is not enrolled (vigil-hub agent list shows who is)");
    }
    tracing::info!(agent = agent_id, "Revoked an agent");
    Ok(())
}

/// Every enrolled agent (revoked ones included), by id.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<AgentRow>> {
    Ok(open_index(data_dir)?.agents()?)
}

/// Checks an MQTT login of an agent (username = agent id).
pub fn check_login(index: &Index, username: &str, password: &str) -> anyhow::Result<Login> {
    if !valid_id(username) {
        return Ok(Login::UnknownUser);
    }
    let Some(agent) = index.agent(username)? else {
        return Ok(Login::UnknownUser);
    };
    if agent.revoked_at.is_some() {
        return Ok(Login::Revoked);
    }
    match agent.mqtt_password_hash {
        Some(h) if verify_mqtt_password(password, &h) => Ok(Login::Accepted),
        _ => Ok(Login::BadPassword),
    }
}

fn open_index(data_dir: &Path) -> anyhow::Result<Index> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    Index::open(&Layout::new(data_dir).index())
        .with_context(|| format!("cannot open the index in {}", data_dir.display()))
}

/// 32 characters of base64url from 24 random bytes (192 bits).
pub fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Prefix of a stored SHA-256 hash of a random MQTT password.
const TOKEN_HASH: &str = "sha256:";

/// The stored form of a random MQTT password: `sha256:<hex of SHA-256>`.
pub fn hash_token(password: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
    format!("{TOKEN_HASH}{}", hex::encode(d.as_ref()))
}

/// True if `password` matches an agent's stored MQTT password hash: `sha256:…` (agents
/// enrolled now) or an argon2id PHC string (agents enrolled before).
pub fn verify_mqtt_password(password: &str, stored: &str) -> bool {
    if stored.starts_with(TOKEN_HASH) {
        constant_time_eq(&hash_token(password), stored)
    } else {
        verify_password(password, stored)
    }
}

/// Whether `a == b`, in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Argon2id PHC string of `password` with a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

/// True if `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_are_sha256_and_old_argon2_hashes_still_verify() -> anyhow::Result<()> {
        let pw = random_password()?;
        let h = hash_token(&pw);
        assert!(h.starts_with("sha256:") && h.len() == 7 + 64, "{h}");
        assert!(verify_mqtt_password(&pw, &h));
        assert!(!verify_mqtt_password("wrong", &h));
        assert!(!verify_mqtt_password(&pw, "sha256:00"));
        let legacy = hash_password(&pw)?;
        assert!(legacy.starts_with("$argon2id$"));
        assert!(verify_mqtt_password(&pw, &legacy));
        assert!(!verify_mqtt_password("wrong", &legacy));
        assert!(!verify_mqtt_password(&pw, "garbage"));
        Ok(())
    }

    const PEM_A: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

    fn pem(dir: &Path, name: &str) -> String {
        let key = vigil_evidence::keys::SigningKey::generate(&dir.join(name)).unwrap();
        key.public_key().to_pem()
    }

    #[test]
    fn enroll_rekey_revoke_and_login() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let a = pem(tmp.path(), "a.key");
        let b = pem(tmp.path(), "b.key");
        let e1 = enroll(&data, "cam-box-1", &a).unwrap();
        assert_eq!(e1.mqtt_username, "cam-box-1");
        let index = Index::open(&Layout::new(&data).index()).unwrap();
        assert_eq!(
            check_login(&index, "cam-box-1", &e1.mqtt_password).unwrap(),
            Login::Accepted
        );
        // Same key again: same key id, new password, the old one stops working.
        let e2 = enroll(&data, "cam-box-1", &a).unwrap();
        assert_eq!(e2.key_id, e1.key_id);
        assert_ne!(e2.mqtt_password, e1.mqtt_password);
        assert_eq!(
            check_login(&index, "cam-box-1", &e1.mqtt_password).unwrap(),
            Login::BadPassword
        );
        // Another key: refused without replace_key, accepted with it.
        let err = enroll(&data, "cam-box-1", &b).unwrap_err().to_string();
        assert!(err.contains("--replace-key"), "{err}");
        let e3 = enroll_with(&data, "cam-box-1", &b, true).unwrap();
        assert_ne!(e3.key_id, e1.key_id);
        assert_eq!(
            check_login(&index, "nobody", "x").unwrap(),
            Login::UnknownUser
        );
        revoke(&data, "cam-box-1").unwrap();
        assert_eq!(
            check_login(&index, "cam-box-1", &e3.mqtt_password).unwrap(),
            Login::Revoked
        );
        assert!(
            enroll(&data, "cam-box-1", &b).is_err(),
            "revoked stays revoked"
        );
        assert!(revoke(&data, "nobody").is_err());
        let agents = list(&data).unwrap();
        assert_eq!(agents.len(), 1);
        assert!(agents[0].revoked_at.is_some());
    }

    #[test]
    fn bad_ids_and_keys_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        assert!(enroll(&data, "../x", PEM_A).is_err());
        assert!(enroll(&data, "a1", "not a key").is_err());
        assert!(list(&data).unwrap().is_empty());
    }
}
