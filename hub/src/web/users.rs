//! Users, roles and password hashes (argon2id, PHC strings).

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::db::now;
use super::error::WebError;

/// What a user may do. A user holds one or more roles; routes name the roles
/// they accept (there is no hierarchy: an admin who also watches the feed
/// holds `operator` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches the live feed, cameras and alerts; acknowledges events.
    Operator,
    /// Searches clips and events and exports evidence.
    Investigator,
    /// Manages users, agents and settings; reads the audit log.
    Admin,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 3] = [Role::Operator, Role::Investigator, Role::Admin];

    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Investigator => "investigator",
            Role::Admin => "admin",
        }
    }

    /// Parses one role name.
    pub fn parse(s: &str) -> Result<Role, WebError> {
        match s.trim() {
            "operator" => Ok(Role::Operator),
            "investigator" => Ok(Role::Investigator),
            "admin" => Ok(Role::Admin),
            other => Err(WebError::BadRequest(format!(
                "unknown role {other:?}; use operator, investigator or admin"
            ))),
        }
    }

    /// Parses a comma- or space-separated list (at least one role).
    pub fn parse_list(s: &str) -> Result<Vec<Role>, WebError> {
        let mut out: Vec<Role> = s
            .split([',', ' '])
            .filter(|p| !p.trim().is_empty())
            .map(Role::parse)
            .collect::<Result<_, _>>()?;
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(WebError::BadRequest(
                "a user needs at least one role (operator, investigator, admin)".into(),
            ));
        }
        Ok(out)
    }
}

/// Joins roles for storage.
pub fn roles_to_string(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A user as listed to admins (never the hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// Disabled users cannot log in; their sessions end.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Checks a username: 1-64 of `[A-Za-z0-9_.@-]`.
pub fn check_username(name: &str) -> Result<(), WebError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(WebError::BadRequest(format!(
            "username {:?} must be 1-64 of letters, digits, _ - . @",
            name.chars().take(70).collect::<String>()
        )))
    }
}

/// Checks a new password's length.
pub fn check_password(pw: &str) -> Result<(), WebError> {
    if pw.chars().count() < MIN_PASSWORD_LEN || pw.len() > 1024 {
        return Err(WebError::BadRequest(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters (and at most 1024 bytes)"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(pw: &str) -> Result<String, WebError> {
    let mut raw = [0u8; 16];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| WebError::internal("cannot get random bytes", "ring SystemRandom failed"))?;
    let salt = SaltString::encode_b64(&raw)
        .map_err(|e| WebError::internal("cannot encode the salt", e.to_string()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WebError::internal("cannot hash the password", e.to_string()))
}

/// A valid hash of a random password, so unknown users cost as much as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no user has this password").unwrap_or_default())
}

/// True if `pw` matches the PHC string `hash`.
pub fn verify_password(pw: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Creates a user; fails with `Conflict` if the name is taken.
pub fn create(
    conn: &Connection,
    username: &str,
    password: &str,
    roles: &[Role],
) -> Result<i64, WebError> {
    check_username(username)?;
    check_password(password)?;
    if roles.is_empty() {
        return Err(WebError::BadRequest(
            "a user needs at least one role".into(),
        ));
    }
    let hash = hash_password(password)?;
    let t = now();
    let n = conn.execute(
        "INSERT OR IGNORE INTO users (username, password_hash, roles, disabled, created_at, updated_at)
         VALUES (?1, ?2, ?3, 0, ?4, ?4)",
        params![username, hash, roles_to_string(roles), t],
    )?;
    if n == 0 {
        return Err(WebError::Conflict(format!(
            "user {username:?} already exists"
        )));
    }
    Ok(conn.last_insert_rowid())
}

fn parse_roles(s: &str) -> Vec<Role> {
    s.split(',').filter_map(|r| Role::parse(r).ok()).collect()
}

/// Every user, by name.
pub fn list(conn: &Connection) -> Result<Vec<UserInfo>, WebError> {
    let mut stmt = conn
        .prepare("SELECT id, username, roles, disabled, created_at FROM users ORDER BY username")?;
    let rows = stmt.query_map([], |r| {
        Ok(UserInfo {
            id: r.get(0)?,
            username: r.get(1)?,
            roles: parse_roles(&r.get::<_, String>(2)?),
            disabled: r.get::<_, i64>(3)? != 0,
            created_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Checks credentials. Returns the user id and roles on success; `None` for
/// a wrong password, an unknown or a disabled user (all indistinguishable).
pub fn authenticate(
    conn: &Connection,
    username: &str,
    password: &str,
) -> Result<Option<(i64, Vec<Role>)>, WebError> {
    let row: Option<(i64, String, String, i64)> = conn
        .query_row(
            "SELECT id, password_hash, roles, disabled FROM users WHERE username = ?1",
            params![username],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    match row {
        Some((id, hash, roles, disabled)) => {
            let ok = verify_password(password, &hash);
            Ok((ok && disabled == 0).then(|| (id, parse_roles(&roles))))
        }
        None => {
            let _ = verify_password(password, dummy_hash());
            Ok(None)
        }
    }
}

fn user_id(conn: &Connection, username: &str) -> Result<i64, WebError> {
    conn.query_row(
        "SELECT id FROM users WHERE username = ?1",
        params![username],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| WebError::NotFound(format!("no user {username:?}")))
}

/// Replaces a user's roles.
pub fn set_roles(conn: &Connection, username: &str, roles: &[Role]) -> Result<(), WebError> {
    let id = user_id(conn, username)?;
    if roles.is_empty() {
        return Err(WebError::BadRequest(
            "a user needs at least one role".into(),
        ));
    }
    conn.execute(
        "UPDATE users SET roles = ?1, updated_at = ?2 WHERE id = ?3",
        params![roles_to_string(roles), now(), id],
    )?;
    Ok(())
}

/// Disables or enables a user; disabling ends their sessions.
pub fn set_disabled(conn: &Connection, username: &str, disabled: bool) -> Result<(), WebError> {
    let id = user_id(conn, username)?;
    conn.execute(
        "UPDATE users SET disabled = ?1, updated_at = ?2 WHERE id = ?3",
        params![i64::from(disabled), now(), id],
    )?;
    if disabled {
        conn.execute("DELETE FROM sessions WHERE user_id = ?1", params![id])?;
    }
    Ok(())
}

/// Sets a new password and ends the user's sessions.
pub fn set_password(conn: &Connection, username: &str, password: &str) -> Result<(), WebError> {
    check_password(password)?;
    let id = user_id(conn, username)?;
    let hash = hash_password(password)?;
    conn.execute(
        "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3",
        params![hash, now(), id],
    )?;
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", params![id])?;
    Ok(())
}

/// Number of enabled admins (an admin cannot remove the last one).
pub fn enabled_admins(conn: &Connection) -> Result<i64, WebError> {
    let mut stmt = conn.prepare("SELECT roles FROM users WHERE disabled = 0")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut n = 0;
    for r in rows {
        if parse_roles(&r?).contains(&Role::Admin) {
            n += 1;
        }
    }
    Ok(n)
}
