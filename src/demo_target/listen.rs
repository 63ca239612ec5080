//! One accepted connection of the demo target: HTTP/1.1 or HTTP/2 (h2c by
//! prior knowledge on plain TCP, ALPN h2 over TLS), optionally TLS.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::{DemoTargetError, LISTEN_BACKLOG, Server, handle};

/// The server side of `--tls-cert` and `--tls-key`: PEM files, ALPN h2 and
/// http/1.1.
pub fn server_tls(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, DemoTargetError> {
    let bad = |what: &Path, reason: String| DemoTargetError::Tls {
        path: what.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert, "no PEM certificate".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(key, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(super) async fn serve_connection(
    stream: TcpStream,
    server: Arc<Server>,
    tls: Option<TlsAcceptor>,
    closing: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    match tls {
        None => serve_io(stream, server, closing).await,
        Some(acceptor) => {
            // A failed handshake is a client's problem; nothing to report.
            if let Ok(s) = acceptor.accept(stream).await {
                serve_io(s, server, closing).await;
            }
        }
    }
}

async fn serve_io<I>(io: I, server: Arc<Server>, mut closing: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| handle(Arc::clone(&server), request));
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    // Connection errors are clients going away; nothing to report.
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async { closing.wait_for(|closing| *closing).await.is_ok() } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Binds like `TcpListener::bind`, but with a deep accept backlog: the
/// default of 128 overflows when a load test opens hundreds of connections at
/// once, and each dropped SYN costs the client a one-second retransmit.
pub async fn bind_listener(host: &str, port: u16) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let bound = socket.and_then(|socket| {
            // As std and mio do: quick rebinding after a restart. Not on
            // Windows, where it would allow hijacking a port in use.
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            // The kernel caps this at net.core.somaxconn.
            socket.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "host resolved to no address")
    }))
}

pub(super) fn announce(addr: SocketAddr, tls: bool) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    let scheme = if tls { "https" } else { "http" };
    writeln!(stdout, "demo-target listening on {scheme}://{addr}")?;
    stdout.flush()
}

#[cfg(unix)]
pub(super) fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
pub(super) fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}
