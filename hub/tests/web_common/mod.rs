//! Shared pieces of the web tests: a hub web server on port 0 with one user
//! per role, logged-in HTTP clients, and fixture rows written through the
//! hub's own `Index` / `Ingest` (a second connection, like the real ingest).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use vigil_hub::web::{self, users::Role, Db, Options};

/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery";

/// Test users: (name, roles).
pub const USERS: &[(&str, &[Role])] = &[
    ("op", &[Role::Operator]),
    ("inv", &[Role::Investigator]),
    ("adm", &[Role::Admin]),
    ("all", &[Role::Operator, Role::Investigator, Role::Admin]),
];

/// A running web server over a temp data dir.
pub struct TestHub {
    /// Keeps the data dir alive.
    pub tmp: tempfile::TempDir,
    /// The data dir.
    pub data: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Root certificate clients trust (TLS tests).
    pub root: Option<reqwest::Certificate>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestHub {
    /// Starts a server with default options (tweaked by `f`) and the test users.
    pub async fn start(f: impl FnOnce(&mut Options)) -> TestHub {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        Self::start_in(tmp, data, f).await
    }

    /// Starts a server over an existing data dir (users are added if missing).
    pub async fn start_in(
        tmp: tempfile::TempDir,
        data: PathBuf,
        f: impl FnOnce(&mut Options),
    ) -> TestHub {
        let mut opts = Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.clone(),
            poll_interval: Duration::from_millis(50),
            ..Options::default()
        };
        f(&mut opts);
        let tls = opts.tls.is_some();
        let root = opts
            .tls
            .as_ref()
            .map(|t| reqwest::Certificate::from_pem(&std::fs::read(&t.cert_pem).unwrap()).unwrap());
        let server = web::bind(opts).await.unwrap();
        let db = Db::open(&data.join("index.sqlite")).unwrap();
        db.with(|c| {
            for (name, roles) in USERS {
                let exists: i64 = c
                    .query_row(
                        "SELECT COUNT(*) FROM users WHERE username = ?1",
                        [name],
                        |r| r.get(0),
                    )
                    .unwrap();
                if exists == 0 {
                    web::users::create(c, name, PASSWORD, roles)?;
                }
            }
            Ok(())
        })
        .unwrap();
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://{}", server.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestHub {
            tmp,
            data,
            base,
            root,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client without a session (cookies kept, redirects not followed).
    pub fn anon(&self) -> Session {
        Session {
            client: client(self.root.clone()),
            csrf: String::new(),
            base: self.base.clone(),
        }
    }

    /// Logs `user` in.
    pub async fn login(&self, user: &str) -> Session {
        let mut s = self.anon();
        let r = s.try_login(user, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK, "login of {user}");
        let v: Value = r.json().await.unwrap();
        s.csrf = v["csrf"].as_str().unwrap().to_string();
        s
    }

    /// A second connection to the index, as the ingest has.
    pub fn index(&self) -> vigil_hub::index::Index {
        vigil_hub::index::Index::open(&self.data.join("index.sqlite")).unwrap()
    }

    /// Raw SQLite connection (for tampering in tests).
    pub fn sqlite(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.data.join("index.sqlite")).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("server stops within 10 s")
                .unwrap()
                .unwrap();
        }
    }
}

fn client(root: Option<reqwest::Certificate>) -> Client {
    let mut b = Client::builder();
    if let Some(r) = root {
        b = b.add_root_certificate(r);
    }
    b.cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A client with a cookie jar and (after login) a CSRF token.
pub struct Session {
    /// The HTTP client (cookie store on).
    pub client: Client,
    /// CSRF token for unsafe methods.
    pub csrf: String,
    base: String,
}

impl Session {
    /// Gets the pre-login token and posts the credentials.
    pub async fn try_login(&mut self, user: &str, pw: &str) -> reqwest::Response {
        let t: Value = self
            .client
            .get(format!("{}/api/csrf", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["csrf"].as_str().unwrap().to_string();
        self.client
            .post(format!("{}/api/login", self.base))
            .header("X-CSRF-Token", token)
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap()
    }

    /// Sends a request; unsafe methods carry the CSRF token and a JSON body.
    pub async fn req(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut rb = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if method != Method::GET && method != Method::HEAD {
            rb = rb.header("X-CSRF-Token", &self.csrf);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.unwrap()
    }

    /// GET with extra headers.
    pub async fn get_with(&self, path: &str, headers: HeaderMap) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .headers(headers)
            .send()
            .await
            .unwrap()
    }

    /// GET returning JSON (asserting 200).
    pub async fn json(&self, path: &str) -> Value {
        let r = self.req(Method::GET, path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// POST returning JSON (asserting 200).
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.req(Method::POST, path, Some(body)).await;
        let st = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(st, StatusCode::OK, "POST {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// An agent `EventMessage` as JSON text.
pub fn event_json(
    id: &str,
    phase: &str,
    camera: &str,
    label: &str,
    zones: &[&str],
    clip: Option<&str>,
) -> String {
    // A 1x1 JPEG is enough for the thumbnail/snapshot routes.
    let jpeg = base64_jpeg();
    json!({
        "phase": phase,
        "event": {
            "id": id, "camera_id": camera, "label": label, "top_score": 0.87,
            "best_box": {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 220.0},
            "zones": zones, "start_utc": "2026-11-23T10:00:00Z",
            "end_utc": if phase == "end" { json!("2026-11-23T10:00:12Z") } else { Value::Null },
            "start_pts_ms": 1000, "end_pts_ms": if phase == "end" { json!(13000) } else { Value::Null },
            "end_reason": if phase == "end" { json!("left") } else { Value::Null },
            "previous_event_id": null, "clip_id": clip,
            "snapshot": {"pts_ms": 1500, "score": 0.87, "box": {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 220.0},
                         "width": 640, "height": 360, "jpeg": jpeg, "thumbnail": jpeg}
        }
    })
    .to_string()
}

/// Base64 of a tiny JPEG (SOI/EOI markers suffice for the routes).
pub fn base64_jpeg() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode([0xFFu8, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0xFF, 0xD9])
}

/// Polls `f` until it returns `Some` or `deadline` passes.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sample footage (made by scripts/setup.sh).
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/samples/vtest.mp4")
}

/// Cuts `secs` seconds at `start` from the sample (stream copy, faststart).
pub fn cut(dir: &Path, name: &str, start: u32, secs: u32) -> Vec<u8> {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            &start.to_string(),
            "-t",
            &secs.to_string(),
            "-i",
        ])
        .arg(sample())
        .args(["-an", "-c", "copy", "-movflags", "+faststart"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(st.success(), "ffmpeg failed");
    std::fs::read(&out).unwrap()
}

/// A fake agent that signs clips with a real key and chain and delivers them
/// through the hub's real `Ingest` (verification, content-addressed store, index).
pub struct FakeAgent {
    /// Agent id.
    pub agent_id: String,
    /// Camera id.
    pub camera_id: String,
    key: vigil_evidence::keys::SigningKey,
    chain: vigil_evidence::chain::ChainStore,
    /// The public key PEM file (for `vigil-verify --trust`).
    pub pem_path: PathBuf,
}

impl FakeAgent {
    /// A new agent with its key and chain under `dir`, enrolled at the hub.
    pub fn new(dir: &Path, data: &Path, agent_id: &str, camera_id: &str) -> FakeAgent {
        let key = vigil_evidence::keys::SigningKey::generate(&dir.join(format!("{agent_id}.key")))
            .unwrap();
        let pem_path = dir.join(format!("{agent_id}.pub.pem"));
        std::fs::write(&pem_path, key.public_key().to_pem()).unwrap();
        let chain = vigil_evidence::chain::ChainStore::open(&dir.join(format!("{agent_id}-chain")))
            .unwrap();
        vigil_hub::enroll::enroll(data, agent_id, &key.public_key().to_pem()).unwrap();
        FakeAgent {
            agent_id: agent_id.into(),
            camera_id: camera_id.into(),
            key,
            chain,
            pem_path,
        }
    }

    /// Signs `bytes` as the next clip (listing `events`) and delivers it; returns the clip id.
    pub fn deliver(&mut self, data: &Path, bytes: &[u8], events: &[(&str, &str)]) -> String {
        use base64::Engine;
        use vigil_evidence::manifest::{ClockSync, EventRef, ManifestDraft};
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut hub = vigil_hub::Ingest::open(data).unwrap();
        let now = time::OffsetDateTime::now_utc();
        if let Some(reset) = self
            .chain
            .ensure_segment(&self.key, &self.agent_id, "0.1.0", &self.camera_id, now)
            .unwrap()
        {
            let msg = json!({"kind": "chain_reset", "record_b64": b64.encode(reset.canonical_bytes()),
                "signature": reset.signature_file()});
            let out = hub.handle(
                &format!("vigil/v1/{}/records", self.agent_id),
                msg.to_string().as_bytes(),
            );
            assert!(out.rejected.is_none(), "reset rejected: {:?}", out.rejected);
        }
        let draft = ManifestDraft {
            agent_id: self.agent_id.clone(),
            agent_version: "0.1.0".into(),
            camera_id: self.camera_id.clone(),
            clip_id: uuid::Uuid::now_v7(),
            start: now - time::Duration::seconds(4),
            end: now,
            clock_sync: ClockSync::Unknown,
            events: events
                .iter()
                .map(|(id, label)| EventRef {
                    id: (*id).to_string(),
                    label: (*label).to_string(),
                })
                .collect(),
            clip: vigil_evidence::clip::ClipDescription::from_mp4(bytes).unwrap(),
            model: None,
            part: None,
            piece: None,
        };
        let m = self.chain.sign_clip(&self.key, draft).unwrap();
        let chunk = vigil_hub::ingest::CHUNK_SIZE;
        let size = m.record().file.size;
        let clip_id = m.record().clip_id.hyphenated().to_string();
        let msg = json!({"manifest_b64": b64.encode(m.canonical_bytes()), "signature": m.signature_file(),
            "size": size, "chunk_size": chunk, "chunks": size.div_ceil(chunk)});
        let out = hub.handle(
            &format!("vigil/v1/{}/clips/{clip_id}/manifest", self.agent_id),
            msg.to_string().as_bytes(),
        );
        let (_, ack) = out.ack.expect("manifest acked");
        let mut last = None;
        for n in ack.missing {
            let s = (n * chunk) as usize;
            let part = &bytes[s..(s + chunk as usize).min(bytes.len())];
            let out = hub.handle(
                &format!("vigil/v1/{}/clips/{clip_id}/chunk/{n}", self.agent_id),
                part,
            );
            assert!(out.rejected.is_none(), "chunk rejected: {:?}", out.rejected);
            if let Some((_, a)) = out.ack {
                last = Some(a.status);
            }
        }
        assert_eq!(last, Some(vigil_hub::AckStatus::Stored), "clip stored");
        clip_id
    }
}
