//! The hub's web application: the camera room's page, investigators' search
//! and evidence export, administration, roles and the audit log.
//!
//! # Modules
//!
//! - [`db`]: connection pool over `DATA/index.sqlite` and the web's tables.
//! - [`auth`]: sessions, CSRF, login throttling, the [`auth::Auth`] role extractor;
//!   [`users`]: users, roles, argon2 hashes; [`audit`]: the hash-chained audit log.
//! - [`live`]: a poller turning new `events`/`clips`/`alerts` rows (written by the
//!   ingest, any process) into `web_events`/`web_clips` and SSE messages.
//! - [`events`], [`cameras`], [`alerts`], [`media`] (clips with HTTP ranges,
//!   snapshots), [`export`] (evidence bundles), [`admin`]: the JSON API.
//! - [`pages`]: HTML templates and static files, embedded in the binary;
//!   [`security`]: response headers; [`server`]: plain HTTP or TLS (rustls).
//!
//! Route table (path → roles): [`routes::router`] and `docs/api.md`.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod cameras;
pub mod cli;
pub mod clips;
pub mod db;
pub mod error;
pub mod events;
pub mod export;
pub mod live;
pub mod login;
pub mod media;
pub mod pages;
pub mod recordings;
pub mod routes;
pub mod security;
pub mod server;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, watch};

use crate::files::Layout;
pub use auth::RateLimit;
pub use db::Db;
pub use error::WebError;

/// TLS certificate and key (PEM files) for serving HTTPS directly.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert_pem: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_pem: PathBuf,
}

/// Web server settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (port 0 picks a free port). Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The hub's data directory (index, clips, exports).
    pub data_dir: PathBuf,
    /// Serve HTTPS with these files; `None` serves plain HTTP (loopback or
    /// behind a TLS-terminating reverse proxy).
    pub tls: Option<TlsFiles>,
    /// A camera not streaming (or an agent offline) longer than this raises an
    /// alert. Default 120 s.
    pub camera_down_alert_seconds: u64,
    /// A session unused this long ends. Default 12 h (one shift).
    pub session_idle_seconds: u64,
    /// A session ends this long after login whatever happens. Default 24 h.
    pub session_max_seconds: u64,
    /// Mark cookies `Secure` even without `tls` (set it behind an HTTPS reverse proxy).
    /// Always on with `tls`. Default false.
    pub secure_cookies: bool,
    /// Login throttling. Default 5 failures per user / 20 per address in 15 min.
    pub login_rate: RateLimit,
    /// How often the live poller looks for new rows. Default 200 ms.
    pub poll_interval: Duration,
    /// Wakes the live poller before its next tick: `vigil-hub run` hands the same
    /// handle to its ingest, which notifies it after each stored message, so the page
    /// does not wait for the tick (rows written by another process still do).
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./vigil-data"),
            tls: None,
            camera_down_alert_seconds: 120,
            session_idle_seconds: 12 * 3600,
            session_max_seconds: 24 * 3600,
            secure_cookies: false,
            login_rate: RateLimit::default(),
            poll_interval: Duration::from_millis(200),
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// One live update for the SSE stream.
#[derive(Debug, Clone)]
pub struct LiveMsg {
    /// SSE event name: `event`, `alert` or `cameras`.
    pub kind: &'static str,
    /// JSON payload.
    pub data: String,
}

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    /// The index and the web tables.
    pub db: Arc<Db>,
    /// Paths under the data directory (clips by hash, exports).
    pub layout: Layout,
    /// The settings the server was started with.
    pub opts: Arc<Options>,
    /// Live updates (fed by the poller in [`live`]).
    pub live: broadcast::Sender<LiveMsg>,
    /// Becomes true on shutdown, so SSE streams end and connections drain.
    pub shutdown: watch::Receiver<bool>,
    /// Templates (embedded).
    pub templates: Arc<minijinja::Environment<'static>>,
}

/// A bound, not yet running, web server.
pub struct WebServer {
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    local_addr: SocketAddr,
}

/// Binds the listener, opens (and migrates) the index, creates the web tables.
pub async fn bind(opts: Options) -> anyhow::Result<WebServer> {
    let layout = Layout::new(&opts.data_dir);
    std::fs::create_dir_all(layout.root()).with_context(|| {
        format!(
            "cannot create the data directory {}",
            opts.data_dir.display()
        )
    })?;
    // The ingest's tables (and migrations) first, so the web reads a known schema.
    crate::index::Index::open(&layout.index())
        .with_context(|| format!("cannot open the index {}", layout.index().display()))?;
    let db = Db::open(&layout.index()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = match &opts.tls {
        Some(files) => Some(server::tls_acceptor(files)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {} (web)", opts.listen))?;
    let local_addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (live, _) = broadcast::channel(1024);
    let state = AppState {
        db,
        layout,
        opts: Arc::new(opts),
        live,
        shutdown: shutdown_rx,
        templates: Arc::new(pages::environment()),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("web listening on {scheme}://{local_addr}");
    Ok(WebServer {
        listener,
        state,
        shutdown_tx,
        tls,
        local_addr,
    })
}

impl WebServer {
    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then ends SSE streams and drains connections.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let WebServer {
            listener,
            state,
            shutdown_tx,
            tls,
            ..
        } = self;
        let poller = tokio::spawn(live::run_poller(state.clone()));
        let app = routes::router(state.clone());
        let mut stop = state.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = shutdown_tx.send(true);
        });
        let res = server::serve(listener, app, tls, async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await;
        poller.abort();
        res
    }
}
