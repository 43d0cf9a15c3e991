//! `hub.toml`: every key optional with a default (see `config/hub.example.toml`).
//!
//! Loading only parses (unknown keys are errors); [`HubConfig::problems`] then checks
//! everything and reports every problem at once, each naming its key and what to do.
//! Secrets (`broker.external.password`) are wrapped in [`Secret`], whose `Debug`
//! never shows the value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./vigil-data";
/// Default embedded broker address.
pub const DEFAULT_BROKER_LISTEN: &str = "127.0.0.1:1883";
/// Default web address.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8080";

/// A string that is never logged (`Debug` prints `"***"`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The whole hub configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Index, clips and incoming transfers (default `./vigil-data`).
    pub data_dir: PathBuf,
    /// Which MQTT broker the agents talk to.
    pub broker: BrokerConfig,
    /// The web page (served by the web module; parsed and checked here).
    pub web: WebConfig,
    /// Limits on what agents may send.
    pub ingest: IngestConfig,
    /// Prometheus endpoint.
    pub metrics: MetricsConfig,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:PORT` of `GET /metrics` (OpenMetrics text; port 0 = a free port, logged).
    /// Default: off. Keep it on loopback or a management network: it names agents and cameras.
    pub listen: Option<String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            broker: BrokerConfig::default(),
            web: WebConfig::default(),
            ingest: IngestConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// `[broker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `"embedded"` (default: the hub runs the broker) or `"external"`.
    pub mode: String,
    /// `[broker.embedded]`, used when `mode = "embedded"`.
    pub embedded: EmbeddedBrokerConfig,
    /// `[broker.external]`, used when `mode = "external"`.
    pub external: ExternalBrokerConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mode: "embedded".into(),
            embedded: EmbeddedBrokerConfig::default(),
            external: ExternalBrokerConfig::default(),
        }
    }
}

/// `[broker.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedBrokerConfig {
    /// `IP:PORT` of plain MQTT (default `127.0.0.1:1883`; port 0 = any free port; `""`
    /// = no plain listener, e.g. TLS only).
    pub listen: String,
    /// `IP:PORT` of MQTT over TLS (`mqtts://`, usually `0.0.0.0:8883`); off unless set.
    pub tls_listen: Option<String>,
    /// PEM certificate chain the TLS listener presents (with `tls_key`); unset = the
    /// hub generates its own CA and certificate in `DATA/broker-tls/`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Host names and IP addresses agents use to reach the hub, for the generated
    /// certificate (default: this machine's host name, `localhost` and `127.0.0.1`).
    pub tls_names: Vec<String>,
    /// TLS handshake and CONNECT must be done within this, seconds (1..=120).
    pub connect_timeout_seconds: u64,
    /// Connections from one address that have not logged in yet, at once (1..=65536).
    pub max_pending_per_address: usize,
    /// Failed logins from one address within a minute before it is refused for a
    /// minute (1..=100000).
    pub max_failed_logins: u32,
    /// Login checks at once (1..=16; argon2 ones, for agents enrolled before SHA-256
    /// password hashes, take ~19 MiB each).
    pub login_concurrency: usize,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        let limits = crate::broker::FrontLimits::default();
        EmbeddedBrokerConfig {
            listen: DEFAULT_BROKER_LISTEN.into(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            connect_timeout_seconds: limits.connect_timeout.as_secs(),
            max_pending_per_address: limits.max_pending_per_address,
            max_failed_logins: limits.max_failed_logins,
            login_concurrency: limits.login_concurrency,
        }
    }
}

impl EmbeddedBrokerConfig {
    /// The names of a generated TLS certificate: `tls_names`, or this machine's host
    /// name, `localhost` and `127.0.0.1`.
    pub fn tls_names(&self) -> Vec<String> {
        if !self.tls_names.is_empty() {
            return self.tls_names.clone();
        }
        let mut names = Vec::new();
        // gethostname(2), not /proc/sys (hidden by the unit's ProcSubset=pid).
        let mut buf = [0u8; 256];
        // SAFETY: the buffer outlives the call and its length is passed; the result is
        // read only up to the first NUL.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            let h = String::from_utf8_lossy(&buf[..end]).trim().to_string();
            if !h.is_empty() && h != "localhost" {
                names.push(h);
            }
        }
        names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        names
    }

    /// The broker's options (call after [`HubConfig::problems`] came back empty).
    pub fn options(&self, data_dir: &Path) -> anyhow::Result<crate::broker::EmbeddedOptions> {
        let listen = match self.listen.as_str() {
            "" => None,
            l => Some(l.parse().context("broker.embedded.listen is not IP:PORT")?),
        };
        let tls = match &self.tls_listen {
            Some(l) => {
                let addr: SocketAddr = l
                    .parse()
                    .context("broker.embedded.tls_listen is not IP:PORT")?;
                let source = match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => crate::broker::CertSource::Files {
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    _ => crate::broker::CertSource::Generated {
                        dir: data_dir.join("broker-tls"),
                        names: self.tls_names(),
                    },
                };
                Some((addr, source))
            }
            None => None,
        };
        Ok(crate::broker::EmbeddedOptions {
            listen,
            tls,
            limits: crate::broker::FrontLimits {
                connect_timeout: std::time::Duration::from_secs(self.connect_timeout_seconds),
                max_pending_per_address: self.max_pending_per_address,
                max_failed_logins: self.max_failed_logins,
                login_concurrency: self.login_concurrency,
                ..crate::broker::FrontLimits::default()
            },
        })
    }
}

/// `[broker.external]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalBrokerConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (required in external mode).
    pub url: Option<String>,
    /// MQTT username of the hub.
    pub username: Option<String>,
    /// MQTT password in the file (prefer `password_file` or `password_env`).
    pub password: Option<Secret>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// PEM CA certificate(s) to trust for `mqtts://` (required with mqtts://).
    pub ca_file: Option<PathBuf>,
}

/// `[web]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// `IP:PORT` of the web page (default `127.0.0.1:8080`).
    pub listen: String,
    /// PEM certificate chain for HTTPS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// A camera without health for this many seconds is shown as down (default 60).
    pub camera_down_alert_seconds: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: DEFAULT_WEB_LISTEN.into(),
            tls_cert: None,
            tls_key: None,
            camera_down_alert_seconds: 60,
        }
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest clip accepted, bytes (default 2 GiB).
    pub max_clip_bytes: u64,
    /// Clips one agent may have half-received at once (default 16).
    pub max_pending_per_agent: usize,
    /// A half-received clip untouched this long is discarded, seconds (default 3600).
    pub transfer_timeout_seconds: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_clip_bytes: 2 * 1024 * 1024 * 1024,
            max_pending_per_agent: 16,
            transfer_timeout_seconds: 3600,
        }
    }
}

/// One configuration problem: the key and a sentence saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `broker.external.url`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The broker the hub uses, resolved from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Run rumqttd in-process behind the hub's front.
    Embedded {
        /// Requested plain listen address (port 0 allowed; None = TLS only).
        listen: Option<SocketAddr>,
        /// Requested TLS listen address.
        tls_listen: Option<SocketAddr>,
    },
    /// Connect to a broker somebody else runs.
    External {
        /// Broker URL.
        url: String,
    },
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// True for `mqtts://`.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (1883 / 8883 by default).
    pub port: u16,
}

/// Parses `mqtt://host[:port]` or `mqtts://host[:port]`; the error is a sentence.
pub fn parse_broker_url(url: &str) -> Result<BrokerUrl, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{url:?} is not a URL; use mqtt://HOST:1883 or mqtts://HOST:8883"
        ));
    };
    let tls = match scheme {
        "mqtt" => false,
        "mqtts" => true,
        other => {
            return Err(format!(
                "scheme {other:?} is not mqtt:// or mqtts://; use mqtt://HOST:1883 or mqtts://HOST:8883"
            ))
        }
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') {
        return Err(
            "put only HOST[:PORT] after the scheme (credentials go in username/password)".into(),
        );
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port {p:?} is not a number 1-65535"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err("the host is empty; use mqtt://HOST:PORT".into());
    }
    Ok(BrokerUrl {
        tls,
        host: host.to_string(),
        port,
    })
}

impl HubConfig {
    /// Reads and parses `path` (unknown keys and wrong types are errors naming the key).
    pub fn load(path: &Path) -> anyhow::Result<HubConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        HubConfig::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> anyhow::Result<HubConfig> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Every problem at once (empty = valid).
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut add = |key: &str, message: String| {
            p.push(Problem {
                key: key.into(),
                message,
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            add(
                "data_dir",
                "is empty; set a directory such as \"/var/lib/vigil\"".into(),
            );
        }
        match self.broker.mode.as_str() {
            "embedded" => self.embedded_problems(&mut add),
            "external" => self.external_problems(&mut add),
            other => add(
                "broker.mode",
                format!("{other:?} is not \"embedded\" or \"external\""),
            ),
        }
        if let Err(e) = self.web.listen.parse::<SocketAddr>() {
            add(
                "web.listen",
                format!(
                    "{:?} is not IP:PORT ({e}); use e.g. \"127.0.0.1:8080\"",
                    self.web.listen
                ),
            );
        }
        match (&self.web.tls_cert, &self.web.tls_key) {
            (Some(_), None) => add(
                "web.tls_key",
                "is missing; tls_cert and tls_key go together".into(),
            ),
            (None, Some(_)) => add(
                "web.tls_cert",
                "is missing; tls_cert and tls_key go together".into(),
            ),
            _ => {}
        }
        for (key, f) in [
            ("web.tls_cert", &self.web.tls_cert),
            ("web.tls_key", &self.web.tls_key),
        ] {
            if let Some(f) = f {
                if !f.is_file() {
                    add(key, format!("file {} does not exist", f.display()));
                }
            }
        }
        if let Some(l) = &self.metrics.listen {
            if let Err(e) = l.parse::<SocketAddr>() {
                add(
                    "metrics.listen",
                    format!("{l:?} is not IP:PORT ({e}); use e.g. \"127.0.0.1:9465\" or remove it"),
                );
            }
        }
        if !(5..=86_400).contains(&self.web.camera_down_alert_seconds) {
            add(
                "web.camera_down_alert_seconds",
                format!(
                    "{} is outside 5..=86400 seconds (health arrives every 10 s)",
                    self.web.camera_down_alert_seconds
                ),
            );
        }
        let max = IngestConfig::default().max_clip_bytes;
        if !(1024 * 1024..=max).contains(&self.ingest.max_clip_bytes) {
            add(
                "ingest.max_clip_bytes",
                format!(
                    "{} is outside 1048576..={max} bytes",
                    self.ingest.max_clip_bytes
                ),
            );
        }
        if !(1..=1024).contains(&self.ingest.max_pending_per_agent) {
            add(
                "ingest.max_pending_per_agent",
                format!("{} is outside 1..=1024", self.ingest.max_pending_per_agent),
            );
        }
        if !(30..=7 * 86_400).contains(&self.ingest.transfer_timeout_seconds) {
            add(
                "ingest.transfer_timeout_seconds",
                format!(
                    "{} is outside 30..=604800 seconds",
                    self.ingest.transfer_timeout_seconds
                ),
            );
        }
        p
    }

    fn external_problems(&self, add: &mut impl FnMut(&str, String)) {
        let e = &self.broker.external;
        let url = match &e.url {
            None => {
                add(
                    "broker.external.url",
                    "is required with mode = \"external\"; e.g. \"mqtt://127.0.0.1:1883\"".into(),
                );
                None
            }
            Some(u) => match parse_broker_url(u) {
                Ok(u) => Some(u),
                Err(m) => {
                    add("broker.external.url", m);
                    None
                }
            },
        };
        let sources = [
            e.password.is_some(),
            e.password_file.is_some(),
            e.password_env.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            add(
                "broker.external.password",
                "set only one of password, password_file and password_env".into(),
            );
        }
        if sources > 0 && e.username.is_none() {
            add(
                "broker.external.username",
                "is missing; a password is only sent with a username".into(),
            );
        }
        if let Some(f) = &e.password_file {
            if !f.is_file() {
                add(
                    "broker.external.password_file",
                    format!("file {} does not exist", f.display()),
                );
            }
        }
        if let Some(var) = &e.password_env {
            if std::env::var_os(var).is_none() {
                add(
                    "broker.external.password_env",
                    format!("environment variable {var} is not set"),
                );
            }
        }
        match (&e.ca_file, &url) {
            (Some(f), _) if !f.is_file() => add(
                "broker.external.ca_file",
                format!("file {} does not exist", f.display()),
            ),
            (Some(_), Some(u)) if !u.tls => add(
                "broker.external.ca_file",
                "is only used with mqtts://; remove it or use an mqtts:// url".into(),
            ),
            (None, Some(u)) if u.tls => add(
                "broker.external.ca_file",
                "is required with mqtts://; set the PEM file of the CA that signed the broker's certificate".into(),
            ),
            _ => {}
        }
    }

    fn embedded_problems(&self, add: &mut impl FnMut(&str, String)) {
        let e = &self.broker.embedded;
        if !e.listen.is_empty() {
            if let Err(err) = e.listen.parse::<SocketAddr>() {
                add(
                    "broker.embedded.listen",
                    format!(
                        "{:?} is not IP:PORT ({err}); use e.g. \"127.0.0.1:1883\" or \"0.0.0.0:1883\", or \"\" for no plain MQTT",
                        e.listen
                    ),
                );
            }
        }
        if let Some(t) = &e.tls_listen {
            if let Err(err) = t.parse::<SocketAddr>() {
                add(
                    "broker.embedded.tls_listen",
                    format!("{t:?} is not IP:PORT ({err}); use e.g. \"0.0.0.0:8883\""),
                );
            }
        }
        if e.listen.is_empty() && e.tls_listen.is_none() {
            add(
                "broker.embedded.listen",
                "is \"\" and tls_listen is not set, so agents could not connect at all; set one of them".into(),
            );
        }
        match (&e.tls_cert, &e.tls_key) {
            (Some(_), None) => add(
                "broker.embedded.tls_key",
                "is required with tls_cert (the certificate's PEM private key)".into(),
            ),
            (None, Some(_)) => add(
                "broker.embedded.tls_cert",
                "is required with tls_key (the PEM certificate chain)".into(),
            ),
            _ => {}
        }
        for (key, file) in [("tls_cert", &e.tls_cert), ("tls_key", &e.tls_key)] {
            if let Some(f) = file {
                if std::fs::metadata(f).is_err() {
                    add(
                        &format!("broker.embedded.{key}"),
                        format!("cannot read {}", f.display()),
                    );
                }
            }
        }
        if (e.tls_cert.is_some() || e.tls_key.is_some() || !e.tls_names.is_empty())
            && e.tls_listen.is_none()
        {
            add(
                "broker.embedded.tls_listen",
                "is not set, so the TLS settings have no effect; set it, e.g. \"0.0.0.0:8883\""
                    .into(),
            );
        }
        for n in &e.tls_names {
            let ok = !n.is_empty()
                && (n.parse::<std::net::IpAddr>().is_ok()
                    || n.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }));
            if !ok {
                add(
                    "broker.embedded.tls_names",
                    format!("{n:?} is not a host name or an IP address"),
                );
            }
        }
        let ranges = [
            (
                "connect_timeout_seconds",
                e.connect_timeout_seconds as u128,
                1,
                120,
            ),
            (
                "max_pending_per_address",
                e.max_pending_per_address as u128,
                1,
                65536,
            ),
            (
                "max_failed_logins",
                u128::from(e.max_failed_logins),
                1,
                100_000,
            ),
            ("login_concurrency", e.login_concurrency as u128, 1, 16),
        ];
        for (key, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                add(
                    &format!("broker.embedded.{key}"),
                    format!("{v} is outside {lo}..={hi}"),
                );
            }
        }
    }

    /// The broker to use (call after [`HubConfig::problems`] came back empty).
    pub fn broker_choice(&self) -> anyhow::Result<BrokerChoice> {
        match self.broker.mode.as_str() {
            "external" => Ok(BrokerChoice::External {
                url: self
                    .broker
                    .external
                    .url
                    .clone()
                    .context("broker.external.url is required with mode = \"external\"")?,
            }),
            _ => {
                let o = self.broker.embedded.options(&self.data_dir)?;
                Ok(BrokerChoice::Embedded {
                    listen: o.listen,
                    tls_listen: o.tls.map(|(a, _)| a),
                })
            }
        }
    }

    /// The external broker's password, from whichever source is set.
    pub fn external_password(&self) -> anyhow::Result<Option<Secret>> {
        let e = &self.broker.external;
        if let Some(p) = &e.password {
            return Ok(Some(p.clone()));
        }
        if let Some(f) = &e.password_file {
            let text = std::fs::read_to_string(f).with_context(|| {
                format!("broker.external.password_file: cannot read {}", f.display())
            })?;
            return Ok(Some(Secret(
                text.lines().next().unwrap_or_default().to_string(),
            )));
        }
        if let Some(var) = &e.password_env {
            let v = std::env::var(var).map_err(|_| {
                anyhow::anyhow!(
                    "broker.external.password_env: environment variable {var} is not set"
                )
            })?;
            return Ok(Some(Secret(v)));
        }
        Ok(None)
    }

    /// One line for logs and `check-config` (no secrets).
    pub fn summary(&self) -> String {
        let broker = match self.broker.mode.as_str() {
            "external" => format!(
                "external broker {}",
                self.broker.external.url.as_deref().unwrap_or("?")
            ),
            _ => {
                let e = &self.broker.embedded;
                match (&e.tls_listen, e.listen.as_str()) {
                    (Some(t), "") => format!("embedded broker on {t} (TLS)"),
                    (Some(t), l) => format!("embedded broker on {l} and {t} (TLS)"),
                    (None, l) => format!("embedded broker on {l}"),
                }
            }
        };
        let tls = if self.web.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!(
            "data in {}, {broker}, web {tls}://{}",
            self.data_dir.display(),
            self.web.listen
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults_and_valid() {
        let c = HubConfig::parse("").unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(
            c.broker_choice().unwrap(),
            BrokerChoice::Embedded {
                listen: Some("127.0.0.1:1883".parse().unwrap()),
                tls_listen: None,
            }
        );
    }

    #[test]
    fn embedded_tls_settings_are_checked() {
        let c = HubConfig::parse(
            r#"
            [broker.embedded]
            listen = ""
            tls_cert = "/nonexistent/cert.pem"
            tls_names = ["hub lan", "10.0.0.5"]
            max_failed_logins = 0
            "#,
        )
        .unwrap();
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        for k in [
            "broker.embedded.listen",
            "broker.embedded.tls_key",
            "broker.embedded.tls_cert",
            "broker.embedded.tls_listen",
            "broker.embedded.tls_names",
            "broker.embedded.max_failed_logins",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        assert_eq!(
            keys.iter()
                .filter(|k| *k == "broker.embedded.tls_names")
                .count(),
            1,
            "only the bad name: {keys:?}"
        );
        let ok = HubConfig::parse(
            "[broker.embedded]\nlisten = \"\"\ntls_listen = \"0.0.0.0:8883\"\ntls_names = [\"hub.lan\", \"10.0.0.5\"]\n",
        )
        .unwrap();
        assert!(ok.problems().is_empty(), "{:?}", ok.problems());
        assert_eq!(
            ok.broker_choice().unwrap(),
            BrokerChoice::Embedded {
                listen: None,
                tls_listen: Some("0.0.0.0:8883".parse().unwrap()),
            }
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let c = HubConfig::parse(
            r#"
            data_dir = ""
            [broker]
            mode = "external"
            [broker.external]
            url = "htp://x"
            password = "s3cret"
            password_env = "VIGIL_TEST_SURELY_UNSET"
            [web]
            listen = "nowhere"
            tls_cert = "/nonexistent/cert.pem"
            [ingest]
            max_pending_per_agent = 0
            "#,
        )
        .unwrap();
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        for k in [
            "data_dir",
            "broker.external.url",
            "broker.external.password",
            "broker.external.username",
            "broker.external.password_env",
            "web.listen",
            "web.tls_key",
            "web.tls_cert",
            "ingest.max_pending_per_agent",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        let text = c
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert!(text
            .iter()
            .any(|t| t == "broker.external.url: scheme \"htp\" is not mqtt:// or mqtts://; use mqtt://HOST:1883 or mqtts://HOST:8883"));
        assert!(!format!("{c:?}").contains("s3cret"), "secret in Debug");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = HubConfig::parse("[broker]\nmod = \"embedded\"\n").unwrap_err();
        assert!(e.to_string().contains("mod"), "{e}");
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtts://hub.lan").unwrap(),
            BrokerUrl {
                tls: true,
                host: "hub.lan".into(),
                port: 8883
            }
        );
        assert!(parse_broker_url("mqtt://:1883").is_err());
        assert!(parse_broker_url("mqtt://h:0").is_err());
        assert!(parse_broker_url("mqtt://u:p@h:1").is_err());
    }
}
