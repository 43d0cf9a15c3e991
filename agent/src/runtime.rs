//! `vigil-agent run`: cameras, detection, clips and signing, together.
//!
//! ```text
//! Camera (per camera) ── units ──▶ GopRing ◀── cut at event end + post-roll ── ClipScheduler
//!        └─ frames ─▶ DetectService ── EventMessage ──▶ event loop ──▶ outbox/events/*.json
//!                                                           └─ end ─▶ ClipScheduler ─▶ sign ─▶ outbox/clips/<id>/
//! ```
//!
//! Overlapping events of one camera share one clip (the manifest lists them all); a
//! clip longer than `max_clip_seconds` is split into parts linked by a recording id.
//! Outbox writes are tmp + fsync + rename + directory fsync (see docs/architecture.md).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use time::OffsetDateTime;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::{EventRef, PartInfo};

use crate::config::{AgentConfig, CameraConfig};
use crate::detect::{
    share, CameraAnalyzer, DetectService, DetectorOptions, EventMessage, EventPhase, OrtDetector,
};
use crate::ingest::{Camera, CameraSettings, GopRing};
use crate::seal::{ClipMeta, Sealer};

/// A clip waiting for its post-roll to arrive.
struct PendingClip {
    from_ms: u64,
    to_ms: u64,
    events: Vec<EventRef>,
}

/// One camera's running parts.
struct CameraRuntime {
    config: CameraConfig,
    ring: Arc<Mutex<GopRing>>,
    camera: Camera,
    pending: Vec<PendingClip>,
}

/// Run until `shutdown` is set (or `run_for` elapses), then drain: open events are
/// ended and their clips cut from what the ring holds.
pub fn run(
    config: &AgentConfig,
    shutdown: Arc<AtomicBool>,
    run_for: Option<Duration>,
) -> anyhow::Result<()> {
    gst::init()?;
    let key = SigningKey::load(&config.key).map_err(|e| {
        anyhow::anyhow!(
            "{e}; create the key once with `vigil-agent keygen --key {}`",
            config.key.display()
        )
    })?;
    let mut chain = ChainStore::open(&config.chain_dir)?;
    let outbox = Outbox::open(&config.outbox_dir)?;
    let d = &config.detect;
    let detector = OrtDetector::from_manifest_path(
        d.runtime_library.as_deref(),
        &d.model,
        DetectorOptions {
            intra_threads: d.intra_threads,
            score_floor: d.score_floor,
        },
    )?;
    let model = {
        let info = crate::detect::Detector::info(&detector);
        info.sha256
            .parse()
            .ok()
            .map(|sha256| vigil_evidence::manifest::ModelInfo {
                name: info.name.clone(),
                sha256,
            })
    };
    let shared = share(detector);
    let mut analyzers = Vec::new();
    for c in &config.cameras {
        analyzers.push(CameraAnalyzer::new(
            &c.id,
            c.detect.clone(),
            shared.clone(),
        )?);
    }
    let (tx, rx) = mpsc::channel::<EventMessage>();
    let service = Arc::new(DetectService::spawn(analyzers, tx)?);
    let version = env!("CARGO_PKG_VERSION");
    let mut cameras: HashMap<String, CameraRuntime> = HashMap::new();
    for c in &config.cameras {
        if let Some(reset) = chain.ensure_segment(
            &key,
            &config.agent_id,
            version,
            &c.id,
            OffsetDateTime::now_utc(),
        )? {
            outbox.put_record(
                &c.id,
                "chain_reset",
                reset.canonical_bytes(),
                &reset.signature_file(),
            )?;
        }
        let ring = Arc::new(Mutex::new(GopRing::new(
            Duration::from_secs_f64(c.pre_roll_seconds + c.max_clip_seconds + 10.0),
            (c.ring_max_mib as usize) << 20,
        )));
        let mut settings = CameraSettings::new(&c.id, &c.url);
        settings.transport = c.transport;
        settings.detect_fps = c.detect_fps;
        let r2 = ring.clone();
        let s2 = service.clone();
        let camera = Camera::spawn(
            settings,
            Arc::new(move |u| {
                if let Ok(mut r) = r2.lock() {
                    r.push(u);
                }
            }),
            Some(Arc::new(move |f| {
                let _ = s2.submit(f);
            })),
        )?;
        cameras.insert(
            c.id.clone(),
            CameraRuntime {
                config: c.clone(),
                ring,
                camera,
                pending: Vec::new(),
            },
        );
    }
    let uplink = match &config.uplink {
        Some(u) => {
            let (agent_id, u, dir, sd) = (
                config.agent_id.clone(),
                u.clone(),
                config.outbox_dir.clone(),
                shutdown.clone(),
            );
            Some(
                std::thread::Builder::new()
                    .name("uplink".into())
                    .spawn(move || {
                        if let Err(e) = crate::uplink::run(&agent_id, &u, &dir, sd) {
                            tracing::error!(error = %e, "Uplink stopped; the outbox keeps everything");
                        }
                    })?,
            )
        }
        None => None,
    };
    tracing::info!(cameras = cameras.len(), "Agent running");
    let started = Instant::now();
    let mut ctx = SignContext {
        sealer: Sealer {
            key: &key,
            chain: &mut chain,
            agent_id: &config.agent_id,
            model,
        },
        outbox: &outbox,
    };
    let stop =
        || shutdown.load(Ordering::SeqCst) || run_for.is_some_and(|d| started.elapsed() >= d);
    while !stop() {
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(200)) {
            on_event(&msg, &mut cameras, &outbox)?;
        }
        for cam in cameras.values_mut() {
            flush_ready(cam, &mut ctx, false)?;
        }
    }
    tracing::info!("Agent stopping: ending open events and cutting their clips");
    for cam in cameras.values_mut() {
        cam.camera.stop();
    }
    if let Ok(service) = Arc::try_unwrap(service) {
        service.shutdown();
    }
    while let Ok(msg) = rx.try_recv() {
        on_event(&msg, &mut cameras, &outbox)?;
    }
    for cam in cameras.values_mut() {
        flush_ready(cam, &mut ctx, true)?;
    }
    if let Some(u) = uplink {
        // `run_for` ends without a signal: tell the uplink too.
        shutdown.store(true, Ordering::SeqCst);
        let _ = u.join();
    }
    Ok(())
}

fn on_event(
    msg: &EventMessage,
    cameras: &mut HashMap<String, CameraRuntime>,
    outbox: &Outbox,
) -> anyhow::Result<()> {
    let e = &msg.event;
    outbox.put_event(msg)?;
    tracing::info!(camera = %e.camera_id, event = %e.id, label = %e.label, phase = ?msg.phase, "Event");
    if msg.phase != EventPhase::End {
        return Ok(());
    }
    let Some(cam) = cameras.get_mut(&e.camera_id) else {
        return Ok(());
    };
    let pre = (cam.config.pre_roll_seconds * 1000.0) as u64;
    let post = (cam.config.post_roll_seconds * 1000.0) as u64;
    let from = e.start_pts_ms.saturating_sub(pre);
    let to = e.end_pts_ms.unwrap_or(e.start_pts_ms) + post;
    let event = EventRef {
        id: e.id.to_string(),
        label: e.label.clone(),
    };
    match cam.pending.last_mut() {
        Some(last) if from <= last.to_ms => {
            last.to_ms = last.to_ms.max(to);
            last.events.push(event);
        }
        _ => cam.pending.push(PendingClip {
            from_ms: from,
            to_ms: to,
            events: vec![event],
        }),
    }
    Ok(())
}

struct SignContext<'a> {
    sealer: Sealer<'a>,
    outbox: &'a Outbox,
}

/// Cut, sign and spool every pending clip whose post-roll has arrived (all when `drain`).
fn flush_ready(cam: &mut CameraRuntime, ctx: &mut SignContext, drain: bool) -> anyhow::Result<()> {
    let newest = cam
        .ring
        .lock()
        .ok()
        .and_then(|r| {
            r.all()
                .last()
                .and_then(|g| g.units.last())
                .and_then(|u| u.pts)
        })
        .map(|t| t.mseconds())
        .unwrap_or(0);
    while let Some(p) = cam.pending.first() {
        if !drain && p.to_ms > newest {
            break;
        }
        let p = cam.pending.remove(0);
        let caps = cam.camera.stats().caps.lock().ok().and_then(|c| c.clone());
        let Some(caps) = caps else { continue };
        let max_ms = (cam.config.max_clip_seconds * 1000.0) as u64;
        let parts: Vec<(u64, u64)> = (0..)
            .map(|i| p.from_ms + i * max_ms)
            .take_while(|s| *s < p.to_ms)
            .map(|s| (s, (s + max_ms).min(p.to_ms)))
            .collect();
        let recording_id = uuid::Uuid::now_v7();
        for (index, (from, to)) in parts.iter().enumerate() {
            let gops = cam.ring.lock().map(|r| {
                r.gops_between(
                    gst::ClockTime::from_mseconds(*from),
                    gst::ClockTime::from_mseconds(to.saturating_sub(1)),
                )
            });
            let Ok(mut gops) = gops else { continue };
            // Parts must not overlap: a GOP belongs to the part where it starts.
            if index > 0 {
                gops.retain(|g| g.units[0].pts.is_some_and(|t| t.mseconds() >= *from));
            }
            if index + 1 < parts.len() {
                gops.retain(|g| g.units[0].pts.is_some_and(|t| t.mseconds() < *to));
            }
            if gops.is_empty() {
                tracing::warn!(camera = %cam.config.id, from, to, "Clip span no longer in the ring; nothing to cut");
                continue;
            }
            let clip_id = uuid::Uuid::now_v7();
            let dir = ctx.outbox.dir.join("clips").join(clip_id.to_string());
            let part = (parts.len() > 1).then_some(PartInfo {
                recording_id,
                index: index as u32,
            });
            let (signed, muxed) = ctx.sealer.seal(
                &cam.config.id,
                &gops,
                &caps,
                ClipMeta {
                    clip_id,
                    events: p.events.clone(),
                    part,
                },
                &dir,
            )?;
            tracing::info!(camera = %cam.config.id, clip = %clip_id, seq = signed.record().seq, frames = muxed.frames, "Clip signed and spooled");
        }
    }
    Ok(())
}

/// The on-disk spool of what must reach the hub (delivery is the next issue).
struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    fn open(dir: &Path) -> anyhow::Result<Outbox> {
        for sub in ["clips", "events", "records"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| anyhow::anyhow!("cannot create outbox {}: {e}", dir.display()))?;
        }
        Ok(Outbox {
            dir: dir.to_path_buf(),
        })
    }

    fn put_event(&self, msg: &EventMessage) -> anyhow::Result<()> {
        let name = format!(
            "{}-{}-{:?}.json",
            OffsetDateTime::now_utc().unix_timestamp_nanos(),
            msg.event.id,
            msg.phase
        )
        .to_lowercase();
        write_durable(&self.dir.join("events"), &name, &serde_json::to_vec(msg)?)
    }

    fn put_record(
        &self,
        camera: &str,
        kind: &str,
        canonical: &[u8],
        sig: &str,
    ) -> anyhow::Result<()> {
        let stem = format!(
            "{}-{camera}-{kind}",
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let dir = self.dir.join("records");
        write_durable(&dir, &format!("{stem}.json"), canonical)?;
        write_durable(&dir, &format!("{stem}.sig"), sig.as_bytes())
    }
}

/// tmp + fsync + rename + directory fsync.
fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
