//! `vigil-hub` command line. The hub (broker, ingest, web) is not built yet; see the
//! delivery and hub-web issues. This binary exists so the workspace layout is final.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "vigil-hub",
    version,
    about = "Vigil hub (not yet implemented beyond --version)"
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("vigil-hub: the hub is not implemented yet; see docs/architecture.md for the plan");
    std::process::exit(2);
}
