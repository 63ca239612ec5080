//! Streamed responses timed event by event as their bytes arrive: Server-Sent
//! Events (`data:` lines, ended by `data: [DONE]`) or body chunks. Nothing of
//! the body is kept beyond the few bytes of state a line needs.

use std::time::Instant;

use super::http1::BodySink;
use super::usage::{Seek, Seen, UsageScan};
use crate::base::request::StreamMode;

const DATA: &[u8] = b"data:";
const DONE: &[u8] = b"[DONE]";

/// Where the SSE scanner is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line, `n` bytes of `data:` matched so far.
    Prefix(usize),
    /// A line that is not a data line: skipped to its end.
    Skip,
    /// Right after `data:` (one space may follow).
    ValueStart,
    /// `n` bytes of the value matched `[DONE]` so far.
    Value(usize),
    /// A data line whose value is not `[DONE]`.
    Other,
}

/// Counts and times the events of one streamed response. `on_event` is
/// called with the previous event's time (none for the first) and this
/// event's time.
pub struct Events<F: FnMut(Option<Instant>, Instant)> {
    mode: StreamMode,
    line: Line,
    /// The last byte was a CR: a LF right after it ends no second line.
    after_cr: bool,
    /// `data: [DONE]` arrived: later events are not counted.
    pub done: bool,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub tokens: u64,
    /// The stream's `usage` report, when it makes one.
    pub usage: UsageScan,
    /// Finds `"choices":[]` on the current line: a usage-only chunk is no
    /// token.
    no_choices: Seek,
    empty_line: bool,
    on_event: F,
}

impl<F: FnMut(Option<Instant>, Instant)> Events<F> {
    pub fn new(mode: StreamMode, on_event: F) -> Self {
        Events {
            mode,
            line: Line::Prefix(0),
            after_cr: false,
            done: false,
            first: None,
            last: None,
            tokens: 0,
            usage: UsageScan::default(),
            no_choices: Seek::new(b"\"choices\":[]"),
            empty_line: false,
            on_event,
        }
    }

    /// What the stream said of its tokens.
    pub fn seen(&self) -> Seen {
        Seen {
            usage: self.usage.usage(),
            events: self.tokens,
        }
    }

    fn event(&mut self, now: &mut Option<Instant>) {
        if self.done {
            return;
        }
        let at = *now.get_or_insert_with(Instant::now);
        (self.on_event)(self.last, at);
        self.first.get_or_insert(at);
        self.last = Some(at);
        self.tokens += 1;
    }

    /// The end of an SSE line.
    fn end_line(&mut self, now: &mut Option<Instant>) {
        match self.line {
            Line::Value(n) if n == DONE.len() => self.done = true,
            Line::Other if self.empty_line => {}
            Line::ValueStart | Line::Value(_) | Line::Other => self.event(now),
            Line::Prefix(_) | Line::Skip => {}
        }
        self.line = Line::Prefix(0);
        self.empty_line = false;
    }

    fn sse(&mut self, bytes: &[u8]) {
        // One clock read for every event of one read: they arrived together.
        let mut now = None;
        for &b in bytes {
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.end_line(&mut now);
                continue;
            }
            self.usage.feed(b);
            self.empty_line |= self.no_choices.feed(b);
            self.line = match self.line {
                Line::Prefix(n) if DATA[n] == b => {
                    if n + 1 == DATA.len() {
                        Line::ValueStart
                    } else {
                        Line::Prefix(n + 1)
                    }
                }
                Line::Prefix(_) | Line::Skip => Line::Skip,
                Line::ValueStart if b == b' ' => Line::Value(0),
                Line::ValueStart => Line::Value(0).next(b),
                v @ Line::Value(_) => v.next(b),
                Line::Other => Line::Other,
            };
        }
    }
}

impl Line {
    fn next(self, b: u8) -> Line {
        match self {
            Line::Value(n) if n < DONE.len() && DONE[n] == b => Line::Value(n + 1),
            _ => Line::Other,
        }
    }
}

impl<F: FnMut(Option<Instant>, Instant)> BodySink for Events<F> {
    fn data(&mut self, bytes: &[u8], chunked: bool) {
        match self.mode {
            StreamMode::Sse => self.sse(bytes),
            // Without chunk framing every read of body bytes is one event.
            StreamMode::Chunks if !chunked => self.event(&mut None),
            StreamMode::Chunks => {}
        }
    }

    fn chunk_end(&mut self) {
        if self.mode == StreamMode::Chunks {
            self.event(&mut None);
        }
    }

    /// An SSE body ended by the connection's close is complete only if it
    /// said `[DONE]`.
    fn complete_at_eof(&self) -> bool {
        match self.mode {
            StreamMode::Sse => self.done,
            StreamMode::Chunks => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(mode: StreamMode, pieces: &[&[u8]], chunked: bool) -> (u64, bool) {
        let mut e = Events::new(mode, |_, _| {});
        for p in pieces {
            e.data(p, chunked);
        }
        (e.tokens, e.done)
    }

    #[test]
    fn sse_counts_data_lines_until_done_in_any_split() {
        let body: &[u8] = b": comment\r\nevent: x\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\n\
            data: [DONE]x\n\ndata:\n\ndata: [DONE]\n\ndata: late\n\n";
        // Three events: {"a":1}, {"b":2}, "[DONE]x"; the empty data line is a fourth.
        assert_eq!(count(StreamMode::Sse, &[body], false), (4, true));
        for cut in 0..body.len() {
            let got = count(StreamMode::Sse, &[&body[..cut], &body[cut..]], true);
            assert_eq!(got, (4, true), "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(count(StreamMode::Sse, &bytewise, false), (4, true));
        assert_eq!(
            count(StreamMode::Sse, &[b"data: one\n\ndata: tw"], false),
            (1, false)
        );
        // "database: x" is not a data line.
        assert_eq!(
            count(StreamMode::Sse, &[b"database: x\n"], false),
            (0, false)
        );
    }

    #[test]
    fn a_usage_only_chunk_is_no_token_but_its_usage_is_read() {
        let body: &[u8] = b"data: {\"choices\":[{\"text\":\" a\"}]}\n\n\
            data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 9, \"completion_tokens\": 1}}\n\n\
            data: [DONE]\n\n";
        for cut in 0..body.len() {
            let mut e = Events::new(StreamMode::Sse, |_, _| {});
            e.data(&body[..cut], true);
            e.data(&body[cut..], true);
            assert_eq!(
                e.seen(),
                Seen {
                    usage: Some((9, 1)),
                    events: 1
                },
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn chunks_are_events_and_unframed_reads_too() {
        let mut e = Events::new(StreamMode::Chunks, |_, _| {});
        e.data(b"ab", true);
        e.data(b"c", true);
        e.chunk_end();
        e.data(b"d", true);
        e.chunk_end();
        assert_eq!(e.tokens, 2);
        assert_eq!(count(StreamMode::Chunks, &[b"a", b"bc"], false), (2, false));
    }

    #[test]
    fn every_event_reports_the_gap_since_the_previous_one() {
        let mut calls = Vec::new();
        {
            let mut e = Events::new(StreamMode::Sse, |prev: Option<Instant>, at| {
                calls.push(prev.map(|p| at >= p));
            });
            e.data(b"data: 1\n\n", false);
            e.data(b"data: 2\n\ndata: 3\n\n", false);
            assert_eq!(
                (e.tokens, e.first.is_some(), e.last >= e.first),
                (3, true, true)
            );
        }
        assert_eq!(calls, [None, Some(true), Some(true)]);
    }
}
