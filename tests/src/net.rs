//! Ports from the OS, TCP readiness, and a server that answers with junk.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::wait::wait_until;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to :0, then released).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_tcp(port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(timeout, &format!("TCP on port {port}"), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// Accepts TCP on a free port, reads a little, writes garbage and keeps the socket open:
/// the "camera" that is up but speaks no RTSP.
pub struct JunkServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

/// Bytes that are neither RTSP nor RTP.
const JUNK: &[u8] =
    b"\x00\xff\x13\x37garbage\r\n\x89PNG\r\n\x1a\nnot-rtsp/9.9 ???\r\n\r\n\xde\xad\xbe\xef";

impl JunkServer {
    /// Start serving junk on 127.0.0.1 with a port from the OS.
    pub fn start() -> Result<JunkServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind junk server")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (thread_stop, thread_open) = (stop.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                if let (Ok(mut open), Ok(copy)) = (thread_open.lock(), conn.try_clone()) {
                    open.push(copy);
                }
                let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(JUNK);
            }
        });
        Ok(JunkServer {
            port,
            stop,
            thread: Some(thread),
            open,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An RTSP URL pointing at it.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam1", self.port)
    }

    /// How many connections it has accepted so far.
    pub fn connections(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }
}

impl Drop for JunkServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(open) = self.open.lock() {
            for c in open.iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A plain HTTP/1.0 `GET path` on loopback `port`: (status code, header block, body).
/// For endpoints such as `/metrics` that need no client state.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no header end in the response: {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status code in {head:?}"))?;
    Ok((code, head.to_string(), body.to_string()))
}

/// The value of the Prometheus sample `series` (name with its labels exactly as
/// the text format prints them, e.g. `up{job="x"}`) in `text`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}
