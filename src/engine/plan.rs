//! The request mix compiled once per worker: parsed methods, URIs and header
//! maps (Host included), so building a request is a few cheap clones.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use rand::RngExt;
use rand::rngs::SmallRng;

use super::native::{EngineError, LoadSpec};

pub(crate) struct PlannedRequest {
    method: Method,
    uri: Uri,
    /// One per endpoint: they differ only in `Host`.
    headers: Vec<HeaderMap>,
    bodies: Vec<Bytes>,
    pub expect_status: Option<u16>,
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
            let mut base = HeaderMap::with_capacity(r.headers.len() + 1);
            for (k, v) in &r.headers {
                let name = HeaderName::from_bytes(k.trim().as_bytes())
                    .map_err(|_| bad(format!("invalid header name {k:?}")))?;
                let value = HeaderValue::from_bytes(v.trim().as_bytes())
                    .map_err(|_| bad(format!("invalid value for header {k:?}")))?;
                // hyper derives Content-Length from each body variant.
                if name != CONTENT_LENGTH {
                    base.append(name, value);
                }
            }
            let mut headers = Vec::with_capacity(spec.endpoints.len());
            for e in &spec.endpoints {
                let mut h = base.clone();
                if !h.contains_key(HOST) {
                    let host = HeaderValue::from_str(&e.authority())
                        .map_err(|_| bad(format!("invalid host {:?}", e.host)))?;
                    h.insert(HOST, host);
                }
                headers.push(h);
            }
            total_weight += u64::from(r.weight);
            cumulative.push(total_weight);
            requests.push(PlannedRequest {
                method,
                uri,
                headers,
                // Copies, so workers never share reference counts.
                bodies: r.bodies.iter().map(|b| Bytes::copy_from_slice(b)).collect(),
                expect_status: r.expect_status,
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

    /// Builds request `i` for endpoint `ep`, using body variant `seq`.
    pub fn request(&self, i: usize, ep: usize, seq: usize) -> Request<Full<Bytes>> {
        let p = &self.requests[i];
        let body = match p.bodies.len() {
            0 => Bytes::new(),
            n => p.bodies[seq % n].clone(),
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = p.method.clone();
        *req.uri_mut() = p.uri.clone();
        *req.headers_mut() = p.headers[ep % p.headers.len()].clone();
        req
    }

    pub fn body_variants(&self, i: usize) -> usize {
        self.requests[i].bodies.len()
    }
}
