//! Every route and the roles it accepts (enforced by each handler's
//! [`Auth`](super::auth::Auth) extractor; `docs/api.md` has the same table
//! and `hub/tests/web_roles.rs` checks every route against every role).
//!
//! | route | roles |
//! | --- | --- |
//! | `GET /login`, `GET /static/{name}`, `GET /api/csrf`, `POST /api/login` | anyone |
//! | `GET /`, `GET /api/session`, `POST /api/logout` | any logged-in user |
//! | `GET /live`, `/cameras`, `/alerts`, `/api/live`, `/api/cameras`, `/api/alerts`, `/media/cameras/...` | operator |
//! | `POST /api/events/{id}/ack|notes|flag`, `POST /api/alerts/{id}/ack` | operator |
//! | `GET /events/{id}`, `/api/events`, `/api/events/{id}`, `/api/clips/{id}`, `/media/events/...`, `/media/clips/...` | operator, investigator |
//! | `GET /search`, `/api/clips`, `/api/exports`, `/media/exports/{id}`, `POST /api/exports`, `POST /api/clips/{id}/verify` | investigator |
//! | `GET /recordings`, `/api/recordings/cameras`, `/api/recordings/{agent}/{camera}/timeline`, `/api/recordings/requests` | operator, investigator |
//! | `POST /api/recordings/requests`, `POST /api/recordings/requests/{id}/release` | investigator |
//! | `/admin/*`, `/api/users*`, `/api/agents*`, `/api/settings`, `/api/audit*` | admin |

use axum::routing::{get, post};
use axum::Router;

use super::{
    admin, alerts, auth, cameras, clips, events, export, live, login, media, pages, recordings,
    security, AppState,
};

/// Builds the router with the session/CSRF and security-header layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        // Pages
        .route("/", get(pages::home))
        .route("/login", get(pages::login))
        .route("/live", get(pages::live))
        .route("/cameras", get(pages::cameras))
        .route("/alerts", get(pages::alerts))
        .route("/events/{id}", get(pages::event))
        .route("/search", get(pages::search))
        .route("/recordings", get(pages::recordings))
        .route("/admin/users", get(pages::admin_users))
        .route("/admin/agents", get(pages::admin_agents))
        .route("/admin/settings", get(pages::admin_settings))
        .route("/admin/audit", get(pages::admin_audit))
        .route("/static/{name}", get(pages::static_file))
        // Session
        .route("/api/csrf", get(login::api_csrf))
        .route("/api/login", post(login::api_login))
        .route("/api/logout", post(login::api_logout))
        .route("/api/session", get(login::api_session))
        // Operator
        .route("/api/live", get(live::sse))
        .route("/api/events", get(events::api_list))
        .route("/api/events/{id}", get(events::api_detail))
        .route("/api/events/{id}/ack", post(events::api_ack))
        .route("/api/events/{id}/notes", post(events::api_note))
        .route("/api/events/{id}/flag", post(events::api_flag))
        .route("/api/cameras", get(cameras::api_wall))
        .route("/api/alerts", get(alerts::api_list))
        .route("/api/alerts/{id}/ack", post(alerts::api_ack))
        // Media
        .route("/media/events/{id}/thumb.jpg", get(media::event_thumb))
        .route(
            "/media/events/{id}/snapshot.jpg",
            get(media::event_snapshot),
        )
        .route(
            "/media/cameras/{agent}/{camera}/snapshot.jpg",
            get(media::camera_snapshot),
        )
        .route("/media/clips/{id}", get(media::clip))
        .route("/media/clips/{id}/download", get(media::clip_download))
        .route("/media/exports/{id}", get(media::export_download))
        // Investigator
        .route("/api/clips", get(clips::api_search))
        .route("/api/clips/{id}", get(clips::api_detail))
        .route("/api/clips/{id}/verify", post(clips::api_verify))
        .route(
            "/api/exports",
            get(export::api_list).post(export::api_create),
        )
        .route("/api/recordings/cameras", get(recordings::api_cameras))
        .route(
            "/api/recordings/{agent}/{camera}/timeline",
            get(recordings::api_timeline),
        )
        .route(
            "/api/recordings/requests",
            get(recordings::api_requests).post(recordings::api_request),
        )
        .route(
            "/api/recordings/requests/{id}/release",
            post(recordings::api_release),
        )
        // Admin
        .route(
            "/api/users",
            get(admin::api_users).post(admin::api_create_user),
        )
        .route("/api/users/{name}/roles", post(admin::api_set_roles))
        .route("/api/users/{name}/disabled", post(admin::api_set_disabled))
        .route("/api/users/{name}/password", post(admin::api_set_password))
        .route(
            "/api/agents",
            get(admin::api_agents).post(admin::api_enroll),
        )
        .route("/api/agents/{id}/revoke", post(admin::api_revoke))
        .route(
            "/api/settings",
            get(admin::api_settings).post(admin::api_set_settings),
        )
        .route("/api/audit", get(admin::api_audit))
        .route("/api/audit/verify", get(admin::api_audit_verify))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::session_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .with_state(state)
}
