//! The request mix compiled once per worker: every (request, endpoint, body
//! variant) serialized to the exact bytes sent, so a request costs one write.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, TE, TRANSFER_ENCODING,
    UPGRADE,
};
use hyper::{Method, Request, Uri, Version};
use rand::RngExt;
use rand::rngs::SmallRng;

use super::conn::Outgoing;
use super::data::RowSet;
use super::h2conn::H2Outgoing;
use super::spec::{EngineError, HttpVersion, LoadSpec};
use crate::base::request::StreamMode;

/// A request's parts as HTTP/2 sends them (built only for `http = "2"`).
struct H2Parts {
    method: Method,
    /// Per endpoint: scheme, authority and path.
    uris: Vec<Uri>,
    /// Without the hop-by-hop headers HTTP/2 forbids; `Host` became the
    /// URI's authority.
    headers: HeaderMap,
    bodies: Vec<Bytes>,
}

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
    h2: Option<H2Parts>,
    /// Per-row bodies (and paths), assembled per request.
    rows: Option<RowParts>,
    /// The response is read for an OpenAI `usage` object.
    usage: bool,
}

/// What a request with rows sends: `method SP path` then, per endpoint, the
/// rest of the head up to the row's own headers and the body's
/// `content-length`.
struct RowParts {
    set: Arc<RowSet>,
    method: Bytes,
    path: String,
    heads: Vec<Bytes>,
    /// The headers each row gives its own value, in the set's order.
    header_names: Vec<HeaderName>,
    length_always: bool,
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
            let row_header_names = match &r.rows {
                Some(set) => set
                    .header_names()
                    .iter()
                    .map(|k| {
                        HeaderName::from_bytes(k.trim().as_bytes())
                            .map_err(|_| bad(format!("invalid header name {k:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            let rows = r.rows.as_ref().map(|set| RowParts {
                set: Arc::clone(set),
                method: Bytes::copy_from_slice(method.as_str().as_bytes()),
                path: target.to_string(),
                heads: spec
                    .endpoints
                    .iter()
                    .map(|e| {
                        let mut w = BytesMut::with_capacity(128);
                        w.put_slice(b" HTTP/1.1\r\n");
                        if !has_host {
                            w.put_slice(b"host: ");
                            w.put_slice(e.authority().as_bytes());
                            w.put_slice(b"\r\n");
                        }
                        for (name, value) in &headers {
                            w.put_slice(name.as_str().as_bytes());
                            w.put_slice(b": ");
                            w.put_slice(value.as_bytes());
                            w.put_slice(b"\r\n");
                        }
                        w.freeze()
                    })
                    .collect(),
                header_names: row_header_names,
                length_always,
            });
            let route = target.split('?').next().unwrap_or(target);
            let usage = r.stream.is_some() || r.rows.is_some() || route.ends_with("completions");
            let h2 = (spec.transport.http == HttpVersion::Http2)
                .then(|| {
                    let mut map = HeaderMap::new();
                    let mut host = None;
                    for (name, value) in &headers {
                        let hop = *name == CONNECTION
                            || *name == TRANSFER_ENCODING
                            || *name == UPGRADE
                            || (*name == TE && value.as_bytes() != b"trailers")
                            || name.as_str() == "keep-alive"
                            || name.as_str() == "proxy-connection";
                        if *name == HOST {
                            host = value.to_str().ok().map(str::to_string);
                        } else if !hop {
                            map.append(name.clone(), value.clone());
                        }
                    }
                    let uris = spec
                        .endpoints
                        .iter()
                        .map(|e| {
                            let scheme = if e.tls { "https" } else { "http" };
                            let authority = host.clone().unwrap_or_else(|| e.authority());
                            Uri::try_from(format!("{scheme}://{authority}{target}"))
                                .map_err(|err| bad(format!("invalid URL for HTTP/2: {err}")))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok::<_, EngineError>(H2Parts {
                        method: method.clone(),
                        uris,
                        headers: map,
                        bodies: bodies.iter().map(|b| Bytes::copy_from_slice(b)).collect(),
                    })
                })
                .transpose()?;
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
                h2,
                rows,
                usage,
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
    pub(crate) fn pick(&self, rng: &mut SmallRng) -> usize {
        if self.requests.len() == 1 {
            return 0;
        }
        let r = rng.random_range(0..self.total_weight);
        self.cumulative
            .partition_point(|&c| c <= r)
            .min(self.requests.len() - 1)
    }

    /// Request `i` for endpoint `ep`, using body variant (or row) `seq`; a
    /// request with rows is assembled in `scratch`.
    pub fn request<'a>(
        &'a self,
        i: usize,
        ep: usize,
        seq: usize,
        scratch: &'a mut Vec<u8>,
    ) -> Outgoing<'a> {
        let p = &self.requests[i];
        let eps = self.addrs.len();
        let ep = if ep < eps { ep } else { ep % eps };
        if let Some(rows) = &p.rows {
            let body = rows.set.body_slice(seq);
            let path = rows.set.path(seq).unwrap_or(&rows.path);
            let head = &rows.heads[ep];
            scratch.reserve(rows.method.len() + 1 + path.len() + head.len() + 32 + body.len());
            scratch.extend_from_slice(&rows.method);
            scratch.push(b' ');
            scratch.extend_from_slice(path.as_bytes());
            scratch.extend_from_slice(head);
            for (name, value) in rows.header_names.iter().zip(rows.set.header_slices(seq)) {
                scratch.extend_from_slice(name.as_str().as_bytes());
                scratch.extend_from_slice(b": ");
                scratch.extend_from_slice(value);
                scratch.extend_from_slice(b"\r\n");
            }
            if rows.length_always || !body.is_empty() {
                let _ = write!(scratch, "content-length: {}\r\n", body.len());
            }
            scratch.extend_from_slice(b"\r\n");
            scratch.extend_from_slice(body);
            return Outgoing {
                bytes: scratch,
                head: p.head,
                replayable: p.replayable,
                close: p.close,
                expect_status: p.expect_status,
            };
        }
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

    /// Request `i` for endpoint `ep` as HTTP/2 sends it; none unless the
    /// plan was built for HTTP/2.
    pub(crate) fn h2_request(&self, i: usize, ep: usize, seq: usize) -> Option<H2Outgoing> {
        let p = &self.requests[i];
        let h2 = p.h2.as_ref()?;
        let ep = ep % h2.uris.len().max(1);
        let mut request = Request::new(());
        *request.method_mut() = h2.method.clone();
        *request.uri_mut() = h2.uris.get(ep)?.clone();
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = h2.headers.clone();
        let body = match &p.rows {
            Some(rows) => {
                if let Some(path) = rows.set.path(seq) {
                    let uri = request.uri();
                    let scheme = uri.scheme_str().unwrap_or("http");
                    let authority = uri.authority().map_or("", |a| a.as_str());
                    *request.uri_mut() =
                        Uri::try_from(format!("{scheme}://{authority}{path}")).ok()?;
                }
                let headers = request.headers_mut();
                for (name, value) in rows.header_names.iter().zip(rows.set.header_values(seq)) {
                    // Checked when the rows were rendered.
                    headers.append(name.clone(), HeaderValue::from_maybe_shared(value).ok()?);
                }
                rows.set.body(seq)
            }
            None => h2.bodies[seq % h2.bodies.len()].clone(),
        };
        Some(H2Outgoing {
            request,
            body,
            expect_status: p.expect_status,
            replayable: p.replayable,
        })
    }

    /// Requests go out over HTTP/2.
    pub(crate) fn is_h2(&self) -> bool {
        self.requests.first().is_some_and(|r| r.h2.is_some())
    }

    /// How request `i`'s response is timed event by event, if it is.
    pub fn stream(&self, i: usize) -> Option<StreamMode> {
        self.requests[i].stream
    }

    /// The row request `i` takes next, when it has rows.
    pub(crate) fn next_row(&self, i: usize, rng: &mut SmallRng) -> Option<usize> {
        Some(self.requests[i].rows.as_ref()?.set.next_row(rng))
    }

    /// The rows of a trace, when requests replay one.
    pub fn trace(&self) -> Option<Arc<RowSet>> {
        self.requests.iter().find_map(|r| {
            let rows = r.rows.as_ref()?;
            rows.set.is_trace().then(|| Arc::clone(&rows.set))
        })
    }

    /// Request `i`'s response is read for token usage.
    pub(crate) fn reads_usage(&self, i: usize) -> bool {
        self.requests[i].usage
    }

    pub(crate) fn body_variants(&self, i: usize) -> usize {
        self.requests[i].variants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::request::{RowOrder, StreamSlo};
    use crate::engine::data::RowSetBuilder;
    use crate::engine::spec::{Endpoint, Model, RequestSpec, Transport};
    use std::time::Duration;

    fn spec(http: HttpVersion) -> LoadSpec {
        let mut rows = RowSetBuilder::new(true, vec!["X-User".into()]);
        for (k, user) in ["ada", "grace"].iter().enumerate() {
            rows.push(&format!("/r/{k}"), &[user.to_string()], b"{}")
                .unwrap();
        }
        let mut request = RequestSpec::get("rows", "/r/0");
        request.method = "POST".into();
        request.headers = vec![("X-Fixed".into(), "same".into())];
        request.rows = Some(Arc::new(rows.finish(RowOrder::Sequential, 1)));
        LoadSpec {
            endpoints: vec![Endpoint::parse("http://127.0.0.1:9").unwrap()],
            requests: vec![request],
            model: Model::Closed {
                users: 1,
                spawn_rate: 0.0,
                think_min: Duration::ZERO,
                think_max: Duration::ZERO,
            },
            workers: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            slo: StreamSlo::default(),
            transport: Transport {
                http,
                ..Transport::default()
            },
        }
    }

    #[test]
    fn each_row_sends_its_own_header_value() {
        let addrs = ["127.0.0.1:9".parse().unwrap()];
        let plan = Plan::build(&spec(HttpVersion::Http1), &addrs).unwrap();
        let mut scratch = Vec::new();
        let wire = plan.request(0, 0, 1, &mut scratch).bytes.to_vec();
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "POST /r/1 HTTP/1.1\r\nhost: 127.0.0.1:9\r\nx-fixed: same\r\nx-user: grace\r\ncontent-length: 2\r\n\r\n{}"
        );

        let plan = Plan::build(&spec(HttpVersion::Http2), &addrs).unwrap();
        for (k, user) in ["ada", "grace"].iter().enumerate() {
            let out = plan.h2_request(0, 0, k).unwrap();
            let h = out.request.headers();
            assert_eq!(h.get("x-user").unwrap(), user);
            assert_eq!(h.get("x-fixed").unwrap(), "same");
            assert_eq!(out.request.uri().path(), format!("/r/{k}"));
            assert_eq!(&out.body[..], b"{}");
        }
    }
}
