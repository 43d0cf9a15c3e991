//! `vigil-agent run`: cameras, detection, clips and signing, together.
//!
//! ```text
//! Camera (per camera) ── units ──▶ GopRing ◀── cut at event end + post-roll ── ClipScheduler
//!        └─ frames ─▶ DetectService ── EventMessage ──▶ event loop ──▶ outbox/events/*.json
//!                                                           └─ end ─▶ ClipScheduler ─▶ sign ─▶ outbox/clips/<id>/
//! ```
//!
//! Which spans become clips is [`crate::clips::ClipScheduler`]'s: overlapping events of
//! one camera are one recording (no video in two clips), cut in parts linked by a
//! recording id while a busy scene goes on, each part's manifest listing its events.
//! Outbox writes are tmp + fsync + rename + directory fsync (see docs/architecture.md);
//! the outbox is byte-bounded (oldest clips dropped, each reported).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use time::OffsetDateTime;
use vigil_evidence::chain::ChainStore;
use vigil_evidence::keys::SigningKey;
use vigil_evidence::manifest::PartInfo;

use crate::clips::ClipScheduler;
use crate::config::{AgentConfig, CameraConfig};
use crate::detect::{
    share, CameraAnalyzer, DetectService, DetectorOptions, EventMessage, OrtDetector,
};
use crate::ingest::{Camera, CameraSettings, GopRing};
use crate::live::AgentLive;
use crate::metrics::{AgentMetrics, MetricsServer, RunCounters};
use crate::outbox::Outbox;
use crate::seal::{recover_tmp_clip, ClipMeta, Sealer, TmpClip};

/// One camera's running parts.
struct CameraRuntime {
    config: CameraConfig,
    ring: Arc<Mutex<GopRing>>,
    camera: Camera,
    clips: ClipScheduler,
    /// The last recording's id and the index its next sealed part gets. The scheduler
    /// cuts at times, not GOPs: a part shorter than a GOP holds none and is skipped,
    /// so parts are numbered here, as they are sealed, without gaps.
    recording: Option<(uuid::Uuid, u32)>,
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
    let outbox = Arc::new(Outbox::open(&config.outbox_dir, config.outbox.max_bytes)?);
    let reset_again = recover_outbox(&outbox, &chain)?;
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
    let mut recording = if config.records() {
        let policies = config
            .cameras
            .iter()
            .filter(|c| c.record)
            .map(|c| {
                (
                    c.id.clone(),
                    crate::recording::Policy {
                        min_days: c.min_days,
                        max_days: c.max_days,
                    },
                )
            })
            .collect();
        Some(crate::recording::Recording::open(
            &config.recording,
            &config.recording_dir(),
            policies,
        )?)
    } else {
        None
    };
    let ledger = recording.as_ref().map(|r| r.store.ledger());
    for c in &config.cameras {
        let reset = match chain.ensure_segment(
            &key,
            &config.agent_id,
            version,
            &c.id,
            OffsetDateTime::now_utc(),
        )? {
            Some(reset) => Some(reset),
            // Its spooled copy was lost to a crash mid-write: spool it again.
            None if reset_again.contains(&c.id) => Some(chain.segment_reset(&c.id)?),
            None => None,
        };
        if let Some(reset) = reset {
            outbox.put_record(
                &c.id,
                "chain_reset",
                reset.canonical_bytes(),
                &reset.signature_file(),
            )?;
        }
        if let Some(l) = &ledger {
            // The segment's reset opens the camera's ledger slice (idempotent).
            l.put(&vigil_evidence::chain::ChainRecord::Reset(
                chain.segment_reset(&c.id)?,
            ))?;
        }
    }
    if let Some(rec) = recording.as_mut() {
        let mut sealer = Sealer {
            key: &key,
            chain: &mut chain,
            agent_id: &config.agent_id,
            model: model.clone(),
            ledger: ledger.clone(),
        };
        rec.recover(&mut sealer, &outbox)?;
    }
    let mut cameras: HashMap<String, CameraRuntime> = HashMap::new();
    for c in &config.cameras {
        let ring = Arc::new(Mutex::new(GopRing::new(
            Duration::from_secs_f64(c.pre_roll_seconds + c.max_clip_seconds + 10.0),
            (c.ring_max_mib as usize) << 20,
        )));
        let mut settings = CameraSettings::new(&c.id, &c.url);
        settings.transport = c.transport;
        settings.detect_fps = c.detect_fps;
        settings.decode_threads = c.decode_threads;
        let r2 = ring.clone();
        let s2 = service.clone();
        let stats = Arc::new(crate::ingest::camera::CameraStats::default());
        let recorder = match recording.as_mut() {
            Some(rec) if c.record => Some(rec.recorder(&c.id, stats.clone())),
            _ => None,
        };
        let camera = Camera::spawn_with_stats(
            settings,
            stats,
            Arc::new(move |u| {
                if let Some(rec) = &recorder {
                    rec.push(&u);
                }
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
                clips: ClipScheduler::new(
                    c.pre_roll_seconds,
                    c.post_roll_seconds,
                    c.max_clip_seconds,
                ),
                recording: None,
            },
        );
    }
    let camera_stats: Vec<_> = config
        .cameras
        .iter()
        .filter_map(|c| {
            cameras
                .get(&c.id)
                .map(|r| (c.id.clone(), r.camera.stats().clone()))
        })
        .collect();
    let live: Arc<dyn crate::live::Live> = Arc::new(AgentLive::new(
        camera_stats.clone(),
        service.clone(),
        outbox.clone(),
    ));
    let counters = Arc::new(RunCounters::default());
    let uplink_stats = config
        .uplink
        .as_ref()
        .map(|_| Arc::new(crate::metrics::UplinkStats::default()));
    let metrics = match &config.metrics.listen {
        Some(listen) => Some(MetricsServer::start(
            listen,
            Arc::new(AgentMetrics {
                cameras: camera_stats,
                detect: service.clone(),
                outbox: outbox.clone(),
                run: counters.clone(),
                uplink: uplink_stats.clone(),
            }),
        )?),
        None => None,
    };
    // Set only once the last clips are sealed: the uplink's shutdown drain must
    // not start (and find the outbox idle) before them.
    let uplink_drain = Arc::new(AtomicBool::new(false));
    let (commands_tx, commands) = mpsc::channel::<crate::recording::commands::HubCommand>();
    let uplink = match &config.uplink {
        Some(u) => {
            let commands_tx = commands_tx.clone();
            let (agent_id, u, ob, sd) = (
                config.agent_id.clone(),
                u.clone(),
                outbox.clone(),
                uplink_drain.clone(),
            );
            let stats = uplink_stats.clone().unwrap_or_default();
            Some(
                std::thread::Builder::new()
                    .name("uplink".into())
                    .spawn(move || {
                        if let Err(e) = crate::uplink::run(&agent_id, &u, ob, Some(live), sd, stats, Some(commands_tx)) {
                            tracing::error!(error = %e, "Uplink stopped; the outbox keeps everything");
                        }
                    })?,
            )
        }
        None => None,
    };
    if let Some(rec) = recording.as_mut() {
        rec.start_sync()?;
    }
    tracing::info!(cameras = cameras.len(), "Agent running");
    let started = Instant::now();
    let mut ctx = SignContext {
        sealer: Sealer {
            key: &key,
            chain: &mut chain,
            agent_id: &config.agent_id,
            model,
            ledger,
        },
        outbox: &outbox,
        counters: &counters,
    };
    let stop =
        || shutdown.load(Ordering::SeqCst) || run_for.is_some_and(|d| started.elapsed() >= d);
    // systemd (Type=notify): ready now; watchdog pings only from this loop, so a wedged
    // event loop stops them and systemd restarts the agent. No-ops outside systemd.
    let status = format!("{} camera(s)", cameras.len());
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    let watchdog = sd_notify::watchdog_enabled();
    let mut last_ping: Option<Instant> = None;
    while !stop() {
        if let Ok(msg) = rx.recv_timeout(Duration::from_millis(200)) {
            on_event(&msg, &mut cameras, &outbox, &counters)?;
        }
        for cam in cameras.values_mut() {
            flush_ready(cam, &mut ctx, false)?;
        }
        if let Some(rec) = recording.as_mut() {
            while let Ok(c) = commands.try_recv() {
                rec.command(c, ctx.outbox)?;
            }
            rec.seal_ready(&mut ctx.sealer, ctx.outbox)?;
        }
        if let Some(period) = watchdog {
            if last_ping.is_none_or(|t| t.elapsed() >= period / 3) {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                last_ping = Some(Instant::now());
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let stopping = Instant::now();
    tracing::info!("Agent stopping: ending open events and cutting their clips");
    for cam in cameras.values_mut() {
        cam.camera.stop();
    }
    // Ends open events (their `end` messages arrive below).
    service.close();
    while let Ok(msg) = rx.try_recv() {
        on_event(&msg, &mut cameras, &outbox, &counters)?;
    }
    for cam in cameras.values_mut() {
        flush_ready(cam, &mut ctx, true)?;
    }
    if let Some(rec) = recording.as_mut() {
        rec.drain(&mut ctx.sealer, ctx.outbox)?;
    }
    // Every outbox write above was fsynced before its rename; the directories too.
    for sub in crate::outbox::KINDS {
        if let Ok(d) = std::fs::File::open(outbox.dir().join(sub)) {
            let _ = d.sync_all();
        }
    }
    if let Some(u) = uplink {
        uplink_drain.store(true, Ordering::SeqCst);
        let _ = u.join();
    }
    if let Some(m) = metrics {
        m.stop();
    }
    tracing::info!(
        elapsed_ms = stopping.elapsed().as_millis() as u64,
        outbox_entries = outbox.stats().entries,
        "Agent stopped cleanly"
    );
    Ok(())
}

/// Startup clean-up of interrupted writes: a clip `.tmp` whose manifest is its
/// camera's chain head is completed; every other `.tmp` is discarded and
/// reported on `drops`. Returns the cameras whose spooled `chain_reset` was lost
/// (it is spooled again from the chain state).
fn recover_outbox(outbox: &Outbox, chain: &ChainStore) -> anyhow::Result<BTreeSet<String>> {
    let mut reset_again = BTreeSet::new();
    for left in outbox.leftovers() {
        if left.kind == "clips" {
            let name = left
                .path
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".tmp").to_string())
                .unwrap_or_default();
            let clip_id = name.parse::<uuid::Uuid>().ok();
            let dir = left.path.with_file_name(&name);
            match recover_tmp_clip(chain, &left.path, &dir)? {
                TmpClip::Completed => {
                    tracing::info!(clip = %name, "Completed a clip whose seal was interrupted after its chain commit");
                }
                TmpClip::Uncommitted { camera_id, seq } => {
                    outbox.discard_leftover(&left, camera_id.as_deref(), clip_id, seq)?;
                }
            }
            continue;
        }
        outbox.discard_leftover(&left, None, None, None)?;
        if left.kind == "records" {
            let name = left
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string());
            if let Some(camera) = name.as_deref().and_then(record_camera) {
                reset_again.insert(camera);
            }
        }
    }
    // A record's `.sig` is written before its `.json`: a lone `.sig` is an interrupted write.
    for sig in crate::outbox::list(&outbox.dir().join("records")) {
        if sig.extension().is_some_and(|e| e == "sig") && !sig.with_extension("json").exists() {
            if let Some(camera) = sig
                .file_name()
                .and_then(|n| record_camera(&n.to_string_lossy()))
            {
                reset_again.insert(camera);
            }
            let _ = std::fs::remove_file(&sig);
        }
    }
    Ok(reset_again)
}

/// Camera of a `[.]<ns>-<camera>-chain_reset.{json,sig}[.tmp]` record name.
fn record_camera(name: &str) -> Option<String> {
    let name = name.trim_start_matches('.');
    let (_, rest) = name.split_once('-')?;
    let (camera, _) = rest.split_once("-chain_reset")?;
    Some(camera.to_string())
}

fn on_event(
    msg: &EventMessage,
    cameras: &mut HashMap<String, CameraRuntime>,
    outbox: &Outbox,
    counters: &RunCounters,
) -> anyhow::Result<()> {
    let e = &msg.event;
    outbox.put_event(msg)?;
    counters.event(&e.camera_id, msg.phase.as_str());
    tracing::info!(camera = %e.camera_id, event = %e.id, label = %e.label, phase = ?msg.phase, "Event");
    if let Some(cam) = cameras.get_mut(&e.camera_id) {
        cam.clips.on_event(msg);
    }
    Ok(())
}

struct SignContext<'a> {
    sealer: Sealer<'a>,
    outbox: &'a Outbox,
    counters: &'a RunCounters,
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
    for cut in cam.clips.ready(newest, drain) {
        let caps = cam.camera.stats().caps.lock().ok().and_then(|c| c.clone());
        let (from, to) = (cut.from_ms, cut.to_ms);
        let Some(caps) = caps else {
            // Caps are set with the first access unit, so the ring is empty too.
            tracing::warn!(camera = %cam.config.id, from, to, events = cut.events.len(), "Clip not cut: no video has arrived from the camera yet");
            continue;
        };
        let gops = cam.ring.lock().map(|r| {
            r.gops_between(
                gst::ClockTime::from_mseconds(from),
                gst::ClockTime::from_mseconds(to.saturating_sub(1)),
            )
        });
        let Ok(mut gops) = gops else { continue };
        if gops.is_empty() {
            tracing::warn!(camera = %cam.config.id, from, to, "Clip span no longer in the ring; nothing to cut");
            continue;
        }
        // No GOP in two clips: one that started before the previous cut is in its clip.
        if let Some(t) = cut.gops_from_ms {
            gops.retain(|g| g.units[0].pts.is_some_and(|p| p.mseconds() >= t));
        }
        if cut.drop_gops_from_to {
            gops.retain(|g| g.units[0].pts.is_some_and(|p| p.mseconds() < to));
        }
        if gops.is_empty() {
            // A span shorter than a GOP: its video is in the clip before.
            continue;
        }
        let part = cut.part.map(|p| {
            let index = match cam.recording {
                Some((id, next)) if id == p.recording_id => next,
                _ => 0,
            };
            cam.recording = Some((p.recording_id, index + 1));
            PartInfo {
                recording_id: p.recording_id,
                index,
            }
        });
        let clip_id = uuid::Uuid::now_v7();
        let dir = ctx.outbox.clip_dir(clip_id);
        tracing::info!(camera = %cam.config.id, clip = %clip_id, from_ms = from, to_ms = to, events = cut.events.len(), "Sealing a clip");
        let prepared = crate::seal::prepare(&gops, &caps)?;
        // Room first (oldest clips dropped and reported), then the seq is taken.
        let (_room, _drops) = ctx.outbox.make_room(prepared.dir_bytes())?;
        let (signed, muxed) = ctx.sealer.seal_prepared(
            &cam.config.id,
            prepared,
            ClipMeta {
                clip_id,
                events: cut.events,
                part,
                piece: None,
            },
            &dir,
        )?;
        if ctx.sealer.ledger.is_some() {
            // With recording on, pieces' manifests reach the hub as records ahead of
            // any clip transfer; announcing the clip's manifest the same way keeps the
            // hub's view of the chain in seq order (no false gap while it transfers).
            ctx.outbox.put_record(
                &cam.config.id,
                "manifest",
                signed.canonical_bytes(),
                &signed.signature_file(),
            )?;
        }
        ctx.counters
            .clip_sealed(&cam.config.id, signed.record().file.size);
        ctx.outbox.notify_new_entry();
        tracing::info!(camera = %cam.config.id, clip = %clip_id, seq = signed.record().seq, frames = muxed.frames, "Clip signed and spooled");
    }
    Ok(())
}
