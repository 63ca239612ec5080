//! Sans-I/O HTTP/1.1 response parser: status line and headers via
//! `httparse`, then body framing (Content-Length, chunked, close-delimited),
//! with the body discarded as it is consumed.
//!
//! The caller owns the read buffer and feeds whatever it holds; the parser
//! says how many bytes it consumed and whether the response is complete.
//! Bytes after a complete response are never consumed, so they cannot be
//! mistaken for part of it. Every limit is enforced here, so no input makes
//! the caller's buffer grow without bound.

use std::mem::MaybeUninit;

use httparse::Status;

/// Headers per response (hyper's default is 100 too).
const MAX_HEADERS: usize = 100;
/// Status line plus headers.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// One chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// All trailer lines of a chunked body together.
const MAX_TRAILERS: usize = 64 * 1024;

/// A complete response: what the exchange needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    /// The connection may carry another request: HTTP/1.1 without
    /// `Connection: close` (or HTTP/1.0 with `keep-alive`), and a body whose
    /// end was delimited by its framing rather than by closing.
    pub keep_alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The status line or a header is not valid HTTP/1.x.
    Head,
    HeadTooLarge,
    ContentLength,
    Chunk,
    TrailersTooLarge,
    /// The connection ended before the response did.
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Bytes of a Content-Length body still to come.
    Length(u64),
    ChunkSize,
    /// Bytes of the current chunk still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk; bytes seen so far.
    Trailers(usize),
    /// The body runs until the server closes the connection.
    UntilClose,
}

/// Sees a response's body as it is parsed: the body bytes (chunk framing
/// removed) and, for a chunked body, the end of every chunk.
pub(crate) trait BodySink {
    /// Body bytes, in order; `chunked`: the body is chunk-framed.
    fn data(&mut self, bytes: &[u8], chunked: bool);
    /// The end of one chunk's data.
    fn chunk_end(&mut self);
    /// A body that ends where the connection closes is complete (rather
    /// than cut short) by what it carried.
    fn complete_at_eof(&self) -> bool {
        true
    }
}

impl<T: BodySink + ?Sized> BodySink for &mut T {
    fn data(&mut self, bytes: &[u8], chunked: bool) {
        (**self).data(bytes, chunked);
    }
    fn chunk_end(&mut self) {
        (**self).chunk_end();
    }
    fn complete_at_eof(&self) -> bool {
        (**self).complete_at_eof()
    }
}

/// Discards the body: the parser then costs what it costs without a sink.
impl BodySink for () {
    #[inline(always)]
    fn data(&mut self, _: &[u8], _: bool) {}
    #[inline(always)]
    fn chunk_end(&mut self) {}
}

#[derive(Debug)]
pub(crate) struct ResponseParser {
    state: State,
    status: u16,
    keep_alive: bool,
    /// The request was HEAD: the response has no body whatever it says.
    head_request: bool,
}

impl ResponseParser {
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            status: 0,
            keep_alive: false,
            head_request: false,
        }
    }

    /// Prepares for the response to a new request.
    pub fn start(&mut self, head_request: bool) {
        self.state = State::Head;
        self.head_request = head_request;
    }

    /// Consumes as much of `buf` as belongs to the response. Returns the bytes
    /// consumed and, once the response is complete, the response (the parser
    /// is then ready for the next one). `Ok((n, None))` means more input is
    /// needed; then every byte that can be consumed has been, and what is left
    /// (`buf[n..]`) is shorter than the parser's limits.
    #[cfg(test)]
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Result<(usize, Option<Response>), ParseError> {
        self.feed_to(buf, &mut ())
    }

    /// [`ResponseParser::feed`], showing the body's bytes to `sink`.
    #[inline]
    pub(crate) fn feed_to<S: BodySink>(
        &mut self,
        buf: &[u8],
        sink: &mut S,
    ) -> Result<(usize, Option<Response>), ParseError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match self.state {
                State::Head => {
                    let Some(n) = self.parse_head(rest)? else {
                        return Ok((used, None));
                    };
                    used += n;
                }
                State::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    if take > 0 {
                        sink.data(&rest[..take as usize], false);
                    }
                    used += take as usize;
                    if take < left {
                        self.state = State::Length(left - take);
                        return Ok((used, None));
                    }
                    return Ok((used, Some(self.finish())));
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    // httparse reads an empty size as 0; a size needs a digit.
                    Ok(_) if rest.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                        return Err(ParseError::Chunk);
                    }
                    Ok(Status::Complete((n, size))) => {
                        used += n;
                        self.state = if size == 0 {
                            State::Trailers(0)
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(Status::Partial) if rest.len() <= MAX_CHUNK_LINE => {
                        return Ok((used, None));
                    }
                    Ok(Status::Partial) | Err(_) => return Err(ParseError::Chunk),
                },
                State::ChunkData(left) => {
                    let take = left.min(rest.len() as u64);
                    if take > 0 {
                        sink.data(&rest[..take as usize], true);
                    }
                    used += take as usize;
                    if take < left {
                        self.state = State::ChunkData(left - take);
                        return Ok((used, None));
                    }
                    sink.chunk_end();
                    self.state = State::ChunkEnd;
                }
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok((used, None)),
                    _ => return Err(ParseError::Chunk),
                },
                State::Trailers(seen) => {
                    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                        if seen + rest.len() > MAX_TRAILERS {
                            return Err(ParseError::TrailersTooLarge);
                        }
                        return Ok((used, None));
                    };
                    let line = &rest[..lf];
                    if line.last() != Some(&b'\r') {
                        return Err(ParseError::Chunk);
                    }
                    used += lf + 1;
                    if line.len() == 1 {
                        return Ok((used, Some(self.finish())));
                    }
                    if seen + lf + 1 > MAX_TRAILERS {
                        return Err(ParseError::TrailersTooLarge);
                    }
                    self.state = State::Trailers(seen + lf + 1);
                }
                State::UntilClose => {
                    if !rest.is_empty() {
                        sink.data(rest, false);
                    }
                    return Ok((buf.len(), None));
                }
            }
        }
    }

    /// The connection reached end of file. A close-delimited body ends here;
    /// any other response is cut short.
    pub(crate) fn eof(&mut self) -> Result<Response, ParseError> {
        match self.state {
            State::UntilClose => {
                self.keep_alive = false;
                Ok(self.finish())
            }
            _ => Err(ParseError::Eof),
        }
    }

    fn finish(&mut self) -> Response {
        self.state = State::Head;
        Response {
            status: self.status,
            keep_alive: self.keep_alive,
        }
    }

    /// Parses one head. `None`: incomplete. On success the state is set to
    /// the body's framing (or stays `Head` after a skipped 1xx response, or
    /// becomes `Length(0)` for a response without a body).
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        if buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialized: filling 100 empty headers per response would
        // cost more than parsing a typical head.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut headers,
        ) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
            Ok(Status::Partial) => return Err(ParseError::HeadTooLarge),
            Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadTooLarge),
            Err(_) => return Err(ParseError::Head),
        };
        if n > MAX_HEAD {
            return Err(ParseError::HeadTooLarge);
        }
        let (Some(version), Some(status)) = (resp.version, resp.code) else {
            return Err(ParseError::Head);
        };
        // 100 Continue, 102, 103: interim responses, headers only; the final
        // response follows. 101 would switch protocols: it is final here.
        if (100..200).contains(&status) && status != 101 {
            return Ok(Some(n));
        }
        let mut keep_alive = version >= 1;
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                for part in h.value.split(|&b| b == b',') {
                    let v = parse_decimal(part.trim_ascii()).ok_or(ParseError::ContentLength)?;
                    if content_length.is_some_and(|c| c != v) {
                        return Err(ParseError::ContentLength);
                    }
                    content_length = Some(v);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                // Only the last coding decides whether the body is chunked.
                for coding in h.value.split(|&b| b == b',') {
                    let coding = coding.trim_ascii();
                    if !coding.is_empty() {
                        chunked = coding.eq_ignore_ascii_case(b"chunked");
                    }
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                        keep_alive = true;
                    }
                }
            }
        }
        self.status = status;
        self.state = if self.head_request || status == 204 || status == 304 || status == 101 {
            if status == 101 {
                keep_alive = false;
            }
            State::Length(0)
        } else if transfer_encoding {
            // Transfer-Encoding overrides Content-Length; a response with
            // both is suspect, so its connection is not reused.
            if content_length.is_some() {
                keep_alive = false;
            }
            if chunked {
                State::ChunkSize
            } else {
                keep_alive = false;
                State::UntilClose
            }
        } else if let Some(len) = content_length {
            State::Length(len)
        } else {
            keep_alive = false;
            State::UntilClose
        };
        self.keep_alive = keep_alive;
        Ok(Some(n))
    }
}

/// A non-empty run of ASCII digits that fits in a u64.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};

    /// Feeds `input` in pieces split at `cuts`, the way a reader with a
    /// buffer would: unconsumed bytes stay and more are appended. Returns the
    /// responses, the bytes left unconsumed, and the error if any.
    fn run(
        parser: &mut ResponseParser,
        input: &[u8],
        cuts: &[usize],
        eof: bool,
    ) -> (Vec<Response>, Vec<u8>, Option<ParseError>) {
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut from = 0;
        let mut ends: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
        ends.push(input.len());
        for end in ends {
            if end < from {
                continue;
            }
            buf.extend_from_slice(&input[from..end]);
            from = end;
            loop {
                match parser.feed(&buf) {
                    Ok((n, resp)) => {
                        assert!(n <= buf.len());
                        buf.drain(..n);
                        match resp {
                            Some(r) => out.push(r),
                            None => break,
                        }
                    }
                    Err(e) => return (out, buf, Some(e)),
                }
            }
        }
        if eof {
            match parser.eof() {
                Ok(r) => out.push(r),
                Err(e) => return (out, buf, Some(e)),
            }
        }
        (out, buf, None)
    }

    fn whole(input: &[u8]) -> (Vec<Response>, Vec<u8>, Option<ParseError>) {
        run(&mut ResponseParser::new(), input, &[], false)
    }

    fn ok(status: u16, keep_alive: bool) -> Response {
        Response { status, keep_alive }
    }

    const CL: &[u8] = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";
    const CONTINUE: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    const CLOSE: &[u8] = b"HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbad";
    const UNTIL_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nbody until close";

    #[test]
    fn content_length_body() {
        assert_eq!(whole(CL), (vec![ok(200, true)], vec![], None));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        assert_eq!(whole(CHUNKED), (vec![ok(200, true)], vec![], None));
        let lower =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(whole(lower), (vec![ok(200, true)], vec![], None));
    }

    #[test]
    fn interim_responses_are_skipped() {
        assert_eq!(whole(CONTINUE), (vec![ok(201, true)], vec![], None));
        let two = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(two), (vec![ok(200, true)], vec![], None));
    }

    #[test]
    fn connection_close_and_http10() {
        assert_eq!(whole(CLOSE), (vec![ok(500, false)], vec![], None));
        let h10 = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(whole(h10), (vec![ok(200, false)], vec![], None));
        let h10ka = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(whole(h10ka), (vec![ok(200, true)], vec![], None));
        let tokens = b"HTTP/1.1 200 OK\r\nConnection: upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(tokens), (vec![ok(200, false)], vec![], None));
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let mut p = ResponseParser::new();
        let (out, left, err) = run(&mut p, UNTIL_CLOSE, &[3, 20], true);
        assert_eq!((out, left, err), (vec![ok(200, false)], vec![], None));
        // Transfer-Encoding without chunked last is close-delimited too.
        let te = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz";
        let mut p = ResponseParser::new();
        assert_eq!(
            run(&mut p, te, &[], true),
            (vec![ok(200, false)], vec![], None)
        );
    }

    #[test]
    fn bodiless_responses() {
        let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(whole(no_content), (vec![ok(204, true)], vec![], None));
        let not_modified = b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(whole(not_modified), (vec![ok(304, true)], vec![], None));
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        assert_eq!(whole(switching), (vec![ok(101, false)], vec![], None));
        let mut p = ResponseParser::new();
        p.start(true);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        assert_eq!(
            run(&mut p, head, &[], false),
            (vec![ok(200, true)], vec![], None)
        );
    }

    #[test]
    fn bytes_after_a_response_are_left_alone() {
        let mut two = CL.to_vec();
        two.extend_from_slice(CHUNKED);
        let mut p = ResponseParser::new();
        let (n, resp) = p.feed(&two).unwrap();
        assert_eq!((n, resp), (CL.len(), Some(ok(200, true))));
        let (n, resp) = p.feed(&two[CL.len()..]).unwrap();
        assert_eq!((n, resp), (CHUNKED.len(), Some(ok(200, true))));
        // Trailing garbage after a chunked body is not consumed either.
        let mut tail = CHUNKED.to_vec();
        tail.extend_from_slice(b"garbage");
        let mut p = ResponseParser::new();
        assert_eq!(p.feed(&tail).unwrap(), (CHUNKED.len(), Some(ok(200, true))));
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"HTTP/2 200 OK\r\n\r\n", ParseError::Head),
            (b"HTTP/1.1 2000 OK\r\n\r\n", ParseError::Head),
            (b"HTTP/1.1 OK\r\n\r\n", ParseError::Head),
            (b"garbage\r\n\r\n", ParseError::Head),
            (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", ParseError::Head),
            (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", ParseError::Head),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ParseError::Chunk,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                ParseError::Chunk,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
                ParseError::Chunk,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
                ParseError::Chunk,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\n",
                ParseError::Chunk,
            ),
        ];
        for (input, want) in cases {
            let (out, _, err) = whole(input);
            assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(input));
            assert_eq!(err, Some(*want), "{:?}", String::from_utf8_lossy(input));
        }
        // Equal duplicates are tolerated.
        let dup = b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\nContent-Length: 1\r\n\r\nx";
        assert_eq!(whole(dup), (vec![ok(200, true)], vec![], None));
    }

    #[test]
    fn limits_are_enforced() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() <= MAX_HEAD {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(whole(&big).2, Some(ParseError::HeadTooLarge));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(whole(&many).2, Some(ParseError::HeadTooLarge));
        let mut ext = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
        ext.resize(ext.len() + MAX_CHUNK_LINE + 1, b'e');
        assert_eq!(whole(&ext).2, Some(ParseError::Chunk));
        let mut trailers = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        while trailers.len() < 2 * MAX_TRAILERS {
            trailers.extend_from_slice(b"X-T: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(whole(&trailers).2, Some(ParseError::TrailersTooLarge));
        let mut endless = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
        endless.resize(endless.len() + MAX_TRAILERS + 1, b'a');
        assert_eq!(whole(&endless).2, Some(ParseError::TrailersTooLarge));
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        for input in [CL, CHUNKED, CONTINUE, CLOSE] {
            let expected = whole(input);
            assert!(expected.2.is_none());
            for cut in 0..=input.len() {
                let got = run(&mut ResponseParser::new(), input, &[cut], false);
                assert_eq!(got, expected, "cut at {cut}");
            }
            let bytewise: Vec<usize> = (0..input.len()).collect();
            assert_eq!(
                run(&mut ResponseParser::new(), input, &bytewise, false),
                expected
            );
        }
    }

    #[test]
    fn truncated_responses_need_more_or_fail_at_eof() {
        for input in [CL, CHUNKED, CONTINUE, CLOSE] {
            for len in 0..input.len() {
                let mut p = ResponseParser::new();
                let (out, _, err) = run(&mut p, &input[..len], &[], false);
                assert!(out.is_empty() && err.is_none(), "{len}: {out:?} {err:?}");
                let mut p = ResponseParser::new();
                let (out, _, err) = run(&mut p, &input[..len], &[len / 2], true);
                assert!(out.is_empty(), "{len}");
                assert!(err.is_some(), "{len}");
            }
        }
    }

    /// Random mutations of valid responses, fed in random pieces: the parser
    /// must never panic, never consume more than it was given, and never
    /// report more responses than could fit.
    #[test]
    fn mutated_responses_never_panic() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        let seeds: [&[u8]; 5] = [CL, CHUNKED, CONTINUE, CLOSE, UNTIL_CLOSE];
        let interesting: &[u8] = b"\r\n:;, 0123456789aAfFzZ\t\x00\xff";
        for iter in 0..60_000u32 {
            let mut input = seeds[iter as usize % seeds.len()].to_vec();
            for _ in 0..rng.random_range(1..6u32) {
                let at = rng.random_range(0..=input.len());
                match rng.random_range(0..5u32) {
                    0 if at < input.len() => input[at] = rng.random(),
                    1 if at < input.len() => {
                        input[at] = interesting[rng.random_range(0..interesting.len())];
                    }
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    3 => input.insert(at, interesting[rng.random_range(0..interesting.len())]),
                    _ => input.truncate(at),
                }
            }
            let pieces: Vec<usize> = (0..rng.random_range(0..4u32))
                .map(|_| rng.random_range(0..=input.len()))
                .collect();
            let mut pieces = pieces;
            pieces.sort_unstable();
            let mut p = ResponseParser::new();
            p.start(iter % 7 == 0);
            let (out, left, _) = run(&mut p, &input, &pieces, iter % 2 == 0);
            // A response takes at least "HTTP/1.1 200\n\n" (14 bytes).
            assert!(out.len() <= input.len() / 14 + 1);
            assert!(left.len() <= input.len());
        }
    }
}
