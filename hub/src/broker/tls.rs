//! TLS of the embedded broker's front: the certificate it presents, generated at first
//! start or supplied by the admin, and reloaded from disk without a restart.
//!
//! Generated (no `tls_cert`/`tls_key` set), in `DATA/broker-tls/`:
//!
//! ```text
//! ca.pem       the hub's own CA (ECDSA P-256, 20 years): what agents trust (uplink.ca_file)
//! ca.key       its private key (0600); only used to sign server.pem
//! server.pem   the broker's certificate (825 days) for `tls_names`, signed by ca.pem
//! server.key   its private key (0600)
//! server.json  the names and expiry server.pem was made for
//! ```
//!
//! Each file is written tmp → fsync → rename. The server certificate is made again
//! (same CA, so agents need nothing new) when `tls_names` changed or it has less than
//! 30 days left. Admin-supplied files are used as they are; both kinds are re-read when
//! their modification time changes (checked every [`RELOAD_EVERY`]), and a file that
//! does not load keeps the previous certificate in use, with an error in the log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How often the certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Validity of a generated server certificate.
const SERVER_DAYS: i64 = 825;
/// A generated server certificate with less left is made again at start.
const RENEW_DAYS: i64 = 30;
/// Validity of the generated CA.
const CA_DAYS: i64 = 20 * 365;
/// Subject of the generated CA (the server certificate's issuer must match it).
const CA_NAME: &str = "Vigil hub broker CA";

/// Where the front's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Generated in this directory (`DATA/broker-tls`) for these names.
    Generated { dir: PathBuf, names: Vec<String> },
    /// The admin's PEM files: certificate chain and private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// What the hub tells about its certificate (log line, `agent add`).
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The CA agents must trust: `DATA/broker-tls/ca.pem` when generated; `None`
    /// when the admin supplied the certificate (the admin knows its CA).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the CA certificate (generated) or of the server certificate
    /// (supplied), `AA:BB:…`.
    pub fingerprint: String,
    /// The certificate chain and key in use.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct ServerMeta {
    names: Vec<String>,
    not_after_unix: i64,
}

/// Makes sure the certificate exists (generating what is missing) and says where it is.
pub fn prepare(source: &CertSource) -> anyhow::Result<CertInfo> {
    match source {
        CertSource::Files { cert, key } => {
            let chain = crate::pem::read_certs(cert)?;
            let first = chain.first().context("no certificate")?;
            crate::pem::read_key(key)?;
            Ok(CertInfo {
                ca_file: None,
                fingerprint: fingerprint(first.as_ref()),
                cert: cert.clone(),
                key: key.clone(),
            })
        }
        CertSource::Generated { dir, names } => generate(dir, names),
    }
}

fn generate(dir: &Path, names: &[String]) -> anyhow::Result<CertInfo> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} for the broker's TLS files", dir.display()))?;
    let (ca_pem, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let ca_params = ca_params()?;
    let ca_key = if ca_pem.exists() && ca_key_path.exists() {
        let text = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("cannot read {}", ca_key_path.display()))?;
        KeyPair::from_pem(&text).with_context(|| {
            format!(
                "{} is not a private key; move the broker-tls directory aside to make a new CA (agents then need the new ca.pem)",
                ca_key_path.display()
            )
        })?
    } else {
        let key = KeyPair::generate().context("cannot generate the CA key")?;
        let cert = ca_params
            .self_signed(&key)
            .context("cannot make the CA certificate")?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_file(&ca_pem, cert.pem().as_bytes(), 0o644)?;
        tracing::info!(ca = %ca_pem.display(), "Generated the broker's TLS CA; agents trust it with uplink.ca_file (vigil-hub agent add prints it)");
        key
    };
    let (server_pem, server_key, meta_path) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.json"),
    );
    let now = OffsetDateTime::now_utc();
    let current: Option<ServerMeta> = std::fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let fresh = current.as_ref().is_some_and(|m| {
        m.names == names && m.not_after_unix - now.unix_timestamp() > RENEW_DAYS * 86_400
    });
    if !(fresh && server_pem.exists() && server_key.exists()) {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
        params.subject_alt_names = names
            .iter()
            .map(|n| san(n))
            .collect::<anyhow::Result<_>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "vigil-hub".into()),
        );
        params.distinguished_name = dn;
        params.not_before = now - time::Duration::hours(1);
        let not_after = now + time::Duration::days(SERVER_DAYS);
        params.not_after = not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().context("cannot generate the server key")?;
        let issuer = Issuer::new(ca_params, ca_key);
        let cert = params
            .signed_by(&key, &issuer)
            .context("cannot sign the server certificate")?;
        write_private(&server_key, key.serialize_pem().as_bytes())?;
        write_file(&server_pem, cert.pem().as_bytes(), 0o644)?;
        let meta = ServerMeta {
            names: names.to_vec(),
            not_after_unix: not_after.unix_timestamp(),
        };
        write_file(&meta_path, &serde_json::to_vec_pretty(&meta)?, 0o644)?;
        tracing::info!(names = ?names, "Made the broker's TLS server certificate");
    }
    let ca = crate::pem::read_certs(&ca_pem)?;
    Ok(CertInfo {
        fingerprint: fingerprint(ca.first().context("ca.pem holds no certificate")?.as_ref()),
        ca_file: Some(ca_pem),
        cert: server_pem,
        key: server_key,
    })
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "Vigil");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(CA_DAYS);
    Ok(p)
}

fn san(name: &str) -> anyhow::Result<SanType> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    Ok(SanType::DnsName(name.try_into().with_context(|| {
        format!("broker.embedded.tls_names: {name:?} is not a DNS name or an IP address")
    })?))
}

/// `AA:BB:…` SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_file(path, bytes, 0o600)
}

fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = crate::pem::read_certs(cert)?;
    let key_der = crate::pem::read_key(key)?;
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .with_context(|| format!("{}: the private key is not usable", key.display()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().with_context(|| {
        format!(
            "{} and {} do not belong together",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Arc::new(ck))
}

/// Modification times of the certificate and key files.
type Mtimes = Option<(SystemTime, SystemTime)>;

fn mtimes(cert: &Path, key: &Path) -> Mtimes {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

/// The front's certificate, swapped in place when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    /// The files' modification times when last read, and the certificate in use.
    current: RwLock<(Mtimes, Arc<CertifiedKey>)>,
}

impl ReloadingCert {
    /// Loads the certificate and key once (an error here stops the start).
    pub fn new(info: &CertInfo) -> anyhow::Result<Arc<ReloadingCert>> {
        let ck = load(&info.cert, &info.key)?;
        Ok(Arc::new(ReloadingCert {
            cert: info.cert.clone(),
            key: info.key.clone(),
            current: RwLock::new((mtimes(&info.cert, &info.key), ck)),
        }))
    }

    /// Re-reads the files if their modification time changed; returns whether a new
    /// certificate is now in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = mtimes(&self.cert, &self.key);
        let seen = self.current.read().map(|c| c.0).unwrap_or(None);
        if now.is_none() || now == seen {
            return false;
        }
        match load(&self.cert, &self.key) {
            Ok(ck) => {
                if let Ok(mut c) = self.current.write() {
                    *c = (now, ck);
                }
                tracing::info!(cert = %self.cert.display(), "Reloaded the broker's TLS certificate");
                true
            }
            Err(e) => {
                // Remember the attempt so a broken file is logged once, not every round.
                if let Ok(mut c) = self.current.write() {
                    c.0 = now;
                }
                tracing::error!(
                    error = format!("{e:#}"),
                    "The broker's new TLS certificate does not load; still using the previous one"
                );
                false
            }
        }
    }

    /// A rustls server config presenting this certificate (ring provider, TLS 1.2/1.3).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn generated_once_reused_and_renewed_for_new_names() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let tls = dir.path().join("broker-tls");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = prepare(&CertSource::Generated {
            dir: tls.clone(),
            names: names.clone(),
        })?;
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let key_mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(tls.join("ca.key"))?.permissions(),
        );
        assert_eq!(key_mode & 0o777, 0o600, "the CA key is private");
        let server = std::fs::read(tls.join("server.pem"))?;
        let again = prepare(&CertSource::Generated {
            dir: tls.clone(),
            names: names.clone(),
        })?;
        assert_eq!(again.fingerprint, first.fingerprint, "same CA");
        assert_eq!(std::fs::read(tls.join("server.pem"))?, server, "kept");
        let more = vec!["hub.example.org".to_string()];
        let renewed = prepare(&CertSource::Generated {
            dir: tls.clone(),
            names: more,
        })?;
        assert_eq!(renewed.fingerprint, first.fingerprint, "same CA");
        assert_ne!(std::fs::read(tls.join("server.pem"))?, server, "new names");
        // The server certificate chains to the CA: rustls accepts it for its name.
        let ca = crate::pem::read_certs(&tls.join("ca.pem"))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone())?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()?;
        let leaf = crate::pem::read_certs(&tls.join("server.pem"))?;
        let name = rustls::pki_types::ServerName::try_from("hub.example.org")?;
        verifier.verify_server_cert(
            &leaf[0],
            &[],
            &name,
            &[],
            rustls::pki_types::UnixTime::now(),
        )?;
        let wrong = rustls::pki_types::ServerName::try_from("other.example.org")?;
        assert!(verifier
            .verify_server_cert(
                &leaf[0],
                &[],
                &wrong,
                &[],
                rustls::pki_types::UnixTime::now()
            )
            .is_err());
        Ok(())
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let tls = dir.path().join("t");
        let info = prepare(&CertSource::Generated {
            dir: tls.clone(),
            names: vec!["localhost".into()],
        })?;
        let r = ReloadingCert::new(&info)?;
        assert!(!r.reload_if_changed(), "unchanged");
        let before = r.current.read().map(|c| c.1.cert[0].clone()).ok();
        // New names make a new server certificate in place.
        std::thread::sleep(Duration::from_millis(20));
        prepare(&CertSource::Generated {
            dir: tls.clone(),
            names: vec!["hub.lan".into()],
        })?;
        assert!(r.reload_if_changed(), "reloaded");
        let after = r.current.read().map(|c| c.1.cert[0].clone()).ok();
        assert_ne!(before, after);
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&info.cert, "garbage")?;
        assert!(!r.reload_if_changed(), "a broken file is not used");
        let still = r.current.read().map(|c| c.1.cert[0].clone()).ok();
        assert_eq!(still, after);
        Ok(())
    }
}
