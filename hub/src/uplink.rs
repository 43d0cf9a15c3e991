//! The hub's MQTT link: `run()` is a retry loop with backoff around one
//! broker session; messages are processed in order by a single ingest task.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;

use crate::config::{parse_broker_url, Secret};
use crate::ingest::Ingest;
use crate::topic::SUBSCRIPTIONS;

/// Largest MQTT packet accepted or sent (same as the agent's): a 256 KiB chunk
/// plus headroom for manifests with many GOPs.
pub const MAX_PACKET: usize = 2 * 1024 * 1024;

/// Largest packet the hub's client reads. Larger than any valid message on purpose:
/// an oversized message from a hostile publisher on an external broker is read and
/// rejected by ingest (`too_large`, counted) instead of dropping the hub's connection
/// (rumqttc disconnects on a packet over its limit).
pub const MAX_INCOMING_PACKET: usize = 8 * 1024 * 1024;

/// Broker connection settings.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id.
    pub client_id: String,
    /// Username and password, if the broker wants them.
    pub credentials: Option<(String, Secret)>,
    /// CA file for `mqtts://` (TLS when set).
    pub tls_ca: Option<PathBuf>,
    /// Set while the hub is connected and every subscription was acknowledged
    /// (the embedded broker refuses agents until then).
    pub subscribed: Option<Arc<AtomicBool>>,
    /// Ask the broker for a persistent session (clean session off): while the hub is
    /// away (restart, crash), an external broker queues the QoS 1 messages of its
    /// subscriptions and delivers them on reconnect, so events published meanwhile are
    /// not lost. Off for the embedded broker, which lives and dies with the hub.
    pub persistent_session: bool,
}

impl BrokerSettings {
    /// Parses `mqtt://host[:port]`; `mqtts://` needs a CA file (see [`BrokerSettings::tls_ca`]).
    pub fn from_url(url: &str) -> anyhow::Result<BrokerSettings> {
        let u = parse_broker_url(url).map_err(|e| anyhow::anyhow!("broker url: {e}"))?;
        Ok(BrokerSettings {
            host: u.host,
            port: u.port,
            client_id: "vigil-hub".into(),
            credentials: None,
            tls_ca: None,
            subscribed: None,
            persistent_session: true,
        })
    }

    fn options(&self) -> anyhow::Result<MqttOptions> {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(15));
        o.set_max_packet_size(MAX_INCOMING_PACKET, MAX_PACKET);
        // Ack to the broker only after the message was handled.
        o.set_manual_acks(true);
        o.set_clean_session(!self.persistent_session);
        if let Some((user, pass)) = &self.credentials {
            o.set_credentials(user.clone(), pass.0.clone());
        }
        if let Some(ca) = &self.tls_ca {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_client_config(ca)?),
            )));
        }
        Ok(o)
    }
}

/// A rustls client config (ring provider) trusting only the CA certificates in `ca`.
fn tls_client_config(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("broker.external.ca_file: cannot read {}", ca.display()))?
    {
        let cert = cert.with_context(|| {
            format!(
                "broker.external.ca_file: {} is not PEM certificates",
                ca.display()
            )
        })?;
        roots.add(cert).with_context(|| {
            format!(
                "broker.external.ca_file: a certificate in {} is invalid",
                ca.display()
            )
        })?;
    }
    if roots.is_empty() {
        anyhow::bail!(
            "broker.external.ca_file: {} holds no certificate",
            ca.display()
        );
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Requests (acks, replies, subscribe) waiting for the event loop. Larger than two
/// in-flight windows so the ingest task never waits on it in practice.
const REQUEST_QUEUE: usize = 512;
/// QoS 0 messages (health, snapshots: live, never spooled) waiting for the ingest
/// beyond which new ones are dropped (counted as `overloaded`): the broker's in-flight
/// window bounds QoS 1 only.
const MAX_QUEUED_QOS0: usize = 256;
/// How long shutdown lets the ingest task finish what it has.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A publish for the ingest task, tagged with the broker connection it came on.
///
/// They wait in an unbounded queue: the broker's in-flight window bounds it for QoS 1
/// (acks are manual and sent after handling; the embedded broker sends at most 100
/// unacked, Mosquitto 20 by default) and `MAX_QUEUED_QOS0` for QoS 0. A bounded queue
/// deadlocked under a burst: the event loop waited for room while the ingest task
/// waited for the event loop to take its acks, no keep-alive went out, and the broker
/// dropped the hub's session with the messages in it (`bench/memory.sh` found it: 200
/// events spooled, 67 indexed).
struct Incoming {
    generation: u64,
    publish: rumqttc::Publish,
}

/// How often pending recording requests are looked at.
const COMMANDS_EVERY: Duration = Duration::from_secs(2);

/// Runs the hub's MQTT session until `shutdown` resolves, reconnecting with backoff.
/// `stored` is notified after every handled message that is not
/// [`quiet`](crate::ingest::Outcome::quiet)
/// (the web's live poller waits on it).
pub async fn run(
    settings: BrokerSettings,
    ingest: Ingest,
    stored: std::sync::Arc<tokio::sync::Notify>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(settings.options()?, REQUEST_QUEUE);
    // Acks are small replies the agent waits for: no Nagle delay on them.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let subscribed = settings.subscribed.clone();
    let counters = ingest.counters();
    // Bumped when a connection fails and at every ConnAck: a message's PubAck is only
    // sent on the connection it came on (a broker refuses acks for packet ids it never
    // sent on this session, and a clean session redelivers nothing anyway).
    let generation = Arc::new(AtomicU64::new(0));
    let queued_qos0 = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Incoming>();
    let worker_client = client.clone();
    let (worker_generation, worker_qos0) = (generation.clone(), queued_qos0.clone());
    let mut worker = tokio::spawn(async move {
        let mut ingest = ingest;
        let mut commands_tick = tokio::time::interval(COMMANDS_EVERY);
        commands_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = tokio::select! {
                m = rx.recv() => m,
                _ = commands_tick.tick() => {
                    // Pending pulls and holds go to their agents (ingest/commands.rs).
                    let (back, due) = tokio::task::spawn_blocking(move || {
                        let due = ingest.due_commands();
                        (ingest, due)
                    })
                    .await
                    .context("the ingest task panicked")?;
                    ingest = back;
                    for (t, body) in due {
                        if let Err(e) = worker_client.publish(t, QoS::AtLeastOnce, false, body).await {
                            tracing::warn!(error = %e, "Cannot queue a command for an agent");
                        }
                    }
                    continue;
                }
            };
            let Some(Incoming {
                generation: gen,
                publish: p,
            }) = next
            else {
                break;
            };
            if p.qos == QoS::AtMostOnce {
                worker_qos0.fetch_sub(1, Ordering::Relaxed);
            }
            let topic = p.topic.clone();
            let payload = p.payload.clone();
            let (ingest_back, out) = tokio::task::spawn_blocking(move || {
                let out = ingest.handle(&topic, &payload);
                (ingest, out)
            })
            .await
            .context("the ingest task panicked")?;
            ingest = ingest_back;
            if !out.quiet {
                stored.notify_one();
            }
            // The clip or entry ack (encoded here) and any other reply go out the same way.
            let encoded = |r: serde_json::Result<Vec<u8>>| match r {
                Ok(body) => Some(body),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot encode an ack");
                    None
                }
            };
            let ack = out
                .ack
                .and_then(|(t, ack)| encoded(serde_json::to_vec(&ack)).map(|b| (t, b)));
            let entry_ack = out
                .entry_ack
                .and_then(|(t, ack)| encoded(serde_json::to_vec(&ack)).map(|b| (t, b)));
            for (t, body) in ack.into_iter().chain(entry_ack).chain(out.reply) {
                if let Err(e) = worker_client
                    .publish(t, QoS::AtLeastOnce, false, body)
                    .await
                {
                    tracing::warn!(error = %e, "Cannot queue an ack or reply");
                }
            }
            if p.qos != QoS::AtMostOnce && gen == worker_generation.load(Ordering::SeqCst) {
                if let Err(e) = worker_client.ack(&p).await {
                    tracing::warn!(error = %e, "Cannot ack a message to the broker");
                }
            }
        }
        anyhow::Ok(())
    });
    tokio::pin!(shutdown);
    let mut attempt: u32 = 0;
    let session = Session {
        client: &client,
        tx: &tx,
        subscribed: subscribed.as_deref(),
        generation: &generation,
        queued_qos0: &queued_qos0,
        counters: &counters,
    };
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = &mut worker => {
                // The ingest task only ends on an error: stop, do not spin on a dead queue.
                return joined(r).and(Err(anyhow::anyhow!("the ingest task stopped")));
            }
            r = session.poll(&mut eventloop, &mut attempt) => {
                crate::service::beat();
                if let Err(e) = r {
                    generation.fetch_add(1, Ordering::SeqCst);
                    if let Some(s) = &subscribed {
                        s.store(false, Ordering::SeqCst);
                    }
                    counters.broker_connected.store(false, Ordering::Relaxed);
                    attempt += 1;
                    let delay = Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5)));
                    tracing::warn!(error = format!("{e:#}"), attempt, delay_ms = delay.as_millis() as u64, "Broker connection lost; retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
    // Let the ingest task finish what it has, keeping the event loop polled so its acks
    // and replies go out (nothing else reads the request queue), within a grace period.
    drop(tx);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        loop {
            tokio::select! {
                r = &mut worker => break r,
                ev = eventloop.poll() => if ev.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await;
    let result = match drained {
        Ok(r) => joined(r),
        Err(_) => {
            // Unacked messages are redelivered (persistent session) or were never acked.
            tracing::warn!(
                "The ingest task did not finish in time; leaving the rest to the broker"
            );
            worker.abort();
            Ok(())
        }
    };
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    result
}

/// The ingest task's result once it has ended.
fn joined(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match r {
        Ok(r) => r.context("the ingest task failed"),
        Err(e) => Err(anyhow::anyhow!("the ingest task panicked: {e}")),
    }
}

/// What [`Session::poll`] needs besides the event loop.
struct Session<'a> {
    client: &'a AsyncClient,
    tx: &'a mpsc::UnboundedSender<Incoming>,
    subscribed: Option<&'a AtomicBool>,
    generation: &'a AtomicU64,
    queued_qos0: &'a AtomicUsize,
    counters: &'a crate::metrics::HubCounters,
}

impl Session<'_> {
    /// Polls one event; subscribes on every ConnAck and forwards publishes. Never
    /// waits on anything but the network: the ingest task depends on this loop.
    async fn poll(&self, eventloop: &mut EventLoop, attempt: &mut u32) -> anyhow::Result<()> {
        match eventloop.poll().await? {
            Event::Incoming(Packet::SubAck(a)) => {
                if a.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    anyhow::bail!("the broker refused a subscription");
                }
                // Every filter went in one SUBSCRIBE after ConnAck: its SubAck means listening.
                if let Some(s) = self.subscribed {
                    s.store(true, Ordering::SeqCst);
                }
                self.counters
                    .broker_connected
                    .store(true, Ordering::Relaxed);
            }
            Event::Incoming(Packet::ConnAck(_)) => {
                *attempt = 0;
                self.generation.fetch_add(1, Ordering::SeqCst);
                tracing::info!("Connected to the broker");
                // One SUBSCRIBE for every filter, so one SubAck means "listening".
                self.client
                    .try_subscribe_many(
                        SUBSCRIPTIONS.iter().map(|t| {
                            rumqttc::SubscribeFilter::new(t.to_string(), QoS::AtLeastOnce)
                        }),
                    )
                    .context("cannot queue the subscriptions")?;
            }
            Event::Incoming(Packet::Publish(p)) => {
                if p.qos == QoS::AtMostOnce {
                    if self.queued_qos0.load(Ordering::Relaxed) >= MAX_QUEUED_QOS0 {
                        let n = self.counters.rejected("overloaded");
                        tracing::warn!(topic = %p.topic, dropped = n, "Live message dropped: the ingest is behind");
                        return Ok(());
                    }
                    self.queued_qos0.fetch_add(1, Ordering::Relaxed);
                }
                let generation = self.generation.load(Ordering::SeqCst);
                self.tx
                    .send(Incoming {
                        generation,
                        publish: p,
                    })
                    .context("the ingest task stopped")?;
            }
            _ => {}
        }
        Ok(())
    }
}
