//! `vigil-agent record`: one clip from a camera, for field techs and tests.
//!
//! Runs the camera's recording branch (no decoding), waits for a key frame, keeps
//! `seconds` of access units, remuxes them into `clip.mp4`, and with a key signs the
//! clip into the camera's chain (a clip directory `vigil-verify` accepts).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use time::OffsetDateTime;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::clip::ClipDescription;
use vigil_evidence::keys::SigningKey;

use crate::ingest::camera::{redact_url, Camera, CameraSettings, CameraState};
use crate::ingest::clip::cut_clip;
use crate::ingest::ring::GopRing;
use crate::seal::{ClipMeta, SealError, Sealer};

/// What `record` was asked to do.
#[derive(Debug, Clone)]
pub struct RecordRequest {
    /// Camera settings (URL, transport, credentials).
    pub camera: CameraSettings,
    /// Seconds of video from the first key frame.
    pub seconds: f64,
    /// Output directory (must not exist when signing).
    pub out: PathBuf,
    /// Signing key; without it the clip is written unsigned.
    pub key: Option<PathBuf>,
    /// Chain state directory (per-camera seq and head hash).
    pub state_dir: PathBuf,
    /// Agent id written into the manifest.
    pub agent_id: String,
    /// Give up when no key frame arrives within this time.
    pub timeout: Duration,
}

/// One-line summary of a recorded clip.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordSummary {
    pub path: PathBuf,
    pub codec: String,
    pub width: u16,
    pub height: u16,
    pub frames: u64,
    pub duration_ms: u64,
    pub bytes: u64,
    pub signed: bool,
    pub seq: Option<u64>,
}

/// Why `record` failed, in words a field tech can act on.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("camera {url}: {reason}")]
    Camera { url: String, reason: String },
    #[error(
        "camera {url}: no key frame within {secs} s; is the camera sending H.264/H.265 video?"
    )]
    NoVideo { url: String, secs: u64 },
    #[error(transparent)]
    Clip(#[from] crate::ingest::clip::ClipError),
    #[error(transparent)]
    Evidence(#[from] vigil_evidence::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the camera thread: {0}")]
    Thread(std::io::Error),
}

/// Record one clip as asked.
pub fn record(req: &RecordRequest) -> Result<RecordSummary, RecordError> {
    let _ = gst::init();
    let url = redact_url(&req.camera.url);
    let key = match &req.key {
        Some(p) => Some(SigningKey::load(p)?),
        None => None,
    };
    let span = Duration::from_secs_f64(req.seconds.max(0.1));
    let ring = Arc::new(Mutex::new(GopRing::new(
        span + Duration::from_secs(30),
        1 << 30,
    )));
    let sink_ring = ring.clone();
    let mut camera = Camera::spawn(
        req.camera.clone(),
        Arc::new(move |unit| {
            if let Ok(mut r) = sink_ring.lock() {
                r.push(unit);
            }
        }),
        None,
    )
    .map_err(RecordError::Thread)?;
    let started = Instant::now();
    let gops = loop {
        std::thread::sleep(Duration::from_millis(50));
        let state = camera.stats().state();
        if let CameraState::Retrying { reason, attempt } = state {
            // A refused transport (461) is retried once with the other transport.
            if reason.contains("RTSP 461") && attempt < 2 {
                continue;
            }
            camera.stop();
            return Err(RecordError::Camera { url, reason });
        }
        let (covered, empty) = match ring.lock() {
            Ok(r) => (r.span() >= span, r.is_empty()),
            Err(_) => (false, true),
        };
        if covered {
            break ring.lock().map(|r| r.all()).unwrap_or_default();
        }
        if empty && started.elapsed() > req.timeout {
            camera.stop();
            return Err(RecordError::NoVideo {
                url,
                secs: req.timeout.as_secs(),
            });
        }
    };
    let caps = camera.stats().caps.lock().ok().and_then(|c| c.clone());
    camera.stop();
    let caps = caps.ok_or(crate::ingest::clip::ClipError::NoCaps)?;
    // Keep the units from the first key frame to first + span.
    let first = gops
        .first()
        .and_then(|g| g.units[0].time())
        .unwrap_or(gst::ClockTime::ZERO);
    let limit = first + gst::ClockTime::from_nseconds(span.as_nanos() as u64);
    let mut trimmed = Vec::new();
    for mut gop in gops {
        if gop.units[0].time().is_some_and(|t| t >= limit) {
            break;
        }
        gop.units.retain(|u| u.time().is_none_or(|t| t < limit));
        trimmed.push(gop);
    }
    let mut summary = RecordSummary {
        path: req.out.join("clip.mp4"),
        codec: String::new(),
        width: 0,
        height: 0,
        frames: 0,
        duration_ms: 0,
        bytes: 0,
        signed: false,
        seq: None,
    };
    let mp4 = match key {
        Some(key) => {
            let mut chain = ChainStore::open(&req.state_dir)?;
            if chain
                .ensure_segment(
                    &key,
                    &req.agent_id,
                    env!("CARGO_PKG_VERSION"),
                    &req.camera.id,
                    OffsetDateTime::now_utc(),
                )?
                .is_some()
            {
                tracing::info!(camera = %req.camera.id, "Started a new chain segment");
            }
            let mut sealer = Sealer {
                key: &key,
                chain: &mut chain,
                agent_id: &req.agent_id,
                model: None,
                ledger: None,
            };
            let (signed, muxed) = sealer.seal(
                &req.camera.id,
                &trimmed,
                &caps,
                ClipMeta {
                    clip_id: uuid::Uuid::now_v7(),
                    events: Vec::new(),
                    part: None,
                    piece: None,
                },
                &req.out,
            )?;
            summary.signed = true;
            summary.seq = Some(signed.record().seq);
            muxed.mp4
        }
        None => {
            let muxed = cut_clip(&trimmed, &caps)?;
            write_plain(&req.out, &muxed.mp4)?;
            muxed.mp4
        }
    };
    let d = ClipDescription::from_mp4(&mp4)?;
    summary.codec = format!("{:?}", d.codec);
    (summary.width, summary.height) = (d.width, d.height);
    (summary.frames, summary.duration_ms, summary.bytes) =
        (d.frame_count, d.duration_ms, d.file_size);
    Ok(summary)
}

/// Unsigned clip: write to a temp name, fsync, rename (never a half-written clip.mp4).
fn write_plain(dir: &Path, mp4: &[u8]) -> Result<(), RecordError> {
    use std::io::Write;
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let tmp = dir.join("clip.mp4.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
    f.write_all(mp4).map_err(io("cannot write", &tmp))?;
    f.sync_all().map_err(io("cannot fsync", &tmp))?;
    let dst = dir.join("clip.mp4");
    std::fs::rename(&tmp, &dst).map_err(io("cannot rename to", &dst))?;
    Ok(())
}
