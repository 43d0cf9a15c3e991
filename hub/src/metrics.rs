//! Prometheus endpoint of the hub (`[metrics] listen`): `GET /metrics`, OpenMetrics text.
//!
//! Two sources, read at scrape time:
//! - [`HubCounters`]: what the ingest did since the process started (messages per
//!   kind, handling time, rejections per code, clips stored, chunk bytes, events);
//! - the SQLite index (read-only connection per scrape): clips indexed, alerts per
//!   kind, agents per status, each camera's last reported state and the age of its
//!   health report. These survive restarts, so they are gauges.
//!
//! Rates (events/s, clips/s) are PromQL `rate()` over the `_total` counters.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use rusqlite::{Connection, OpenFlags};

/// Content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the embedded broker's front did with connections since start, by event
/// (`accepted`, `logged_in`, `login_refused`, `throttled`, `pending_limit`,
/// `connect_timeout`, `tls_failed`, `protocol_error`, `too_large`, `forgery`,
/// `io_error`); shared by the front and the endpoint.
#[derive(Debug, Default)]
pub struct FrontCounters {
    inner: Mutex<BTreeMap<&'static str, u64>>,
}

impl FrontCounters {
    /// One more `event`.
    pub fn add(&self, event: &'static str) {
        *self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event)
            .or_default() += 1;
    }

    /// Every count so far.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Ingest counters since start; shared by the ingest task and the endpoint.
#[derive(Debug, Default)]
pub struct HubCounters {
    inner: Mutex<Counts>,
    /// Connected to the broker with every subscription acknowledged.
    pub broker_connected: AtomicBool,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    /// Messages handled, by topic kind.
    messages: BTreeMap<&'static str, u64>,
    /// Seconds spent handling them, by topic kind.
    seconds: BTreeMap<&'static str, f64>,
    /// Refused messages, by rejection code.
    rejected: BTreeMap<&'static str, u64>,
    /// Clips verified, stored and indexed by this process.
    clips_stored: u64,
    /// Bytes of chunks accepted.
    chunk_bytes: u64,
    /// Event messages indexed.
    events: u64,
}

impl HubCounters {
    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// One message of `kind` was handled in `took`.
    pub fn handled(&self, kind: &'static str, took: Duration) {
        self.with(|c| {
            *c.messages.entry(kind).or_default() += 1;
            *c.seconds.entry(kind).or_default() += took.as_secs_f64();
        });
    }

    /// A message was refused with `code`; returns the new count for the code.
    pub fn rejected(&self, code: &'static str) -> u64 {
        self.with(|c| {
            let n = c.rejected.entry(code).or_default();
            *n += 1;
            *n
        })
    }

    /// A clip was verified, stored and indexed.
    pub fn clip_stored(&self) {
        self.with(|c| c.clips_stored += 1);
    }

    /// A chunk of `bytes` was accepted.
    pub fn chunk(&self, bytes: u64) {
        self.with(|c| c.chunk_bytes += bytes);
    }

    /// An event message was indexed.
    pub fn event(&self) {
        self.with(|c| c.events += 1);
    }

    /// Rejections by code since start.
    pub fn rejected_counts(&self) -> BTreeMap<&'static str, u64> {
        self.with(|c| c.rejected.clone())
    }
}

/// What a scrape reads.
#[derive(Debug)]
pub struct HubMetrics {
    /// Ingest counters of this process.
    pub counters: Arc<HubCounters>,
    /// The SQLite index (opened read-only per scrape).
    pub index: PathBuf,
    /// The embedded broker's front (None with an external broker).
    pub front: Option<Arc<FrontCounters>>,
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

fn by<V: Copy, M>(
    map: &BTreeMap<&'static str, V>,
    label: &'static str,
    f: fn(V) -> M,
) -> Vec<(Labels, M)> {
    map.iter()
        .map(|(k, v)| (vec![(label, k.to_string())], f(*v)))
        .collect()
}

fn one<M>(m: M) -> Vec<(Labels, M)> {
    vec![(Labels::new(), m)]
}

/// Index figures of one scrape.
#[derive(Default)]
struct IndexFigures {
    clips: u64,
    clip_bytes: u64,
    events: u64,
    alerts: Vec<(String, u64)>,
    agents: Vec<(String, u64)>,
    /// (agent, camera, state, seconds since its health arrived)
    cameras: Vec<(String, String, String, f64)>,
}

fn read_index(path: &std::path::Path) -> rusqlite::Result<IndexFigures> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let (clips, clip_bytes): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(size), 0) FROM clips",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let events: i64 = conn.query_row("SELECT count(DISTINCT event_id) FROM events", [], |r| {
        r.get(0)
    })?;
    let pairs = |sql: &str| -> rusqlite::Result<Vec<(String, u64)>> {
        let mut st = conn.prepare(sql)?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect()
    };
    let alerts = pairs("SELECT kind, count(*) FROM alerts GROUP BY kind ORDER BY kind")?;
    let agents = pairs(
        "SELECT coalesce(json_extract(json, '$.state'), 'unknown'), count(*) FROM agent_status GROUP BY 1 ORDER BY 1",
    )?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut st = conn.prepare(
        "SELECT agent_id, camera_id, state, received_at FROM camera_health ORDER BY agent_id, camera_id",
    )?;
    let cameras = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                (now - r.get::<_, i64>(3)?).max(0) as f64,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(IndexFigures {
        clips: clips as u64,
        clip_bytes: clip_bytes as u64,
        events: events as u64,
        alerts,
        agents,
        cameras,
    })
}

impl Collector for HubMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let c = self.counters.with(|c| c.clone());
        let counter = ConstCounter::<u64>::new;
        family(
            &mut enc,
            "vigil_hub_messages",
            "MQTT messages handled by the ingest, by topic kind",
            by(&c.messages, "kind", counter),
        )?;
        family(
            &mut enc,
            "vigil_hub_ingest_seconds",
            "Seconds the ingest spent handling messages, by topic kind (verification included)",
            by(&c.seconds, "kind", ConstCounter::<f64>::new),
        )?;
        if let Some(front) = &self.front {
            family(
                &mut enc,
                "vigil_hub_broker_connections",
                "Embedded broker connections by what happened to them (accepted, logged_in, login_refused, throttled, pending_limit, connect_timeout, tls_failed, protocol_error, too_large, forgery, io_error)",
                by(&front.snapshot(), "event", counter),
            )?;
        }
        family(
            &mut enc,
            "vigil_hub_rejected",
            "Messages refused, by rejection code (docs/mqtt.md)",
            by(&c.rejected, "code", counter),
        )?;
        family(
            &mut enc,
            "vigil_hub_clips_stored",
            "Clips verified, stored and indexed by this process",
            one(counter(c.clips_stored)),
        )?;
        family(
            &mut enc,
            "vigil_hub_chunk_bytes",
            "Bytes of clip chunks accepted",
            one(counter(c.chunk_bytes)),
        )?;
        family(
            &mut enc,
            "vigil_hub_event_messages",
            "Event messages indexed by this process",
            one(counter(c.events)),
        )?;
        family(
            &mut enc,
            "vigil_hub_broker_connected",
            "1 while the ingest is connected to the broker with its subscriptions",
            one(ConstGauge::new(i64::from(
                self.counters.broker_connected.load(Ordering::Relaxed),
            ))),
        )?;
        let ix = match read_index(&self.index) {
            Ok(ix) => {
                family(
                    &mut enc,
                    "vigil_hub_index_up",
                    "1 when the SQLite index could be read for this scrape",
                    one(ConstGauge::new(1i64)),
                )?;
                ix
            }
            Err(e) => {
                tracing::warn!(error = %e, "Metrics: cannot read the index");
                family(
                    &mut enc,
                    "vigil_hub_index_up",
                    "1 when the SQLite index could be read for this scrape",
                    one(ConstGauge::new(0i64)),
                )?;
                return Ok(());
            }
        };
        let gauge = |v: u64| ConstGauge::new(v as i64);
        family(
            &mut enc,
            "vigil_hub_clips_indexed",
            "Clips in the index",
            one(gauge(ix.clips)),
        )?;
        family(
            &mut enc,
            "vigil_hub_clip_bytes_indexed",
            "Bytes of the clips in the index",
            one(gauge(ix.clip_bytes)),
        )?;
        family(
            &mut enc,
            "vigil_hub_events_indexed",
            "Distinct events in the index",
            one(gauge(ix.events)),
        )?;
        family(
            &mut enc,
            "vigil_hub_alerts",
            "Alerts ever raised, by kind (missing_clip, tamper, rejected, outbox_drop, forgery)",
            ix.alerts
                .iter()
                .map(|(k, n)| (vec![("kind", k.clone())], gauge(*n)))
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_hub_agents",
            "Agents by their last retained status (online, offline)",
            ix.agents
                .iter()
                .map(|(k, n)| (vec![("state", k.clone())], gauge(*n)))
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_hub_camera_streaming",
            "1 when the camera's last health report said streaming",
            ix.cameras
                .iter()
                .map(|(a, cam, st, _)| {
                    (
                        vec![("agent", a.clone()), ("camera", cam.clone())],
                        gauge(u64::from(st == "streaming")),
                    )
                })
                .collect(),
        )?;
        family(
            &mut enc,
            "vigil_hub_camera_health_age_seconds",
            "Seconds since the camera's last health report arrived",
            ix.cameras
                .iter()
                .map(|(a, cam, _, age)| {
                    (
                        vec![("agent", a.clone()), ("camera", cam.clone())],
                        ConstGauge::new(*age),
                    )
                })
                .collect(),
        )?;
        Ok(())
    }
}

/// Renders the OpenMetrics text of `metrics`.
pub fn render(metrics: Arc<HubMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "Cannot encode metrics");
    }
    out
}

/// Binds `listen` and returns the bound address and the server future (runs until `shutdown`).
pub async fn serve(
    listen: &str,
    metrics: Arc<HubMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::http::header;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "metrics.listen: cannot listen on {listen}: {e}; choose a free port or remove [metrics]"
        )
    })?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                let body = tokio::task::spawn_blocking(move || render(m))
                    .await
                    .unwrap_or_default();
                ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
            }
        }),
    );
    tracing::info!(addr = %addr, "Metrics on http://{addr}/metrics");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "Metrics endpoint stopped");
        }
    });
    Ok((addr, task))
}
