//! TLS on the web port (issue 19). One port speaks both: each connection's first byte tells a TLS handshake
//! (0x16) from plain HTTP (as Cockpit's port does). TLS connections are served over rustls with the appliance's
//! certificate; plain HTTP from loopback is served as before; plain HTTP from any other address is redirected to
//! `https://` on the same host and port (`/healthz` excepted, so health probes need no certificate). Requests
//! served over TLS get `Secure` session cookies.
//!
//! [`serve`] runs the router this way; handlers keep reading `ConnectInfo<SocketAddr>`, and [`Transport`] says
//! whether the request came over TLS.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub use rustls::ServerConfig;

/// How long a new connection may take to send its first byte, and then to finish a TLS handshake.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a request came over TLS (a request extension set by [`serve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Served over TLS.
    pub tls: bool,
}

/// A connection's peer and transport: the connect info of [`DualListener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the connection speaks TLS.
    pub tls: bool,
}

impl Connected<IncomingStream<'_, DualListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, DualListener>) -> Self {
        *stream.remote_addr()
    }
}

/// The rustls configuration for a certificate chain (leaf first) and its key: ring, TLS 1.2 and 1.3, HTTP/1.1.
pub fn server_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A plain or TLS connection.
pub enum Conn {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTP over TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// A listener whose connections are told apart (and TLS ones handshaken) in their own tasks, so a slow client
/// never holds up the next one.
pub struct DualListener {
    rx: tokio::sync::mpsc::Receiver<(Conn, Peer)>,
    local: SocketAddr,
}

impl DualListener {
    /// Accepts on `tcp`; with `tls`, connections that start a TLS handshake are served over TLS.
    pub fn new(tcp: TcpListener, tls: Option<Arc<ServerConfig>>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => break,
                    r = tcp.accept() => match r {
                        Ok((stream, addr)) => {
                            let _ = stream.set_nodelay(true);
                            let (tx, acceptor) = (tx.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                if let Some(c) = classify(stream, addr, acceptor).await {
                                    let _ = tx.send(c).await;
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "web port accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });
        Ok(Self { rx, local })
    }
}

async fn classify(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Option<(Conn, Peer)> {
    let Some(acceptor) = acceptor else {
        return Some((Conn::Plain(stream), Peer { addr, tls: false }));
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => return Some((Conn::Plain(stream), Peer { addr, tls: false })),
        _ => return None,
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some((Conn::Tls(Box::new(s)), Peer { addr, tls: true })),
        Ok(Err(e)) => {
            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

impl Listener for DualListener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Conn, Peer) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        Ok(Peer {
            addr: self.local,
            tls: false,
        })
    }
}

/// Whether `host` is a plain authority (host name, IPv4, bracketed IPv6, optional port) fit for a `Location`.
fn plain_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn redirect_to_https(req: &Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plain_authority(h));
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "this port needs HTTPS from beyond the appliance; connect with https://\n",
        )
            .into_response();
    };
    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    match HeaderValue::from_str(&format!("https://{host}{pq}")) {
        Ok(loc) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, loc)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The router as [`serve`] runs it: connect info turned into `ConnectInfo<SocketAddr>` + [`Transport`], and plain
/// HTTP from beyond loopback redirected to HTTPS when `redirect_plain`.
pub fn with_transport(app: Router, redirect_plain: bool) -> Router {
    app.layer(axum::middleware::from_fn(
        move |ConnectInfo(peer): ConnectInfo<Peer>, mut req: Request, next: Next| async move {
            if redirect_plain
                && !peer.tls
                && !peer.addr.ip().to_canonical().is_loopback()
                && req.uri().path() != "/healthz"
            {
                return redirect_to_https(&req);
            }
            req.extensions_mut().insert(ConnectInfo(peer.addr));
            req.extensions_mut().insert(Transport { tls: peer.tls });
            next.run(req).await
        },
    ))
}

/// Serves `app` on `tcp` until `shutdown`: with `tls`, TLS and plain HTTP on the same port as described above;
/// without, plain HTTP only (as before issue 19).
pub async fn serve(
    tcp: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let redirect = tls.is_some();
    let listener = DualListener::new(tcp, tls)?;
    axum::serve(
        listener,
        with_transport(app, redirect).into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
