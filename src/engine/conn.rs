//! One HTTP/1.1 keep-alive connection and the request/response exchange.
//!
//! hyper's connection future is driven inline by the task that owns the
//! connection instead of being spawned: a request then costs no task switch
//! or cross-task wake-up, which is most of hyper's per-request overhead.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::stats::FailureKind;

pub(crate) type Outcome = Result<(), FailureKind>;
type Body = Full<Bytes>;
type Driver = Connection<TokioIo<TcpStream>, Body>;

pub(crate) struct Conn {
    sender: SendRequest<Body>,
    driver: Driver,
    /// The driver has finished: the connection is gone.
    finished: bool,
}

impl Conn {
    pub fn is_closed(&self) -> bool {
        self.finished || self.sender.is_closed()
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> Option<Conn> {
    let stream = TcpStream::connect(addr).await.ok()?;
    // Small requests must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (sender, driver) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    Some(Conn {
        sender,
        driver,
        finished: false,
    })
}

/// Polls `fut` while driving the connection. `None` if the connection ended
/// while `fut` was still waiting on it (it could never complete).
async fn driven<F: Future>(driver: &mut Driver, finished: &mut bool, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    poll_fn(move |cx| {
        if !*finished && Pin::new(&mut *driver).poll(cx).is_ready() {
            *finished = true;
        }
        match fut.as_mut().poll(cx) {
            std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
            std::task::Poll::Pending if *finished => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}

enum Attempt {
    Done(Outcome),
    /// Not sent; may be retried on a fresh connection.
    Unsent(Box<Request<Body>>),
}

/// Sends `req` on `slot` (connecting if empty or closed) and reads the whole
/// response. The connection is left in `slot` only if it is reusable.
pub(crate) async fn exchange(
    slot: &mut Option<Conn>,
    addr: SocketAddr,
    req: Request<Body>,
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
        let Conn {
            sender,
            driver,
            finished,
        } = conn;
        let attempt = driven(driver, finished, async {
            if sender.ready().await.is_err() {
                return Attempt::Unsent(Box::new(req));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let mut body = resp.into_body();
                    while let Some(frame) = body.frame().await {
                        if frame.is_err() {
                            return Attempt::Done(Err(FailureKind::Io));
                        }
                    }
                    let ok = match expect_status {
                        Some(want) => status == want,
                        None => (200..400).contains(&status),
                    };
                    Attempt::Done(if ok { Ok(()) } else { Err(FailureKind::Status) })
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) => Attempt::Unsent(Box::new(unsent)),
                    None => Attempt::Done(Err(FailureKind::Io)),
                },
            }
        })
        .await;
        match attempt {
            Some(Attempt::Done(outcome)) => {
                if matches!(outcome, Err(FailureKind::Io)) {
                    *slot = None;
                }
                return outcome;
            }
            Some(Attempt::Unsent(unsent)) if !fresh => {
                *slot = None;
                req = *unsent;
            }
            Some(Attempt::Unsent(_)) | None => {
                *slot = None;
                return Err(FailureKind::Io);
            }
        }
    }
    Err(FailureKind::Io)
}
