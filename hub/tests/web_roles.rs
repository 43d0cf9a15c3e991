//! Every route against every role (and no session), over real HTTP: the
//! server must refuse what a role may not do, and let through what it may.

mod web_common;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use web_common::TestHub;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Anon,
    Op,
    Inv,
    Adm,
}

const OP: &[Who] = &[Who::Op];
const INV: &[Who] = &[Who::Inv];
const ADM: &[Who] = &[Who::Adm];
const VIEW: &[Who] = &[Who::Op, Who::Inv];
const ANY: &[Who] = &[Who::Op, Who::Inv, Who::Adm];
const PUBLIC: &[Who] = &[Who::Anon, Who::Op, Who::Inv, Who::Adm];

const CLIP: &str = "0190f5c2-0000-7000-8000-000000000001";

/// (method, path, body, roles allowed, is a page).
type Route = (Method, String, Option<Value>, &'static [Who], bool);

/// The routes. The route table of docs/api.md.
fn routes() -> Vec<Route> {
    let g =
        |p: &str, who: &'static [Who], page: bool| (Method::GET, p.to_string(), None, who, page);
    let p =
        |p: &str, b: Value, who: &'static [Who]| (Method::POST, p.to_string(), Some(b), who, false);
    vec![
        g("/login", PUBLIC, true),
        g("/static/app.js", PUBLIC, true),
        g("/static/app.css", PUBLIC, true),
        g("/api/csrf", PUBLIC, false),
        g("/", ANY, true),
        g("/api/session", ANY, false),
        g("/live", OP, true),
        g("/cameras", OP, true),
        g("/alerts", OP, true),
        g("/api/live?probe=1", OP, false),
        g("/api/cameras", OP, false),
        g("/api/alerts", OP, false),
        g("/media/cameras/agent-1/cam-1/snapshot.jpg", OP, false),
        p("/api/events/ev-1/ack", json!({}), OP),
        p("/api/events/ev-1/notes", json!({"text": "seen"}), OP),
        p("/api/events/ev-1/flag", json!({"flagged": true}), OP),
        p("/api/alerts/1/ack", json!({}), OP),
        g("/events/ev-1", VIEW, true),
        g("/api/events", VIEW, false),
        g("/api/events/ev-1", VIEW, false),
        g(&format!("/api/clips/{CLIP}"), VIEW, false),
        g("/media/events/ev-1/thumb.jpg", VIEW, false),
        g("/media/events/ev-1/snapshot.jpg", VIEW, false),
        g(&format!("/media/clips/{CLIP}"), VIEW, false),
        g(&format!("/media/clips/{CLIP}/download"), VIEW, false),
        g("/search", INV, true),
        g("/api/clips", INV, false),
        g("/api/exports", INV, false),
        g(&format!("/media/exports/{CLIP}"), INV, false),
        p(
            "/api/exports",
            json!({"case_number": "C-1", "event_ids": ["ev-1"]}),
            INV,
        ),
        p(&format!("/api/clips/{CLIP}/verify"), json!({}), INV),
        g("/recordings", VIEW, true),
        g("/api/recordings/cameras", VIEW, false),
        g("/api/recordings/agent-1/cam-1/timeline", VIEW, false),
        g("/api/recordings/requests", VIEW, false),
        p(
            "/api/recordings/requests",
            json!({"kind": "pull", "agent_id": "agent-1", "camera_id": "cam-1",
                   "from": "2026-12-04T10:00:00Z", "to": "2026-12-04T10:05:00Z",
                   "case_number": "C-1", "reason": "report"}),
            INV,
        ),
        p(
            &format!("/api/recordings/requests/{CLIP}/release"),
            json!({}),
            INV,
        ),
        g("/admin/users", ADM, true),
        g("/admin/agents", ADM, true),
        g("/admin/settings", ADM, true),
        g("/admin/audit", ADM, true),
        g("/api/users", ADM, false),
        p(
            "/api/users",
            json!({"username": "new-user", "password": "long enough pw", "roles": ["operator"]}),
            ADM,
        ),
        p(
            "/api/users/victim/roles",
            json!({"roles": ["investigator"]}),
            ADM,
        ),
        p(
            "/api/users/victim/password",
            json!({"password": "another long pw"}),
            ADM,
        ),
        p("/api/users/victim/disabled", json!({"disabled": true}), ADM),
        g("/api/agents", ADM, false),
        p(
            "/api/agents",
            json!({"agent_id": "agent-9", "public_key_pem": "not a key"}),
            ADM,
        ),
        p("/api/agents/agent-9/revoke", json!({}), ADM),
        g("/api/settings", ADM, false),
        p(
            "/api/settings",
            json!({"retention": {"clip_days": 7, "event_days": 30, "export_days": 7}}),
            ADM,
        ),
        g("/api/audit", ADM, false),
        g("/api/audit/verify", ADM, false),
        p("/api/logout", json!({}), ANY),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_its_role() {
    let hub = TestHub::start(|_| {}).await;
    // Something for the id routes to find.
    let idx = hub.index();
    idx.insert_event(
        "ev-1",
        "start",
        "agent-1",
        "cam-1",
        &web_common::event_json("ev-1", "start", "cam-1", "person", &["door"], None),
    )
    .unwrap();
    hub.sqlite()
        .execute("INSERT INTO alerts (kind, agent_id, camera_id, detail, at) VALUES ('missing_clip', 'agent-1', 'cam-1', 'seq 3 missing', 1)", [])
        .unwrap();
    let mut checked = 0;
    for (method, path, body, allowed, page) in routes() {
        for who in [Who::Anon, Who::Op, Who::Inv, Who::Adm] {
            // Fresh sessions: logout and password resets end sessions.
            let s = match who {
                Who::Anon => hub.anon(),
                Who::Op => hub.login("op").await,
                Who::Inv => hub.login("inv").await,
                Who::Adm => hub.login("adm").await,
            };
            if path.starts_with("/api/users/victim") {
                let db = vigil_hub::web::Db::open(&hub.data.join("index.sqlite")).unwrap();
                db.with(|c| {
                    let _ = c.execute("DELETE FROM users WHERE username = 'victim'", []);
                    vigil_hub::web::users::create(
                        c,
                        "victim",
                        "victim password",
                        &[vigil_hub::web::users::Role::Operator],
                    )?;
                    Ok(())
                })
                .unwrap();
            }
            if path == "/api/users" && method == Method::POST {
                hub.sqlite()
                    .execute("DELETE FROM users WHERE username = 'new-user'", [])
                    .unwrap();
            }
            // (SSE never ends: only its status and headers are read.)
            let resp = s.req(method.clone(), &path, body.clone()).await;
            let st = resp.status();
            let ok = allowed.contains(&who);
            let ctx = format!("{method} {path} as {who:?} -> {st}");
            if ok {
                if st == StatusCode::SEE_OTHER {
                    let loc = resp.headers()["location"].to_str().unwrap().to_string();
                    assert!(!loc.starts_with("/login"), "{ctx}: sent to {loc}");
                    checked += 1;
                    continue;
                }
                assert!(
                    st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                    "{ctx}: expected access, body {}",
                    resp.text().await.unwrap_or_default()
                );
                assert!(st != StatusCode::INTERNAL_SERVER_ERROR, "{ctx}");
            } else if who == Who::Anon {
                if page {
                    assert_eq!(st, StatusCode::SEE_OTHER, "{ctx}");
                    let loc = resp.headers()["location"].to_str().unwrap().to_string();
                    assert!(loc.starts_with("/login"), "{ctx}: to {loc}");
                } else {
                    assert_eq!(st, StatusCode::UNAUTHORIZED, "{ctx}");
                }
            } else {
                assert_eq!(st, StatusCode::FORBIDDEN, "{ctx}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes().len() * 4);
    hub.stop().await;
}
