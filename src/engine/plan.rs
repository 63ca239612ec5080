//! The request mix compiled once per worker: every (request, endpoint, body
//! variant) serialized to the exact bytes sent, so a request costs one write.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TRANSFER_ENCODING};
use hyper::{Method, Uri};
use rand::RngExt;
use rand::rngs::SmallRng;

use super::conn::Outgoing;
use super::spec::{EngineError, LoadSpec, StreamMode};

pub(crate) struct PlannedRequest {
    /// Index `ep * variants + body`: request line, headers, body.
    wire: Vec<Bytes>,
    /// Body variants (at least 1: an empty body).
    variants: usize,
    head: bool,
    replayable: bool,
    close: bool,
    expect_status: Option<u16>,
    stream: Option<StreamMode>,
}

pub(crate) struct Plan {
    pub addrs: Vec<SocketAddr>,
    pub requests: Vec<PlannedRequest>,
    cumulative: Vec<u64>,
    total_weight: u64,
}

impl Plan {
    pub fn build(spec: &LoadSpec, addrs: &[SocketAddr]) -> Result<Plan, EngineError> {
        let mut requests = Vec::with_capacity(spec.requests.len());
        let mut cumulative = Vec::with_capacity(spec.requests.len());
        let mut total_weight = 0u64;
        for r in &spec.requests {
            let bad =
                |what: String| EngineError::InvalidSpec(format!("request {:?}: {what}", r.name));
            let method = Method::from_bytes(r.method.trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| bad(format!("invalid method {:?}", r.method)))?;
            let path = if r.path.is_empty() {
                "/"
            } else {
                r.path.as_str()
            };
            if !path.starts_with('/') {
                return Err(bad(format!("path {path:?} must start with '/'")));
            }
            let uri =
                Uri::try_from(path).map_err(|e| bad(format!("invalid path {path:?}: {e}")))?;
            let target = uri.path_and_query().map_or(path, |pq| pq.as_str());
            let mut headers = Vec::with_capacity(r.headers.len());
            let mut has_host = false;
            let mut close = false;
            for (k, v) in &r.headers {
                let name = HeaderName::from_bytes(k.trim().as_bytes())
                    .map_err(|_| bad(format!("invalid header name {k:?}")))?;
                let value = HeaderValue::from_bytes(v.trim().as_bytes())
                    .map_err(|_| bad(format!("invalid value for header {k:?}")))?;
                // The body's framing is always a Content-Length of our own.
                if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
                    continue;
                }
                has_host |= name == HOST;
                if name == CONNECTION {
                    close |= value
                        .as_bytes()
                        .split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
                }
                headers.push((name, value));
            }
            // Methods that define a meaning for a body state its length even
            // when it is empty; others only when they carry one.
            let length_always = matches!(method, Method::POST | Method::PUT | Method::PATCH);
            let bodies: Vec<&[u8]> = if r.bodies.is_empty() {
                vec![&[]]
            } else {
                r.bodies.iter().map(|b| &b[..]).collect()
            };
            let mut wire = Vec::with_capacity(spec.endpoints.len() * bodies.len());
            for e in &spec.endpoints {
                let authority = e.authority();
                if !has_host && HeaderValue::from_str(&authority).is_err() {
                    return Err(bad(format!("invalid host {:?}", e.host)));
                }
                for body in &bodies {
                    let mut w = BytesMut::with_capacity(128 + target.len() + body.len());
                    w.put_slice(method.as_str().as_bytes());
                    w.put_u8(b' ');
                    w.put_slice(target.as_bytes());
                    w.put_slice(b" HTTP/1.1\r\n");
                    if !has_host {
                        w.put_slice(b"host: ");
                        w.put_slice(authority.as_bytes());
                        w.put_slice(b"\r\n");
                    }
                    for (name, value) in &headers {
                        w.put_slice(name.as_str().as_bytes());
                        w.put_slice(b": ");
                        w.put_slice(value.as_bytes());
                        w.put_slice(b"\r\n");
                    }
                    if length_always || !body.is_empty() {
                        w.put_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
                    }
                    w.put_slice(b"\r\n");
                    w.put_slice(body);
                    wire.push(w.freeze());
                }
            }
            total_weight += u64::from(r.weight);
            cumulative.push(total_weight);
            requests.push(PlannedRequest {
                wire,
                variants: bodies.len(),
                head: method == Method::HEAD,
                replayable: matches!(
                    method,
                    Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
                ),
                close,
                expect_status: r.expect_status,
                stream: r.stream,
            });
        }
        if total_weight == 0 {
            return Err(EngineError::InvalidSpec("all request weights are 0".into()));
        }
        if addrs.len() != spec.endpoints.len() || addrs.is_empty() {
            return Err(EngineError::InvalidSpec("no endpoints".into()));
        }
        Ok(Plan {
            addrs: addrs.to_vec(),
            requests,
            cumulative,
            total_weight,
        })
    }

    /// Weighted random pick of a request index.
    pub fn pick(&self, rng: &mut SmallRng) -> usize {
        if self.requests.len() == 1 {
            return 0;
        }
        let r = rng.random_range(0..self.total_weight);
        self.cumulative
            .partition_point(|&c| c <= r)
            .min(self.requests.len() - 1)
    }

    /// Request `i` for endpoint `ep`, using body variant `seq`.
    pub fn request(&self, i: usize, ep: usize, seq: usize) -> Outgoing<'_> {
        let p = &self.requests[i];
        let eps = self.addrs.len();
        let ep = if ep < eps { ep } else { ep % eps };
        let body = if p.variants == 1 { 0 } else { seq % p.variants };
        let idx = ep * p.variants + body;
        Outgoing {
            bytes: &p.wire[idx],
            head: p.head,
            replayable: p.replayable,
            close: p.close,
            expect_status: p.expect_status,
        }
    }

    /// How request `i`'s response is timed event by event, if it is.
    pub fn stream(&self, i: usize) -> Option<StreamMode> {
        self.requests[i].stream
    }

    pub fn body_variants(&self, i: usize) -> usize {
        self.requests[i].variants
    }
}
