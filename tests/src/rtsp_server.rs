//! A minimal RTSP server that shares nothing with GStreamer: the "other vendor" camera
//! for interop tests. It serves one H.264 MP4 file, live-paced and looping, over RTP
//! interleaved in the RTSP TCP connection (UDP SETUP gets `461 Unsupported Transport`),
//! with its own packetizer (single NAL units + FU-A, no STAP-A) and, unlike camsim, the
//! parameter sets only in the SDP (`sprop-parameter-sets`), never in band.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use base64::Engine as _;

use crate::h264::{nal_type, split_length_prefixed};
use crate::mp4::VideoTrack;

/// Largest RTP payload sent.
const MAX_PAYLOAD: usize = 1400;
/// RTP payload type announced in the SDP.
const PAYLOAD_TYPE: u8 = 96;

/// How the server treats a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Serve the stream.
    Serve,
    /// Answer every DESCRIBE with `401 Unauthorized` (wrong or missing credentials).
    RejectCredentials,
}

struct Shared {
    track: VideoTrack,
    path: String,
    behaviour: Behaviour,
    sdp_fmtp: String,
    stop: AtomicBool,
    log: Mutex<Vec<String>>,
    conns: Mutex<Vec<TcpStream>>,
}

/// A running mini RTSP server on a port from the OS; stopped on drop.
pub struct MiniRtspServer {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl MiniRtspServer {
    /// Serve the H.264 MP4 `file` at `path` (e.g. `/stream`).
    pub fn start(file: &Path, path: &str, behaviour: Behaviour) -> Result<MiniRtspServer> {
        let track = VideoTrack::read(file)?;
        ensure!(
            track.codec == "avc1" || track.codec == "avc3",
            "{} is {}, not H.264",
            file.display(),
            track.codec
        );
        let sps = track
            .parameter_sets
            .iter()
            .find(|p| nal_type(p) == 7)
            .context("no SPS in avcC")?;
        let pps = track
            .parameter_sets
            .iter()
            .find(|p| nal_type(p) == 8)
            .context("no PPS in avcC")?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let sdp_fmtp = format!(
            "packetization-mode=1;profile-level-id={};sprop-parameter-sets={},{}",
            hex(sps.get(1..4).context("short SPS")?),
            b64.encode(sps),
            b64.encode(pps)
        );
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind mini RTSP server")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            track,
            path: path.to_string(),
            behaviour,
            sdp_fmtp,
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let (Ok(mut conns), Ok(copy)) = (accept_shared.conns.lock(), conn.try_clone()) {
                    conns.push(copy);
                }
                let conn_shared = accept_shared.clone();
                std::thread::spawn(move || {
                    let _ = serve_connection(conn, port, &conn_shared);
                });
            }
        });
        Ok(MiniRtspServer {
            port,
            shared,
            thread: Some(thread),
        })
    }

    /// `rtsp://127.0.0.1:PORT/PATH`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, self.shared.path)
    }

    /// The RTSP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests answered so far, as `METHOD -> CODE` (SETUP also names its transport).
    pub fn log(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Drop for MiniRtspServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Ok(conns) = self.shared.conns.lock() {
            for c in conns.iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// One client connection: RTSP requests in, responses and interleaved RTP out.
fn serve_connection(conn: TcpStream, port: u16, shared: &Arc<Shared>) -> std::io::Result<()> {
    let writer = Arc::new(Mutex::new(conn.try_clone()?));
    let mut reader = BufReader::new(conn);
    let session = "5649474c";
    let playing = Arc::new(AtomicBool::new(false));
    let result = loop {
        let first = match reader.fill_buf() {
            Ok([]) => break Ok(()),
            Ok(buf) => buf[0],
            Err(e) => break Err(e),
        };
        if first == b'$' {
            // Interleaved RTCP from the client: skip it.
            let mut header = [0u8; 4];
            reader.read_exact(&mut header)?;
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            std::io::copy(&mut (&mut reader).take(len as u64), &mut std::io::sink())?;
            continue;
        }
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            break Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let body_len: u64 = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        std::io::copy(&mut (&mut reader).take(body_len), &mut std::io::sink())?;
        let mut parts = request_line.split_whitespace();
        let (method, uri) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let cseq = headers.get("cseq").cloned().unwrap_or_else(|| "0".into());
        let base = format!("rtsp://127.0.0.1:{port}{}", shared.path);
        let (code, extra, body) = match method {
            "OPTIONS" => (
                "200 OK",
                "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n".to_string(),
                String::new(),
            ),
            "DESCRIBE" if shared.behaviour == Behaviour::RejectCredentials => (
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"vigil-tests\"\r\n".to_string(),
                String::new(),
            ),
            "DESCRIBE" if uri.trim_end_matches('/') != base => {
                ("404 Not Found", String::new(), String::new())
            }
            "DESCRIBE" => {
                let sdp = format!(
                    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=vigil-tests mini server\r\n\
                     c=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n\
                     m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\na=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n\
                     a=fmtp:{PAYLOAD_TYPE} {}\r\na=control:trackID=0\r\n",
                    shared.sdp_fmtp
                );
                (
                    "200 OK",
                    format!(
                        "Content-Base: {base}/\r\nContent-Type: application/sdp\r\n\
                         Content-Length: {}\r\n",
                        sdp.len()
                    ),
                    sdp,
                )
            }
            "SETUP" => {
                let transport = headers.get("transport").cloned().unwrap_or_default();
                if transport.contains("RTP/AVP/TCP") {
                    (
                        "200 OK",
                        format!(
                            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
                             Session: {session};timeout=60\r\n"
                        ),
                        String::new(),
                    )
                } else {
                    ("461 Unsupported Transport", String::new(), String::new())
                }
            }
            "PLAY" => (
                "200 OK",
                format!("Session: {session}\r\nRange: npt=0.000-\r\n"),
                String::new(),
            ),
            "GET_PARAMETER" | "SET_PARAMETER" => {
                ("200 OK", format!("Session: {session}\r\n"), String::new())
            }
            "TEARDOWN" => ("200 OK", format!("Session: {session}\r\n"), String::new()),
            _ => ("501 Not Implemented", String::new(), String::new()),
        };
        let transport = if method == "SETUP" {
            format!(" [{}]", headers.get("transport").map_or("", String::as_str))
        } else {
            String::new()
        };
        if let Ok(mut log) = shared.log.lock() {
            log.push(format!("{method}{transport} -> {code}"));
        }
        let response = format!("RTSP/1.0 {code}\r\nCSeq: {cseq}\r\n{extra}\r\n{body}");
        {
            let mut w = writer
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            w.write_all(response.as_bytes())?;
        }
        if method == "PLAY" && !playing.swap(true, Ordering::SeqCst) {
            let (w, s, p) = (writer.clone(), shared.clone(), playing.clone());
            std::thread::spawn(move || {
                let _ = stream_rtp(&w, &s, &p);
            });
        }
        if method == "TEARDOWN" {
            break Ok(());
        }
    };
    playing.store(false, Ordering::SeqCst);
    result
}

/// Send the track over interleaved channel 0, paced by decode time, looping.
fn stream_rtp(writer: &Mutex<TcpStream>, shared: &Shared, playing: &AtomicBool) -> Result<()> {
    let track = &shared.track;
    let scale = i64::from(track.timescale);
    let loop_len = track.samples.last().map_or(0, |s| s.dts)
        + (track.frame_duration() * scale as f64).round() as i64;
    ensure!(loop_len > 0, "empty track");
    let first_dts = track.samples.first().map_or(0, |s| s.dts);
    let started = Instant::now();
    let ssrc: u32 = 0x5649_4731;
    let ts_base: u32 = 0x1234_5678;
    let mut seq: u16 = 4242;
    for lap in 0i64.. {
        for sample in &track.samples {
            if !playing.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let due = (lap * loop_len + sample.dts - first_dts) as f64 / scale as f64;
            let due = started + Duration::from_secs_f64(due.max(0.0));
            // Pacing a live camera's clock, not waiting for a condition.
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let pts = lap * loop_len + sample.pts;
            let rtp_ts = ts_base.wrapping_add((pts * 90_000 / scale) as u32);
            let nals: Vec<&[u8]> = split_length_prefixed(&sample.data, track.length_size)?
                .into_iter()
                .filter(|n| !matches!(nal_type(n), 7..=9))
                .collect();
            let mut packets = Vec::new();
            for (i, nal) in nals.iter().enumerate() {
                let last_nal = i + 1 == nals.len();
                if nal.len() <= MAX_PAYLOAD {
                    packets.push((nal.to_vec(), last_nal));
                    continue;
                }
                let indicator = (nal[0] & 0xe0) | 28;
                let chunks: Vec<&[u8]> = nal[1..].chunks(MAX_PAYLOAD - 2).collect();
                for (k, chunk) in chunks.iter().enumerate() {
                    let mut fu_header = nal[0] & 0x1f;
                    if k == 0 {
                        fu_header |= 0x80;
                    }
                    let end = k + 1 == chunks.len();
                    if end {
                        fu_header |= 0x40;
                    }
                    let mut payload = vec![indicator, fu_header];
                    payload.extend_from_slice(chunk);
                    packets.push((payload, last_nal && end));
                }
            }
            let mut out = Vec::new();
            for (payload, marker) in packets {
                let len = u16::try_from(12 + payload.len())?;
                out.extend_from_slice(&[b'$', 0]);
                out.extend_from_slice(&len.to_be_bytes());
                out.push(0x80);
                out.push(PAYLOAD_TYPE | if marker { 0x80 } else { 0 });
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&rtp_ts.to_be_bytes());
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(&payload);
                seq = seq.wrapping_add(1);
            }
            let mut w = writer
                .lock()
                .map_err(|_| anyhow::anyhow!("writer poisoned"))?;
            w.write_all(&out)?;
        }
    }
    Ok(())
}
