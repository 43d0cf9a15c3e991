//! The embedded broker's front door: every agent connection ends here (plain TCP or
//! TLS), is checked packet by packet, and only then reaches rumqttd, which listens on
//! loopback only.
//!
//! ```text
//! agent ─TCP/TLS─▶ front (this file)                         ─loopback TCP─▶ rumqttd
//!                  1. TLS handshake + CONNECT within connect_timeout
//!                  2. CONNECT: client id rule, Last Will ACL, password check
//!                     (at most `login_concurrency` at once: agents enrolled before
//!                     SHA-256 hashes have argon2 ones; failures throttle the address)
//!                  3. CONNECT forwarded with the front's token as password
//!                  4. every packet framed and checked: size, type, PUBLISH topic and
//!                     SUBSCRIBE filters against the login (acl.rs) ─────────────▶
//!                  ◀──────────────────────────── broker → agent bytes copied back
//! ```
//!
//! Why a front and not rumqttd's own listener: rumqttd 0.20 has no per-user topic ACLs,
//! its TLS feature pulls a second, older rustls, and its listener cannot bound logins
//! per address. The front uses the hub's rustls (ring provider) and the MQTT codec of
//! rumqttc (`mqttbytes::v4`), so no packet is parsed by hand-written code.
//!
//! Invariants:
//! 1. rumqttd sees a connection only after the front accepted its CONNECT: a client that
//!    never logs in costs the front one small buffer for at most `connect_timeout`.
//! 2. Every byte an agent sends reaches rumqttd inside a whole, parsed packet that the
//!    ACL allowed; one refused packet closes the connection (MQTT 3.1.1 has no way to
//!    refuse a PUBLISH), so nothing after it is forwarded either.
//! 3. rumqttd accepts agent logins only with the front's token (random per start), so a
//!    local process that reaches rumqttd's loopback port directly cannot log in as an
//!    agent.
//! 4. Unauthenticated connections are bounded per address (`max_pending_per_address`)
//!    and in all (`max_pending`); authenticated ones by the enrolled agents (one session
//!    per client id: rumqttd drops the older one).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Login as MqttLogin, Packet, Publish, Subscribe,
};
use rumqttc::mqttbytes::{self, PacketType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::acl::{self, Denied};
use super::INTERNAL_USER;
use crate::enroll::{check_login, Login};
use crate::index::{AlertKind, Index};
use crate::metrics::FrontCounters;
use crate::topic::shorten;

/// Largest CONNECT accepted (client id, will and login: a few hundred bytes in practice).
const MAX_CONNECT: usize = 64 * 1024;
/// Read buffer kept between packets; a larger one (a clip chunk) is given back once empty.
const KEEP_BUFFER: usize = 64 * 1024;
/// Idle limit for a client that asked for no keep-alive (MQTT's keep_alive = 0).
const NO_KEEPALIVE_IDLE: Duration = Duration::from_secs(300);
/// How long failed logins of an address are remembered, and how long it is refused
/// once it has too many.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// At most one `forgery` alert per login in this time (every attempt is counted).
const ALERT_EVERY: Duration = Duration::from_secs(60);

/// `[broker.embedded]` limits of the front.
#[derive(Debug, Clone)]
pub struct FrontLimits {
    /// TLS handshake and CONNECT must be done within this (slow-loris bound).
    pub connect_timeout: Duration,
    /// Unauthenticated connections at once from one address.
    pub max_pending_per_address: usize,
    /// Unauthenticated connections at once in all.
    pub max_pending: usize,
    /// Login checks running at once (an argon2 one, for agents enrolled before SHA-256
    /// password hashes, takes ~19 MiB of scratch memory and ~20 ms).
    pub login_concurrency: usize,
    /// Failed logins from one address within a minute before it is refused for a minute.
    pub max_failed_logins: u32,
    /// Largest packet forwarded, bytes (a larger one closes the connection).
    pub max_packet: usize,
}

impl Default for FrontLimits {
    fn default() -> Self {
        FrontLimits {
            connect_timeout: Duration::from_secs(10),
            max_pending_per_address: 32,
            max_pending: 1024,
            login_concurrency: 2,
            max_failed_logins: 10,
            max_packet: crate::uplink::MAX_PACKET,
        }
    }
}

/// One public listener of the front: plain MQTT or MQTT over TLS.
pub enum Listener {
    /// `mqtt://`.
    Plain(TcpListener),
    /// `mqtts://`, with the acceptor whose certificate may be reloaded.
    Tls(TcpListener, tokio_rustls::TlsAcceptor),
}

/// Shared state of every connection.
pub(super) struct Front {
    /// rumqttd's loopback listener.
    pub internal: SocketAddr,
    /// The password the front puts in forwarded CONNECTs (invariant 3).
    pub token: String,
    /// Enrolled agents (logins) and alerts.
    pub index: Arc<Mutex<Index>>,
    /// Agents are refused until the hub's ingest client listens.
    pub ingest_ready: Arc<AtomicBool>,
    pub limits: FrontLimits,
    pub counters: Arc<FrontCounters>,
    /// Bounds login checks at once.
    pub logins: Semaphore,
    /// Per address: unauthenticated connections and recent failed logins.
    pub addresses: Mutex<HashMap<IpAddr, AddressState>>,
    /// Unauthenticated connections in all.
    pub pending: Mutex<usize>,
    /// When each login last raised a `forgery` alert.
    pub alerted: Mutex<HashMap<String, Instant>>,
    /// Refused connections logged at info level (the rest at debug; all are counted).
    pub log_budget: LogBudget,
}

/// At most [`LogBudget::PER_MINUTE`] log lines a minute: a flood of hostile connections
/// must not flood the log (and the disk) too; the counters keep the full numbers.
#[derive(Debug, Default)]
pub(super) struct LogBudget(Mutex<(Option<Instant>, u32)>);

impl LogBudget {
    const PER_MINUTE: u32 = 30;

    /// Whether one more line may be logged now.
    pub fn take(&self) -> bool {
        let mut g = lock(&self.0);
        if g.0.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            if g.1 > Self::PER_MINUTE {
                tracing::info!(
                    suppressed = g.1 - Self::PER_MINUTE,
                    "More broker connections were refused in the last minute than logged (see vigil_hub_broker_connections_total)"
                );
            }
            *g = (Some(Instant::now()), 0);
        }
        g.1 += 1;
        g.1 <= Self::PER_MINUTE
    }
}

#[derive(Debug, Default)]
pub(super) struct AddressState {
    pending: usize,
    failures: u32,
    window_start: Option<Instant>,
}

/// Holds one unauthenticated slot of an address; released on drop.
struct Pending {
    front: Arc<Front>,
    ip: IpAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut map = lock(&self.front.addresses);
        if let Some(s) = map.get_mut(&self.ip) {
            s.pending = s.pending.saturating_sub(1);
            let stale = s.window_start.is_none_or(|t| t.elapsed() > FAILURE_WINDOW);
            if s.pending == 0 && stale {
                map.remove(&self.ip);
            }
        }
        drop(map);
        let mut p = lock(&self.front.pending);
        *p = p.saturating_sub(1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a connection ended early (counted by [`Refusal::counter`], logged once).
#[derive(Debug)]
enum Refusal {
    Timeout,
    Protocol(String),
    TooLarge(usize),
    Denied(Denied),
    Login(String),
    Io(std::io::Error),
}

impl Refusal {
    fn counter(&self) -> &'static str {
        match self {
            Refusal::Timeout => "connect_timeout",
            Refusal::Protocol(_) => "protocol_error",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Denied(_) => "forgery",
            Refusal::Login(_) => "login_refused",
            Refusal::Io(_) => "io_error",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Timeout => {
                f.write_str("no TLS handshake and CONNECT within the connect timeout")
            }
            Refusal::Protocol(why) => write!(f, "not MQTT 3.1.1: {why}"),
            Refusal::TooLarge(n) => write!(f, "a {n}-byte packet, over the limit"),
            Refusal::Denied(d) => write!(f, "{d}"),
            Refusal::Login(why) => write!(f, "login refused: {why}"),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Io(e)
    }
}

/// Accepts on `listener` until the process ends.
pub(super) async fn serve(front: Arc<Front>, listener: Listener) {
    let (tcp, tls) = match listener {
        Listener::Plain(l) => (l, None),
        Listener::Tls(l, a) => (l, Some(a)),
    };
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, "The broker cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(pending) = admit(&front, peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        front.counters.add("accepted");
        let (front, tls) = (front.clone(), tls.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + front.limits.connect_timeout;
            let result = match tls {
                None => connection(&front, stream, peer, pending, deadline).await,
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(&front, s, peer, pending, deadline).await,
                        Ok(Err(e)) => {
                            front.counters.add("tls_failed");
                            if front.log_budget.take() {
                                tracing::info!(%peer, error = %e, "Refused a broker connection: TLS handshake failed (plain MQTT on the TLS port, or a client that does not trust the hub's CA)");
                            }
                            Ok(())
                        }
                        Err(_) => Err(Refusal::Timeout),
                    }
                }
            };
            if let Err(r) = result {
                front.counters.add(r.counter());
                match &r {
                    Refusal::Denied(d) => {
                        tracing::warn!(%peer, "Refused a forged message and closed the connection: {d}")
                    }
                    Refusal::Io(e) => tracing::debug!(%peer, error = %e, "Broker connection ended"),
                    other if front.log_budget.take() => {
                        tracing::info!(%peer, reason = %other, "Closed a broker connection")
                    }
                    other => tracing::debug!(%peer, reason = %other, "Closed a broker connection"),
                }
            }
        });
    }
}

/// Takes an unauthenticated slot for `ip`, or refuses (None) when the address has too
/// many connections waiting to log in, too many failed logins, or the front is full.
fn admit(front: &Arc<Front>, ip: IpAddr) -> Option<Pending> {
    let limits = &front.limits;
    {
        let mut total = lock(&front.pending);
        if *total >= limits.max_pending {
            front.counters.add("pending_limit");
            return None;
        }
        let mut map = lock(&front.addresses);
        let s = map.entry(ip).or_default();
        if s.window_start.is_some_and(|t| t.elapsed() > FAILURE_WINDOW) {
            s.failures = 0;
            s.window_start = None;
        }
        if s.failures >= limits.max_failed_logins {
            front.counters.add("throttled");
            return None;
        }
        if s.pending >= limits.max_pending_per_address {
            front.counters.add("pending_limit");
            return None;
        }
        s.pending += 1;
        *total += 1;
    }
    Some(Pending {
        front: front.clone(),
        ip,
    })
}

fn record_failure(front: &Front, ip: IpAddr) {
    let mut map = lock(&front.addresses);
    let s = map.entry(ip).or_default();
    if s.window_start.is_none() {
        s.window_start = Some(Instant::now());
    }
    s.failures += 1;
    if s.failures == front.limits.max_failed_logins {
        tracing::warn!(%ip, failures = s.failures, "Too many failed broker logins from this address; refusing it for a minute");
    }
}

/// One client connection: CONNECT, login, then the two pumps.
async fn connection<S>(
    front: &Arc<Front>,
    mut client: S,
    peer: SocketAddr,
    pending: Pending,
    deadline: tokio::time::Instant,
) -> Result<(), Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut buf = BytesMut::with_capacity(1024);
    let connect = tokio::time::timeout_at(deadline, read_connect(&mut client, &mut buf))
        .await
        .map_err(|_| Refusal::Timeout)??;
    let login = match accept_login(front, &connect, peer, deadline).await {
        Ok(user) => user,
        Err((code, refusal)) => {
            let _ = write_connack(&mut client, code).await;
            return Err(refusal);
        }
    };
    drop(pending);
    let keep_alive = match connect.keep_alive {
        0 => NO_KEEPALIVE_IDLE,
        k => Duration::from_millis(u64::from(k) * 1500),
    };
    let mut forwarded = connect;
    forwarded.login = Some(MqttLogin::new(login.clone(), front.token.clone()));
    let mut out = BytesMut::new();
    forwarded
        .write(&mut out)
        .map_err(|e| Refusal::Protocol(format!("cannot re-encode the CONNECT: {e}")))?;
    let broker = TcpStream::connect(front.internal).await?;
    broker.set_nodelay(true)?;
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    broker_tx.write_all(&out).await?;
    front.counters.add("logged_in");
    tracing::debug!(%peer, login, "Agent connection forwarded to the broker");
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let upstream = async {
        loop {
            forward_packets(front, &login, &mut buf, &mut broker_tx).await?;
            if buf.capacity() > KEEP_BUFFER && buf.is_empty() {
                buf = BytesMut::with_capacity(4096);
            }
            buf.reserve(4096);
            match tokio::time::timeout(keep_alive, client_rx.read_buf(&mut buf)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Refusal::Io(e)),
                Err(_) => return Err(Refusal::Timeout),
            }
        }
    };
    let downstream = async {
        let mut b = vec![0u8; 16 * 1024];
        loop {
            let n = broker_rx.read(&mut b).await?;
            if n == 0 {
                let _ = client_tx.shutdown().await;
                return Ok::<(), Refusal>(());
            }
            client_tx.write_all(&b[..n]).await?;
            client_tx.flush().await?;
        }
    };
    let result = tokio::select! {
        r = upstream => r,
        r = downstream => r,
    };
    if let Err(Refusal::Denied(d)) = &result {
        raise_forgery(front, &login, d).await;
    }
    result
}

/// Reads until the first packet is complete; it must be a CONNECT of at most
/// [`MAX_CONNECT`] bytes. Bytes after it stay in `buf` (checked like every packet).
async fn read_connect<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
) -> Result<Connect, Refusal> {
    loop {
        match mqttbytes::check(buf.iter(), MAX_CONNECT) {
            Ok(header) => {
                if header.packet_type().ok() != Some(PacketType::Connect) {
                    return Err(Refusal::Protocol(
                        "the first packet is not a CONNECT".into(),
                    ));
                }
                return match Packet::read(buf, MAX_CONNECT) {
                    Ok(Packet::Connect(c)) => Ok(c),
                    Ok(_) => Err(Refusal::Protocol(
                        "the first packet is not a CONNECT".into(),
                    )),
                    Err(e) => Err(Refusal::Protocol(format!("bad CONNECT: {e}"))),
                };
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(n)) => return Err(Refusal::TooLarge(n)),
            Err(e) => return Err(Refusal::Protocol(format!("bad first packet: {e}"))),
        }
        buf.reserve(1024);
        if client.read_buf(buf).await? == 0 {
            return Err(Refusal::Protocol(
                "the connection closed before its CONNECT".into(),
            ));
        }
    }
}

/// Checks the CONNECT: the login's name, client id rule, Last Will, the hub's
/// readiness and the password. Returns the agent id, or the CONNACK code to answer with.
async fn accept_login(
    front: &Arc<Front>,
    c: &Connect,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) -> Result<String, (ConnectReturnCode, Refusal)> {
    let Some(login) = &c.login else {
        record_failure(front, peer.ip());
        return Err((
            ConnectReturnCode::NotAuthorized,
            Refusal::Login("no username and password in CONNECT".into()),
        ));
    };
    let user = login.username.clone();
    let user_s = shorten(&user);
    if user == INTERNAL_USER {
        record_failure(front, peer.ip());
        return Err((
            ConnectReturnCode::NotAuthorized,
            Refusal::Login("the hub's internal user cannot log in from the network".into()),
        ));
    }
    // `{agent}.doctor` is `vigil-agent doctor` on a box whose agent may be running:
    // a distinct client id, so the check does not take over the agent's session
    // ('.' is not allowed in agent ids, so it cannot be another agent).
    if c.client_id != user && c.client_id != format!("{user}.doctor") {
        record_failure(front, peer.ip());
        return Err((
            ConnectReturnCode::BadClientId,
            Refusal::Login(format!(
                "client id {:?} of user {user_s:?} must equal the username (the agent id) or the username + \".doctor\"",
                shorten(&c.client_id)
            )),
        ));
    }
    if !front.ingest_ready.load(Ordering::SeqCst) {
        return Err((
            ConnectReturnCode::ServiceUnavailable,
            Refusal::Login("the hub is not listening yet; the agent will retry".into()),
        ));
    }
    let permit = match tokio::time::timeout_at(deadline, front.logins.acquire()).await {
        Ok(Ok(p)) => p,
        _ => return Err((ConnectReturnCode::ServiceUnavailable, Refusal::Timeout)),
    };
    let index = front.index.clone();
    let (u, p) = (user.clone(), login.password.clone());
    let verdict = tokio::task::spawn_blocking(move || {
        let index = lock(&index);
        check_login(&index, &u, &p)
    })
    .await;
    drop(permit);
    match verdict {
        Ok(Ok(Login::Accepted)) => {}
        Ok(Ok(other)) => {
            record_failure(front, peer.ip());
            let code = match other {
                Login::Revoked => ConnectReturnCode::NotAuthorized,
                _ => ConnectReturnCode::BadUserNamePassword,
            };
            return Err((code, Refusal::Login(format!("user {user_s:?}: {other:?}"))));
        }
        Ok(Err(e)) => {
            tracing::error!(error = format!("{e:#}"), "Cannot check an MQTT login");
            return Err((
                ConnectReturnCode::ServiceUnavailable,
                Refusal::Login("the login check failed".into()),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "The MQTT login check panicked");
            return Err((
                ConnectReturnCode::ServiceUnavailable,
                Refusal::Login("the login check failed".into()),
            ));
        }
    }
    // The Last Will is checked once the login is known to be the agent's own.
    if let Some(w) = &c.last_will {
        if let Err(d) = acl::will(&user, &w.topic) {
            raise_forgery(front, &user, &d).await;
            return Err((ConnectReturnCode::NotAuthorized, Refusal::Denied(d)));
        }
    }
    tracing::info!(agent = %user_s, %peer, "Agent logged in");
    Ok(user)
}

/// Forwards every complete packet in `buf` that the ACL allows (invariant 2); stops at
/// the first incomplete one.
async fn forward_packets<W: AsyncWrite + Unpin>(
    front: &Front,
    login: &str,
    buf: &mut BytesMut,
    broker: &mut W,
) -> Result<(), Refusal> {
    let mut out = BytesMut::new();
    loop {
        let header = match mqttbytes::check(buf.iter(), front.limits.max_packet) {
            Ok(h) => h,
            Err(mqttbytes::Error::InsufficientBytes(n)) => {
                buf.reserve(n);
                break;
            }
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(n)) => return Err(Refusal::TooLarge(n)),
            Err(e) => return Err(Refusal::Protocol(format!("bad packet: {e}"))),
        };
        let kind = header
            .packet_type()
            .map_err(|e| Refusal::Protocol(format!("bad packet type: {e}")))?;
        let frame = buf.split_to(header.frame_length()).freeze();
        match kind {
            PacketType::Publish => {
                let p = Publish::read(header, frame.clone())
                    .map_err(|e| Refusal::Protocol(format!("bad PUBLISH: {e}")))?;
                acl::publish(login, &p.topic).map_err(Refusal::Denied)?;
            }
            PacketType::Subscribe => {
                let s = Subscribe::read(header, frame.clone())
                    .map_err(|e| Refusal::Protocol(format!("bad SUBSCRIBE: {e}")))?;
                for f in &s.filters {
                    acl::subscribe(login, &f.path).map_err(Refusal::Denied)?;
                }
            }
            PacketType::Connect => {
                return Err(Refusal::Protocol("a second CONNECT".into()));
            }
            PacketType::ConnAck
            | PacketType::SubAck
            | PacketType::UnsubAck
            | PacketType::PingResp => {
                return Err(Refusal::Protocol(format!(
                    "{kind:?} is a broker-to-client packet"
                )));
            }
            _ => {
                // Small control packets: parsed whole so a malformed one stops here.
                let mut copy = BytesMut::from(&frame[..]);
                Packet::read(&mut copy, front.limits.max_packet)
                    .map_err(|e| Refusal::Protocol(format!("bad {kind:?}: {e}")))?;
            }
        }
        out.extend_from_slice(&frame);
        if out.len() >= 256 * 1024 {
            broker.write_all(&out).await?;
            out.clear();
        }
    }
    if out.has_remaining() {
        broker.write_all(&out).await?;
    }
    Ok(())
}

async fn write_connack<S: AsyncWrite + Unpin>(
    client: &mut S,
    code: ConnectReturnCode,
) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    ConnAck::new(code, false)
        .write(&mut b)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    client.write_all(&b).await?;
    client.flush().await?;
    let _ = client.shutdown().await;
    Ok(())
}

/// Records a `forgery` alert naming `login` (at most one per login per minute; every
/// attempt is counted by the caller).
async fn raise_forgery(front: &Arc<Front>, login: &str, denied: &Denied) {
    {
        let mut alerted = lock(&front.alerted);
        if alerted
            .get(login)
            .is_some_and(|t| t.elapsed() < ALERT_EVERY)
        {
            return;
        }
        if alerted.len() > 10_000 {
            alerted.retain(|_, t| t.elapsed() < ALERT_EVERY);
        }
        alerted.insert(login.to_string(), Instant::now());
    }
    let index = front.index.clone();
    let (login, detail) = (login.to_string(), format!("{denied}; the broker refused it and closed the connection (a compromised or misconfigured box: check it, and revoke it with vigil-hub agent revoke if it is not yours)"));
    let stored = tokio::task::spawn_blocking(move || {
        lock(&index).alert(AlertKind::Forgery, &login, "-", &detail)
    })
    .await;
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "Cannot record a forgery alert"),
        Err(e) => tracing::error!(error = %e, "Cannot record a forgery alert"),
    }
}
