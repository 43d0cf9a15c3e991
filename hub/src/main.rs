//! `vigil-hub` command line: `run` the hub (embedded or external broker), `agent`
//! enrolment, `check-config`, and the web commands (`user`, `audit`, `web`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_hub::config::{BrokerChoice, HubConfig};
use vigil_hub::ingest::IngestLimits;
use vigil_hub::uplink::{self, BrokerSettings};
use vigil_hub::{broker, enroll, Ingest};

#[derive(Parser)]
#[command(
    name = "vigil-hub",
    version,
    about = "Vigil hub: verifies and stores agents' clips and events"
)]
struct Cli {
    /// Log format on stdout: `text` (journald-friendly lines) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (embedded by default) and the ingest until SIGINT/SIGTERM.
    Run {
        /// Config file (hub.toml); without it every default applies.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Use this external broker, mqtt://HOST:PORT (overrides `[broker]`).
        #[arg(long)]
        broker: Option<String>,
        /// Web page address, IP:PORT (overrides `[web] listen`; port 0 picks a free one).
        #[arg(long)]
        web_listen: Option<String>,
    },
    /// Check a config file: every problem with its key; exit 2 when invalid.
    CheckConfig {
        /// Config file (hub.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Manage enrolled agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Manage web users (the first admin: `user add NAME --role admin`).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The web audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Serve only the web app, without broker or ingest (e.g. a read-only replica).
    Web {
        /// Data directory.
        #[arg(long, default_value = "./vigil-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// TLS certificate chain (PEM); with --tls-key serves HTTPS.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long)]
        tls_key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is prompted (TTY) or read from stdin's first line.
    Add {
        username: String,
        /// Role: operator, investigator or admin (repeat or comma-separate for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[command(flatten)]
        place: DataPlace,
    },
    /// List users and their roles.
    List {
        #[command(flatten)]
        place: DataPlace,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exit 0 when intact, 1 naming the first broken entry.
    Verify {
        #[command(flatten)]
        place: DataPlace,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Enroll AGENT_ID with its PEM public key; prints the key id, the MQTT login
    /// and the agent.toml `[uplink]` lines. Again for the same key: a new password.
    Add {
        agent_id: String,
        /// The agent's public key (SPKI PEM).
        #[arg(long)]
        public_key: PathBuf,
        /// Accept a different key for an enrolled (or revoked) agent.
        #[arg(long)]
        replace_key: bool,
        #[command(flatten)]
        place: DataPlace,
        /// Broker URL to print in the `[uplink]` lines (default: from the config's
        /// embedded broker address; `mqtts://` when its TLS listener is on).
        #[arg(long)]
        broker_url: Option<String>,
        /// Where the box keeps the hub's CA certificate, for the `ca_file` line
        /// (with TLS).
        #[arg(long, default_value = "/etc/vigil/hub-ca.pem")]
        ca_path: PathBuf,
    },
    /// List enrolled agents.
    List {
        #[command(flatten)]
        place: DataPlace,
    },
    /// Revoke an agent: its logins and messages are refused; stored evidence stays.
    Revoke {
        agent_id: String,
        #[command(flatten)]
        place: DataPlace,
    },
}

/// Where the data directory is: `--data-dir`, else `data_dir` of `--config`, else ./vigil-data.
#[derive(clap::Args)]
struct DataPlace {
    /// Data directory (overrides the config's `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Config file (hub.toml) to take `data_dir` (and the broker address) from.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl DataPlace {
    fn resolve(&self) -> anyhow::Result<(PathBuf, HubConfig)> {
        let cfg = match &self.config {
            Some(p) => HubConfig::load(p)?,
            None => HubConfig::default(),
        };
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| cfg.data_dir.clone());
        Ok((dir, cfg))
    }
}

/// The broker URL an agent should use, as far as the hub's config tells: TLS when the
/// embedded broker has a TLS listener.
fn agent_broker_url(cfg: &HubConfig) -> String {
    match cfg.broker_choice() {
        Ok(BrokerChoice::Embedded {
            tls_listen: Some(t),
            ..
        }) => {
            let host = if !t.ip().is_unspecified() {
                t.ip().to_string()
            } else {
                // A name in the certificate that is not loopback.
                cfg.broker
                    .embedded
                    .tls_names()
                    .into_iter()
                    .find(|n| n != "localhost" && n != "127.0.0.1")
                    .unwrap_or_else(|| "HUB_ADDRESS".into())
            };
            format!("mqtts://{host}:{}", t.port())
        }
        Ok(BrokerChoice::Embedded {
            listen: Some(listen),
            ..
        }) if !listen.ip().is_unspecified() => format!("mqtt://{listen}"),
        Ok(BrokerChoice::Embedded {
            listen: Some(listen),
            ..
        }) => format!("mqtt://HUB_ADDRESS:{}", listen.port()),
        Ok(BrokerChoice::External { url }) => url,
        _ => "mqtt://HUB_ADDRESS:1883".into(),
    }
}

/// What the agent needs to trust the embedded broker's TLS certificate: the CA's PEM
/// (generated now if the hub never ran) and its fingerprint; None without TLS or
/// with the admin's own certificate (whose CA the admin has).
fn embedded_ca(
    cfg: &HubConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<Option<(String, String)>> {
    if cfg.broker.mode != "embedded" || cfg.broker.embedded.tls_listen.is_none() {
        return Ok(None);
    }
    let Some((_, source)) = cfg.broker.embedded.options(data_dir)?.tls else {
        return Ok(None);
    };
    let info = broker::tls::prepare(&source)?;
    match &info.ca_file {
        Some(ca) => Ok(Some((
            std::fs::read_to_string(ca)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", ca.display()))?,
            info.fingerprint,
        ))),
        None => Ok(None),
    }
}

fn main() {
    vigil_evidence::process::limit_malloc_arenas();
    vigil_evidence::process::return_large_buffers();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rumqttd=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Err(e) = real_main(cli) {
        eprintln!("vigil-hub: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    roles,
                    place,
                },
        } => vigil_hub::web::cli::user_add(&place.resolve()?.0, &username, &roles),
        Command::User {
            command: UserCommand::List { place },
        } => vigil_hub::web::cli::user_list(&place.resolve()?.0),
        Command::Audit {
            command: AuditCommand::Verify { place },
        } => {
            if !vigil_hub::web::cli::audit_verify(&place.resolve()?.0)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Web {
            data_dir,
            listen,
            tls_cert,
            tls_key,
        } => vigil_hub::web::cli::serve(data_dir, listen, tls_cert, tls_key),
        Command::Agent {
            command:
                AgentCommand::Add {
                    agent_id,
                    public_key,
                    replace_key,
                    place,
                    broker_url,
                    ca_path,
                },
        } => {
            let (data_dir, cfg) = place.resolve()?;
            let broker_url = broker_url.unwrap_or_else(|| agent_broker_url(&cfg));
            let tls = broker_url.starts_with("mqtts://");
            let ca = if tls {
                embedded_ca(&cfg, &data_dir)?
            } else {
                None
            };
            let pem = std::fs::read_to_string(&public_key)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", public_key.display()))?;
            let e = enroll::enroll_with(&data_dir, &agent_id, &pem, replace_key)?;
            println!("agent {} enrolled, key id {}", e.agent_id, e.key_id);
            println!("MQTT username: {}", e.mqtt_username);
            println!("MQTT password: {}", e.mqtt_password);
            if let Some((pem, fingerprint)) = &ca {
                println!(
                    "# The hub's broker CA: save it on the box as {} (SHA-256 fingerprint {fingerprint}):",
                    ca_path.display()
                );
                print!("{pem}");
            } else if tls {
                println!(
                    "# TLS: put the CA that signed the broker's certificate on the box as {}",
                    ca_path.display()
                );
            }
            println!(
                "# agent.toml (the password is shown only now; a new `agent add` issues another):"
            );
            println!("[uplink]");
            println!("broker = \"{broker_url}\"");
            if tls {
                println!("ca_file = \"{}\"", ca_path.display());
            }
            println!("username = \"{}\"", e.mqtt_username);
            println!("password = \"{}\"", e.mqtt_password);
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::List { place },
        } => {
            let (data_dir, _) = place.resolve()?;
            for a in enroll::list(&data_dir)? {
                let state = match a.revoked_at {
                    Some(_) => "revoked",
                    None if a.mqtt_password_hash.is_none() => {
                        "enrolled (no MQTT password: run agent add again)"
                    }
                    None => "enrolled",
                };
                println!("{}\t{}\t{state}", a.agent_id, a.key_id);
            }
            Ok(())
        }
        Command::Agent {
            command: AgentCommand::Revoke { agent_id, place },
        } => {
            let (data_dir, _) = place.resolve()?;
            enroll::revoke(&data_dir, &agent_id)?;
            println!("agent {agent_id} revoked");
            Ok(())
        }
        Command::CheckConfig { config } => {
            let cfg = match HubConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e:#}", config.display());
                    std::process::exit(2);
                }
            };
            let problems = cfg.problems();
            if problems.is_empty() {
                println!("{}: OK ({})", config.display(), cfg.summary());
                return Ok(());
            }
            eprintln!("{}: {} problem(s):", config.display(), problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            std::process::exit(2);
        }
        Command::Run {
            config,
            data_dir,
            broker,
            web_listen,
        } => {
            let mut cfg = match &config {
                Some(path) => HubConfig::load(path)?,
                None => HubConfig::default(),
            };
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(listen) = web_listen {
                cfg.web.listen = listen;
            }
            if let Some(url) = broker {
                cfg.broker.mode = "external".into();
                cfg.broker.external.url = Some(url);
            }
            let problems = cfg.problems();
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("vigil-hub: {p}");
                }
                anyhow::bail!("the configuration has {} problem(s)", problems.len());
            }
            run(cfg)
        }
    }
}

/// The web page's settings from `[web]`.
fn web_options(cfg: &HubConfig) -> anyhow::Result<vigil_hub::web::Options> {
    let listen: std::net::SocketAddr = cfg
        .web
        .listen
        .parse()
        .map_err(|e| anyhow::anyhow!("web.listen {:?}: {e}", cfg.web.listen))?;
    let tls = match (&cfg.web.tls_cert, &cfg.web.tls_key) {
        (Some(cert_pem), Some(key_pem)) => Some(vigil_hub::web::TlsFiles {
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        }),
        _ => None,
    };
    Ok(vigil_hub::web::Options {
        listen,
        data_dir: cfg.data_dir.clone(),
        tls,
        camera_down_alert_seconds: cfg.web.camera_down_alert_seconds,
        ..vigil_hub::web::Options::default()
    })
}

/// `vigil-hub run` with a checked config.
fn run(cfg: HubConfig) -> anyhow::Result<()> {
    tracing::info!("Starting: {}", cfg.summary());
    let limits = IngestLimits {
        max_clip_bytes: cfg.ingest.max_clip_bytes,
        max_pending_per_agent: cfg.ingest.max_pending_per_agent,
        transfer_timeout: std::time::Duration::from_secs(cfg.ingest.transfer_timeout_seconds),
    };
    let ingest = Ingest::open_with(&cfg.data_dir, limits)?;
    let mut front_counters = None;
    let settings = match cfg.broker_choice()? {
        BrokerChoice::Embedded { .. } => {
            let b = broker::start(cfg.broker.embedded.options(&cfg.data_dir)?, &cfg.data_dir)?;
            front_counters = Some(b.counters.clone());
            let addr = b.loopback();
            BrokerSettings {
                host: addr.ip().to_string(),
                port: addr.port(),
                client_id: broker::INTERNAL_USER.into(),
                credentials: Some((broker::INTERNAL_USER.into(), b.internal_password.clone())),
                tls_ca: None,
                subscribed: Some(b.ingest_ready.clone()),
                persistent_session: false,
            }
        }
        BrokerChoice::External { url } => {
            let mut s = BrokerSettings::from_url(&url)?;
            if let Some(user) = &cfg.broker.external.username {
                let pass = cfg
                    .external_password()?
                    .unwrap_or(vigil_hub::config::Secret(String::new()));
                s.credentials = Some((user.clone(), pass));
            }
            s.tls_ca = cfg.broker.external.ca_file.clone();
            s
        }
    };
    let web_opts = web_options(&cfg)?;
    let wake = web_opts.wake.clone();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // One shutdown signal for the ingest and the web page.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let web = vigil_hub::web::bind(web_opts).await?;
        vigil_hub::service::ready(&format!("web on {}", web.local_addr()));
        let watchdog = tokio::spawn(vigil_hub::service::watchdog());
        let mut web_stop = stop_rx.clone();
        let web_task = tokio::spawn(web.run(async move {
            let _ = web_stop.wait_for(|s| *s).await;
        }));
        let metrics_task = match &cfg.metrics.listen {
            Some(listen) => {
                let m = std::sync::Arc::new(vigil_hub::metrics::HubMetrics {
                    counters: ingest.counters(),
                    index: ingest.layout().index(),
                    front: front_counters.clone(),
                });
                let mut metrics_stop = stop_rx.clone();
                let (_, task) = vigil_hub::metrics::serve(listen, m, async move {
                    let _ = metrics_stop.wait_for(|s| *s).await;
                })
                .await?;
                Some(task)
            }
            None => None,
        };
        let mut ingest_stop = stop_rx;
        let ingest_task = uplink::run(settings, ingest, wake, async move {
            let _ = ingest_stop.wait_for(|s| *s).await;
        });
        let signals = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("Interrupted; shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM; shutting down"),
            }
            vigil_hub::service::stopping();
            let _ = stop_tx.send(true);
        };
        let (ingest_result, ()) = tokio::join!(ingest_task, signals);
        ingest_result?;
        web_task.await??;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        watchdog.abort();
        anyhow::Ok(())
    })?;
    tracing::info!("Stopped");
    Ok(())
}
