//! Administration: users, agents (enrol, revoke), retention settings, and
//! the audit log (view, verify).

use axum::extract::{Path, Query, State};
use axum::Json;
use rusqlite::{params, Connection};
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit;
use super::auth::{AdminRole, Auth};
use super::db::{is_missing_table, now};
use super::error::WebError;
use super::users::{self, Role};
use super::AppState;
use crate::topic::valid_id;

/// Body of `POST /api/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Initial password.
    pub password: String,
    /// Roles (`operator`, `investigator`, `admin`).
    pub roles: Vec<String>,
}

fn roles_of(v: &[String]) -> Result<Vec<Role>, WebError> {
    Role::parse_list(&v.join(","))
}

/// `GET /api/users`.
pub async fn api_users(
    State(st): State<AppState>,
    _a: Auth<AdminRole>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(|c| Ok(Json(json!({"users": users::list(c)?}))))
        .await
}

/// `POST /api/users`.
pub async fn api_create_user(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Json(b): Json<NewUser>,
) -> Result<Json<Value>, WebError> {
    let roles = roles_of(&b.roles)?;
    st.db
        .call(move |c| {
            let id = users::create(c, &b.username, &b.password, &roles)?;
            audit::append(
                c,
                &admin.username,
                "user_create",
                &b.username,
                &json!({"roles": users::roles_to_string(&roles)}),
            )?;
            Ok(Json(
                json!({"id": id, "username": b.username, "roles": roles}),
            ))
        })
        .await
}

/// Body of `POST /api/users/{name}/roles`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesBody {
    /// The new set of roles.
    pub roles: Vec<String>,
}

fn would_remove_last_admin(
    c: &Connection,
    name: &str,
    keeps_admin: bool,
) -> Result<bool, WebError> {
    if keeps_admin {
        return Ok(false);
    }
    let is_enabled_admin = users::list(c)?
        .iter()
        .any(|u| u.username == name && !u.disabled && u.roles.contains(&Role::Admin));
    Ok(is_enabled_admin && users::enabled_admins(c)? <= 1)
}

/// `POST /api/users/{name}/roles`.
pub async fn api_set_roles(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Path(name): Path<String>,
    Json(b): Json<RolesBody>,
) -> Result<Json<Value>, WebError> {
    let roles = roles_of(&b.roles)?;
    st.db
        .call(move |c| {
            if would_remove_last_admin(c, &name, roles.contains(&Role::Admin))? {
                return Err(WebError::Conflict(
                    "this is the last enabled admin; make another admin first".into(),
                ));
            }
            users::set_roles(c, &name, &roles)?;
            audit::append(
                c,
                &admin.username,
                "user_roles",
                &name,
                &json!({"roles": users::roles_to_string(&roles)}),
            )?;
            Ok(Json(json!({"username": name, "roles": roles})))
        })
        .await
}

/// Body of `POST /api/users/{name}/disabled`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledBody {
    /// Disable (true) or enable (false).
    pub disabled: bool,
}

/// `POST /api/users/{name}/disabled`.
pub async fn api_set_disabled(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Path(name): Path<String>,
    Json(b): Json<DisabledBody>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(move |c| {
            if b.disabled && would_remove_last_admin(c, &name, false)? {
                return Err(WebError::Conflict(
                    "this is the last enabled admin; make another admin first".into(),
                ));
            }
            users::set_disabled(c, &name, b.disabled)?;
            let action = if b.disabled {
                "user_disable"
            } else {
                "user_enable"
            };
            audit::append(c, &admin.username, action, &name, &json!({}))?;
            Ok(Json(json!({"username": name, "disabled": b.disabled})))
        })
        .await
}

/// Body of `POST /api/users/{name}/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The new password.
    pub password: String,
}

/// `POST /api/users/{name}/password`: reset (ends the user's sessions).
pub async fn api_set_password(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Path(name): Path<String>,
    Json(b): Json<PasswordBody>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(move |c| {
            users::set_password(c, &name, &b.password)?;
            audit::append(c, &admin.username, "user_password_reset", &name, &json!({}))?;
            Ok(Json(json!({"username": name, "password_reset": true})))
        })
        .await
}

/// `GET /api/agents`: enrolled agents, keys, last contact.
pub async fn api_agents(
    State(st): State<AppState>,
    _a: Auth<AdminRole>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(|c| {
            let mut s = c.prepare(
                "SELECT a.agent_id, a.key_id, a.public_key_pem, a.enrolled_at, a.revoked_at,
                        s.json, s.received_at
                 FROM agents a LEFT JOIN agent_status s ON s.agent_id = a.agent_id ORDER BY a.agent_id",
            )?;
            let rows = s.query_map([], |r| {
                Ok(json!({
                    "agent_id": r.get::<_, String>(0)?, "key_id": r.get::<_, String>(1)?,
                    "public_key_pem": r.get::<_, String>(2)?, "enrolled_at": r.get::<_, i64>(3)?,
                    "revoked_at": r.get::<_, Option<i64>>(4)?,
                    "status": r.get::<_, Option<String>>(5)?.and_then(|j| serde_json::from_str::<Value>(&j).ok()),
                    "last_contact": r.get::<_, Option<i64>>(6)?,
                }))
            })?;
            let agents = rows.collect::<Result<Vec<_>, _>>()?;
            // Later contact from health reports, when that table exists.
            let mut health = std::collections::BTreeMap::new();
            match c.prepare("SELECT agent_id, MAX(received_at) FROM camera_health GROUP BY agent_id") {
                Ok(mut s) => {
                    for r in s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                        let (a, t) = r?;
                        health.insert(a, t);
                    }
                }
                Err(e) if is_missing_table(&e) => {}
                Err(e) => return Err(e.into()),
            }
            let agents: Vec<Value> = agents
                .into_iter()
                .map(|mut a| {
                    if let Some(t) = a["agent_id"].as_str().and_then(|id| health.get(id)) {
                        let lc = a["last_contact"].as_i64().unwrap_or(0).max(*t);
                        a["last_contact"] = json!(lc);
                    }
                    a
                })
                .collect();
            Ok(Json(json!({"agents": agents, "now": now()})))
        })
        .await
}

/// Body of `POST /api/agents`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// Agent id: 1-64 of `[A-Za-z0-9_-]`.
    pub agent_id: String,
    /// The agent's public key, SPKI PEM (`pubkey.pem` on the agent).
    pub public_key_pem: String,
    /// Allow a different key for an enrolled or revoked agent.
    #[serde(default)]
    pub replace_key: bool,
}

/// `POST /api/agents`: enrols an agent; the MQTT password is shown once.
pub async fn api_enroll(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Json(b): Json<EnrollBody>,
) -> Result<Json<Value>, WebError> {
    if !valid_id(&b.agent_id) {
        return Err(WebError::BadRequest(
            "agent_id must be 1-64 of [A-Za-z0-9_-]".into(),
        ));
    }
    let data = st.opts.data_dir.clone();
    st.db
        .call(move |c| {
            let e =
                crate::enroll::enroll_with(&data, &b.agent_id, &b.public_key_pem, b.replace_key)
                    .map_err(|e| WebError::BadRequest(format!("{e:#}")))?;
            audit::append(
                c,
                &admin.username,
                "agent_enroll",
                &e.agent_id,
                &json!({"key_id": e.key_id, "replace_key": b.replace_key}),
            )?;
            Ok(Json(json!({
                "agent_id": e.agent_id, "key_id": e.key_id,
                "mqtt_username": e.mqtt_username, "mqtt_password": e.mqtt_password,
            })))
        })
        .await
}

/// `POST /api/agents/{id}/revoke`.
pub async fn api_revoke(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, WebError> {
    if !valid_id(&agent) {
        return Err(WebError::BadRequest(
            "agent_id must be 1-64 of [A-Za-z0-9_-]".into(),
        ));
    }
    let data = st.opts.data_dir.clone();
    st.db
        .call(move |c| {
            crate::enroll::revoke(&data, &agent)
                .map_err(|e| WebError::NotFound(format!("{e:#}")))?;
            audit::append(c, &admin.username, "agent_revoke", &agent, &json!({}))?;
            Ok(Json(json!({"agent_id": agent, "revoked": true})))
        })
        .await
}

/// Retention settings (days; 0 keeps forever). Stored in `settings`;
/// enforcing them (deleting old clips and events) is not part of the web app.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days to keep clips not flagged or exported.
    pub clip_days: u32,
    /// Days to keep events.
    pub event_days: u32,
    /// Days to keep export zips.
    pub export_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            clip_days: 30,
            event_days: 90,
            export_days: 30,
        }
    }
}

/// The stored retention settings (defaults where unset).
pub fn retention(conn: &Connection) -> Result<Retention, WebError> {
    let mut r = Retention::default();
    let mut s = conn.prepare("SELECT key, value FROM settings WHERE key LIKE 'retention.%'")?;
    for row in s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (k, v) = row?;
        let Ok(n) = v.parse::<u32>() else { continue };
        match k.as_str() {
            "retention.clip_days" => r.clip_days = n,
            "retention.event_days" => r.event_days = n,
            "retention.export_days" => r.export_days = n,
            _ => {}
        }
    }
    Ok(r)
}

/// `GET /api/settings`.
pub async fn api_settings(
    State(st): State<AppState>,
    _a: Auth<AdminRole>,
) -> Result<Json<Value>, WebError> {
    let down = st.opts.camera_down_alert_seconds;
    st.db
        .call(move |c| {
            Ok(Json(
                json!({"retention": retention(c)?, "camera_down_alert_seconds": down}),
            ))
        })
        .await
}

/// `POST /api/settings`: body `{"retention": {...}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    /// New retention settings.
    pub retention: Retention,
}

/// `POST /api/settings`.
pub async fn api_set_settings(
    State(st): State<AppState>,
    Auth(admin, _): Auth<AdminRole>,
    Json(b): Json<SettingsBody>,
) -> Result<Json<Value>, WebError> {
    let r = b.retention;
    if [r.clip_days, r.event_days, r.export_days]
        .iter()
        .any(|d| *d > 36_500)
    {
        return Err(WebError::BadRequest(
            "retention days must be 0-36500 (0 keeps forever)".into(),
        ));
    }
    st.db
        .call(move |c| {
            for (k, v) in [
                ("retention.clip_days", r.clip_days),
                ("retention.event_days", r.event_days),
                ("retention.export_days", r.export_days),
            ] {
                c.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(key) DO UPDATE SET value = ?2, updated_at = ?3, updated_by = ?4",
                    params![k, v.to_string(), now(), admin.username],
                )?;
            }
            audit::append(c, &admin.username, "settings_update", "retention", &serde_json::to_value(&r).unwrap_or(Value::Null))?;
            Ok(Json(json!({"retention": r})))
        })
        .await
}

/// Query of `GET /api/audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries with a smaller seq (next page).
    pub before: Option<i64>,
    /// Page size 1-500 (default 100).
    pub limit: Option<i64>,
}

/// `GET /api/audit`: entries, newest first.
pub async fn api_audit(
    State(st): State<AppState>,
    _a: Auth<AdminRole>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, WebError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    st.db
        .call(move |c| {
            let entries = audit::page(c, q.before, limit)?;
            let next = (entries.len() as i64 == limit)
                .then(|| entries.last().map(|e| e.seq))
                .flatten();
            Ok(Json(json!({"entries": entries, "next_before": next})))
        })
        .await
}

/// `GET /api/audit/verify`: recomputes the whole chain.
pub async fn api_audit_verify(
    State(st): State<AppState>,
    _a: Auth<AdminRole>,
) -> Result<Json<Value>, WebError> {
    st.db
        .call(|c| {
            Ok(Json(
                serde_json::to_value(audit::verify(c)?).unwrap_or(Value::Null),
            ))
        })
        .await
}
