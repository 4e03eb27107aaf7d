//! `serve.tls`: the listener speaks HTTPS with the configured certificate (checked by a rustls
//! client that trusts only that certificate), refuses clear-text HTTP, and a bad certificate
//! file stops `serve` at start, naming the file.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use common::{edgestore, terminate, text, Serving};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM, cert DER).
fn certificate() -> (String, String, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

fn config(dir: &Path, cert: &str, key: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let file = dir.join("edgestore.yaml");
    std::fs::write(
        &file,
        format!(
            "serve: {{tls: {{certFile: {}, keyFile: {}}}}}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    )
    .unwrap();
    file
}

/// One HTTP/1.1 request over TLS, trusting only `root`; the whole response.
async fn https_get(
    addr: std::net::SocketAddr,
    root: CertificateDer<'static>,
    path: &str,
) -> String {
    let mut roots = RootCertStore::empty();
    roots.add(root).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test(flavor = "current_thread")]
async fn serve_speaks_https_with_the_configured_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate();
    let file = config(tmp.path(), &cert, &key);
    let mut cmd = edgestore(&tmp.path().join("data"), "native");
    cmd.arg("--config").arg(&file);
    let mut serving = Serving::start(cmd, &[]);

    let response = https_get(serving.addr, der, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Clear text to the TLS port gets no HTTP answer.
    let mut plain = std::net::TcpStream::connect(serving.addr).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!text(&answer).contains("HTTP/1.1 200"), "{}", text(&answer));

    assert!(terminate(&mut serving.child).success());
}

#[test]
fn a_bad_certificate_stops_serve_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let file = config(tmp.path(), "not a certificate\n", "not a key\n");
    let out = edgestore(&tmp.path().join("data"), "native")
        .arg("--config")
        .arg(&file)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("serve.tls.certFile"), "{err}");
    assert!(
        !text(&out.stdout).contains("listening on"),
        "nothing listened"
    );
}
