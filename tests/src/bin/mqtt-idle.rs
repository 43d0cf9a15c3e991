//! Idle agent sessions for the hub memory benchmark (`bench/trust.sh`): logs in every
//! `USER PASSWORD` line of `LOGINS` (enrolled agents), over TLS with `--ca FILE`, keeps
//! the sessions idle (keep-alive pings only), prints `connected N` once all are up and
//! holds them until stdin closes.
//!
//! `mqtt-idle HOST PORT LOGINS [--ca FILE]`

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, logins, rest @ ..] = args.as_slice() else {
        bail!("usage: mqtt-idle HOST PORT LOGINS [--ca FILE]");
    };
    let port: u16 = port.parse().context("PORT")?;
    let ca = match rest {
        [flag, ca] if flag == "--ca" => Some(ca.clone()),
        [] => None,
        _ => bail!("usage: mqtt-idle HOST PORT LOGINS [--ca FILE]"),
    };
    let file = std::fs::File::open(logins).with_context(|| format!("read {logins}"))?;
    let users: Vec<(String, String)> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let (u, p) = l.split_once(' ')?;
            Some((u.to_string(), p.to_string()))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let up = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        for (user, pass) in &users {
            let mut o = MqttOptions::new(user.clone(), host.clone(), port);
            o.set_credentials(user.clone(), pass.clone());
            o.set_keep_alive(Duration::from_secs(60));
            if let Some(ca) = &ca {
                o.set_transport(vigil_tests::tls::rumqttc_transport(std::path::Path::new(
                    ca,
                ))?);
            }
            let (client, mut el) = AsyncClient::new(o, 4);
            let up = up.clone();
            tokio::spawn(async move {
                let _client = client;
                loop {
                    match el.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            up.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        while up.load(Ordering::SeqCst) < users.len() {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} sessions up after 300 s",
                    up.load(Ordering::SeqCst),
                    users.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("connected {}", users.len());
        anyhow::Ok(())
    })?;
    // Hold until stdin closes.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}
