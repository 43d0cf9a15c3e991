//! HTTPS served directly (rustls, ring provider) with a certificate from the config.

mod web_common;

use std::process::Command;

use reqwest::{Method, StatusCode};
use vigil_hub::web::TlsFiles;
use web_common::TestHub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_secure_cookies() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    // openssl is a test oracle only: it makes a self-signed P-256 certificate for 127.0.0.1.
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=vigil-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let hub = TestHub::start(|o| {
        o.tls = Some(TlsFiles {
            cert_pem: cert.clone(),
            key_pem: key.clone(),
        })
    })
    .await;
    assert!(hub.base.starts_with("https://"));
    let mut s = hub.anon();
    let r = s.try_login("op", web_common::PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(c.contains("; Secure") && c.contains("HttpOnly"), "{c}");
    assert!(r.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let v: serde_json::Value = r.json().await.unwrap();
    s.csrf = v["csrf"].as_str().unwrap().into();
    assert_eq!(
        s.req(Method::GET, "/api/session", None).await.status(),
        StatusCode::OK
    );
    // Plain HTTP to the TLS port gets no page.
    let plain = reqwest::Client::new()
        .get(hub.base.replace("https://", "http://") + "/login")
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("bogus.pem");
    std::fs::write(&bogus, "not a pem").unwrap();
    let opts = vigil_hub::web::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        tls: Some(TlsFiles {
            cert_pem: bogus.clone(),
            key_pem: bogus.clone(),
        }),
        ..Default::default()
    };
    let err = match vigil_hub::web::bind(opts).await {
        Ok(_) => panic!("bogus TLS files accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("bogus.pem"), "{err}");
}
