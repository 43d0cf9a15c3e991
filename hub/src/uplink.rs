//! The hub's MQTT link: `run()` is a retry loop with backoff around one
//! broker session; messages are processed in order by a single ingest task.

use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::ingest::Ingest;
use crate::topic::SUBSCRIPTIONS;

/// Largest MQTT packet accepted or sent: a 256 KiB chunk plus headroom for
/// manifests with many GOPs.
pub const MAX_PACKET: usize = 1024 * 1024;

/// Broker connection settings.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id.
    pub client_id: String,
}

impl BrokerSettings {
    /// Parses `mqtt://host[:port]` (TLS is not part of this slice).
    pub fn from_url(url: &str) -> anyhow::Result<BrokerSettings> {
        let Some(rest) = url.strip_prefix("mqtt://") else {
            anyhow::bail!(
                "broker url {url:?} must start with mqtt:// (mqtts:// is not supported yet)"
            );
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .with_context(|| format!("broker url {url:?}: port {p:?} is not a number"))?,
            ),
            None => (rest.to_string(), 1883),
        };
        if host.is_empty() {
            anyhow::bail!("broker url {url:?} has no host");
        }
        Ok(BrokerSettings {
            host,
            port,
            client_id: "vigil-hub".into(),
        })
    }

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(15));
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        // Ack to the broker only after the message was handled.
        o.set_manual_acks(true);
        o
    }
}

/// Runs the hub's MQTT session until `shutdown` resolves, reconnecting with backoff.
pub async fn run(
    settings: BrokerSettings,
    ingest: Ingest,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(settings.options(), 64);
    let (tx, mut rx) = mpsc::channel::<rumqttc::Publish>(64);
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
            if let Some((t, ack)) = out.ack {
                match serde_json::to_vec(&ack) {
                    Ok(body) => {
                        if let Err(e) = worker_client
                            .publish(t, QoS::AtLeastOnce, false, body)
                            .await
                        {
                            tracing::warn!(error = %e, "Cannot queue an ack");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "Cannot encode an ack"),
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
            r = poll(&mut eventloop, &client, &tx, &mut attempt) => {
                if let Err(e) = r {
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
    tx: &mpsc::Sender<rumqttc::Publish>,
    attempt: &mut u32,
) -> anyhow::Result<()> {
    match eventloop.poll().await? {
        Event::Incoming(Packet::ConnAck(_)) => {
            *attempt = 0;
            tracing::info!("Connected to the broker");
            for t in SUBSCRIPTIONS {
                client.subscribe(t, QoS::AtLeastOnce).await?;
            }
        }
        Event::Incoming(Packet::Publish(p)) => {
            tx.send(p).await.context("the ingest task stopped")?;
        }
        _ => {}
    }
    Ok(())
}
