//! `vigil-hub` command line: `run` the ingest against a broker, `agent add` to enroll.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_hub::uplink::{self, BrokerSettings};
use vigil_hub::Ingest;

#[derive(Parser)]
#[command(
    name = "vigil-hub",
    version,
    about = "Vigil hub: verifies and stores agents' clips and events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the broker and ingest until SIGINT/SIGTERM.
    Run {
        /// Config file (not used yet in this slice; flags only).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (index, clips, incoming transfers).
        #[arg(long, default_value = "./vigil-data")]
        data_dir: PathBuf,
        /// External broker, mqtt://HOST:PORT.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
    },
    /// Manage enrolled agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Enroll AGENT_ID with its PEM public key; prints the key id.
    Add {
        agent_id: String,
        /// The agent's public key (SPKI PEM).
        #[arg(long)]
        public_key: PathBuf,
        /// Data directory.
        #[arg(long, default_value = "./vigil-data")]
        data_dir: PathBuf,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = real_main(Cli::parse()) {
        eprintln!("vigil-hub: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent {
            command:
                AgentCommand::Add {
                    agent_id,
                    public_key,
                    data_dir,
                },
        } => {
            let pem = std::fs::read_to_string(&public_key)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", public_key.display()))?;
            let ingest = Ingest::open(&data_dir)?;
            let key_id = ingest.enroll(&agent_id, &pem)?;
            println!("{key_id}");
            Ok(())
        }
        Command::Run {
            config,
            data_dir,
            broker,
        } => {
            if let Some(c) = config {
                anyhow::bail!(
                    "--config {} is not supported yet; use --data-dir and --broker",
                    c.display()
                );
            }
            let settings = BrokerSettings::from_url(&broker)?;
            let ingest = Ingest::open(&data_dir)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(uplink::run(settings, ingest, async {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("Shutting down");
            }))
        }
    }
}
