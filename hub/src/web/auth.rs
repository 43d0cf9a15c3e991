//! Sessions, CSRF, login rate limiting and the role-checking extractor.
//!
//! - Session cookie `vigil_session`: 32 random bytes (hex), `HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, `Secure` when the page is served over
//!   HTTPS (or `Options::secure_cookies`). Only its SHA-256 is stored.
//! - CSRF: every session has its own random token, given to the page in
//!   `<meta name="csrf-token">` and by `GET /api/session`. Every request
//!   other than GET/HEAD must send it in `X-CSRF-Token`; before login the
//!   token is the `vigil_prelogin` cookie's value (double submit).
//! - Roles: handlers take [`Auth<R>`]; `R` lists the roles the route
//!   accepts, so a route without a role check does not compile.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};
use vigil_evidence::digest::Sha256Digest;

use super::db::now;
use super::error::WebError;
use super::users::Role;
use super::AppState;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "vigil_session";
/// Pre-login CSRF cookie name.
pub const PRELOGIN_COOKIE: &str = "vigil_prelogin";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| WebError::internal("cannot get random bytes", "ring SystemRandom failed"))?;
    Ok(hex::encode(b))
}

fn token_hash(token: &str) -> String {
    Sha256Digest::of(token.as_bytes()).to_hex()
}

/// Constant-time comparison of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The logged-in user of a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Row id.
    pub user_id: i64,
    /// Login name (the audit log's actor).
    pub username: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// This session's CSRF token.
    pub csrf: String,
    /// SHA-256 of the session token (to end the session).
    pub session: String,
}

impl CurrentUser {
    /// True if the user holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// The session found (or not) by the session middleware.
#[derive(Debug, Clone)]
pub struct SessionInfo(pub Option<CurrentUser>);

/// Value of cookie `name` in the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value with the flags every cookie of ours carries.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Looks a session token up; refreshes `last_seen` at most once a minute.
pub fn load_session(
    conn: &Connection,
    token: &str,
    idle_seconds: i64,
) -> Result<Option<CurrentUser>, WebError> {
    let h = token_hash(token);
    let row: Option<(i64, String, i64, i64, String, String, i64)> = conn
        .query_row(
            "SELECT s.user_id, s.csrf, s.last_seen, s.expires_at, u.username, u.roles, u.disabled
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_sha256 = ?1",
            params![h],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((user_id, csrf, last_seen, expires_at, username, roles, disabled)) = row else {
        return Ok(None);
    };
    let t = now();
    if disabled != 0 || expires_at <= t || last_seen + idle_seconds <= t {
        conn.execute("DELETE FROM sessions WHERE token_sha256 = ?1", params![h])?;
        return Ok(None);
    }
    if t - last_seen >= 60 {
        conn.execute(
            "UPDATE sessions SET last_seen = ?1 WHERE token_sha256 = ?2",
            params![t, h],
        )?;
    }
    Ok(Some(CurrentUser {
        user_id,
        username,
        roles: roles
            .split(',')
            .filter_map(|r| Role::parse(r).ok())
            .collect(),
        csrf,
        session: h,
    }))
}

/// Creates a session; returns `(token, csrf)`.
pub fn create_session(
    conn: &Connection,
    user_id: i64,
    lifetime_seconds: i64,
) -> Result<(String, String), WebError> {
    let token = random_token()?;
    let csrf = random_token()?;
    let t = now();
    conn.execute(
        "INSERT INTO sessions (token_sha256, user_id, csrf, created_at, last_seen, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![token_hash(&token), user_id, csrf, t, t + lifetime_seconds],
    )?;
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![t])?;
    Ok((token, csrf))
}

/// Ends a session.
pub fn end_session(conn: &Connection, session_hash: &str) -> Result<(), WebError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_sha256 = ?1",
        params![session_hash],
    )?;
    Ok(())
}

/// Login throttling settings.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Failed logins per username within `window_seconds` before refusing.
    pub per_user: i64,
    /// Failed logins per client address within `window_seconds`.
    pub per_ip: i64,
    /// The sliding window.
    pub window_seconds: i64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_user: 5,
            per_ip: 20,
            window_seconds: 900,
        }
    }
}

/// `Err(RateLimited)` if `username` or `ip` has too many recent failures.
pub fn check_rate(
    conn: &Connection,
    rl: RateLimit,
    username: &str,
    ip: &str,
) -> Result<(), WebError> {
    let since = now() - rl.window_seconds;
    for (col, key, max) in [("username", username, rl.per_user), ("ip", ip, rl.per_ip)] {
        let (n, oldest): (i64, Option<i64>) = conn.query_row(
            &format!(
                "SELECT COUNT(*), MIN(at) FROM login_attempts WHERE {col} = ?1 AND ok = 0 AND at > ?2"
            ),
            params![key, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if n >= max {
            let wait = oldest.map_or(rl.window_seconds, |o| o + rl.window_seconds - now());
            return Err(WebError::RateLimited(wait.max(1) as u64));
        }
    }
    Ok(())
}

/// Records a login attempt; a success clears that user's failures.
pub fn record_attempt(
    conn: &Connection,
    username: &str,
    ip: &str,
    ok: bool,
) -> Result<(), WebError> {
    let t = now();
    if ok {
        conn.execute(
            "DELETE FROM login_attempts WHERE username = ?1 AND ok = 0",
            params![username],
        )?;
    }
    conn.execute(
        "INSERT INTO login_attempts (username, ip, ok, at) VALUES (?1, ?2, ?3, ?4)",
        params![username, ip, i64::from(ok), t],
    )?;
    conn.execute(
        "DELETE FROM login_attempts WHERE at < ?1",
        params![t - 86_400],
    )?;
    Ok(())
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Client address (for rate limiting and the audit log).
pub fn client_ip(parts_ext: &axum::http::Extensions) -> String {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Middleware: resolves the session and enforces CSRF on unsafe methods.
pub async fn session_layer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = cookie(req.headers(), SESSION_COOKIE);
    let idle = state.opts.session_idle_seconds as i64;
    let user = match token {
        Some(t) if t.len() == 64 => match state.db.call(move |c| load_session(c, &t, idle)).await {
            Ok(u) => u,
            Err(e) => return e.into_response(),
        },
        _ => None,
    };
    if !is_safe(req.method()) {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let path = req.uri().path();
        let expected = if path == "/api/login" {
            cookie(req.headers(), PRELOGIN_COOKIE)
        } else {
            match &user {
                Some(u) => Some(u.csrf.clone()),
                None => {
                    return WebError::Unauthenticated("log in first".into()).into_response();
                }
            }
        };
        if !expected.is_some_and(|e| same_token(&e, &sent)) {
            return WebError::Csrf(
                "missing or wrong CSRF token (X-CSRF-Token header); reload the page".into(),
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(SessionInfo(user));
    next.run(req).await
}

/// A set of roles a route accepts.
pub trait Allowed: Send + Sync + 'static {
    /// The roles; a user needs at least one of them.
    const ROLES: &'static [Role];
}

/// Operators only.
pub struct OperatorRole;
impl Allowed for OperatorRole {
    const ROLES: &'static [Role] = &[Role::Operator];
}
/// Investigators only.
pub struct InvestigatorRole;
impl Allowed for InvestigatorRole {
    const ROLES: &'static [Role] = &[Role::Investigator];
}
/// Admins only.
pub struct AdminRole;
impl Allowed for AdminRole {
    const ROLES: &'static [Role] = &[Role::Admin];
}
/// Operators and investigators (event detail, clips, snapshots).
pub struct ViewerRole;
impl Allowed for ViewerRole {
    const ROLES: &'static [Role] = &[Role::Operator, Role::Investigator];
}
/// Any logged-in user.
pub struct AnyRole;
impl Allowed for AnyRole {
    const ROLES: &'static [Role] = &[Role::Operator, Role::Investigator, Role::Admin];
}

/// Extractor: the logged-in user, who holds one of `A::ROLES`.
pub struct Auth<A: Allowed>(pub CurrentUser, pub PhantomData<A>);

/// Why [`Auth`] refused a request.
pub enum AuthRejection {
    /// A page request without a session: go to the login page.
    Login(String),
    /// API request without a session, or the wrong role.
    Error(WebError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Login(next) => {
                let mut r = Redirect::to(&format!("/login?next={next}")).into_response();
                *r.status_mut() = StatusCode::SEE_OTHER;
                r
            }
            AuthRejection::Error(e) => e.into_response(),
        }
    }
}

/// Only same-site paths are used for `next` (no open redirect).
pub fn safe_next(path: &str) -> String {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    if ok {
        path.to_string()
    } else {
        "/".to_string()
    }
}

impl<S: Send + Sync, A: Allowed> FromRequestParts<S> for Auth<A> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path();
        let api = path.starts_with("/api/") || path.starts_with("/media/");
        let user = parts
            .extensions
            .get::<SessionInfo>()
            .and_then(|s| s.0.clone());
        let Some(user) = user else {
            return Err(if api {
                AuthRejection::Error(WebError::Unauthenticated(
                    "not logged in (or the session expired); log in at /login".into(),
                ))
            } else {
                AuthRejection::Login(safe_next(parts.uri.path()))
            });
        };
        if A::ROLES.iter().any(|r| user.has(*r)) {
            Ok(Auth(user, PhantomData))
        } else {
            let need: Vec<&str> = A::ROLES.iter().map(|r| r.as_str()).collect();
            Err(AuthRejection::Error(WebError::Forbidden(format!(
                "this needs the role {}; ask an admin",
                need.join(" or ")
            ))))
        }
    }
}
