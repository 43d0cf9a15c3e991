//! `[uplink]` settings and what they turn into: broker address, credentials and
//! the TLS client configuration (rustls with the ring provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[uplink]` in agent.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Broker URL: `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS, needs `ca_file`).
    pub broker: String,
    /// MQTT username (the hub prints it at enrolment), if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// MQTT password; prefer `password_file` or `password_env` to keep it out of this file.
    #[serde(default)]
    pub password: Option<String>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (first line; surrounding whitespace ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate(s) the broker's certificate must chain to (mqtts only).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Seconds between `health` messages. Default 10.
    #[serde(default = "default_interval")]
    pub health_interval_seconds: f64,
    /// Seconds between live `snapshot`s per camera. Default 10.
    #[serde(default = "default_interval")]
    pub snapshot_interval_seconds: f64,
}

fn default_interval() -> f64 {
    10.0
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or IP address (also the TLS server name).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `mqtts://`.
    pub tls: bool,
}

/// `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_broker(url: &str) -> Result<Broker, String> {
    let (rest, tls) = match url.split_once("://") {
        Some(("mqtt", rest)) => (rest, false),
        Some(("mqtts", rest)) => (rest, true),
        Some((scheme, _)) => return Err(format!("scheme {scheme:?} is not mqtt:// or mqtts://")),
        None => {
            return Err(format!(
                "{url:?} is not a URL; use mqtt://host:1883 or mqtts://host:8883"
            ))
        }
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {p:?} is not a number 1-65535"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    Ok(Broker {
        host: host.to_string(),
        port,
        tls,
    })
}

impl UplinkConfig {
    /// Every problem, each naming its key: URL, credentials, intervals and the
    /// TLS files (read and parsed, so `check-config` catches a bad CA before a run).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut p = Vec::new();
        let broker = match parse_broker(&self.broker) {
            Ok(b) => Some(b),
            Err(e) => {
                p.push(format!("{key}.broker: {e}"));
                None
            }
        };
        let sources = [
            self.password.is_some(),
            self.password_env.is_some(),
            self.password_file.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources > 1 {
            p.push(format!(
                "{key}: set only one of password, password_env and password_file"
            ));
        }
        if sources > 0 && self.username.is_none() {
            p.push(format!(
                "{key}.username: a password is set but no username; MQTT sends a password only with a username"
            ));
        }
        if let Err(e) = self.password() {
            p.push(e);
        }
        for (name, v) in [
            ("health_interval_seconds", self.health_interval_seconds),
            ("snapshot_interval_seconds", self.snapshot_interval_seconds),
        ] {
            if !(1.0..=3600.0).contains(&v) {
                p.push(format!("{key}.{name}: {v} is outside 1..3600 seconds"));
            }
        }
        let tls = broker.as_ref().is_some_and(|b| b.tls);
        if !tls {
            for (name, set) in [
                ("ca_file", self.ca_file.is_some()),
                ("client_cert", self.client_cert.is_some()),
                ("client_key", self.client_key.is_some()),
            ] {
                if set && broker.is_some() {
                    p.push(format!(
                        "{key}.{name}: only used with an mqtts:// broker; use mqtts://host:8883 or remove it"
                    ));
                }
            }
        } else if let Err(e) = self.tls_config(key) {
            p.extend(e);
        }
        p
    }

    /// The password from whichever source is set.
    pub fn password(&self) -> Result<Option<String>, String> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var).map(Some).map_err(|_| {
                format!("uplink.password_env: environment variable {var} is not set (or not UTF-8)")
            });
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("uplink.password_file: cannot read {}: {e}", path.display())
            })?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                return Err(format!(
                    "uplink.password_file: {} is empty; put the password on its first line",
                    path.display()
                ));
            }
            return Ok(Some(line));
        }
        Ok(None)
    }

    /// rustls client config for mqtts: the CA from `ca_file`, optional client
    /// certificate; the ring crypto provider (no process-wide default needed).
    pub fn tls_config(&self, key: &str) -> Result<rustls::ClientConfig, Vec<String>> {
        let mut problems = Vec::new();
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            None => problems.push(format!(
                "{key}.ca_file: mqtts:// needs the CA certificate (PEM) that signed the broker's certificate"
            )),
            Some(path) => match read_certs(path) {
                Ok(certs) => {
                    for (i, c) in certs.into_iter().enumerate() {
                        if let Err(e) = roots.add(c) {
                            problems.push(format!(
                                "{key}.ca_file: certificate {} in {} is not a usable CA certificate: {e}",
                                i + 1,
                                path.display()
                            ));
                        }
                    }
                }
                Err(e) => problems.push(format!("{key}.ca_file: {e}")),
            },
        }
        let client = match (&self.client_cert, &self.client_key) {
            (None, None) => None,
            (Some(_), None) => {
                problems.push(format!(
                    "{key}.client_key: client_cert is set, so the matching client_key is needed too"
                ));
                None
            }
            (None, Some(_)) => {
                problems.push(format!(
                    "{key}.client_cert: client_key is set, so the matching client_cert is needed too"
                ));
                None
            }
            (Some(cert), Some(k)) => {
                let certs = read_certs(cert).map_err(|e| format!("{key}.client_cert: {e}"));
                let pk = PrivateKeyDer::from_pem_file(k).map_err(|e| {
                    format!(
                        "{key}.client_key: {} holds no readable PEM private key: {e}",
                        k.display()
                    )
                });
                match (certs, pk) {
                    (Ok(c), Ok(k)) => Some((c, k)),
                    (c, k) => {
                        problems.extend(c.err());
                        problems.extend(k.err());
                        None
                    }
                }
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| vec![format!("{key}: TLS setup failed: {e}")])?
            .with_root_certificates(roots);
        match client {
            Some((certs, k)) => builder.with_client_auth_cert(certs, k).map_err(|e| {
                vec![format!(
                    "{key}.client_key: does not match client_cert or is not supported: {e}"
                )]
            }),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// rumqttc options: client id, keep-alive, packet limits, credentials, TLS.
    pub fn mqtt_options(&self, client_id: &str) -> anyhow::Result<MqttOptions> {
        let broker =
            parse_broker(&self.broker).map_err(|e| anyhow::anyhow!("uplink.broker: {e}"))?;
        let mut opts = MqttOptions::new(client_id, broker.host.clone(), broker.port);
        opts.set_keep_alive(Duration::from_secs(10));
        opts.set_max_packet_size(2 << 20, 2 << 20);
        if let Some(user) = &self.username {
            let password = self.password().map_err(anyhow::Error::msg)?;
            opts.set_credentials(user.clone(), password.unwrap_or_default());
        }
        if broker.tls {
            let tls = self
                .tls_config("uplink")
                .map_err(|p| anyhow::anyhow!("{}", p.join("; ")))?;
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls),
            )));
        }
        Ok(opts)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = certs.map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// An operator sentence for a connection error, naming the setting to check.
pub fn explain(error: &str, config: &UplinkConfig) -> String {
    let lower = error.to_ascii_lowercase();
    if lower.contains("badusernamepassword") || lower.contains("notauthorized") {
        format!(
            "the broker refused the credentials ({error}); check uplink.username and the password (password/password_env/password_file)"
        )
    } else if lower.contains("expired")
        || lower.contains("notvalidyet")
        || lower.contains("not valid yet")
    {
        format!(
            "TLS: the broker's certificate has expired or is not valid yet ({error}); renew the hub's certificate, and check this box's clock"
        )
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!(
            "TLS: the broker's certificate is not for the host in uplink.broker ({}) ({error}); use a name or address the certificate lists (on the hub: broker.embedded.tls_names)",
            config.broker
        )
    } else if lower.contains("unknownissuer")
        || lower.contains("invalid peer certificate")
        || lower.contains("certificate")
    {
        format!(
            "TLS: the broker's certificate is not trusted ({error}); check that uplink.ca_file ({}) is the CA that signed it and that the broker host matches its name",
            config
                .ca_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "not set".into())
        )
    } else if config.broker.starts_with("mqtt://") && lower.contains("deserialization") {
        format!(
            "{error}: the broker answered with something that is not MQTT; if {} is a TLS port (the hub's broker.embedded.tls_listen, usually 8883), use mqtts:// with uplink.ca_file",
            config.broker
        )
    } else if config.broker.starts_with("mqtt://")
        && (lower.contains("closed by peer") || lower.contains("connection reset"))
    {
        format!(
            "{error}: the broker closed the connection without answering; if {} is a TLS port (the hub's broker.embedded.tls_listen, usually 8883), use mqtts:// with uplink.ca_file; a hub also closes an address after too many failed logins (wait a minute)",
            config.broker
        )
    } else if lower.contains("connection refused") && !lower.contains("return code") {
        format!(
            "{error}; is the broker running and listening on {}?",
            config.broker
        )
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> UplinkConfig {
        match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parses_broker_urls() {
        let b = |h: &str, p, tls| {
            Ok(Broker {
                host: h.into(),
                port: p,
                tls,
            })
        };
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884"),
            b("127.0.0.1", 1884, false)
        );
        assert_eq!(
            parse_broker("mqtt://hub.local"),
            b("hub.local", 1883, false)
        );
        assert_eq!(
            parse_broker("mqtts://hub.local"),
            b("hub.local", 8883, true)
        );
        assert!(parse_broker("http://x").unwrap_err().contains("http"));
        assert!(parse_broker("mqtt://x:99999").unwrap_err().contains("port"));
    }

    #[test]
    fn reports_tls_and_credential_problems_with_their_keys() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let junk = dir.path().join("junk.pem");
        if let Err(e) = std::fs::write(&junk, "not a certificate\n") {
            panic!("{e}");
        }
        let c = config(&format!(
            "broker = \"mqtts://h:8883\"\npassword = \"x\"\npassword_env = \"Y\"\nca_file = {junk:?}\nclient_cert = {junk:?}\n"
        ));
        let all = c.problems("uplink").join("\n");
        assert!(all.contains("only one of password"), "{all}");
        assert!(all.contains("uplink.username"), "{all}");
        assert!(
            all.contains("uplink.ca_file:") && all.contains("junk.pem"),
            "{all}"
        );
        assert!(all.contains("uplink.client_key:"), "{all}");
        let missing = config("broker = \"mqtts://h\"\nca_file = \"/nonexistent/ca.pem\"\n");
        let all = missing.problems("uplink").join("\n");
        assert!(
            all.contains("uplink.ca_file: cannot read /nonexistent/ca.pem"),
            "{all}"
        );
        let plain = config("broker = \"mqtt://h\"\nca_file = \"/x\"\n");
        assert!(plain
            .problems("uplink")
            .join("\n")
            .contains("only used with an mqtts://"));
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let f = dir.path().join("pw");
        if let Err(e) = std::fs::write(&f, "s3cret \n") {
            panic!("{e}");
        }
        let c = config(&format!(
            "broker = \"mqtt://h\"\nusername = \"u\"\npassword_file = {f:?}\n"
        ));
        assert_eq!(c.password(), Ok(Some("s3cret".into())));
        assert!(c.problems("uplink").is_empty());
    }
}
