//! HTTP/2 through the `h2` crate: ALPN h2 over TLS or prior-knowledge h2c
//! over TCP. A connection is shared by every stream sent on it (one user's,
//! or all users' with `connections = N`); h2 does flow control, and a
//! connection the server sends GOAWAY on is replaced by a new one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use h2::client::SendRequest;
use hyper::Request;
use tokio::task::spawn_local;

use super::conn::{Conn, Outcome, Target, note_tls_failure, open};
use super::http1::BodySink;
use super::stats::FailureKind;

/// Receive windows large enough that a streamed response is never paced by
/// our window updates (h2's defaults are 64 KiB).
const STREAM_WINDOW: u32 = 4 << 20;
const CONN_WINDOW: u32 = 16 << 20;

struct Live {
    send: SendRequest<Bytes>,
    /// Set when the connection task ends (GOAWAY, error, close).
    ended: Rc<Cell<bool>>,
}

/// The connection a request goes out on.
pub(crate) enum Link {
    /// HTTP/1.1: a keep-alive connection, or none yet.
    H1(Option<Conn>),
    /// HTTP/2: a possibly shared connection slot.
    H2(Rc<H2Slot>),
}

impl Link {
    /// After a timeout: an HTTP/1.1 connection is mid-exchange and cannot
    /// be reused; an HTTP/2 stream was reset when its future was dropped.
    pub(crate) fn abandon_exchange(&mut self) {
        if let Link::H1(c) = self {
            *c = None;
        }
    }
}

/// A connection slot, possibly shared by several users: connected on first
/// use and again after the connection ends.
#[derive(Default)]
pub(crate) struct H2Slot {
    conn: RefCell<Option<Live>>,
    /// A connect in progress: others wait for it rather than open their own.
    connecting: tokio::sync::Mutex<()>,
}

/// One request as h2 sends it.
pub(crate) struct H2Outgoing {
    pub request: Request<()>,
    pub body: Bytes,
    pub expect_status: Option<u16>,
    /// Safe to send again when the server refused the stream unprocessed.
    pub replayable: bool,
}

impl H2Slot {
    /// A sender on a live connection, connecting if there is none.
    async fn sender(&self, target: &Target) -> Result<SendRequest<Bytes>, FailureKind> {
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let _guard = self.connecting.lock().await;
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let stream = open(target).await?;
        if target.tls.is_some() && stream.alpn() != Some(b"h2") {
            note_tls_failure("the server did not agree to HTTP/2 (ALPN h2)".into());
            return Err(FailureKind::Tls);
        }
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|_| FailureKind::Connect)?;
        let ended = Rc::new(Cell::new(false));
        let flag = ended.clone();
        spawn_local(async move {
            let _ = conn.await;
            flag.set(true);
        });
        *self.conn.borrow_mut() = Some(Live {
            send: send.clone(),
            ended,
        });
        Ok(send)
    }

    fn live(&self) -> Option<SendRequest<Bytes>> {
        let mut c = self.conn.borrow_mut();
        match c.as_ref() {
            Some(l) if !l.ended.get() => Some(l.send.clone()),
            _ => {
                *c = None;
                None
            }
        }
    }

    fn drop_conn(&self) {
        *self.conn.borrow_mut() = None;
    }
}

/// How a stream failed.
enum Failed {
    /// Refused before the server processed it (GOAWAY beyond its last
    /// stream, REFUSED_STREAM, or a connection that had ended): may be sent
    /// again on a new connection.
    Unprocessed,
    Kind(FailureKind),
}

fn classify(e: &h2::Error, slot: &H2Slot) -> Failed {
    if e.is_go_away() || e.is_io() {
        slot.drop_conn();
    }
    match e.reason() {
        Some(h2::Reason::REFUSED_STREAM) => Failed::Unprocessed,
        _ if e.is_go_away() && e.is_remote() => Failed::Unprocessed,
        Some(_) if e.is_reset() => Failed::Kind(FailureKind::Reset),
        _ => Failed::Kind(FailureKind::Io),
    }
}

/// Sends the request `make` builds on `slot`'s connection and reads the
/// whole response, showing each DATA frame to `sink` as it arrives. A
/// request the server refused unprocessed is built and sent once more.
pub(crate) async fn exchange_h2<S: BodySink>(
    slot: &H2Slot,
    target: &Target,
    make: impl Fn() -> Option<H2Outgoing>,
    mut sink: S,
) -> Outcome {
    for attempt in 0..2 {
        let retry = attempt == 0;
        let Some(H2Outgoing {
            request,
            body,
            expect_status,
            replayable,
        }) = make()
        else {
            return Err(FailureKind::Io);
        };
        match round_trip(slot, target, request, &body, &mut sink).await {
            Ok(status) => {
                let ok = match expect_status {
                    Some(want) => status == want,
                    None => (200..400).contains(&status),
                };
                return if ok { Ok(()) } else { Err(FailureKind::Status) };
            }
            Err(Failed::Unprocessed) if retry && (replayable || body.is_empty()) => continue,
            Err(Failed::Unprocessed) => return Err(FailureKind::Io),
            Err(Failed::Kind(k)) => return Err(k),
        }
    }
    Err(FailureKind::Io)
}

async fn round_trip<S: BodySink>(
    slot: &H2Slot,
    target: &Target,
    request: Request<()>,
    body: &Bytes,
    sink: &mut S,
) -> Result<u16, Failed> {
    let send = slot.sender(target).await.map_err(Failed::Kind)?;
    // Waits for a stream slot under the server's concurrency limit.
    let mut send = match send.ready().await {
        Ok(s) => s,
        Err(e) => {
            slot.drop_conn();
            return Err(match classify(&e, slot) {
                Failed::Kind(FailureKind::Io) => Failed::Unprocessed,
                other => other,
            });
        }
    };
    let (response, mut tx) = send
        .send_request(request, body.is_empty())
        .map_err(|e| classify(&e, slot))?;
    if !body.is_empty() {
        tx.send_data(body.clone(), true)
            .map_err(|e| classify(&e, slot))?;
    }
    let response = response.await.map_err(|e| classify(&e, slot))?;
    let status = response.status().as_u16();
    let mut data = response.into_body();
    while let Some(frame) = data.data().await {
        let frame = frame.map_err(|e| match classify(&e, slot) {
            // Part of the response came: it was processed.
            Failed::Unprocessed => Failed::Kind(FailureKind::Io),
            other => other,
        })?;
        let _ = data.flow_control().release_capacity(frame.len());
        // Each DATA frame is one read's worth: an SSE parser sees its lines,
        // the `chunks` mode counts it as one event.
        sink.data(&frame, true);
        sink.chunk_end();
    }
    Ok(status)
}
