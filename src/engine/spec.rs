//! The native engine's public types: what to run, how it reports progress,
//! and how it fails.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::figures::WindowSoFar;
use crate::base::request::{StreamMode, StreamSlo};

/// What to run: endpoints, request mix, load model and timing.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// One or more replicas; connections are spread over them round-robin
    /// (per virtual user in the closed model, per arrival in the open model).
    pub endpoints: Vec<Endpoint>,
    /// Weighted request mix.
    pub requests: Vec<RequestSpec>,
    pub model: Model,
    /// OS threads, each with its own current-thread runtime and connections.
    /// Capped at the number of users (closed) or `max_in_flight` (open).
    pub workers: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
    /// Per-request objectives; with any set, every request is judged against
    /// them as it completes and the cell reports goodput.
    pub slo: StreamSlo,
    /// HTTP version, connection sharing and TLS.
    pub transport: Transport,
}

/// How requests travel: HTTP version, connections, TLS for https endpoints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transport {
    pub http: HttpVersion,
    /// HTTP/2: the connections per worker and endpoint that every user's
    /// streams share, split over the workers. None: one per virtual user
    /// (closed model) or one per worker and endpoint (open model).
    pub connections: Option<u64>,
    /// For https endpoints; none: system roots, verified, no client certificate.
    pub tls: Option<crate::tls::TlsSettings>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum HttpVersion {
    #[default]
    Http1,
    /// ALPN h2 over TLS, prior-knowledge h2c over plain TCP.
    Http2,
}

impl LoadSpec {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
}

/// An endpoint, `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// https: TLS over the connection.
    #[serde(default)]
    pub tls: bool,
}

impl Endpoint {
    /// Parses a base URL such as `http://127.0.0.1:8023` or
    /// `https://api.internal`; the URL may end in `/` but carry no other path, query or
    /// fragment (paths belong to the requests).
    pub fn parse(url: &str) -> Result<Endpoint, EngineError> {
        let bad = |reason: &str| EngineError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(bad("expected http://host:port"));
        };
        let tls = scheme.eq_ignore_ascii_case("https");
        if !tls && !scheme.eq_ignore_ascii_case("http") {
            return Err(bad("only http:// and https:// URLs are supported"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !(tail.is_empty() || tail == "/") {
            return Err(bad(
                "a base URL may not carry a path, query or fragment; put it in the request path",
            ));
        }
        if authority.contains('@') {
            return Err(bad("user info in URLs is not supported"));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let Some((host, after)) = inner.split_once(']') else {
                return Err(bad("unclosed '[' in IPv6 host"));
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(bad("unexpected text after IPv6 host")),
                },
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        if !authority.starts_with('[') && host.contains(':') {
            return Err(bad(
                "IPv6 hosts must be written in brackets, e.g. http://[::1]:8080",
            ));
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("port must be a number in 1..=65535")),
            },
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// Value of the `Host` header for this endpoint.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// One entry of the weighted request mix.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub name: String,
    /// Case-insensitive; sent upper-cased.
    pub method: String,
    /// Origin form: `/path?query`. Empty means `/`.
    pub path: String,
    /// Sent as given (names lower-cased), except `Content-Length` and
    /// `Transfer-Encoding`: the body is always framed by a `Content-Length`
    /// derived from it. A `Host` header is added unless present.
    pub headers: Vec<(String, String)>,
    /// Empty: no body. Several: pre-rendered variants used round-robin.
    pub bodies: Vec<Bytes>,
    pub weight: u32,
    /// `None`: any 2xx/3xx status is a success.
    pub expect_status: Option<u16>,
    /// Time the response event by event.
    pub stream: Option<StreamMode>,
    /// Rendered rows: each request takes the next row's body (and path,
    /// when rows carry one) instead of `bodies` and `path`.
    pub rows: Option<std::sync::Arc<super::data::RowSet>>,
}

impl RequestSpec {
    /// A weight-1 GET without headers or body.
    pub fn get(name: &str, path: &str) -> Self {
        RequestSpec {
            name: name.to_string(),
            method: "GET".to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            bodies: Vec::new(),
            weight: 1,
            expect_status: None,
            stream: None,
            rows: None,
        }
    }
}

/// Load model.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Virtual users, each looping request -> full response -> think, on its
    /// own keep-alive connection. Latency is measured from the start of the
    /// request (including a reconnect, if one was needed) to the end of the
    /// response body.
    Closed {
        users: u64,
        /// Users per second: user `i` starts at `i / spawn_rate`. 0 or
        /// infinity starts every user at once.
        spawn_rate: f64,
        think_min: Duration,
        think_max: Duration,
    },
    /// Fixed-rate arrivals, independent of responses. Latency is measured
    /// from the scheduled (intended) start, so a stalling server cannot hide
    /// its queueing delay (no coordinated omission).
    Open {
        rate: f64,
        /// Arrivals beyond this many outstanding requests are dropped and
        /// counted in [`CellStats::dropped`]. Split evenly over workers.
        max_in_flight: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Warmup,
    Measure,
    /// After the measured window: waiting for in-flight requests.
    Drain,
}

/// Progress report, emitted about once per second on the calling thread.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressTick {
    /// Since the start of the run (warm-up included).
    pub elapsed: Duration,
    pub phase: Phase,
    /// Responses completed per second over the last tick (any phase).
    pub rps: f64,
    /// Percentiles of the measured window so far (whole seconds only).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Completed requests and failures since the start (warm-up included).
    pub requests: u64,
    pub failures: u64,
    /// Active virtual users (closed) or requests in flight (open).
    pub users: u64,
    /// Arrivals dropped so far (open model, any phase).
    pub dropped: u64,
    /// The measured window so far, counted over whole seconds every worker
    /// has closed: the same requests the cell's statistics will count.
    pub window: WindowSoFar,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid base URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("cannot resolve {endpoint}: {reason}")]
    Resolve { endpoint: String, reason: String },
    #[error("invalid load spec: {0}")]
    InvalidSpec(String),
    #[error("load worker failed: {0}")]
    Worker(String),
}
