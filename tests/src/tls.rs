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

/// A CA made with rcgen whose server certificates may be expired or for other names
/// (openssl 3.0's `x509 -req` cannot back-date a certificate).
pub struct OddCa {
    /// CA certificate (PEM).
    pub cert: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl OddCa {
    /// A CA named `name` in `dir` (`<name>.pem`).
    pub fn new(dir: &Path, name: &str) -> Result<OddCa> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, cert.pem())?;
        Ok(OddCa {
            cert: path,
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// A server certificate for `names`, valid from `days_from`..`days_to` days from
    /// now (negative = in the past): `dir/<name>.pem` and `dir/<name>.key`.
    pub fn server(
        &self,
        dir: &Path,
        name: &str,
        names: &[&str],
        days_from: i64,
        days_to: i64,
    ) -> Result<(PathBuf, PathBuf)> {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days_from);
        params.not_after = now + time::Duration::days(days_to);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem())?;
        std::fs::write(&k, key.serialize_pem())?;
        Ok((c, k))
    }
}

/// A rumqttc transport trusting only the CA certificates in `ca` (PEM), rustls with the
/// ring provider, as the agent's uplink uses.
pub fn rumqttc_transport(ca: &Path) -> Result<rumqttc::Transport> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).context("CA file")? {
        roots.add(c.context("CA PEM")?)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(cfg)),
    ))
}
