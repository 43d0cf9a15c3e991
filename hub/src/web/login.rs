//! Login, logout and the session endpoint.

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::audit;
use super::auth::{
    self, cookie, create_session, set_cookie, AnyRole, Auth, PRELOGIN_COOKIE, SESSION_COOKIE,
};
use super::error::WebError;
use super::users;
use super::AppState;

/// Body of `POST /api/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// True if cookies must carry `Secure`.
pub fn secure(st: &AppState) -> bool {
    st.opts.secure_cookies || st.opts.tls.is_some()
}

/// A pre-login CSRF token: the cookie's value (reused if already set).
pub fn prelogin_token(headers: &HeaderMap) -> Result<(String, bool), WebError> {
    match cookie(headers, PRELOGIN_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => Ok((t, false)),
        _ => Ok((auth::random_token()?, true)),
    }
}

/// `GET /api/csrf`: the pre-login CSRF token (also sets its cookie), for API clients.
pub async fn api_csrf(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (t, _) = prelogin_token(&headers)?;
    let mut r = Json(json!({"csrf": t})).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(PRELOGIN_COOKIE, &t, 3600, secure(&st))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /api/login`: checks the rate limit, then the password; sets the session cookie.
pub async fn api_login(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Json(body): Json<LoginBody>,
) -> Result<Response, WebError> {
    let ip = peer.ip().to_string();
    let rl = st.opts.login_rate;
    let lifetime = st.opts.session_max_seconds as i64;
    let name = body.username.trim().to_string();
    if name.is_empty() || name.len() > 64 || body.password.len() > 1024 {
        return Err(WebError::BadRequest(
            "username (1-64 bytes) and password are required".into(),
        ));
    }
    let (token, csrf, roles) = st
        .db
        .call(move |c| {
            auth::check_rate(c, rl, &name, &ip)?;
            let who = users::authenticate(c, &name, &body.password)?;
            auth::record_attempt(c, &name, &ip, who.is_some())?;
            let Some((uid, roles)) = who else {
                audit::append(c, &name, "login_failed", &name, &json!({"ip": ip}))?;
                return Err(WebError::Unauthenticated(
                    "wrong username or password (or the account is disabled)".into(),
                ));
            };
            let (token, csrf) = create_session(c, uid, lifetime)?;
            audit::append(c, &name, "login", &name, &json!({"ip": ip}))?;
            Ok((token, csrf, roles))
        })
        .await?;
    let mut r =
        Json(json!({"csrf": csrf, "roles": roles, "home": home_for(&roles)})).into_response();
    let s = secure(&st);
    for c in [
        set_cookie(SESSION_COOKIE, &token, lifetime, s),
        set_cookie(PRELOGIN_COOKIE, "", 0, s),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(r)
}

/// The first page for a user with `roles`.
pub fn home_for(roles: &[users::Role]) -> &'static str {
    if roles.contains(&users::Role::Operator) {
        "/live"
    } else if roles.contains(&users::Role::Investigator) {
        "/search"
    } else {
        "/admin/users"
    }
}

/// `POST /api/logout`.
pub async fn api_logout(
    State(st): State<AppState>,
    Auth(user, _): Auth<AnyRole>,
) -> Result<Response, WebError> {
    st.db
        .call(move |c| {
            auth::end_session(c, &user.session)?;
            audit::append(c, &user.username, "logout", &user.username, &json!({}))?;
            Ok(())
        })
        .await?;
    let mut r = Json(json!({"ok": true})).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0, secure(&st))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /api/session`: who am I, my roles and CSRF token.
pub async fn api_session(Auth(user, _): Auth<AnyRole>) -> Json<serde_json::Value> {
    Json(json!({
        "username": user.username, "roles": user.roles, "csrf": user.csrf,
        "home": home_for(&user.roles),
    }))
}
