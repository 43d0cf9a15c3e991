//! Prometheus endpoint of the agent (`[metrics] listen`): `GET /metrics` in the
//! OpenMetrics text format.
//!
//! Nothing is copied into a registry ahead of time: every scrape reads the same
//! sources the `health` topic reads (camera counters, the detect service, the outbox
//! directory scan) plus the run and uplink counters below, so the endpoint can never
//! disagree with the live state. Rates (fps, events/s) are left to PromQL `rate()`
//! over the `_total` counters. Metric names and labels are stable (docs/operations.md).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::detect::DetectService;
use crate::ingest::camera::{CameraState, CameraStats};
use crate::outbox::Outbox;

/// `[metrics]`: where the Prometheus endpoint listens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` of `GET /metrics` (port 0 = a free port, logged). Default: off.
    /// Keep it on loopback or a management network: it names cameras.
    #[serde(default)]
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// Problems of this table, each naming its key.
    pub fn problems(&self, key: &str) -> Vec<String> {
        match &self.listen {
            Some(l) if l.parse::<SocketAddr>().is_err() => vec![format!(
                "{key}.listen: {l:?} is not host:port with a numeric address (e.g. \"127.0.0.1:9464\")"
            )],
            _ => Vec::new(),
        }
    }
}

/// Counters of the `run` loop that no other component keeps.
#[derive(Debug, Default)]
pub struct RunCounters {
    /// Clips signed and spooled, per camera.
    clips_sealed: Mutex<BTreeMap<String, u64>>,
    /// Bytes of those clips' MP4 files, per camera.
    clip_bytes_sealed: Mutex<BTreeMap<String, u64>>,
    /// Event messages spooled, per (camera, phase).
    events: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl RunCounters {
    /// A clip of `camera` with `bytes` was sealed into the outbox.
    pub fn clip_sealed(&self, camera: &str, bytes: u64) {
        *lock(&self.clips_sealed).entry(camera.into()).or_default() += 1;
        *lock(&self.clip_bytes_sealed)
            .entry(camera.into())
            .or_default() += bytes;
    }

    /// An event message of `camera` in `phase` was spooled.
    pub fn event(&self, camera: &str, phase: &'static str) {
        *lock(&self.events)
            .entry((camera.into(), phase))
            .or_default() += 1;
    }
}

/// Counters and state of the MQTT uplink.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Connected to the broker now.
    pub connected: AtomicBool,
    /// ConnAcks received since start (the first connection included).
    pub connects: AtomicU64,
    /// Clips the hub acknowledged `stored` (and that were deleted from the outbox).
    pub clips_stored: AtomicU64,
    /// Clips the hub rejected (moved to `outbox/rejected/`).
    pub clips_rejected: AtomicU64,
    /// Spooled messages (events, records, drop reports) the broker acknowledged.
    pub messages_acked: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything a scrape reads.
pub struct AgentMetrics {
    /// Camera id and its ingest counters.
    pub cameras: Vec<(String, Arc<CameraStats>)>,
    /// Detection counters per camera.
    pub detect: Arc<DetectService>,
    /// The spool (directory scan on every scrape, like `health`).
    pub outbox: Arc<Outbox>,
    /// Run-loop counters.
    pub run: Arc<RunCounters>,
    /// Uplink counters; None without `[uplink]`.
    pub uplink: Option<Arc<UplinkStats>>,
}

impl fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentMetrics")
            .field("cameras", &self.cameras.len())
            .field("outbox", &self.outbox.dir())
            .finish_non_exhaustive()
    }
}

type Labels = Vec<(&'static str, String)>;

/// Writes one metric family with one sample per label set (nothing when empty).
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: Vec<(Labels, M)>,
) -> fmt::Result {
    let Some((_, first)) = samples.first() else {
        return Ok(());
    };
    let mut m = enc.encode_descriptor(name, help, None, first.metric_type())?;
    if let [(labels, metric)] = samples.as_slice() {
        if labels.is_empty() {
            // `name 1`, not `name{} 1`.
            return metric.encode(m);
        }
    }
    for (labels, metric) in &samples {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}
fn gauge(v: f64) -> ConstGauge<f64> {
    ConstGauge::new(v)
}
fn cam(id: &str) -> Labels {
    vec![("camera", id.to_string())]
}

const STATES: [&str; 4] = ["starting", "streaming", "retrying", "stopped"];

impl Collector for AgentMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let detect = self.detect.stats();
        let per_camera = |f: &dyn Fn(&CameraStats) -> u64| -> Vec<(Labels, ConstCounter<u64>)> {
            self.cameras
                .iter()
                .map(|(id, s)| (cam(id), counter(f(s))))
                .collect()
        };
        let states: Vec<(Labels, ConstGauge<f64>)> = self
            .cameras
            .iter()
            .flat_map(|(id, s)| {
                let now = match s.state() {
                    CameraState::Connecting => "starting",
                    CameraState::Streaming => "streaming",
                    CameraState::Retrying { .. } => "retrying",
                    CameraState::Stopped => "stopped",
                };
                STATES.iter().map(move |st| {
                    (
                        vec![("camera", id.clone()), ("state", st.to_string())],
                        gauge(if *st == now { 1.0 } else { 0.0 }),
                    )
                })
            })
            .collect();
        family(
            &mut enc,
            "vigil_agent_camera_state",
            "1 for the camera's current state (starting, streaming, retrying, stopped), 0 for the others",
            states,
        )?;
        family(
            &mut enc,
            "vigil_agent_camera_frames",
            "Access units received by the recording branch (rate() = fps in)",
            per_camera(&|s| s.frames_in.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "vigil_agent_camera_bytes",
            "Bytes of access units received (rate() * 8 = bitrate)",
            per_camera(&|s| s.bytes_in.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "vigil_agent_camera_reconnects",
            "Camera pipelines restarted after a failure",
            per_camera(&|s| s.reconnects.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "vigil_agent_camera_stalls",
            "Restarts caused by the stall watchdog (no access unit in time)",
            per_camera(&|s| s.stalls.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "vigil_agent_camera_last_frame_age_seconds",
            "Seconds since the camera's newest access unit (absent before the first)",
            self.cameras
                .iter()
                .filter_map(|(id, s)| s.last_unit_age().map(|a| (cam(id), gauge(a.as_secs_f64()))))
                .collect(),
        )?;
        let det = |f: &dyn Fn(&crate::detect::analyzer::CameraStats) -> u64| {
            self.cameras
                .iter()
                .map(|(id, _)| (cam(id), counter(detect.get(id).map(f).unwrap_or(0))))
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            "vigil_agent_detect_frames",
            "Decoded frames handed to the analyser (rate() = analysed fps)",
            det(&|d| d.frames_seen),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_motion_skipped",
            "Analysed frames the motion gate let through without inference",
            det(&|d| d.frames_motion_skipped),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_inferences",
            "Model runs",
            det(&|d| d.inferences),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_inference_errors",
            "Model runs that failed",
            det(&|d| d.inference_errors),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_frames_dropped",
            "Frames that never reached the detector: leaky analysis queue plus frames replaced by a newer one",
            self.cameras
                .iter()
                .map(|(id, s)| {
                    let d = detect.get(id).map(|d| d.frames_dropped).unwrap_or(0);
                    (cam(id), counter(s.frames_dropped.load(Ordering::Relaxed) + d))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_seconds",
            "Sum of model-run latencies (preprocess + inference + decode); divide by rate of _inferences for the mean",
            self.cameras
                .iter()
                .map(|(id, _)| {
                    let ms = detect.get(id).map(|d| d.total_detect_ms).unwrap_or(0.0);
                    (cam(id), ConstCounter::new(ms / 1000.0))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_latency_p95_seconds",
            "95th percentile of the last 200 model runs",
            self.cameras
                .iter()
                .filter_map(|(id, _)| {
                    detect
                        .get(id)
                        .and_then(|d| d.p95_detect_ms)
                        .map(|ms| (cam(id), gauge(ms / 1000.0)))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_agent_detect_result_age_p95_seconds",
            "95th percentile of the last 200 result ages: decoded frame's arrival to its detections and events",
            self.cameras
                .iter()
                .filter_map(|(id, _)| {
                    detect
                        .get(id)
                        .and_then(|d| d.p95_result_age_ms)
                        .map(|ms| (cam(id), gauge(ms / 1000.0)))
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_agent_events_started",
            "Events started by the event machine",
            det(&|d| d.events_started),
        )?;
        let events: Vec<(Labels, ConstCounter<u64>)> = lock(&self.run.events)
            .iter()
            .map(|((c, phase), n)| {
                (
                    vec![("camera", c.clone()), ("phase", phase.to_string())],
                    counter(*n),
                )
            })
            .collect();
        family(
            &mut enc,
            "vigil_agent_event_messages",
            "Event messages (start, update, end) spooled for the hub",
            events,
        )?;
        let sealed = |m: &Mutex<BTreeMap<String, u64>>| -> Vec<(Labels, ConstCounter<u64>)> {
            let m = lock(m);
            self.cameras
                .iter()
                .map(|(id, _)| (cam(id), counter(m.get(id).copied().unwrap_or(0))))
                .collect()
        };
        family(
            &mut enc,
            "vigil_agent_clips_sealed",
            "Clips signed into the chain and spooled",
            sealed(&self.run.clips_sealed),
        )?;
        family(
            &mut enc,
            "vigil_agent_clip_bytes_sealed",
            "Bytes of the MP4 files of those clips",
            sealed(&self.run.clip_bytes_sealed),
        )?;
        let o = self.outbox.stats();
        let one = |v: f64| vec![(Labels::new(), gauge(v))];
        family(
            &mut enc,
            "vigil_agent_outbox_entries",
            "Entries waiting in the outbox (clips, events, records, drop reports)",
            one(o.entries as f64),
        )?;
        family(
            &mut enc,
            "vigil_agent_outbox_bytes",
            "Bytes the outbox entries take",
            one(o.bytes as f64),
        )?;
        family(
            &mut enc,
            "vigil_agent_outbox_limit_bytes",
            "The outbox byte bound ([outbox] max_bytes)",
            one(o.limit_bytes as f64),
        )?;
        family(
            &mut enc,
            "vigil_agent_outbox_dropped_entries",
            "Unacknowledged entries dropped (byte bound or start-up clean-up), each reported to the hub",
            vec![(Labels::new(), counter(o.dropped_entries))],
        )?;
        family(
            &mut enc,
            "vigil_agent_outbox_dropped_bytes",
            "Bytes of those dropped entries",
            vec![(Labels::new(), counter(o.dropped_bytes))],
        )?;
        if let Some(u) = &self.uplink {
            let c = |a: &AtomicU64| vec![(Labels::new(), counter(a.load(Ordering::Relaxed)))];
            family(
                &mut enc,
                "vigil_agent_uplink_connected",
                "1 while connected to the MQTT broker",
                one(if u.connected.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                }),
            )?;
            family(
                &mut enc,
                "vigil_agent_uplink_connects",
                "Broker connections made (ConnAck), the first included",
                c(&u.connects),
            )?;
            family(
                &mut enc,
                "vigil_agent_uplink_clips_stored",
                "Clips the hub acknowledged as stored",
                c(&u.clips_stored),
            )?;
            family(
                &mut enc,
                "vigil_agent_uplink_clips_rejected",
                "Clips the hub rejected (kept in outbox/rejected/)",
                c(&u.clips_rejected),
            )?;
            family(
                &mut enc,
                "vigil_agent_uplink_messages_acked",
                "Spooled events, chain records and drop reports acknowledged by the broker",
                c(&u.messages_acked),
            )?;
        }
        Ok(())
    }
}

/// Renders the OpenMetrics text of `collector` (one registry, one collector).
pub fn render(collector: Arc<AgentMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "Cannot encode metrics");
    }
    out
}

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The running endpoint; dropping it does not stop it, [`MetricsServer::stop`] does.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `GET /metrics` on a thread named `metrics`.
    pub fn start(listen: &str, metrics: Arc<AgentMetrics>) -> anyhow::Result<MetricsServer> {
        let server = tiny_http::Server::http(listen).map_err(|e| {
            anyhow::anyhow!(
                "metrics.listen: cannot listen on {listen}: {e}; choose a free port or remove [metrics]"
            )
        })?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow::anyhow!("metrics.listen: {listen} is not an IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(server, metrics, stop2))?;
        tracing::info!(addr = %addr, "Metrics on http://{addr}/metrics");
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread (bounded by its 200 ms poll).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: tiny_http::Server, metrics: Arc<AgentMetrics>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let request = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "Metrics endpoint: cannot accept a request");
                continue;
            }
        };
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let body = render(metrics.clone());
                tiny_http::Response::from_string(body).with_header(header(CONTENT_TYPE))
            }
            (tiny_http::Method::Get, _) => {
                tiny_http::Response::from_string("not found; the metrics are at /metrics\n")
                    .with_status_code(404)
                    .with_header(header("text/plain; charset=utf-8"))
            }
            _ => tiny_http::Response::from_string("only GET is served\n")
                .with_status_code(405)
                .with_header(header("text/plain; charset=utf-8")),
        };
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "Metrics endpoint: client went away");
        }
    }
}

fn header(content_type: &'static str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
        .expect("a constant ASCII header")
}
