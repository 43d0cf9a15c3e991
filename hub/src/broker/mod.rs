//! The embedded MQTT broker run by `vigil-hub run` when `broker.mode = "embedded"`:
//! rumqttd 0.20 (MQTT 3.1.1) on a loopback port of its own, behind the hub's front
//! ([`front`]), which is what agents reach, over plain TCP and/or TLS ([`tls`]).
//!
//! ```text
//! agents ─▶ front (listen / tls_listen): TLS, login, per-agent ACL (acl.rs), limits
//!              └─▶ rumqttd on 127.0.0.1:<free port> ◀─ the hub's own ingest client
//! ```
//!
//! Logins: the front checks every agent's CONNECT (the hash of the password from
//! `vigil-hub agent add`, client id = username or username + `.doctor`, revoked and
//! unknown refused with a CONNACK code) and forwards it with a per-start token as the
//! password; rumqttd's auth hook ([`rumqttd::ConnectionSettings::set_auth_handler`])
//! accepts agents only with that token, and the hub's ingest client as
//! [`INTERNAL_USER`] with its own random password. Agents are refused until the ingest
//! client's subscriptions are acknowledged, so nothing an agent publishes can arrive
//! before the hub listens (rumqttd starts a new subscription at the end of its log).
//!
//! rumqttd keeps an in-memory log per subscription filter, bounded by
//! `max_segment_size × max_segment_count`; a consumer that falls behind further loses
//! the oldest messages: the clip protocol heals it (the agent re-sends its manifest
//! every 10 s) and so do end-to-end entry acks (an event the hub never acknowledged is
//! published again).
//!
//! rumqttd binds its listener itself and has no TCP_NODELAY setting, so [`start`] sets
//! it on that listening socket once it is up ([`set_listener_nodelay`]); Linux copies
//! the option to every connection the listener accepts (the front's).

pub mod acl;
pub mod front;
pub mod tls;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttd::{Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};

use crate::config::Secret;
use crate::enroll::{constant_time_eq, random_password};
use crate::files::Layout;
use crate::index::Index;
use crate::metrics::FrontCounters;
use crate::topic::valid_id;
use crate::uplink::MAX_PACKET;

pub use front::FrontLimits;
pub use tls::{CertInfo, CertSource};

/// Username and client id of the hub's own ingest client.
pub const INTERNAL_USER: &str = "hub.ingest";

/// What `[broker.embedded]` asks for.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Plain MQTT listener (`listen`; None = off).
    pub listen: Option<SocketAddr>,
    /// MQTT over TLS (`tls_listen`) and where its certificate comes from.
    pub tls: Option<(SocketAddr, CertSource)>,
    /// Bounds of the front.
    pub limits: FrontLimits,
}

impl EmbeddedOptions {
    /// Plain MQTT on `listen` with the default limits (tests, the simplest set-up).
    pub fn plain(listen: SocketAddr) -> EmbeddedOptions {
        EmbeddedOptions {
            listen: Some(listen),
            tls: None,
            limits: FrontLimits::default(),
        }
    }
}

/// A running embedded broker.
pub struct EmbeddedBroker {
    /// rumqttd's own loopback address, where the hub's ingest client connects.
    pub internal: SocketAddr,
    /// The plain MQTT listener of the front (the real port when 0 was asked for).
    pub plain: Option<SocketAddr>,
    /// The TLS listener of the front.
    pub tls: Option<SocketAddr>,
    /// The TLS certificate in use (CA file and fingerprint for agents).
    pub cert: Option<CertInfo>,
    /// The ingest client's password for this run.
    pub internal_password: Secret,
    /// Set by the ingest client once it is subscribed; agents are refused until then.
    pub ingest_ready: Arc<AtomicBool>,
    /// What the front did with connections (metrics).
    pub counters: Arc<FrontCounters>,
}

impl EmbeddedBroker {
    /// Where the ingest client connects: rumqttd itself, on loopback.
    pub fn loopback(&self) -> SocketAddr {
        self.internal
    }
}

/// Binds a public listener of the front (a clear error for a busy port).
fn bind(listen: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(listen).with_context(|| {
        format!("broker.embedded.{key}: cannot listen on {listen}; is another broker running there? pick another port")
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Starts rumqttd on a free loopback port and the front on the configured listeners,
/// and returns once all of them accept.
///
/// The broker and the front run on their own threads until the process exits
/// (rumqttd has no stop).
pub fn start(options: EmbeddedOptions, data_dir: &Path) -> anyhow::Result<EmbeddedBroker> {
    if options.listen.is_none() && options.tls.is_none() {
        anyhow::bail!("the embedded broker has no listener: set broker.embedded.listen and/or broker.embedded.tls_listen");
    }
    raise_open_files_limit();
    // Public listeners first: a busy port or a bad certificate is the likely error.
    let plain = options.listen.map(|l| bind(l, "listen")).transpose()?;
    let (tls_listener, cert_info) = match &options.tls {
        Some((addr, source)) => {
            let info = tls::prepare(source)?;
            let cert = tls::ReloadingCert::new(&info)?;
            (Some((bind(*addr, "tls_listen")?, cert)), Some(info))
        }
        None => (None, None),
    };
    let internal_password = Secret(random_password()?);
    let token = random_password()?;
    let ingest_ready = Arc::new(AtomicBool::new(false));
    let internal = start_rumqttd(Authenticator {
        internal_password: internal_password.0.clone(),
        token: token.clone(),
        ingest_ready: ingest_ready.clone(),
    })?;
    let counters = Arc::new(FrontCounters::default());
    let index = Arc::new(Mutex::new(Index::open(&Layout::new(data_dir).index())?));
    let front = Arc::new(front::Front {
        internal,
        token,
        index,
        ingest_ready: ingest_ready.clone(),
        logins: tokio::sync::Semaphore::new(options.limits.login_concurrency.max(1)),
        limits: options.limits.clone(),
        counters: counters.clone(),
        addresses: Mutex::new(HashMap::new()),
        pending: Mutex::new(0),
        alerted: Mutex::new(HashMap::new()),
        log_budget: front::LogBudget::default(),
    });
    let plain_addr = plain.as_ref().map(|l| l.local_addr()).transpose()?;
    let tls_addr = tls_listener
        .as_ref()
        .map(|(l, _)| l.local_addr())
        .transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mqtt-front")
        .enable_all()
        .build()
        .context("cannot start the broker front's runtime")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    std::thread::Builder::new()
        .name("mqtt-front".into())
        .spawn(move || {
            rt.block_on(async move {
                let listeners = match front_listeners(plain, tls_listener) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let tasks: Vec<_> = listeners
                    .into_iter()
                    .map(|l| tokio::spawn(front::serve(front.clone(), l)))
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
        .context("cannot start the broker front's thread")?;
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("the broker front did not start within 10 s")??;
    if let Some(a) = plain_addr {
        tracing::info!("broker listening on {a}");
    }
    if let (Some(a), Some(info)) = (tls_addr, &cert_info) {
        let ca = info
            .ca_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the CA that signed broker.embedded.tls_cert".into());
        tracing::info!(
            fingerprint = %info.fingerprint,
            ca_file = %ca,
            "broker listening with TLS on {a}"
        );
    }
    Ok(EmbeddedBroker {
        internal,
        plain: plain_addr,
        tls: tls_addr,
        cert: cert_info,
        internal_password,
        ingest_ready,
        counters,
    })
}

/// Raises this process's soft limit of open files to the hard one (at most 65536): each
/// agent on the embedded broker holds three descriptors here (its connection, the
/// front's connection to rumqttd and rumqttd's side of it), and running out of them
/// would also fail the index's and the web page's file opens. The hub's unit sets
/// `LimitNOFILE=65536`; started by hand, the soft limit is often 1024.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = lim.rlim_max.min(65_536);
        if lim.rlim_cur < want {
            let before = lim.rlim_cur;
            lim.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::info!(
                    from = before,
                    to = want,
                    "Raised the open-files limit for the embedded broker's connections"
                );
            }
        }
        if lim.rlim_cur < 4096 {
            tracing::warn!(limit = lim.rlim_cur, "The open-files limit is low: about a third of it can be agents on the embedded broker; raise it (LimitNOFILE in the unit)");
        }
    }
}

/// The front's listeners on its runtime, and the certificate reload task.
fn front_listeners(
    plain: Option<TcpListener>,
    tls_listener: Option<(TcpListener, Arc<tls::ReloadingCert>)>,
) -> anyhow::Result<Vec<front::Listener>> {
    let mut listeners = Vec::new();
    if let Some(l) = plain {
        listeners.push(front::Listener::Plain(tokio::net::TcpListener::from_std(
            l,
        )?));
    }
    if let Some((l, cert)) = tls_listener {
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config()?);
        listeners.push(front::Listener::Tls(
            tokio::net::TcpListener::from_std(l)?,
            acceptor,
        ));
        tokio::spawn(async move {
            let mut every = tokio::time::interval(tls::RELOAD_EVERY);
            loop {
                every.tick().await;
                let c = cert.clone();
                let _ = tokio::task::spawn_blocking(move || c.reload_if_changed()).await;
            }
        });
    }
    Ok(listeners)
}

/// Starts rumqttd on a free loopback port with `auth` as its login hook and waits
/// until it accepts.
fn start_rumqttd(auth: Authenticator) -> anyhow::Result<SocketAddr> {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free loopback port for the embedded broker")?;
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PACKET,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id, user, pass| {
        let ok = auth.check(&client_id, &user, &pass);
        async move { ok }
    });
    let server = ServerSettings {
        name: "vigil-mqtt".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    // Per-filter commit logs. Each message in a log is a slice of the network read
    // buffer it arrived in, so it keeps that whole buffer (often with a chunk's bytes)
    // alive until its segment is dropped. Chunk filters (the fixed topic, and the
    // per-clip topics of the first agents) get 4 x 8 MiB: several clips' in-flight
    // windows. Manifest filters get 2 x 256 KiB: an agent has one clip in transfer and
    // sends its manifest again after 10 s without an answer, so a manifest the hub had
    // not read when its segment went is only late; kept longer, 1000 manifests pinned
    // ~1000 read buffers (`bench/memory.sh`).
    let chunks = SegmentConfig {
        max_segment_size: 8 * 1024 * 1024,
        max_segment_count: 4,
    };
    let manifests = SegmentConfig {
        max_segment_size: 256 * 1024,
        max_segment_count: 2,
    };
    let custom: HashMap<String, SegmentConfig> = [
        ("vigil/v1/+/clips/chunk", chunks.clone()),
        ("vigil/v1/+/clips/+/chunk/+", chunks),
        ("vigil/v1/+/clips/manifest", manifests.clone()),
        ("vigil/v1/+/clips/+/manifest", manifests),
    ]
    .into_iter()
    .map(|(filter, segments)| (filter.to_string(), segments))
    .collect();
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1024,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 4,
            custom_segment: Some(custom),
            initialized_filters: None,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "The embedded broker stopped");
            }
        })
        .context("cannot start the broker thread")?;
    // Listening once binding the same address fails (a TCP probe would make rumqttd
    // log an aborted CONNECT as an error).
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpListener::bind(addr).is_ok() {
        if Instant::now() > deadline {
            anyhow::bail!("the embedded broker did not start listening on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match set_listener_nodelay(addr) {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(%addr, "The embedded broker's listening socket was not found, so its connections keep Nagle's algorithm: every small ack waits up to ~40 ms for a delayed ACK (deliveries ~8x slower). Use an external broker with TCP_NODELAY if that matters")
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "Cannot set TCP_NODELAY on the embedded broker's listening socket: every small ack may wait ~40 ms for a delayed ACK (deliveries ~8x slower). Use an external broker with TCP_NODELAY if that matters")
        }
    }
    Ok(addr)
}

/// Sets TCP_NODELAY on rumqttd's listening socket for `addr`; every connection it accepts
/// from then on inherits the option. Returns whether the listener was found.
///
/// The broker's PUBACKs and SUBACKs, and the event messages it forwards, are small
/// writes the other side waits for. With Nagle's algorithm a small write waits while an
/// earlier one is unacknowledged, and the peer delays its ACK (~40 ms): delivering 100
/// clips and 1000 event messages took 9.2 s through the embedded broker, 1.1 s through
/// Mosquitto with `set_tcp_nodelay true` and 9.3 s with it false (`bench/memory.sh`'s
/// hub ingest, smaller).
fn set_listener_nodelay(addr: SocketAddr) -> std::io::Result<bool> {
    let found = find_socket(|s| {
        s.is_listener().unwrap_or(false)
            && s.local_addr().ok().and_then(|a| a.as_socket()) == Some(addr)
    })?;
    match found {
        Some(fd) => {
            socket2::SockRef::from(&fd).set_tcp_nodelay(true)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The first of this process's sockets for which `pick` is true, as a duplicate
/// descriptor.
///
/// Only descriptors that `/proc/self/fd` shows as sockets are looked at, and they are
/// borrowed, never duplicated and closed: closing any descriptor of a file drops every
/// POSIX record lock this process holds on it, and SQLite locks its database that way
/// (an earlier version duplicated and closed every descriptor, which released the
/// index's locks and let another connection reset its WAL index under the hub). Only
/// the socket picked is duplicated, for the caller; closing a socket's duplicate
/// releases nothing.
///
/// If another thread closes a listed number meanwhile and it is reused, the checks
/// fail (`ENOTSOCK`, `EBADF`) or look at the new socket, which `pick` then judges on
/// its own addresses; nothing is closed or changed here either way.
fn find_socket(pick: impl Fn(&socket2::SockRef<'_>) -> bool) -> std::io::Result<Option<OwnedFd>> {
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:["));
        if !is_socket {
            continue;
        }
        // SAFETY: the borrow ends within this iteration and nothing closes it; if the
        // number was closed meanwhile, the socket calls below fail with EBADF.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        if pick(&socket2::SockRef::from(&borrowed)) {
            return borrowed.try_clone_to_owned().map(Some);
        }
    }
    Ok(None)
}

/// rumqttd's login hook: the hub's ingest client, and agents the front let through.
#[derive(Clone)]
struct Authenticator {
    internal_password: String,
    /// What the front puts in an agent's forwarded CONNECT (invariant 3 of `front`).
    token: String,
    ingest_ready: Arc<AtomicBool>,
}

impl Authenticator {
    fn check(&self, client_id: &str, user: &str, pass: &str) -> bool {
        if user == INTERNAL_USER {
            let ok = client_id == INTERNAL_USER && constant_time_eq(pass, &self.internal_password);
            if !ok {
                tracing::warn!(client_id = %crate::topic::shorten(client_id), "Refused an MQTT login as the hub's internal user");
            }
            return ok;
        }
        // The front checked the password, the client id and the hub's readiness; here
        // only that the connection came through it (a local process on rumqttd's port
        // does not know the token).
        let ok = valid_id(user)
            && (client_id == user || client_id == format!("{user}.doctor"))
            && self.ingest_ready.load(Ordering::SeqCst)
            && constant_time_eq(pass, &self.token);
        if !ok {
            tracing::warn!(user = %crate::topic::shorten(user), "Refused an MQTT login on the broker's internal port (not through its front)");
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accepted side of the connection from `peer` to `broker`, once the broker
    /// has accepted it (within 10 s).
    fn accepted(broker: SocketAddr, peer: SocketAddr) -> OwnedFd {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = find_socket(|s| {
                s.local_addr().ok().and_then(|a| a.as_socket()) == Some(broker)
                    && s.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer)
            });
            match found {
                Ok(Some(fd)) => return fd,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    panic!("the broker did not accept a connection from {peer} within 10 s")
                }
                Err(e) => panic!("cannot list this process's sockets: {e}"),
            }
        }
    }

    /// A POSIX record lock request for writing the whole file (as SQLite takes them).
    fn whole_file_write_lock() -> libc::flock {
        // SAFETY: flock is plain data; all zeroes is a valid value (start 0, len 0 = to EOF).
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock
    }

    /// Whether another process sees a POSIX write lock on `path` (as SQLite's are).
    fn locked_for_other_processes(path: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        let mut lock = whole_file_write_lock();
        // SAFETY: the child only makes async-signal-safe calls (open, fcntl, _exit).
        match unsafe { libc::fork() } {
            0 => unsafe {
                let fd = libc::open(c_path.as_ptr(), libc::O_RDWR);
                let ok = fd >= 0
                    && libc::fcntl(fd, libc::F_GETLK, &mut lock) == 0
                    && lock.l_type != libc::F_UNLCK as libc::c_short;
                libc::_exit(if ok { 0 } else { 1 })
            },
            pid if pid > 0 => {
                let mut status = 0;
                // SAFETY: waits for the child forked above.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
            }
            _ => panic!("fork failed: {}", std::io::Error::last_os_error()),
        }
    }

    #[test]
    fn looking_for_the_listener_keeps_the_index_file_locks() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("index.sqlite");
        let file = std::fs::File::create(&path)?;
        let lock = whole_file_write_lock();
        // SAFETY: fcntl reads the flock value for a descriptor this test owns.
        let set =
            unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_SETLK, &lock) };
        assert_eq!(set, 0, "cannot lock {}", path.display());
        assert!(locked_for_other_processes(&path), "the lock is visible");
        let _listener = TcpListener::bind("127.0.0.1:0")?;
        assert!(find_socket(|_| false)?.is_none());
        assert!(
            locked_for_other_processes(&path),
            "scanning the descriptors released this process's lock on a file"
        );
        Ok(())
    }

    #[test]
    fn connections_to_the_embedded_broker_have_tcp_nodelay() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let broker = start(EmbeddedOptions::plain("127.0.0.1:0".parse()?), dir.path())?;
        let front = broker
            .plain
            .ok_or_else(|| anyhow::anyhow!("a plain listener"))?;
        let client = std::net::TcpStream::connect(front)?;
        let server_side = accepted(front, client.local_addr()?);
        assert!(
            socket2::SockRef::from(&server_side).tcp_nodelay()?,
            "the broker's side of an agent connection must not delay small acks (Nagle)"
        );
        // The client's own side is untouched: only the broker's sockets are changed.
        assert!(!client.nodelay()?);
        Ok(())
    }
}
