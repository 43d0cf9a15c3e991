//! A small, seeded MQTT fuzzer for the hub's embedded broker: connections from many
//! loopback source addresses (127.0.0.2 …) that write random and mutated MQTT frames —
//! garbage, malformed remaining lengths, oversized declared packets, CONNECT floods
//! with wrong passwords, bit-flipped CONNECTs, valid logins followed by mutated
//! packets, slow-loris writers and idle connections. Bounded by count and time.
//!
//! Valid frames come from rumqttc's own codec (`mqttbytes::v4`), mutations flip bytes
//! and cut frames, so every case is one a broken or hostile client could send.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use rumqttc::mqttbytes::v4::{Connect, Login, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;

/// What to throw and for how long.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// The broker's plain MQTT listener.
    pub target: SocketAddr,
    /// Seed of every choice.
    pub seed: u64,
    /// Stop after this long …
    pub duration: Duration,
    /// … or this many connections.
    pub max_connections: u64,
    /// A login the fuzzer may use for post-CONNECT cases (an enrolled agent of its own).
    pub login: Option<(String, String)>,
    /// Connections held open at most (idle and slow-loris ones).
    pub max_held: usize,
}

/// What the fuzzer did.
#[derive(Debug, Default, Clone)]
pub struct FuzzStats {
    pub connections: u64,
    pub refused: u64,
    pub bytes: u64,
    /// Per case kind, how often.
    pub cases: std::collections::BTreeMap<&'static str, u64>,
}

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A value in `from..to` (`from` when the range is empty).
    pub fn between(&mut self, from: u64, to: u64) -> u64 {
        from + self.below(to.saturating_sub(from))
    }

    /// Seeded from the environment variable `var` when it holds a number (to replay a
    /// run), else from the clock; the seed is printed as `VAR=seed` either way.
    pub fn seeded(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    | 1
            });
        eprintln!("{var}={seed}");
        Rng(seed)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A TCP connection to `target` from `127.0.0.{2..=250}` (Linux routes all of
/// 127/8 to loopback), so per-address limits see many clients.
pub fn connect_from(target: SocketAddr, host: u8) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let source = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, host.clamp(2, 250)), 0);
    socket.bind(&SocketAddr::V4(source).into())?;
    socket.connect_timeout(&target.into(), Duration::from_secs(2))?;
    let s: TcpStream = socket.into();
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(s)
}

fn connect_frame(client_id: &str, login: Option<(&str, &str)>, keep_alive: u16) -> Vec<u8> {
    let mut c = Connect::new(client_id);
    c.keep_alive = keep_alive;
    if let Some((u, p)) = login {
        c.login = Some(Login::new(u, p));
    }
    let mut b = bytes::BytesMut::new();
    let _ = c.write(&mut b);
    b.to_vec()
}

fn publish_frame(topic: &str, payload: Vec<u8>, qos: QoS, pkid: u16) -> Vec<u8> {
    let mut p = Publish::new(topic, qos, payload);
    p.pkid = pkid;
    let mut b = bytes::BytesMut::new();
    let _ = p.write(&mut b);
    b.to_vec()
}

fn subscribe_frame(filter: &str) -> Vec<u8> {
    let mut s = Subscribe::new(filter, QoS::AtLeastOnce);
    s.pkid = 1;
    let mut b = bytes::BytesMut::new();
    let _ = s.write(&mut b);
    b.to_vec()
}

fn mutate(rng: &mut Rng, mut frame: Vec<u8>) -> Vec<u8> {
    if frame.is_empty() {
        return frame;
    }
    for _ in 0..=rng.below(4) {
        let i = rng.below(frame.len() as u64) as usize;
        match rng.below(3) {
            0 => frame[i] ^= 1 << rng.below(8),
            1 => frame[i] = rng.next_u64() as u8,
            _ => frame.truncate(i.max(1)),
        }
        if frame.is_empty() {
            break;
        }
    }
    frame
}

/// Runs the fuzzer; never panics on the broker's behaviour (the caller checks the hub).
pub fn run(opts: &FuzzOptions) -> FuzzStats {
    let mut rng = Rng(opts.seed.max(1));
    let mut stats = FuzzStats::default();
    let mut held: Vec<(TcpStream, bool)> = Vec::new();
    let started = Instant::now();
    let topics = [
        "vigil/v1/fz/events",
        "vigil/v1/fz/clips/chunk",
        "vigil/v1/a1/events",
        "vigil/v1/+/events",
        "#",
        "",
        "vigil/v1/fz/cameras/../../snapshot",
    ];
    while started.elapsed() < opts.duration && stats.connections < opts.max_connections {
        // Slow-loris ones dribble a byte each round.
        for (s, slow) in held.iter_mut() {
            if *slow {
                let _ = s.write_all(&[rng.next_u64() as u8]);
            }
        }
        let host = 2 + rng.below(240) as u8;
        let mut s = match connect_from(opts.target, host) {
            Ok(s) => s,
            Err(_) => {
                stats.refused += 1;
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        stats.connections += 1;
        let case = rng.below(9);
        let (name, frames): (&'static str, Vec<Vec<u8>>) = match case {
            0 => {
                let n = 1 + rng.below(4096) as usize;
                ("garbage", vec![rng.bytes(n)])
            }
            1 => (
                "bad_remaining_length",
                vec![vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]],
            ),
            2 => (
                "oversized",
                vec![vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0, 4, b'v', b'i']],
            ),
            3 => (
                "bad_password",
                vec![connect_frame("fz", Some(("fz", "wrong")), 30)],
            ),
            4 => (
                "mutated_connect",
                vec![mutate(&mut rng, connect_frame("fz", Some(("fz", "x")), 30))],
            ),
            5 | 6 => {
                let Some((u, p)) = &opts.login else { continue };
                let mut frames = vec![connect_frame(u, Some((u, p)), 30)];
                for _ in 0..1 + rng.below(6) {
                    let topic = topics[rng.below(topics.len() as u64) as usize];
                    let n = rng.below(2048) as usize;
                    let payload = rng.bytes(n);
                    let frame = match rng.below(4) {
                        0 => subscribe_frame(topic),
                        1 => publish_frame(topic, payload, QoS::AtMostOnce, 0),
                        _ => publish_frame(
                            topic,
                            payload,
                            QoS::AtLeastOnce,
                            1 + rng.below(60000) as u16,
                        ),
                    };
                    frames.push(if rng.below(2) == 0 {
                        mutate(&mut rng, frame)
                    } else {
                        frame
                    });
                }
                ("login_then_mutated", frames)
            }
            7 => ("slow_loris", vec![vec![0x10]]),
            _ => ("idle", vec![]),
        };
        *stats.cases.entry(name).or_default() += 1;
        for f in &frames {
            stats.bytes += f.len() as u64;
            if s.write_all(f).is_err() {
                break;
            }
        }
        if matches!(name, "slow_loris" | "idle") {
            if held.len() >= opts.max_held {
                held.remove(0);
            }
            held.push((s, name == "slow_loris"));
        } else {
            // Read whatever comes back briefly, then close.
            let mut buf = [0u8; 256];
            let _ = std::io::Read::read(&mut s, &mut buf);
        }
    }
    stats
}
