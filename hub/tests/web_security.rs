//! Security over real HTTP: cookie flags, CSRF, login rate limiting, path
//! traversal, security headers, disabled users, the audit chain and the CLI.

mod web_common;

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::json;
use web_common::{TestHub, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_httponly_samesite_strict() {
    let hub = TestHub::start(|_| {}).await;
    let mut s = hub.anon();
    let r = s.try_login("op", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("vigil_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(session.contains("Path=/"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain HTTP test server: no Secure flag"
    );
    // The login page sets the pre-login CSRF cookie the same way.
    let r = hub.anon().req(Method::GET, "/login", None).await;
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        c.starts_with("vigil_prelogin=") && c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookie_flag_when_configured() {
    let hub = TestHub::start(|o| o.secure_cookies = true).await;
    let mut s = hub.anon();
    let r = s.try_login("op", PASSWORD).await;
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(c.contains("; Secure"), "{c}");
    assert!(r.headers().contains_key("strict-transport-security"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_token_required_on_every_state_change() {
    let hub = TestHub::start(|_| {}).await;
    hub.index()
        .insert_event(
            "ev-1",
            "start",
            "agent-1",
            "cam-1",
            &web_common::event_json("ev-1", "start", "cam-1", "person", &[], None),
        )
        .unwrap();
    let op = hub.login("op").await;
    web_common::wait_for(
        "event folded",
        std::time::Duration::from_secs(5),
        || async {
            (op.req(Method::GET, "/api/events/ev-1", None).await.status() == StatusCode::OK)
                .then_some(())
        },
    )
    .await;
    let url = hub.url("/api/events/ev-1/ack");
    // No token.
    let r = op.client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "csrf"
    );
    // Wrong token (right length).
    let r = op
        .client
        .post(&url)
        .header("X-CSRF-Token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another user's token does not work either.
    let other = hub.login("all").await;
    let r = op
        .client
        .post(&url)
        .header("X-CSRF-Token", &other.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Nothing was acknowledged.
    let v = op.json("/api/events/ev-1").await;
    assert!(v["event"]["acked_by"].is_null());
    // The right token.
    let r = op
        .client
        .post(&url)
        .header("X-CSRF-Token", &op.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(op.json("/api/events/ev-1").await["event"]["acked_by"], "op");
    // Login itself needs the pre-login token matching its cookie.
    let anon = hub.anon();
    let r = anon
        .client
        .post(hub.url("/api/login"))
        .json(&json!({"username": "op", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = anon
        .client
        .post(hub.url("/api/login"))
        .header("X-CSRF-Token", "a".repeat(64))
        .json(&json!({"username": "op", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "token without its cookie"
    );
    // A state change without a session is 401, not a CSRF pass.
    let r = hub
        .anon()
        .client
        .post(&url)
        .header("X-CSRF-Token", &op.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited_per_user() {
    let hub = TestHub::start(|_| {}).await;
    let mut s = hub.anon();
    for i in 0..5 {
        let r = s.try_login("op", "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The sixth attempt is refused even with the right password.
    let r = s.try_login("op", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "Retry-After {retry}");
    // Another user from the same address is not locked out (per-IP limit is 20).
    let r = hub.anon().try_login("inv", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Failures were audited.
    let adm = hub.login("adm").await;
    let a = adm.json("/api/audit?limit=500").await;
    let failed = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert_eq!(failed, 5);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited_per_address() {
    let hub = TestHub::start(|o| o.login_rate.per_ip = 3).await;
    for (i, name) in ["nobody1", "nobody2", "nobody3"].iter().enumerate() {
        let r = hub.anon().try_login(name, "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = hub.anon().try_login("op", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_not_paths_no_traversal() {
    let hub = TestHub::start(|_| {}).await;
    let s = hub.login("all").await;
    let attempts = [
        "/media/clips/..%2F..%2F..%2Fetc%2Fpasswd",
        "/media/clips/..%2Findex.sqlite",
        "/media/clips/%2Fetc%2Fpasswd",
        "/media/clips/../../etc/passwd",
        "/media/clips/....//....//etc/passwd/download",
        "/media/exports/..%2F..%2Findex.sqlite",
        "/media/cameras/..%2F..%2F/etc/snapshot.jpg",
        "/media/cameras/agent/..%2Fcam/snapshot.jpg",
        "/media/events/..%2F..%2Findex.sqlite/snapshot.jpg",
        "/static/..%2F..%2FCargo.toml",
        "/static/%2Fetc%2Fpasswd",
        "/static/../../Cargo.toml",
    ];
    for p in attempts {
        let r = s.req(Method::GET, p, None).await;
        let st = r.status();
        let body = r.bytes().await.unwrap();
        assert!(
            st == StatusCode::BAD_REQUEST || st == StatusCode::NOT_FOUND,
            "{p}: {st}"
        );
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("root:")
                && !text.contains("SQLite format")
                && !text.contains("[workspace]"),
            "{p} leaked a file"
        );
    }
    // A well-formed id that is not stored is a 404.
    let r = s
        .req(
            Method::GET,
            "/media/clips/0190f5c2-0000-7000-8000-00000000ffff",
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_and_no_inline_script() {
    let hub = TestHub::start(|_| {}).await;
    let s = hub.login("all").await;
    for p in [
        "/login",
        "/live",
        "/cameras",
        "/alerts",
        "/search",
        "/events/x",
        "/admin/users",
        "/admin/agents",
        "/admin/settings",
        "/admin/audit",
        "/api/session",
    ] {
        let r = s.req(Method::GET, p, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        let h = r.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{p}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store", "{p}");
        let body = r.text().await.unwrap();
        if p != "/api/session" {
            // Every <script> has a src (CSP would block inline code anyway).
            for tag in body.split("<script").skip(1) {
                let head = tag.split('>').next().unwrap();
                assert!(head.contains("src=\"/static/"), "{p}: inline script {head}");
            }
            assert!(!body.contains(" style=\""), "{p}: inline style");
            assert!(!body.contains(" onclick="), "{p}: inline handler");
        }
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_user_and_reset_password_end_sessions() {
    let hub = TestHub::start(|_| {}).await;
    let adm = hub.login("adm").await;
    adm.post(
        "/api/users",
        json!({"username": "carol", "password": "carol password 1", "roles": ["operator"]}),
    )
    .await;
    let mut carol = hub.anon();
    assert_eq!(
        carol.try_login("carol", "carol password 1").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        carol.req(Method::GET, "/api/session", None).await.status(),
        StatusCode::OK
    );
    adm.post("/api/users/carol/disabled", json!({"disabled": true}))
        .await;
    assert_eq!(
        carol.req(Method::GET, "/api/session", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        carol.try_login("carol", "carol password 1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    adm.post("/api/users/carol/disabled", json!({"disabled": false}))
        .await;
    assert_eq!(
        carol.try_login("carol", "carol password 1").await.status(),
        StatusCode::OK
    );
    adm.post(
        "/api/users/carol/password",
        json!({"password": "carol password 2"}),
    )
    .await;
    assert_eq!(
        carol.req(Method::GET, "/api/session", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        carol.try_login("carol", "carol password 1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        carol.try_login("carol", "carol password 2").await.status(),
        StatusCode::OK
    );
    // Roles change at once (server-side check on every request).
    assert_eq!(
        carol.req(Method::GET, "/api/events", None).await.status(),
        StatusCode::OK
    );
    adm.post("/api/users/carol/roles", json!({"roles": ["admin"]}))
        .await;
    assert_eq!(
        carol.req(Method::GET, "/api/events", None).await.status(),
        StatusCode::FORBIDDEN
    );
    // Short passwords and duplicate names are refused.
    let r = adm
        .req(
            Method::POST,
            "/api/users",
            Some(json!({"username": "dave", "password": "short", "roles": ["operator"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = adm
        .req(
            Method::POST,
            "/api/users",
            Some(json!({"username": "carol", "password": "long enough pw", "roles": ["operator"]})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // The last admin cannot be disabled.
    hub.sqlite()
        .execute(
            "UPDATE users SET disabled = 1 WHERE username IN ('all', 'carol')",
            [],
        )
        .unwrap();
    let r = adm
        .req(
            Method::POST,
            "/api/users/adm/disabled",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    hub.stop().await;
}

fn hub_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil-hub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_verifies_and_names_the_first_broken_entry() {
    let hub = TestHub::start(|_| {}).await;
    // First admin from the CLI, password on stdin (never on the command line).
    let mut child = Command::new(hub_bin())
        .args(["user", "add", "boss", "--role", "admin", "--data-dir"])
        .arg(&hub.data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"boss password 123\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let boss = {
        let mut s = hub.anon();
        assert_eq!(
            s.try_login("boss", "boss password 123").await.status(),
            StatusCode::OK
        );
        s
    };
    drop(boss);
    let out = Command::new(hub_bin())
        .args(["user", "list", "--data-dir"])
        .arg(&hub.data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("boss\tadmin\tactive"));
    // Some audited actions.
    let adm = hub.login("adm").await;
    adm.post(
        "/api/settings",
        json!({"retention": {"clip_days": 10, "event_days": 20, "export_days": 5}}),
    )
    .await;
    let v = adm.json("/api/audit/verify").await;
    assert_eq!(v["intact"], true, "{v}");
    let n = v["entries"].as_u64().unwrap();
    assert!(n >= 4, "user_create, logins, settings: {n}");
    let actions: Vec<String> = adm.json("/api/audit?limit=500").await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for a in ["user_create", "login", "settings_update"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    let out = Command::new(hub_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&hub.data)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Alter entry 2 in place: verification names entry 2.
    let actor2: String = hub
        .sqlite()
        .query_row("SELECT actor FROM audit_log WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    hub.sqlite()
        .execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", [])
        .unwrap();
    let out = Command::new(hub_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&hub.data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entry 2"), "{err}");
    let v = adm.json("/api/audit/verify").await;
    assert_eq!(v["intact"], false);
    assert_eq!(v["broken_seq"], 2);
    // Deleting an entry is caught too (restore the alteration first).
    let c = hub.sqlite();
    c.execute("UPDATE audit_log SET actor = ?1 WHERE seq = 2", [&actor2])
        .unwrap();
    assert_eq!(adm.json("/api/audit/verify").await["intact"], true);
    c.execute("DELETE FROM audit_log WHERE seq = 3", [])
        .unwrap();
    let v = adm.json("/api/audit/verify").await;
    assert_eq!(v["broken_seq"], 4, "{v}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &[u8]| {
        let mut c = Command::new(hub_bin())
            .args(args)
            .arg("--data-dir")
            .arg(tmp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may refuse its arguments and exit before reading stdin (EPIPE).
        let _ = c.stdin.take().unwrap().write_all(stdin);
        c.wait_with_output().unwrap()
    };
    let out = run(
        &["user", "add", "x", "--role", "wizard"],
        b"long enough pw\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    let out = run(&["user", "add", "x", "--role", "admin"], b"short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10"));
    let out = run(
        &["user", "add", "x", "--role", "admin,operator"],
        b"long enough pw\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &["user", "add", "x", "--role", "admin"],
        b"long enough pw\n",
    );
    assert!(!out.status.success(), "duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_pages_redirect_to_login_with_safe_next() {
    let hub = TestHub::start(|_| {}).await;
    let r = hub.anon().req(Method::GET, "/events/abc", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/events/abc");
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("text/html"));
    let r = hub.anon().get_with("/live", h).await;
    assert_eq!(r.headers()["location"], "/login?next=/live");
    hub.stop().await;
}
