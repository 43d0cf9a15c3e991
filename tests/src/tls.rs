//! Test PKI made at test time with the `openssl` CLI: a CA and certificates it
//! signs (EC P-256, valid two days), in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::mosquitto::TlsFiles;
use crate::process::run;

/// A CA with its key.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// CA certificate (PEM).
    pub cert: PathBuf,
    /// CA private key (PEM).
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    run("openssl", cmd, Duration::from_secs(20))?
        .ok()
        .with_context(|| format!("openssl {}", args.join(" ")))?;
    Ok(())
}

impl TestCa {
    /// A self-signed CA named `name` in `dir` (`<name>.pem`, `<name>.key`).
    pub fn new(dir: &Path, name: &str) -> Result<TestCa> {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &key,
                "-out",
                &cert,
            ],
            dir,
        )?;
        Ok(TestCa {
            cert: dir.join(cert),
            key: dir.join(key),
        })
    }

    /// A server certificate for 127.0.0.1 and localhost signed by this CA.
    pub fn server(&self, dir: &Path, name: &str) -> Result<TlsFiles> {
        let (cert, key, csr, ext) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(
            dir.join(&ext),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .context("cannot write the certificate extensions")?;
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            dir,
        )?;
        let (ca_cert, ca_key) = (
            self.cert.display().to_string(),
            self.key.display().to_string(),
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_cert,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
            dir,
        )?;
        Ok(TlsFiles {
            ca: self.cert.clone(),
            cert: dir.join(cert),
            key: dir.join(key),
        })
    }
}
