//! HTML pages (minijinja templates) and static files, all embedded in the
//! binary: the installed hub needs no data files. Pages are shells with
//! stable ids; the plain JavaScript in `static/` fills them from the JSON API.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::{context, Environment};

use super::auth::{
    set_cookie, AdminRole, AnyRole, Auth, CurrentUser, InvestigatorRole, OperatorRole, ViewerRole,
    PRELOGIN_COOKIE,
};
use super::error::WebError;
use super::login::{home_for, prelogin_token, secure};
use super::users::Role;
use super::AppState;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("live.html", include_str!("templates/live.html")),
    ("cameras.html", include_str!("templates/cameras.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("event.html", include_str!("templates/event.html")),
    ("search.html", include_str!("templates/search.html")),
    ("recordings.html", include_str!("templates/recordings.html")),
    (
        "admin_users.html",
        include_str!("templates/admin_users.html"),
    ),
    (
        "admin_agents.html",
        include_str!("templates/admin_agents.html"),
    ),
    (
        "admin_settings.html",
        include_str!("templates/admin_settings.html"),
    ),
    (
        "admin_audit.html",
        include_str!("templates/admin_audit.html"),
    ),
];

/// Static files: name, content type, bytes.
const STATIC: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("static/app.js"),
    ),
    (
        "recordings.js",
        "text/javascript; charset=utf-8",
        include_str!("static/recordings.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_str!("static/login.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("static/live.js"),
    ),
    (
        "cameras.js",
        "text/javascript; charset=utf-8",
        include_str!("static/cameras.js"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_str!("static/alerts.js"),
    ),
    (
        "event.js",
        "text/javascript; charset=utf-8",
        include_str!("static/event.js"),
    ),
    (
        "search.js",
        "text/javascript; charset=utf-8",
        include_str!("static/search.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("static/admin.js"),
    ),
];

/// The template environment (autoescaping HTML).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, src) in TEMPLATES {
        // Templates are compiled into the binary and covered by tests.
        if let Err(e) = env.add_template(name, src) {
            tracing::error!(template = name, error = %e, "Bad embedded template");
        }
    }
    env
}

fn render(st: &AppState, name: &str, ctx: minijinja::Value) -> Result<Html<String>, WebError> {
    st.templates
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map(Html)
        .map_err(|e| WebError::internal(format!("cannot render {name}"), e))
}

fn page(
    st: &AppState,
    name: &str,
    user: &CurrentUser,
    title: &str,
    extra: minijinja::Value,
) -> Result<Html<String>, WebError> {
    render(
        st,
        name,
        context! {
            title => title,
            username => user.username,
            csrf => user.csrf,
            is_operator => user.has(Role::Operator),
            is_investigator => user.has(Role::Investigator),
            is_admin => user.has(Role::Admin),
            ..extra
        },
    )
}

/// `GET /static/{name}`.
pub async fn static_file(Path(name): Path<String>) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// `GET /login`: sets the pre-login CSRF cookie.
pub async fn login(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let (token, _) = prelogin_token(&headers)?;
    let html = render(
        &st,
        "login.html",
        context! { title => "Log in", csrf => token },
    )?;
    let mut r = html.into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(PRELOGIN_COOKIE, &token, 3600, secure(&st))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /`: the user's first page.
pub async fn home(Auth(user, _): Auth<AnyRole>) -> Redirect {
    Redirect::to(home_for(&user.roles))
}

/// `GET /live`.
pub async fn live(
    State(st): State<AppState>,
    Auth(u, _): Auth<OperatorRole>,
) -> Result<Html<String>, WebError> {
    page(&st, "live.html", &u, "Live", context! { nav => "live" })
}

/// `GET /cameras`.
pub async fn cameras(
    State(st): State<AppState>,
    Auth(u, _): Auth<OperatorRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "cameras.html",
        &u,
        "Cameras",
        context! { nav => "cameras" },
    )
}

/// `GET /alerts`.
pub async fn alerts(
    State(st): State<AppState>,
    Auth(u, _): Auth<OperatorRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "alerts.html",
        &u,
        "Alerts",
        context! { nav => "alerts" },
    )
}

/// `GET /events/{id}`.
pub async fn event(
    State(st): State<AppState>,
    Auth(u, _): Auth<ViewerRole>,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "event.html",
        &u,
        "Event",
        context! { nav => "event", event_id => id },
    )
}

/// `GET /search`.
pub async fn search(
    State(st): State<AppState>,
    Auth(u, _): Auth<InvestigatorRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "search.html",
        &u,
        "Search",
        context! { nav => "search" },
    )
}

/// `GET /recordings`: completeness timeline, pulls and holds.
pub async fn recordings(
    State(st): State<AppState>,
    Auth(u, _): Auth<ViewerRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "recordings.html",
        &u,
        "Recordings",
        context! { nav => "recordings" },
    )
}

/// `GET /admin/users`.
pub async fn admin_users(
    State(st): State<AppState>,
    Auth(u, _): Auth<AdminRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "admin_users.html",
        &u,
        "Users",
        context! { nav => "users" },
    )
}

/// `GET /admin/agents`.
pub async fn admin_agents(
    State(st): State<AppState>,
    Auth(u, _): Auth<AdminRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "admin_agents.html",
        &u,
        "Agents",
        context! { nav => "agents" },
    )
}

/// `GET /admin/settings`.
pub async fn admin_settings(
    State(st): State<AppState>,
    Auth(u, _): Auth<AdminRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "admin_settings.html",
        &u,
        "Settings",
        context! { nav => "settings" },
    )
}

/// `GET /admin/audit`.
pub async fn admin_audit(
    State(st): State<AppState>,
    Auth(u, _): Auth<AdminRole>,
) -> Result<Html<String>, WebError> {
    page(
        &st,
        "admin_audit.html",
        &u,
        "Audit log",
        context! { nav => "audit" },
    )
}
