//! Request rows rendered before the load starts and held once for every
//! worker (as k6's SharedArray): each row's path and header values (when
//! they vary) and body, packed into large shared segments, so a row costs
//! its bytes and 20 bytes of index, and a request takes its row without
//! rendering or copying.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use rand::RngExt;
use rand::rngs::SmallRng;

use crate::base::request::RowOrder;

/// Bytes per segment; a row larger than this gets a segment of its own.
const SEGMENT: usize = 16 << 20;
/// Most rendered bytes for one request's rows (paths, headers and bodies).
pub(crate) const MAX_RENDERED_BYTES: u64 = 2 << 30;

#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: u32,
    offset: u32,
    path_len: u32,
    /// The row's header values, each ended by `\n` (values hold no line
    /// breaks), in the order of [`RowSet::header_names`].
    headers_len: u32,
    body_len: u32,
}

/// The rendered rows of one request.
#[derive(Debug)]
pub struct RowSet {
    segments: Vec<Bytes>,
    rows: Vec<Entry>,
    /// Rows carry their own path.
    paths: bool,
    /// The headers every row gives its own value.
    header_names: Vec<String>,
    order: RowOrder,
    seed: u64,
    /// Requests that took a row so far, over all workers.
    next: AtomicU64,
    /// A trace's rows: when each is due after the schedule's origin, µs.
    times: Vec<u64>,
}

/// Collects rendered rows into a [`RowSet`].
#[derive(Debug)]
pub(crate) struct RowSetBuilder {
    done: Vec<Bytes>,
    current: BytesMut,
    rows: Vec<Entry>,
    paths: bool,
    header_names: Vec<String>,
    total: u64,
    times: Vec<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the rendered requests exceed {limit} bytes (2 GiB) at row {row}: use fewer or shorter rows"
)]
pub(crate) struct TooLarge {
    pub row: usize,
    pub limit: u64,
}

impl RowSetBuilder {
    /// `paths`: every row brings its own path; `header_names`: the headers
    /// every row brings its own value of.
    pub fn new(paths: bool, header_names: Vec<String>) -> Self {
        RowSetBuilder {
            done: Vec::new(),
            current: BytesMut::new(),
            rows: Vec::new(),
            paths,
            header_names,
            total: 0,
            times: Vec::new(),
        }
    }

    /// A row: its path (kept when rows carry one), its values of the
    /// builder's headers in their order (checked by the caller to hold no
    /// line break), and its body.
    pub fn push(&mut self, path: &str, headers: &[String], body: &[u8]) -> Result<(), TooLarge> {
        let path = if self.paths { path.as_bytes() } else { b"" };
        debug_assert_eq!(headers.len(), self.header_names.len());
        let headers_len: usize = headers.iter().map(|v| v.len() + 1).sum();
        let len = path.len() + headers_len + body.len();
        self.total += len as u64;
        if self.total > MAX_RENDERED_BYTES || len > u32::MAX as usize {
            return Err(TooLarge {
                row: self.rows.len() + 1,
                limit: MAX_RENDERED_BYTES,
            });
        }
        if self.current.len() + len > self.current.capacity() {
            let full =
                std::mem::replace(&mut self.current, BytesMut::with_capacity(SEGMENT.max(len)));
            if !full.is_empty() {
                self.done.push(full.freeze());
            }
        }
        let entry = Entry {
            segment: self.done.len() as u32,
            offset: self.current.len() as u32,
            path_len: path.len() as u32,
            headers_len: headers_len as u32,
            body_len: body.len() as u32,
        };
        self.current.extend_from_slice(path);
        for v in headers {
            self.current.extend_from_slice(v.as_bytes());
            self.current.extend_from_slice(b"\n");
        }
        self.current.extend_from_slice(body);
        self.rows.push(entry);
        Ok(())
    }

    /// Row `k` (the last pushed) is a trace line due `at` after the origin.
    pub(crate) fn due(&mut self, at: std::time::Duration) {
        let us = u64::try_from(at.as_micros()).unwrap_or(u64::MAX);
        self.times.resize(self.rows.len() - 1, 0);
        self.times.push(us);
    }

    pub(crate) fn finish(mut self, order: RowOrder, seed: u64) -> RowSet {
        if !self.current.is_empty() {
            self.done.push(self.current.freeze());
        }
        self.rows.shrink_to_fit();
        RowSet {
            segments: self.done,
            rows: self.rows,
            paths: self.paths,
            header_names: self.header_names,
            order,
            seed,
            next: AtomicU64::new(0),
            times: self.times,
        }
    }
}

impl RowSet {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row the next request takes: one shared sequence over all
    /// workers for `sequential` and `shuffle`, a worker's own pick for
    /// `random`.
    pub(crate) fn next_row(&self, rng: &mut SmallRng) -> usize {
        let len = self.rows.len() as u64;
        if len <= 1 {
            return 0;
        }
        let k = match self.order {
            RowOrder::Random => return rng.random_range(0..len) as usize,
            _ => self.next.fetch_add(1, Ordering::Relaxed),
        };
        let (pass, j) = (k / len, k % len);
        match self.order {
            RowOrder::Shuffle => shuffled(j, len, self.seed, pass) as usize,
            _ => j as usize,
        }
    }

    /// A trace's rows: when row `k` is due after the schedule's origin.
    pub(crate) fn due(&self, k: usize) -> Option<std::time::Duration> {
        self.times
            .get(k)
            .map(|&us| std::time::Duration::from_micros(us))
    }

    /// The rows are a trace's lines, each due at its time.
    pub(crate) fn is_trace(&self) -> bool {
        !self.times.is_empty()
    }

    /// Row `k`'s own path, when rows carry one.
    pub fn path(&self, k: usize) -> Option<&str> {
        if !self.paths {
            return None;
        }
        let e = self.rows.get(k)?;
        let s = &self.segments[e.segment as usize];
        let at = e.offset as usize;
        std::str::from_utf8(&s[at..at + e.path_len as usize]).ok()
    }

    /// The headers each row gives its own value.
    pub(crate) fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// Row `k`'s header values, in the order of [`RowSet::header_names`],
    /// sharing the segment's memory.
    pub(crate) fn header_values(&self, k: usize) -> impl Iterator<Item = Bytes> + '_ {
        let all = self
            .rows
            .get(k)
            .map(|e| {
                let at = (e.offset + e.path_len) as usize;
                self.segments[e.segment as usize].slice(at..at + e.headers_len as usize)
            })
            .unwrap_or_default();
        let mut rest = all;
        std::iter::from_fn(move || {
            let end = rest.iter().position(|&b| b == b'\n')?;
            let value = rest.slice(..end);
            rest = rest.slice(end + 1..);
            Some(value)
        })
    }

    /// Row `k`'s header values as slices.
    pub(crate) fn header_slices(&self, k: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest = self.rows.get(k).map_or(&[][..], |e| {
            let at = (e.offset + e.path_len) as usize;
            &self.segments[e.segment as usize][at..at + e.headers_len as usize]
        });
        std::iter::from_fn(move || {
            let end = rest.iter().position(|&b| b == b'\n')?;
            let value = &rest[..end];
            rest = &rest[end + 1..];
            Some(value)
        })
    }

    /// Row `k`'s body, sharing the segment's memory.
    pub fn body(&self, k: usize) -> Bytes {
        let Some(e) = self.rows.get(k) else {
            return Bytes::new();
        };
        let at = (e.offset + e.path_len + e.headers_len) as usize;
        self.segments[e.segment as usize].slice(at..at + e.body_len as usize)
    }

    /// Row `k`'s body as a slice.
    pub(crate) fn body_slice(&self, k: usize) -> &[u8] {
        let Some(e) = self.rows.get(k) else {
            return &[];
        };
        let at = (e.offset + e.path_len + e.headers_len) as usize;
        &self.segments[e.segment as usize][at..at + e.body_len as usize]
    }
}

/// Position `j` of pass `pass` over `len` rows: a bijection of `0..len` for
/// each (seed, pass), by a Feistel network with cycle walking, so a shuffle
/// needs no memory per row.
pub(crate) fn shuffled(j: u64, len: u64, seed: u64, pass: u64) -> u64 {
    if len <= 1 {
        return 0;
    }
    let bits = 64 - (len - 1).leading_zeros();
    let half = bits.div_ceil(2);
    let mask = (1u64 << half) - 1;
    let key = mix(seed ^ mix(pass));
    let mut y = j % len;
    loop {
        let (mut l, mut r) = (y >> half, y & mask);
        for round in 0..4u64 {
            let f = mix(key.wrapping_add(round) ^ mix(r)) & mask;
            (l, r) = (r, l ^ f);
        }
        y = (l << half) | r;
        if y < len {
            return y;
        }
    }
}

/// SplitMix64's finalizer: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn set(n: usize, order: RowOrder) -> RowSet {
        let mut b = RowSetBuilder::new(true, vec!["x-user".into(), "x-empty".into()]);
        for k in 0..n {
            let headers = [format!("u{k}"), String::new()];
            b.push(&format!("/r/{k}"), &headers, format!("body {k}").as_bytes())
                .unwrap();
        }
        b.finish(order, 1)
    }

    #[test]
    fn shuffles_are_permutations_that_differ_per_pass() {
        for len in [1u64, 2, 3, 7, 40, 1000] {
            let mut seen: Vec<u64> = (0..len).map(|j| shuffled(j, len, 1, 0)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..len).collect::<Vec<_>>(), "len {len}");
        }
        let a: Vec<u64> = (0..40).map(|j| shuffled(j, 40, 1, 0)).collect();
        let b: Vec<u64> = (0..40).map(|j| shuffled(j, 40, 1, 1)).collect();
        assert_ne!(a, b);
        assert_ne!(a, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn rows_keep_their_path_and_body() {
        let s = set(3, RowOrder::Sequential);
        assert_eq!(s.path(2), Some("/r/2"));
        assert_eq!(&s.body(1)[..], b"body 1");
        assert_eq!(s.body_slice(0), b"body 0");
        assert_eq!(s.header_names(), ["x-user", "x-empty"]);
        let values: Vec<Bytes> = s.header_values(2).collect();
        assert_eq!(values, [Bytes::from_static(b"u2"), Bytes::new()]);
        let slices: Vec<&[u8]> = s.header_slices(1).collect();
        assert_eq!(slices, [&b"u1"[..], b""]);
        let mut rng = SmallRng::seed_from_u64(1);
        let taken: Vec<usize> = (0..7).map(|_| s.next_row(&mut rng)).collect();
        assert_eq!(taken, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn a_shuffle_takes_every_row_once_per_pass() {
        let s = set(40, RowOrder::Shuffle);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut first: Vec<usize> = (0..40).map(|_| s.next_row(&mut rng)).collect();
        assert_ne!(first, (0..40).collect::<Vec<_>>());
        first.sort_unstable();
        assert_eq!(first, (0..40).collect::<Vec<_>>());
        let r = set(40, RowOrder::Random);
        assert!((0..100).all(|_| r.next_row(&mut rng) < 40));
    }
}
