//! `vigil-verify PATH [--trust PUBKEY_PEM]... [--json]`: offline verifier for
//! Vigil clip directories and evidence bundles. Exit codes: 0 OK,
//! 3 OK_WITH_MISSING, 1 any other verdict, 2 usage error or unreadable input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vigil_evidence::keys::PublicKey;
use vigil_evidence::verify::{verify_path, REPORT_SCHEMA};

/// Verify a Vigil clip directory or evidence bundle (directory or .zip), offline.
#[derive(Parser, Debug)]
#[command(name = "vigil-verify", version)]
struct Args {
    /// Clip directory, bundle directory or bundle .zip to verify.
    path: PathBuf,
    /// Public key (SPKI PEM) of an agent you trust, obtained independently of
    /// the input. Repeatable. Without it the best possible verdict is KEY_UNTRUSTED.
    #[arg(long = "trust", value_name = "PUBKEY_PEM")]
    trust: Vec<PathBuf>,
    /// Print the report as JSON (schema vigil.verify.report.v1) instead of text.
    #[arg(long)]
    json: bool,
}

fn fail_input(json: bool, message: &str) -> ExitCode {
    if json {
        let v = serde_json::json!({"schema": REPORT_SCHEMA, "error": message});
        println!("{v}");
    } else {
        eprintln!("vigil-verify: {message}");
    }
    ExitCode::from(2)
}

fn run(args: &Args) -> ExitCode {
    let mut trusted = Vec::new();
    for p in &args.trust {
        let pem = match std::fs::read_to_string(p) {
            Ok(s) => s,
            Err(e) => {
                return fail_input(
                    args.json,
                    &format!("cannot read --trust key {}: {e}", p.display()),
                )
            }
        };
        match PublicKey::from_pem(&pem) {
            Ok(k) => trusted.push(k),
            Err(e) => return fail_input(args.json, &format!("--trust {}: {e}", p.display())),
        }
    }
    let report = match verify_path(&args.path, &trusted) {
        Ok(r) => r,
        Err(e) => {
            return fail_input(
                args.json,
                &format!("cannot verify {}: {e}", args.path.display()),
            )
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail_input(true, &format!("cannot encode the report: {e}")),
        }
    } else {
        print!("{}", report.to_human());
    }
    ExitCode::from(report.verdict.exit_code() as u8)
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The library is written not to panic; this is the last line of defence
    // so a bug can never be mistaken for a clean verdict.
    match std::panic::catch_unwind(|| run(&args)) {
        Ok(code) => code,
        Err(_) => {
            eprintln!(
                "vigil-verify: internal error while verifying; treat the input as NOT verified"
            );
            ExitCode::from(1)
        }
    }
}
