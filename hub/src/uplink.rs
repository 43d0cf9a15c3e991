//! The hub's MQTT link: `run()` is a retry loop with backoff around one
//! broker session; messages are processed in order by a single ingest task.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
///
/// Messages wait for the ingest task in an unbounded queue: the broker's in-flight
/// window bounds it (acks are manual and sent after handling; the embedded broker
/// sends at most 100 unacked, Mosquitto 20 by default). A bounded queue deadlocked
/// under a burst: the event loop waited for room while the ingest task waited for the
/// event loop to take its acks, no keep-alive went out, and the broker dropped the
/// hub's session with the messages in it (`bench/memory.sh` found it: 200 events
/// spooled, 67 indexed).
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

/// Runs the hub's MQTT session until `shutdown` resolves, reconnecting with backoff.
/// `stored` is notified after every handled message but clip chunks that do not
/// complete their clip (the web's live poller waits on it).
pub async fn run(
    settings: BrokerSettings,
    ingest: Ingest,
    stored: std::sync::Arc<tokio::sync::Notify>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(settings.options()?, 64);
    // Acks are small replies the agent waits for: no Nagle delay on them.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let subscribed = settings.subscribed.clone();
    let counters = ingest.counters();
    let (tx, mut rx) = mpsc::unbounded_channel::<rumqttc::Publish>();
    let worker_client = client.clone();
    let worker = tokio::spawn(async move {
        let mut ingest = ingest;
        while let Some(p) = rx.recv().await {
            let topic = p.topic.clone();
            let payload = p.payload.clone();
            let (ingest_back, out) = tokio::task::spawn_blocking(move || {
                let out = ingest.handle(&topic, &payload);
                (ingest, out)
            })
            .await
            .context("the ingest task panicked")?;
            ingest = ingest_back;
            // A chunk only changes what the page shows when it completes its clip.
            if !p.topic.contains("/chunk/") || out.ack.is_some() {
                stored.notify_one();
            }
            // The clip ack (encoded here) and any other reply go out the same way.
            let ack = out.ack.and_then(|(t, ack)| match serde_json::to_vec(&ack) {
                Ok(body) => Some((t, body)),
                Err(e) => {
                    tracing::error!(error = %e, "Cannot encode an ack");
                    None
                }
            });
            for (t, body) in ack.into_iter().chain(out.reply) {
                if let Err(e) = worker_client
                    .publish(t, QoS::AtLeastOnce, false, body)
                    .await
                {
                    tracing::warn!(error = %e, "Cannot queue an ack or reply");
                }
            }
            if let Err(e) = worker_client.ack(&p).await {
                tracing::warn!(error = %e, "Cannot ack a message to the broker");
            }
        }
        anyhow::Ok(())
    });
    tokio::pin!(shutdown);
    let mut attempt: u32 = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = poll(&mut eventloop, &client, &tx, &mut attempt, subscribed.as_deref(), &counters.broker_connected) => {
                crate::service::beat();
                if let Err(e) = r {
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
    drop(tx);
    let _ = client.disconnect().await;
    worker.await.context("the ingest task failed")??;
    Ok(())
}

/// Polls one event; subscribes on every ConnAck and forwards publishes.
async fn poll(
    eventloop: &mut EventLoop,
    client: &AsyncClient,
    tx: &mpsc::UnboundedSender<rumqttc::Publish>,
    attempt: &mut u32,
    subscribed: Option<&AtomicBool>,
    connected: &AtomicBool,
) -> anyhow::Result<()> {
    match eventloop.poll().await? {
        Event::Incoming(Packet::SubAck(a)) => {
            if a.return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
            {
                anyhow::bail!("the broker refused a subscription");
            }
            // Every filter went in one SUBSCRIBE after ConnAck: its SubAck means listening.
            if let Some(s) = subscribed {
                s.store(true, Ordering::SeqCst);
            }
            connected.store(true, Ordering::Relaxed);
        }
        Event::Incoming(Packet::ConnAck(_)) => {
            *attempt = 0;
            tracing::info!("Connected to the broker");
            // One SUBSCRIBE for every filter, so one SubAck means "listening".
            client
                .subscribe_many(
                    SUBSCRIPTIONS
                        .iter()
                        .map(|t| rumqttc::SubscribeFilter::new(t.to_string(), QoS::AtLeastOnce)),
                )
                .await?;
        }
        Event::Incoming(Packet::Publish(p)) => {
            // Never waits: the event loop must keep polling (pings, the ingest's acks).
            tx.send(p).context("the ingest task stopped")?;
        }
        _ => {}
    }
    Ok(())
}
