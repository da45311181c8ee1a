//! Tests of the web port's TLS (issue 19) over real sockets: a client pinned to the certificate's SHA-256
//! fingerprint, plain HTTP kept on loopback, the redirect for plain HTTP from beyond loopback (peer injected),
//! `Secure` cookies over TLS only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::tls::{self, Peer};
use super::*;

/// Accepts exactly the certificate whose SHA-256 is `pin` (what a person does comparing the banner's fingerprint).
#[derive(Debug)]
struct Pinned {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("fingerprint does not match the pin".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn connector(pin: &str) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            pin: pin.into(),
            provider,
        }))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A self-signed certificate as the daemon makes one, and its fingerprint.
fn identity() -> (Arc<tls::ServerConfig>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let fp = fingerprint(cert.der());
    let cfg = tls::server_config(
        vec![cert.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    (cfg, fp)
}

fn app(secure_cookies: bool) -> Router {
    let (core, store) = cacheos_core::testing::core();
    let mut access = WebAccess::new("token".into());
    access.secure_cookies = secure_cookies;
    let chat = Arc::new(cacheos_chat::ChatService::new(
        core.clone(),
        store,
        Box::new(cacheos_chat::Known::default),
    ));
    router(core, chat, access)
}

/// Serves `app` with `tls` on a loopback port until the returned sender is dropped.
async fn start(app: Router, tls: Option<Arc<tls::ServerConfig>>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tls::serve(listener, app, tls, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// One HTTP/1.1 exchange on `io` (`Connection: close`), the response as text.
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: S, request: &str) -> String {
    io.write_all(request.as_bytes()).await.unwrap();
    io.flush().await.unwrap();
    let mut out = Vec::new();
    // A TLS peer may close without close_notify; what was read until then is the response.
    let _ = io.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn login_request() -> String {
    let body = r#"{"token":"token"}"#;
    format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn over_tls(addr: SocketAddr, pin: &str, request: &str) -> Result<String, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let s = connector(pin).connect(name, tcp).await?;
    Ok(exchange(s, request).await)
}

async fn plain(addr: SocketAddr, request: &str) -> String {
    exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), request).await
}

fn set_cookie(response: &str) -> &str {
    response
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no set-cookie in {response}"))
}

#[tokio::test]
async fn one_port_serves_tls_to_the_pinned_certificate_and_plain_http_on_loopback() {
    let (cfg, fp) = identity();
    let (addr, _stop) = start(app(false), Some(cfg)).await;

    let r = over_tls(addr, &fp, &get("/api/v1/system/status")).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("testbox"), "{r}");

    // A client pinned to another fingerprint refuses the handshake.
    let wrong = fp.replace(&fp[..2], if &fp[..2] == "00" { "01" } else { "00" });
    let e = over_tls(addr, &wrong, &get("/healthz")).await.unwrap_err();
    assert!(e.to_string().contains("fingerprint does not match"), "{e}");

    // Loopback keeps plain HTTP on the same port.
    let r = plain(addr, &get("/api/v1/system/status")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test]
async fn cookies_are_secure_over_tls_and_not_over_plain_loopback() {
    let (cfg, fp) = identity();
    let (addr, _stop) = start(app(false), Some(cfg)).await;
    let r = over_tls(addr, &fp, &login_request()).await.unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let c = set_cookie(&r);
    assert!(c.contains("; Secure") && c.contains("HttpOnly"), "{c}");
    let r = plain(addr, &login_request()).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(!set_cookie(&r).contains("Secure"), "{r}");
}

#[tokio::test]
async fn without_tls_the_port_is_plain_http_as_before() {
    let (addr, _stop) = start(app(false), None).await;
    let r = plain(addr, &get("/healthz")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let (_, fp) = identity();
    assert!(over_tls(addr, &fp, &get("/healthz")).await.is_err());
}

async fn via(peer: &str, tls_used: bool, redirect: bool, uri: &str, host: Option<&str>) -> axum::response::Response {
    let peer = Peer {
        addr: peer.parse().unwrap(),
        tls: tls_used,
    };
    let app = tls::with_transport(app(false), redirect).layer(MockConnectInfo(peer));
    let mut req = Request::builder().uri(uri);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn plain_http_from_beyond_loopback_is_redirected_to_https_on_the_same_host_and_port() {
    let r = via(
        "192.0.2.7:5000",
        false,
        true,
        "/api/v1/audit?limit=5",
        Some("cacheos.lan:8080"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()["location"], "https://cacheos.lan:8080/api/v1/audit?limit=5");
    // IPv6 peers and bracketed hosts too.
    let r = via("[2001:db8::5]:5000", false, true, "/", Some("[2001:db8::1]:8080")).await;
    assert_eq!(r.headers()["location"], "https://[2001:db8::1]:8080/");
    // A Host that is no plain authority gets no redirect built from it.
    let r = via("192.0.2.7:5000", false, true, "/", Some("evil.example/x?")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = via("192.0.2.7:5000", false, true, "/", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Health probes need no certificate.
    let r = via("192.0.2.7:5000", false, true, "/healthz", Some("cacheos.lan:8080")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Over TLS the same client reaches the API (and needs its token there).
    let r = via(
        "192.0.2.7:5000",
        true,
        true,
        "/api/v1/system/status",
        Some("cacheos.lan:8080"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Loopback (also 127.0.0.2 and IPv4-mapped) keeps plain HTTP.
    for peer in [
        "127.0.0.1:5000",
        "127.0.0.2:5000",
        "[::1]:5000",
        "[::ffff:127.0.0.1]:5000",
    ] {
        let r = via(peer, false, true, "/api/v1/system/status", Some("localhost:8080")).await;
        assert_eq!(r.status(), StatusCode::OK, "{peer}");
    }
    // Without TLS configured nothing is redirected.
    let r = via(
        "192.0.2.7:5000",
        false,
        false,
        "/api/v1/system/status",
        Some("cacheos.lan:8080"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_client_that_sends_nothing_does_not_hold_up_the_next() {
    let (cfg, fp) = identity();
    let (addr, _stop) = start(app(false), Some(cfg)).await;
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), over_tls(addr, &fp, &get("/healthz")))
        .await
        .expect("served while another connection is silent")
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}
