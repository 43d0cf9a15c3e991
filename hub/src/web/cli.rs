//! Command-line pieces of the web app: `user add`, `user list`,
//! `audit verify` and the stand-alone `web` server.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::{audit, users, Db, Options, TlsFiles};
use crate::files::Layout;

fn open(data_dir: &Path) -> anyhow::Result<std::sync::Arc<Db>> {
    let layout = Layout::new(data_dir);
    std::fs::create_dir_all(layout.root())
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    crate::index::Index::open(&layout.index())
        .with_context(|| format!("cannot open the index {}", layout.index().display()))?;
    Db::open(&layout.index()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Reads the new password: a hidden prompt (twice) on a terminal, else the
/// first line of stdin. Never from the command line.
pub fn read_password(username: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("Password for {username}: "))
            .context("cannot read the password from the terminal")?;
        let b = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if a != b {
            anyhow::bail!("the two passwords differ; run the command again");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// `vigil-hub user add NAME --role ROLE`: creates a user (audited as `cli`).
pub fn user_add(data_dir: &Path, username: &str, roles: &[String]) -> anyhow::Result<()> {
    let roles = users::Role::parse_list(&roles.join(",")).map_err(|e| anyhow::anyhow!("{e}"))?;
    users::check_username(username).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = open(data_dir)?;
    let password = read_password(username)?;
    db.with(|c| {
        users::create(c, username, &password, &roles)?;
        audit::append(
            c,
            "cli",
            "user_create",
            username,
            &json!({"roles": users::roles_to_string(&roles)}),
        )?;
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "created user {username} with roles {}",
        users::roles_to_string(&roles)
    );
    Ok(())
}

/// `vigil-hub user list`.
pub fn user_list(data_dir: &Path) -> anyhow::Result<()> {
    let db = open(data_dir)?;
    let list = db
        .with(|c| users::list(c))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for u in list {
        println!(
            "{}\t{}\t{}",
            u.username,
            users::roles_to_string(&u.roles),
            if u.disabled { "disabled" } else { "active" }
        );
    }
    Ok(())
}

/// `vigil-hub audit verify`: `Ok(true)` when intact (prints a summary),
/// `Ok(false)` with the first broken entry printed to stderr.
pub fn audit_verify(data_dir: &Path) -> anyhow::Result<bool> {
    let db = open(data_dir)?;
    let v = db
        .with(|c| audit::verify(c))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if v.intact {
        println!(
            "audit log intact: {} entries, head {}",
            v.entries,
            v.head.as_deref().unwrap_or("(empty)")
        );
        Ok(true)
    } else {
        eprintln!(
            "audit log BROKEN at entry {}: {} ({} entries before it verify)",
            v.broken_seq.unwrap_or(0),
            v.problem.as_deref().unwrap_or("?"),
            v.entries
        );
        Ok(false)
    }
}

/// `vigil-hub web`: serves only the web app until SIGINT/SIGTERM.
pub fn serve(
    data_dir: PathBuf,
    listen: SocketAddr,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
) -> anyhow::Result<()> {
    let tls = match (tls_cert, tls_key) {
        (Some(cert_pem), Some(key_pem)) => Some(TlsFiles { cert_pem, key_pem }),
        (None, None) => None,
        _ => anyhow::bail!("--tls-cert and --tls-key go together; give both or neither"),
    };
    let opts = Options {
        listen,
        data_dir,
        tls,
        ..Options::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let server = super::bind(opts).await?;
        server
            .run(async {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => {
                            let _ = tokio::signal::ctrl_c().await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("Web shutting down");
            })
            .await
    })
}
