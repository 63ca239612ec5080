//! One HTTP/1.1 keep-alive connection and the request/response exchange.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use super::stats::FailureKind;

pub(crate) type Outcome = Result<(), FailureKind>;

pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: AbortHandle,
}

impl Drop for Conn {
    // The connection task would otherwise linger after a timeout.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Opens a connection; its driver runs as a local task of the current worker.
pub(crate) async fn connect(addr: SocketAddr) -> Option<Conn> {
    let stream = TcpStream::connect(addr).await.ok()?;
    // Small requests must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    let driver = tokio::task::spawn_local(async move {
        let _ = connection.await;
    })
    .abort_handle();
    Some(Conn { sender, driver })
}

/// Sends `req` on `slot` (connecting if empty or closed) and reads the whole
/// response. The connection is left in `slot` only if it is reusable.
pub(crate) async fn exchange(
    slot: &mut Option<Conn>,
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
    expect_status: Option<u16>,
) -> Outcome {
    let mut req = req;
    // A reused connection may have been closed by the server while idle; the
    // request is then retried once on a fresh connection, which is safe
    // because hyper hands it back only if nothing was written.
    for _ in 0..2 {
        let fresh = match slot {
            Some(c) if !c.is_closed() => false,
            _ => {
                *slot = None;
                *slot = Some(connect(addr).await.ok_or(FailureKind::Connect)?);
                true
            }
        };
        let Some(conn) = slot.as_mut() else {
            return Err(FailureKind::Connect);
        };
        if conn.sender.ready().await.is_err() {
            *slot = None;
            if fresh {
                return Err(FailureKind::Io);
            }
            continue;
        }
        match conn.sender.try_send_request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        *slot = None;
                        return Err(FailureKind::Io);
                    }
                }
                let ok = match expect_status {
                    Some(want) => status == want,
                    None => (200..400).contains(&status),
                };
                return if ok { Ok(()) } else { Err(FailureKind::Status) };
            }
            Err(mut e) => {
                *slot = None;
                match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(FailureKind::Io),
                }
            }
        }
    }
    Err(FailureKind::Io)
}
